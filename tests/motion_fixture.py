# SPDX-License-Identifier: GPL-3.0-or-later
"""Synthetic motion made in code, shared by core and add-on tests."""
import numpy as np

from core_models.kinematics import forward_kinematics
from core_models.rotations import axis_angle_to_quat
from core_models.skeleton import default_skeleton


def make_dance(frames: int = 300, seed: int = 0, spin: float = 1.3, joints: int = 22):
    """A smooth random motion on the default skeleton: (rotations, root, skeleton, joints)."""
    skel = default_skeleton(body_only=joints == 22)
    rng = np.random.default_rng(seed)
    t = np.linspace(0, frames / 30.0, frames)[:, None, None]
    aa = 0.5 * np.sin(t * rng.uniform(0.5, 3, size=(1, skel.num_joints, 3)) + rng.uniform(0, 6, size=(1, skel.num_joints, 3)))
    aa[:, 0] = 0.0
    aa[:, 0, 1] = t[:, 0, 0] * spin
    rot = axis_angle_to_quat(aa)
    root = np.stack([np.sin(t[:, 0, 0]), np.full(frames, skel.offsets[0, 1]), 0.1 * t[:, 0, 0]], axis=-1)
    return rot, root, skel, forward_kinematics(rot, root, skel)
