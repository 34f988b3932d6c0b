# SPDX-License-Identifier: GPL-3.0-or-later
"""Rigs for retargeting, read from any motion file into one shape (:class:`RigMotion`).

A retarget needs, for the source and for the target alike: the hierarchy and rest offsets, the bone mapping
onto the canonical 22-joint body, the rig's world up axis and unit, and (for a source) every bone's global
rotation and head position per frame. This module reads them from a BVH (any rig), a generated take
(``python -m core_models generate --out X.npz``: local wxyz quaternions, root translation, offsets, parents,
joint names, fps) or an SMPL-X motion (AMASS ``.npz``, official ``.pkl``).

The rest pose is what the offsets say with every channel at zero: each bone's rest global orientation is the
identity in the rig's axes (BVH; SMPL-X and generated takes likewise, their rest pose being the default
skeleton's). The world up axis comes from the rig's own frames (the feet -> head direction, which also holds
for rigs whose rest pose is not standing, such as Bandai's, whose bones all lie along X at rest); a rig
without frames is asked of :mod:`core_models.io.bone_map`'s rest-pose detection.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io.bone_map import auto_map
from ..io.bvh import BvhClip, read_bvh
from ..io.retarget import BoneMapping, canonical_joints, detect_unit_scale, map_bones
from ..rotations import quat_to_matrix
from ..skeleton import JOINT_INDEX
from .solver import RigPose

__all__ = ["RigMotion", "load_source", "load_target", "rig_from_clip", "rest_pose_clip", "to_common_matrix",
           "SOURCE_SUFFIXES"]

SOURCE_SUFFIXES = (".bvh", ".npz", ".pkl")
# turns of a rig's world whose up axis is the key onto the core's (Y up); +Z is io.retarget.convert_up_axis
_TO_Y_UP = {"+Y": np.eye(3), "-Y": np.diag([1.0, -1.0, -1.0]),
            "+Z": np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]]),
            "-Z": np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]]),
            "+X": np.array([[0, -1.0, 0], [1.0, 0, 0], [0, 0, 1.0]]),
            "-X": np.array([[0, 1.0, 0], [-1.0, 0, 0], [0, 0, 1.0]])}


def to_common_matrix(up: str) -> np.ndarray:
    """(3, 3) rotation taking a rig's world with up axis ``up`` ('+Z', '-Y', ...) to the core's (Y up)."""
    return _TO_Y_UP[up.upper() if up[0] in "+-" else "+" + up.upper()]


@dataclass
class RigMotion:
    """One rig as arrays, in its own axes and unit.

    names, parents, offsets (J, 3), is_end_site, channels (per joint, BVH channel names; generated and
    SMPL-X rigs get the layout ``bvh_from_rotations`` writes); mapping: the canonical body in the rig;
    up: the rig's world up axis ('+Y', '+Z', ...); unit_scale: metres per rig unit; fps and frame_time;
    rotations (F, J, 3, 3) / positions (F, J, 3): each bone's global orientation (relative to its rest,
    which is the identity) and head per frame. rest_up / rest_facing: what bone_map reads from the rest
    pose (reported; the world up above is what the retarget uses).
    """
    names: list
    parents: list
    offsets: np.ndarray
    is_end_site: list
    channels: list
    mapping: BoneMapping
    up: str
    unit_scale: float
    fps: float
    frame_time: float
    rotations: np.ndarray
    positions: np.ndarray
    path: str | None = None
    rest_up: str | None = None
    rest_facing: str | None = None
    notes: list = field(default_factory=list)

    @property
    def to_common(self) -> np.ndarray:
        return to_common_matrix(self.up)

    @property
    def num_frames(self) -> int:
        return int(self.positions.shape[0])

    def rest_positions(self) -> np.ndarray:
        """(J, 3) bone heads with every channel at zero, rig units and axes."""
        pos = np.zeros_like(self.offsets)
        for j, p in enumerate(self.parents):
            pos[j] = self.offsets[j] if p < 0 else pos[p] + self.offsets[j]
        return pos

    def canonical(self, positions: np.ndarray | None = None) -> np.ndarray:
        """Canonical joints (F, 22, 3) in metres, core axes (Y up), of ``positions`` (F, J, 3) in rig units
        (default: the rig's own frames)."""
        pos = self.positions if positions is None else np.asarray(positions, np.float64)
        common = np.einsum("ab,...b->...a", self.to_common, pos) * self.unit_scale
        return canonical_joints(common, self.names, self.mapping)

    def canonical_rest(self) -> np.ndarray:
        """(22, 3) canonical joints of the rest pose, metres, core axes."""
        return self.canonical(self.rest_positions()[None])[0]

    def bone_of(self) -> dict[str, int]:
        """Canonical joint -> bone index, for the joints that are real bones of the rig (End Sites left out)."""
        index = {n: i for i, n in enumerate(self.names)}
        out = {}
        for c, name in self.mapping.source_for.items():
            j = index.get(name)
            if j is not None and not self.is_end_site[j]:
                out[c] = j
        return out


def _world_up(names, parents, positions: np.ndarray, mapping: BoneMapping) -> str:
    """The axis (of +-X, +-Y, +-Z) along which the feet -> head direction points on average."""
    canon = canonical_joints(positions, names, mapping)
    feet = 0.5 * (canon[:, JOINT_INDEX["left_ankle"]] + canon[:, JOINT_INDEX["right_ankle"]])
    axis = canon[:, JOINT_INDEX["head"]] - feet
    axis = (axis / np.maximum(np.linalg.norm(axis, axis=-1, keepdims=True), 1e-12)).mean(0)
    k = int(np.argmax(np.abs(axis)))
    return ("+" if axis[k] >= 0 else "-") + "XYZ"[k]


def _rest_reading(names, parents, rest: np.ndarray, ends, mapping: BoneMapping) -> tuple[str | None, str | None]:
    if mapping.up_axis is not None:
        return mapping.up_axis, mapping.facing
    found = auto_map(names, parents, rest, ends)
    return found.up_axis, found.facing


def rig_from_clip(clip: BvhClip, overrides=None, path: str | None = None) -> RigMotion:
    """A BVH clip as a :class:`RigMotion` (its frames, mapping, world up and unit). Raises
    :class:`~core_models.io.retarget.UnmappableRigError` for a rig whose body is not found."""
    mapping = map_bones(clip.names, clip.parents, overrides, source_offsets=clip.offsets,
                        is_end_site=clip.is_end_site)
    glob_r, glob_p = clip.global_transforms()
    up = _world_up(clip.names, clip.parents, glob_p, mapping)
    rest = clip.rest_positions()
    canon0 = canonical_joints(np.einsum("ab,...b->...a", to_common_matrix(up), glob_p[:1]), clip.names, mapping)[0]
    scale = float(detect_unit_scale(canon0, canonical=True))
    rest_up, rest_facing = _rest_reading(clip.names, clip.parents, rest, clip.is_end_site, mapping)
    return RigMotion(list(clip.names), list(clip.parents), clip.offsets.copy(), list(clip.is_end_site),
                     list(clip.channels), mapping, up, scale, clip.fps, clip.frame_time, glob_r, glob_p,
                     path or clip.path, rest_up, rest_facing)


def _from_local_quaternions(names, parents, offsets, quats, root, fps, path, overrides) -> RigMotion:
    """A rig given by local wxyz quaternions (F, J, 4) and root positions (F, 3), metres, Y up (generated
    takes and SMPL-X motions): forward kinematics by the rig solver's :meth:`RigPose.from_local`."""
    names = [str(n) for n in names]
    parents = [int(p) for p in parents]
    offsets = np.asarray(offsets, np.float64)
    pose = RigPose.from_local(parents, offsets, quat_to_matrix(np.asarray(quats, np.float64)),
                              np.asarray(root, np.float64), fps)
    mapping = map_bones(names, parents, overrides, source_offsets=offsets)
    channels = [("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation") if p < 0
                else ("Zrotation", "Xrotation", "Yrotation") for p in parents]
    return RigMotion(names, parents, offsets, [False] * len(names), channels, mapping, "+Y", 1.0, float(fps),
                     1.0 / float(fps), pose.rotations, pose.positions, path, "+Y", "+Z")


def _generated_take(path: str, data, overrides) -> RigMotion:
    fps = float(np.asarray(data["fps"]).reshape(-1)[0])
    return _from_local_quaternions(list(data["joint_names"]), list(data["parents"]), data["offsets"],
                                   data["rotations"], data["root_translation"], fps, path, overrides)


def load_source(source, overrides=None) -> RigMotion:
    """SOURCE motion as a :class:`RigMotion`: a BVH file or :class:`BvhClip`, a generated take ``.npz``, an
    AMASS ``.npz`` or an SMPL-X ``.pkl``. ``overrides``: a (partial) bone mapping for a BVH source."""
    if isinstance(source, BvhClip):
        return rig_from_clip(source, overrides)
    if isinstance(source, RigMotion):
        return source
    path = os.fspath(source)
    suffix = Path(path).suffix.lower()
    if suffix == ".bvh":
        return rig_from_clip(read_bvh(path), overrides, path)
    if suffix not in SOURCE_SUFFIXES:
        raise ValueError(f"'{path}': unsupported motion file type '{suffix or '(none)'}'; retarget reads "
                         f"{', '.join(SOURCE_SUFFIXES)}")
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such motion file")
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            if {"rotations", "root_translation", "offsets", "parents", "joint_names", "fps"} <= set(data.files):
                return _generated_take(path, data, overrides)
    from ..io.smplx_motion import read_amass_npz, read_smplx_pkl

    motion = (read_amass_npz if suffix == ".npz" else read_smplx_pkl)(path)
    skel = motion.skeleton
    return _from_local_quaternions(skel.names, skel.parents, skel.offsets, motion.rotations,
                                   motion.root_translation, motion.fps, path, overrides)


def load_target(target, overrides=None) -> RigMotion:
    """The TARGET rig (a BVH file or :class:`BvhClip`): hierarchy, rest offsets, channel layout, mapping, up
    axis (from its frames: a rig saved in its bind pose has one), unit."""
    if isinstance(target, BvhClip):
        return rig_from_clip(target, overrides)
    if isinstance(target, RigMotion):
        return target
    path = os.fspath(target)
    if Path(path).suffix.lower() != ".bvh":
        raise ValueError(f"'{path}': the target rig must be a BVH file (its hierarchy, rest offsets and channels)")
    return rig_from_clip(read_bvh(path), overrides, path)


def rest_pose_clip(names, parents, offsets, fps: float = 30.0, rotation_order: str = "ZXY",
                   frames: int = 1) -> BvhClip:
    """A rig as a BVH clip in its rest pose (every channel zero but the root's position, which is its offset):
    the root joints get position and rotation channels, the others rotations in ``rotation_order``. Parents
    must come before their children."""
    rot = tuple(f"{a}rotation" for a in rotation_order.upper())
    parents = [int(p) for p in parents]
    offsets = np.asarray(offsets, np.float64).reshape(-1, 3)
    channels = [("Xposition", "Yposition", "Zposition") + rot if p < 0 else rot for p in parents]
    motion = np.zeros((frames, sum(len(c) for c in channels)))
    col = 0
    for j, ch in enumerate(channels):
        if parents[j] < 0:
            motion[:, col:col + 3] = offsets[j]
        col += len(ch)
    return BvhClip(list(names), parents, offsets, channels, [False] * len(parents), 1.0 / fps, motion)
