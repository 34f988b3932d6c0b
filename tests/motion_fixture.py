# SPDX-License-Identifier: GPL-3.0-or-later
"""Synthetic motion made in code, shared by core and add-on tests."""
from pathlib import Path

import numpy as np

from core_models.io import write_bvh
from core_models.io.bvh import bvh_from_rotations
from core_models.kinematics import fit_skeleton, forward_kinematics, inverse_kinematics
from core_models.motion import resample_linear
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


MIXAMO = ["mixamorig:" + n for n in (
    "Hips", "LeftUpLeg", "RightUpLeg", "Spine", "LeftLeg", "RightLeg", "Spine1", "LeftFoot", "RightFoot", "Spine2",
    "LeftToeBase", "RightToeBase", "Neck", "LeftShoulder", "RightShoulder", "Head", "LeftArm", "RightArm",
    "LeftForeArm", "RightForeArm", "LeftHand", "RightHand")]
# CMU-style names (as in the cgspeed BVH conversion of the CMU database), in SMPL body order
CMU = ["hip", "lThigh", "rThigh", "abdomen", "lShin", "rShin", "abdomen2", "lFoot", "rFoot", "chest", "lToe", "rToe",
       "neck", "lCollar", "rCollar", "head", "lShldr", "rShldr", "lForeArm", "rForeArm", "lHand", "rHand"]


def standing_clip(frames: int = 150) -> np.ndarray:
    """Clean motion with planted feet: a figure standing still, swaying its spine and pumping its arms."""
    skel = default_skeleton(body_only=True)
    t = np.arange(frames) / 30.0
    aa = np.zeros((frames, 22, 3))
    aa[:, 16, 2] = -1.1 + 0.4 * np.sin(2 * np.pi * t)
    aa[:, 17, 2] = 1.1 - 0.4 * np.sin(2 * np.pi * t)
    aa[:, 18, 1] = 0.6 + 0.3 * np.sin(3 * t)
    aa[:, 9, 2] = 0.1 * np.sin(t)
    root = np.tile(skel.offsets[0], (frames, 1))
    return forward_kinematics(axis_angle_to_quat(aa), root, skel)


def rig_bvh(path: Path, joints: np.ndarray, fps: float = 60.0, scale: float = 100.0, names=MIXAMO,
            drop=()) -> Path:
    """``joints`` (at 30 fps) on a rig named ``names`` (SMPL body order) at ``fps``, ``scale`` units per metre;
    the joints in ``drop`` (leaves, e.g. the toes 10 and 11) are left out of the rig."""
    j = resample_linear(joints, 30.0, fps)
    skel = fit_skeleton(j, default_skeleton(body_only=True))
    rot, root = inverse_kinematics(j, skel)
    keep = [i for i in range(len(names)) if i not in drop]
    parents = [keep.index(p) if p >= 0 else -1 for p in (skel.parents[i] for i in keep)]
    write_bvh(path, bvh_from_rotations([names[i] for i in keep], parents, skel.offsets[keep] * scale, rot[:, keep],
                                       root * scale, 1 / fps))
    return path


def sliding_stance(frames: int = 150) -> np.ndarray:
    """A performer standing with both feet planted while the whole body slides 50 cm (foot skating a fix
    must repair), the left arm waving; (T, 22, 3) joints at 30 fps."""
    from core_models.kinematics import forward_kinematics
    from core_models.rotations import quat_identity
    from core_models.skeleton import default_skeleton

    rest = forward_kinematics(quat_identity((1, 22)), np.zeros((1, 3)), default_skeleton(body_only=True))[0]
    rest[:, 1] -= rest[[7, 8, 10, 11], 1].min()
    joints = np.repeat(rest[None], frames, axis=0)
    t = np.arange(frames) / 30.0
    joints[:, [16, 18, 20], 1] += (0.1 * np.sin(2 * np.pi * t))[:, None]
    joints[..., 0] += np.linspace(0.0, 0.5, frames)[:, None]
    return joints
