# SPDX-License-Identifier: GPL-3.0-or-later
"""The 259-d motion representation of FRDM (InfiniteDance paper, Sec. 3.1 and App. B) and the merge step.

Per frame: root yaw velocity, root xz velocity, root height and, for the 22 body joints, local velocity,
local position and 6-D rotation = the 264-d features of :mod:`core_models.features` without the accumulated
yaw (dim 1, re-derived from the yaw velocity) and the contact flags: 259 dims, layout
``[height, yaw vel, vx, vz | RIC joints 1..21 (63) | 6-D rotations joints 1..21 (126) | velocities 0..21 (66)]``.
Features are computed on the clip's own proportions (no "uniform skeleton" retargeting), so the repaired
joints map back onto the user's rig.

Only the root, knee, ankle and foot (toe) channels are ever denoised (:data:`LOWER_CHANNELS`); every other
channel comes from the input (:func:`merge`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..features import FEATURE_DIM, features_to_joints, joints_to_features, pose_facing
from ..rotations import quat_conjugate, quat_rotate
from ..skeleton import LEFT_FOOT_JOINTS, NUM_BODY_JOINTS, RIGHT_FOOT_JOINTS

try:                                    # the merge also takes torch tensors (training); numpy works without torch
    import torch
except ImportError:                     # pragma: no cover - torch is a dependency of the full install
    torch = None

FRDM_DIM = 259
FEATURE_INDEX = np.r_[0, 2, 3, 4, 5:260]        # 264-d -> 259-d
ROOT_CHANNELS = np.arange(4)                    # height, yaw velocity, vx, vz
LOWER_JOINTS = (4, 5, 7, 8, 10, 11)             # knees, ankles, feet (toes)
FOOT_JOINTS = (LEFT_FOOT_JOINTS, RIGHT_FOOT_JOINTS)   # ((ankle, toe) left, (ankle, toe) right)


def ric_channels(j: int) -> np.ndarray:
    return 4 + 3 * (j - 1) + np.arange(3)


def rot_channels(j: int) -> np.ndarray:
    return 67 + 6 * (j - 1) + np.arange(6)


def vel_channels(j: int) -> np.ndarray:
    return 193 + 3 * j + np.arange(3)


LOWER_POS = np.concatenate([ric_channels(j) for j in LOWER_JOINTS])
LOWER_ROT = np.concatenate([rot_channels(j) for j in LOWER_JOINTS])
LOWER_VEL = np.concatenate([vel_channels(j) for j in LOWER_JOINTS])
LOWER_CHANNELS = np.sort(np.concatenate([ROOT_CHANNELS, LOWER_POS, LOWER_ROT, LOWER_VEL]))
UPPER_CHANNELS = np.setdiff1d(np.arange(FRDM_DIM), LOWER_CHANNELS)
UPPER_BODY = tuple(j for j in range(NUM_BODY_JOINTS) if j not in LOWER_JOINTS and j != 0)


@dataclass
class Canonical:
    """The rigid transform of :func:`features.canonicalize`: canonical = R (world - origin)."""
    face: np.ndarray          # (4,) yaw quaternion
    origin: np.ndarray        # (3,) x0, floor, z0

    def to_world(self, p: np.ndarray) -> np.ndarray:
        q = np.broadcast_to(quat_conjugate(self.face), p.shape[:-1] + (4,))
        return quat_rotate(q, p) + self.origin


def motion_features(joints: np.ndarray) -> tuple[np.ndarray, Canonical]:
    """(T, 22, 3) world joints -> (T, 259) FRDM features (last frame repeated so no frame is lost) and the
    canonical transform that maps recovered joints back to the world."""
    joints = np.asarray(joints, np.float64)
    padded = np.concatenate([joints, joints[-1:]], axis=0)
    feats = joints_to_features(padded, target_skeleton=None)
    origin = np.array([joints[0, 0, 0], joints[..., 1].min(), joints[0, 0, 2]])
    face = pose_facing(joints[0])
    return feats[:, FEATURE_INDEX], Canonical(face, origin)


def to_264(x259: np.ndarray) -> np.ndarray:
    out = np.zeros((x259.shape[0], FEATURE_DIM))
    out[:, FEATURE_INDEX] = x259
    out[:, 1] = np.concatenate([[0.0], np.cumsum(x259[:-1, 1])])
    return out


def features_to_world(x259: np.ndarray, canonical: Canonical) -> np.ndarray:
    return canonical.to_world(features_to_joints(to_264(x259)))


def merge(x_input, x_denoised):
    """The merge step: root/knee/ankle/foot channels from ``x_denoised``, every other channel from the input.

    Works on numpy arrays and torch tensors of shape (..., 259); the upper-body channels of the result are
    the input's values themselves (copied, never recomputed)."""
    if torch is not None and isinstance(x_input, torch.Tensor):
        out = x_input.clone()
        idx = torch.as_tensor(LOWER_CHANNELS, device=x_input.device)
        out[..., idx] = x_denoised[..., idx].to(out.dtype)
        return out
    out = np.array(x_input, copy=True)
    out[..., LOWER_CHANNELS] = np.asarray(x_denoised)[..., LOWER_CHANNELS]
    return out

