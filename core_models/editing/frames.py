# SPDX-License-Identifier: GPL-3.0-or-later
"""The dancer's own frame: facing (yaw about Y) from the root rotation, and moving motion between frames."""
from __future__ import annotations

import numpy as np

from ..rotations import axis_angle_to_quat, quat_mul, quat_rotate

FORWARD = np.array([0.0, 0.0, 1.0])      # the SMPL-X body faces +Z in its rest pose


def facing_yaw(root_rotations: np.ndarray) -> np.ndarray:
    """(T,) yaw (radians about +Y) of the body's forward direction for (T, 4) root quaternions."""
    f = quat_rotate(root_rotations, np.broadcast_to(FORWARD, root_rotations.shape[:-1] + (3,)))
    return np.arctan2(f[..., 0], f[..., 2])


def mean_yaw(root_rotations: np.ndarray) -> float:
    """Circular mean of the facing yaw over some frames."""
    y = facing_yaw(root_rotations)
    return float(np.arctan2(np.sin(y).mean(), np.cos(y).mean()))


def yaw_quat(angle) -> np.ndarray:
    angle = np.asarray(angle, np.float64)
    aa = np.zeros(angle.shape + (3,))
    aa[..., 1] = angle
    return axis_angle_to_quat(aa)


def rotate_about_y(angle, v: np.ndarray) -> np.ndarray:
    """Vectors (..., 3) turned by ``angle`` (scalar or broadcastable) about +Y."""
    c, s = np.cos(angle), np.sin(angle)
    out = np.array(v, np.float64, copy=True)
    out[..., 0] = c * v[..., 0] + s * v[..., 2]
    out[..., 2] = -s * v[..., 0] + c * v[..., 2]
    return out


def turn_root(root_rotations: np.ndarray, angle) -> np.ndarray:
    """Root quaternions turned about the world's up axis by ``angle``."""
    return quat_mul(np.broadcast_to(yaw_quat(angle), root_rotations.shape), root_rotations)


def dancer_frame_joints(joints: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """Joints relative to the pelvis, turned so each frame's dancer faces +Z (pose only, no place or turn)."""
    rel = joints - joints[:, :1]
    return rotate_about_y(-np.asarray(yaw)[:, None], rel)
