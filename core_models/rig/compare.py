# SPDX-License-Identifier: GPL-3.0-or-later
"""How alike two canonical bodies move, whatever their size: the figures a retarget is judged by.

Both bodies are (T, 22, 3) canonical joints in metres, Y up, on the same frames. Bone directions are compared
in each body's own facing frame (turned about the vertical so that the hips' left-right axis is +X), so a
body that faces another way in the world compares by its pose; pelvis paths are compared in leg lengths,
so a taller body that covers proportionally more ground matches.
"""
from __future__ import annotations

import numpy as np

from ..metrics import SKATING_THRESHOLD
from ..skeleton import BODY_JOINT_NAMES, BODY_PARENTS, JOINT_INDEX

__all__ = ["leg_length", "facing_frames", "bone_direction_difference", "pelvis_path_difference",
           "sliding_on_contacts"]

_LEGS = (("left_hip", "left_knee", "left_ankle"), ("right_hip", "right_knee", "right_ankle"))


def leg_length(joints: np.ndarray) -> float:
    """Mean hip-knee-ankle length of the two legs of canonical joints (22, 3) (a rest pose), in their unit."""
    j = np.asarray(joints, np.float64)
    total = [np.linalg.norm(j[JOINT_INDEX[k]] - j[JOINT_INDEX[h]]) + np.linalg.norm(j[JOINT_INDEX[a]] - j[JOINT_INDEX[k]])
             for h, k, a in _LEGS]
    return float(np.mean(total))


def facing_frames(joints: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rotations taking world directions into each frame's facing frame (rows: left, up, forward),
    the heading from the hips' left-right axis in the floor plane."""
    left = joints[:, JOINT_INDEX["left_hip"]] - joints[:, JOINT_INDEX["right_hip"]]
    left = left * np.array([1.0, 0.0, 1.0])
    left /= np.maximum(np.linalg.norm(left, axis=-1, keepdims=True), 1e-12)
    up = np.broadcast_to([0.0, 1.0, 0.0], left.shape)
    forward = np.cross(left, up)
    return np.stack([left, up, forward], axis=1)


def _bone_directions(joints: np.ndarray) -> np.ndarray:
    """(T, 21, 3) unit direction of every canonical bone (parent -> joint) in the body's facing frame."""
    kids = [c for c, p in enumerate(BODY_PARENTS) if p >= 0]
    parents = [BODY_PARENTS[c] for c in kids]
    d = joints[:, kids] - joints[:, parents]
    d = np.einsum("fab,fjb->fja", facing_frames(joints), d)
    return d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-12)


def bone_direction_difference(a: np.ndarray, b: np.ndarray) -> dict:
    """Angle (degrees) between the bone directions of bodies ``a`` and ``b`` in their facing frames: "mean"
    over bones and frames, "worst" the largest per-bone mean, "per_bone" {joint: mean}."""
    da, db = _bone_directions(np.asarray(a, np.float64)), _bone_directions(np.asarray(b, np.float64))
    angle = np.degrees(np.arccos(np.clip((da * db).sum(-1), -1.0, 1.0)))       # (T, 21)
    per_bone = angle.mean(0)
    names = [n for n, p in zip(BODY_JOINT_NAMES, BODY_PARENTS) if p >= 0]
    return {"mean": float(angle.mean()), "worst": float(per_bone.max()),
            "per_bone": {n: round(float(v), 3) for n, v in zip(names, per_bone)}}


def pelvis_path_difference(a: np.ndarray, b: np.ndarray, leg_a: float, leg_b: float) -> dict:
    """Distance between the pelvis paths of ``a`` and ``b``, each measured from its first frame's position
    and divided by its own leg length: "mean" and "max" over frames, in leg lengths."""
    pa = (a[:, 0] - a[:1, 0]) / leg_a
    pb = (b[:, 0] - b[:1, 0]) / leg_b
    gap = np.linalg.norm(pa - pb, axis=-1)
    return {"mean": float(gap.mean()), "max": float(gap.max())}


def sliding_on_contacts(joints: np.ndarray, joint_contacts: np.ndarray, fps: float = 30.0,
                        threshold: float = SKATING_THRESHOLD) -> dict:
    """Foot skating on given contacts: per foot, the share of its contact frames on which a planted joint
    (``joint_contacts`` (T, 4): left ankle, left toe, right ankle, right toe) moves more than ``threshold``
    metres per 30 fps frame along the floor. Unlike :func:`core_models.metrics.foot_skating_ratio`, whose
    contacts come from fixed heights tuned to the SMPL body (a rig whose ankle joints sit higher gets no
    contacts, hence 0), this judges two bodies on the same frames: the source's contacts."""
    joints = np.asarray(joints, np.float64)
    contacts = np.asarray(joint_contacts, bool)[:-1]
    columns = [JOINT_INDEX[n] for n in ("left_ankle", "left_foot", "right_ankle", "right_foot")]
    step = np.linalg.norm(np.diff(joints[:, columns][..., [0, 2]], axis=0), axis=-1)   # (T-1, 4)
    moving = step > threshold * 30.0 / fps
    out = {}
    for side, cols in (("left", [0, 1]), ("right", [2, 3])):
        planted = contacts[:, cols].any(-1)
        sliding = (contacts[:, cols] & moving[:, cols]).any(-1)
        out[side] = float(sliding.sum() / planted.sum()) if planted.any() else 0.0
    out["mean"] = 0.5 * (out["left"] + out["right"])
    return out
