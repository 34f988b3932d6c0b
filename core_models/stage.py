# SPDX-License-Identifier: GPL-3.0-or-later
"""Keep a generated dancer on the stage and on the floor.

The compact generator integrates root velocities window after window, so small biases add up: over a
whole song the dancer may drift metres away, and its feet may sink below the floor. Real dance stays near
its spot (the dance corpus: within about 2.5 m of the start over a minute) and never goes through the floor.
These corrections move the whole body rigidly (the pose itself is untouched):

* :func:`keep_on_stage` -- the slow part of the root's horizontal path (the drift, seconds long) is softly
  pulled into a circle of ``radius`` around the start; steps, sways and turns (the fast part) stay as
  generated. Inside the circle nothing changes.
* :func:`ground_feet` -- the body is set down so that the supporting foot (the lowest, moving slowly)
  stands on the floor, airborne moves keep their height, and no foot goes below the floor.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d, maximum_filter1d

from .skeleton import LEFT_FOOT_JOINTS, RIGHT_FOOT_JOINTS

FEET = list(LEFT_FOOT_JOINTS) + list(RIGHT_FOOT_JOINTS)

STAGE_RADIUS_M = 1.5        # the slow path stays within this distance of the start (soft limit)
STAGE_LIMIT_M = 2.5         # ... and never beyond this one
SUPPORT_SPEED = 0.6         # m/s: a foot point slower than this, lowest of the feet, carries the weight
DRIFT_SECONDS = 2.0         # time scale that separates drift (slower) from steps and sways (faster)


def _soft_clamp(radius_of: np.ndarray, soft: float, hard: float) -> np.ndarray:
    """Distances up to ``soft`` unchanged, larger ones squashed smoothly towards (never past) ``hard``."""
    out = radius_of.copy()
    over = radius_of > soft
    span = hard - soft
    out[over] = soft + span * np.tanh((radius_of[over] - soft) / span)
    return out


def slow_path(path: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian low-pass of a (T, 2) path, padded by point reflection at both ends so a steady walk keeps its
    trend up to the last frame (plain padding would make the slow part lag behind the dancer there)."""
    pad = min(int(4 * sigma), path.shape[0] - 1)
    if pad < 1:
        return path.copy()
    head = 2 * path[0] - path[pad:0:-1]
    tail = 2 * path[-1] - path[-2:-pad - 2:-1]
    smooth = gaussian_filter1d(np.concatenate([head, path, tail]), sigma, axis=0, mode="nearest")
    return smooth[pad:pad + path.shape[0]]


def keep_on_stage(joints: np.ndarray, fps: float = 30.0, radius: float = STAGE_RADIUS_M,
                  limit: float = STAGE_LIMIT_M) -> tuple[np.ndarray, np.ndarray]:
    """(T, J, 3) joints (Y up) -> (joints kept within ``limit`` of the start, (T, 2) xz shift applied)."""
    joints = np.asarray(joints, np.float64)
    root = joints[:, 0, [0, 2]] - joints[0, 0, [0, 2]]
    slow = slow_path(root, DRIFT_SECONDS * fps)
    dist = np.linalg.norm(slow, axis=-1)
    target = _soft_clamp(dist, radius, limit)
    scale = np.where(dist > 1e-9, target / np.maximum(dist, 1e-9), 1.0)
    shift = slow * (scale[:, None] - 1.0)
    out = joints.copy()
    out[..., 0] += shift[:, None, 0]
    out[..., 2] += shift[:, None, 1]
    return out, shift


def ground_feet(joints: np.ndarray, fps: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """(T, J, 3) joints (Y up) -> (joints standing on y = 0, (T,) vertical shift applied).

    Where the lowest foot point moves slowly it carries the weight, so it is set on the floor (a generated
    dancer otherwise hovers or sinks by centimetres); between such frames (a hop, a jump, a kick) the shift
    is interpolated, so airborne moves keep their height. Frames where a foot would still go below the
    floor are lifted, smoothly over about a tenth of a second."""
    joints = np.asarray(joints, np.float64)
    heights = joints[:, FEET, 1]
    lowest = heights.min(axis=1)
    t_len = joints.shape[0]
    speed = np.zeros_like(heights)
    if t_len > 1:
        step = np.linalg.norm(np.diff(joints[:, FEET], axis=0), axis=-1) * fps
        speed[1:] = step
        speed[0] = step[0]
    support = speed[np.arange(t_len), heights.argmin(axis=1)] < SUPPORT_SPEED
    if support.sum() >= 2:
        frames = np.flatnonzero(support)
        shift = np.interp(np.arange(t_len), frames, -lowest[frames])
        shift = gaussian_filter1d(shift, 0.1 * fps, mode="nearest")
    else:                                   # never supported (a spin on the floor, noise): a constant floor
        shift = np.full(t_len, -np.percentile(lowest, 5))
    below = np.maximum(0.0, -(lowest + shift))
    width = max(1, int(round(0.1 * fps)))
    lift = np.maximum(gaussian_filter1d(maximum_filter1d(below, 2 * width + 1), width / 2.0), below)
    shift = shift + lift
    out = joints.copy()
    out[..., 1] += shift[:, None]
    return out, shift
