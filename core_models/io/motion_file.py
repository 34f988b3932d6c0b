# SPDX-License-Identifier: GPL-3.0-or-later
"""Any supported motion file -> a 55-joint SMPL-X ``Motion`` (what the add-on keys onto an armature)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..kinematics import fit_skeleton, inverse_kinematics, project_to_skeleton
from ..motion import Motion
from ..rotations import quat_identity
from ..skeleton import NUM_BODY_JOINTS, Skeleton, default_skeleton


def full_skeleton_from_body(body: Skeleton) -> Skeleton:
    """A 55-joint skeleton with ``body``'s 22 joints and default hands/face scaled to its size."""
    full = default_skeleton()
    ref = default_skeleton(body_only=True)
    scale = np.linalg.norm(body.offsets[1:], axis=-1).sum() / np.linalg.norm(ref.offsets[1:], axis=-1).sum()
    offsets = full.offsets.copy()
    offsets[NUM_BODY_JOINTS:] *= scale
    offsets[:NUM_BODY_JOINTS] = body.offsets
    return full.with_offsets(offsets, source=body.source)


def body_motion_from_joints(joints: np.ndarray, fps: float, skeleton: Skeleton | None = None,
                            source: str = "joints") -> Motion:
    """Solve IK for body joint positions (T, 22, 3) on ``skeleton`` (default: fitted to the clip).

    Returns a 55-joint Motion; hands and face keep their rest pose. With the fitted skeleton the joints are
    first projected onto its rigid body (:func:`~core_models.kinematics.project_to_skeleton`), so FK
    reproduces rigid input to rounding error and joints whose bones stretch (decoded by a generator) to
    within a fraction of their stretch, shared by neighbouring joints.
    """
    body_joints = np.asarray(joints, dtype=np.float64)
    if skeleton is None:
        skeleton = full_skeleton_from_body(fit_skeleton(body_joints, default_skeleton(body_only=True),
                                                        source=f"fitted:{source}"))
        body_joints = project_to_skeleton(body_joints, skeleton.subset(NUM_BODY_JOINTS))
    body = skeleton.subset(NUM_BODY_JOINTS)
    rot_body, root = inverse_kinematics(body_joints, body)
    rotations = quat_identity((body_joints.shape[0], skeleton.num_joints))
    rotations[:, :NUM_BODY_JOINTS] = rot_body
    return Motion(rotations, root, skeleton, fps, meta={"source": source})


SUPPORTED_SUFFIXES = (".bvh", ".npz", ".pkl")


def load_motion(path, skeleton: Skeleton | None = None, overrides=None, unit="auto") -> Motion:
    """A motion file as a 55-joint Motion: SMPL-X files keep their rotations; other rigs go through the
    canonical body and IK (onto ``skeleton``, or a skeleton fitted to the clip when None)."""
    from . import load_body_clip
    from .smplx_motion import read_amass_npz, read_smplx_pkl

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return read_amass_npz(path, skeleton=skeleton)
    if suffix == ".pkl":
        return read_smplx_pkl(path, skeleton=skeleton)
    if suffix != ".bvh":
        raise ValueError(f"{path}: unsupported motion file type '{suffix}'; supported: "
                         f"{', '.join(SUPPORTED_SUFFIXES)}")
    clip = load_body_clip(path, overrides=overrides, unit=unit)
    motion = body_motion_from_joints(clip.joints, clip.fps, skeleton, source=str(path))
    motion.meta["mapping"] = clip.mapping
    return motion
