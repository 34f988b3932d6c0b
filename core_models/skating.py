# SPDX-License-Identifier: GPL-3.0-or-later
"""Synthetic foot-skating artifacts with known parameters, for evaluating foot fixes on clean mocap.

The artifacts imitate what motion estimated from video (or a careless retarget) looks like:
* root drift: the whole body translates by a smooth random horizontal walk (both feet slide together);
* foot slide: during each contact of the clean clip, the foot (ankle and toe) slides by a smooth
  low-frequency displacement, faded in and out at the contact's ends; knees follow by two-bone IK so the
  legs stay rigid;
* per-foot jitter: white noise on each foot's ankle, toe (and, halved, knee);
* floor penetration and float: a smooth vertical offset of the whole body, zero-mean over the clip (a
  constant shift could not be told from a different floor), so the feet sink into the floor in some
  stretches and hover in others.
The upper body keeps its pose relative to the root exactly, so a fix that leaves the upper body untouched
can be scored against the clean clip. Everything is seeded.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from .footfix.contacts import detect_contacts, fade_fill, mask_runs
from .kinematics import two_bone_ik
from .motion import MOTION_FPS
from .skeleton import LEG_JOINTS


@dataclass
class SkatingParams:
    """Artifact sizes (metres, seconds); 0 turns an artifact off."""
    root_drift_speed: float = 0.10     # m/s, typical speed of the root's random horizontal drift
    root_drift_time: float = 1.5       # s, how long the drift keeps one direction (smoothing)
    foot_slide: float = 0.04           # m, typical slide of a planted foot
    foot_slide_time: float = 0.5       # s, smoothing of the slide (low frequency)
    jitter: float = 0.004              # m, per-frame noise on ankles and toes
    vertical: float = 0.012            # m, typical vertical offset (penetration < 0 < float)
    vertical_time: float = 1.0         # s, smoothing of the vertical offset
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _smooth_noise(rng, shape, sigma_frames: float, scale: float) -> np.ndarray:
    """Zero-mean Gaussian noise low-passed with ``sigma_frames``, with expected standard deviation ``scale``.

    Scaled by the filter's known gain (white noise through a Gaussian of width s keeps a variance of
    1 / (2 sqrt(pi) s)), not by the sample's own spread, so a short clip gets as much artifact per second
    as a long one."""
    x = rng.standard_normal(shape)
    if sigma_frames > 0:
        x = gaussian_filter1d(x, sigma_frames, axis=0, mode="reflect") * np.sqrt(2.0 * np.sqrt(np.pi) * sigma_frames)
    return x * scale


def add_skating(joints: np.ndarray, params: SkatingParams | None = None, fps: float = MOTION_FPS,
                contacts: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """Skated copy of clean joints (T, 22, 3) and a dict of what was added.

    ``contacts`` (T, 2) bool: where the foot slide applies (default: contacts detected on the clean clip
    with :func:`footfix.detect_contacts`). Returned info: the parameters, the contacts, and the per-frame root
    drift and vertical offset (T, 3).
    """
    p = params or SkatingParams()
    joints = np.asarray(joints, np.float64)
    t_len = joints.shape[0]
    rng = np.random.default_rng(p.seed)
    if contacts is None:
        contacts = detect_contacts(joints, fps).contacts
    out = joints.copy()

    # foot slide during contacts (before the global offsets, so IK sees the clean hips)
    slide_sigma = p.foot_slide_time * fps
    for side_i, side in enumerate(("left", "right")):
        hip, knee, ankle, toe = LEG_JOINTS[side]
        if p.foot_slide <= 0 or not contacts[:, side_i].any():
            continue
        walk = _smooth_noise(rng, (t_len, 2), slide_sigma, p.foot_slide)
        slide = np.zeros((t_len, 3))
        for s, e in mask_runs(contacts[:, side_i]):
            slide[s:e, [0, 2]] = walk[s:e] - walk[s]          # each contact starts where the clean foot is
        slide = fade_fill(slide, contacts[:, side_i], blend=4)
        target = out[:, ankle] + slide
        l1 = np.linalg.norm(out[:, knee] - out[:, hip], axis=-1)
        l2 = np.linalg.norm(out[:, ankle] - out[:, knee], axis=-1)
        moved = np.abs(slide).max(-1) > 0
        new_knee = two_bone_ik(out[:, hip], out[:, knee], target, l1, l2)
        out[moved, knee] = new_knee[moved]
        out[moved, ankle] = target[moved]
        out[moved, toe] = out[moved, toe] + slide[moved]

    drift = np.zeros((t_len, 3))
    if p.root_drift_speed > 0:
        vel = _smooth_noise(rng, (t_len, 2), p.root_drift_time * fps, p.root_drift_speed / fps)
        drift[:, [0, 2]] = np.cumsum(vel, axis=0) - vel[0]
    vertical = np.zeros((t_len, 3))
    if p.vertical > 0:
        vertical[:, 1] = _smooth_noise(rng, (t_len, 1), p.vertical_time * fps, p.vertical)[:, 0]
        vertical[:, 1] -= vertical[:, 1].mean()      # around the true floor: a constant shift is undetectable
    out += (drift + vertical)[:, None]

    if p.jitter > 0:
        for side in ("left", "right"):
            _, knee, ankle, toe = LEG_JOINTS[side]
            noise = rng.standard_normal((t_len, 3)) * p.jitter
            out[:, ankle] += noise
            out[:, toe] += noise + rng.standard_normal((t_len, 3)) * (0.5 * p.jitter)
            out[:, knee] += 0.5 * noise
    return out, {"params": p.to_dict(), "contacts": contacts, "root_drift": drift, "vertical_offset": vertical}


__all__ = ["SkatingParams", "add_skating"]
