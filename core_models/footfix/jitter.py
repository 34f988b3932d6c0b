# SPDX-License-Identifier: GPL-3.0-or-later
"""Marker noise on the feet: found from the legs' bone lengths, removed before any contact is planted.

A rig's bones are rigid, so a clip read from a skeleton (BVH, a keyed armature) has shin and foot lengths
that never change; joints estimated from video, or markers solved frame by frame, scatter them from frame
to frame. That scatter is the evidence: noise on a low foot shows as skating (a 4 mm shake crosses the
skating speed on many frames) although no foot slides, and no contact-based repair can remove it. Where a
leg's lengths scatter by more than ``NOISE_MIN_M``, its knee, ankle and toe are low-passed over time
(``SMOOTH_FRAMES``: a shake is removed, a step is not) and put back on rigid bones by the legs' IK. The root
and the upper body are never touched; a clip with rigid legs is returned as it is.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from ..skeleton import LEG_JOINTS
from .ik_lock import solve_legs

NOISE_MIN_M = 0.001     # m: frame-to-frame scatter of a leg's bone lengths that counts as marker noise
SMOOTH_FRAMES = 1.5     # Gaussian sigma (frames at 30 fps) of the noisy legs' low-pass
TREND_FRAMES = 4.0      # lengths minus their own trend over this many frames: the frame-to-frame part


def leg_noise(joints: np.ndarray) -> np.ndarray:
    """(2,) frame-to-frame scatter (m, robust standard deviation) of the shin and foot lengths of each leg
    [left, right]; 0 for a rig's rigid bones."""
    joints = np.asarray(joints, np.float64)
    out = np.zeros(2)
    if joints.shape[0] < 8:
        return out
    for side_i, side in enumerate(("left", "right")):
        _, knee, ankle, toe = LEG_JOINTS[side]
        scatter = []
        for a, b in ((knee, ankle), (ankle, toe)):
            length = np.linalg.norm(joints[:, a] - joints[:, b], axis=-1)
            fast = length - gaussian_filter1d(length, TREND_FRAMES, mode="nearest")
            scatter.append(1.4826 * np.median(np.abs(fast - np.median(fast))))
        out[side_i] = max(scatter)
    return out


def remove_leg_noise(joints: np.ndarray, has_toes: bool = True, min_noise: float = NOISE_MIN_M,
                     fps: float = 30.0, strength: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``joints`` (T, 22, 3) with the legs whose bones scatter more than ``min_noise`` low-passed (by
    ``strength``: 0 none .. 1 all) and put back on rigid bones, and the per-leg noise measured (2,). The input
    array itself when no leg is noisy or strength is 0."""
    joints = np.asarray(joints, np.float64)
    noise = leg_noise(joints)
    noisy = noise > min_noise
    if not noisy.any() or strength <= 0:
        return joints, noise
    sigma = SMOOTH_FRAMES * fps / 30.0
    pole, ankle_t, toe_t = {}, {}, {}
    for side in ("left", "right"):
        _, knee, ankle, toe = LEG_JOINTS[side]
        # low-passed relative to the root, so the path of the body is never filtered
        for target, j in ((pole, knee), (ankle_t, ankle), (toe_t, toe)):
            smooth = joints[:, 0] + gaussian_filter1d(joints[:, j] - joints[:, 0], sigma, axis=0, mode="nearest")
            target[side] = joints[:, j] + strength * (smooth - joints[:, j])
    changed = np.broadcast_to(noisy, (joints.shape[0], 2))
    out = solve_legs(joints, joints[:, 0], pole, ankle_t, toe_t if has_toes else None, changed)
    return out, noise


__all__ = ["NOISE_MIN_M", "leg_noise", "remove_leg_noise"]
