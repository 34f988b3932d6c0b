# SPDX-License-Identifier: GPL-3.0-or-later
"""Reading motion files into the canonical 22-joint body (metres, Y up, MOTION_FPS).

``load_body_clip(path)`` dispatches on the file suffix (see :data:`LOADERS`); every loader returns a
:class:`BodyClip` whose ``mapping`` says which canonical joints came from which source bones and
which were synthesised.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..motion import MOTION_FPS, resample_linear
from ..skeleton import BODY_JOINT_NAMES
from .bvh import BvhClip, BvhError, bvh_from_rotations, read_bvh, write_bvh
from .retarget import (BoneMapping, RetargetError, canonical_joints, convert_up_axis, detect_unit_scale,
                       estimate_height, load_mapping_file, map_bones, unit_scale)

__all__ = ["BodyClip", "SourceSkeleton", "load_body_clip", "LOADERS", "UnsupportedFormatError",
           "BvhClip", "BvhError", "read_bvh", "write_bvh", "bvh_from_rotations",
           "BoneMapping", "RetargetError", "map_bones", "canonical_joints", "detect_unit_scale",
           "estimate_height", "load_mapping_file"]


class UnsupportedFormatError(ValueError):
    """The file's suffix has no loader."""


@dataclass
class SourceSkeleton:
    """The source rig as read: names, parents, rest offsets in metres (core axes), End Site flags."""
    names: list[str]
    parents: list[int]
    offsets: np.ndarray
    is_end_site: list[bool]


@dataclass
class BodyClip:
    """Canonical body joints from a motion file.

    joints: (T, 22, 3) float64, metres, Y up, at ``fps`` (resampled linearly from ``source_fps``).
    The facing direction is whatever the source had (the features code canonicalises it).
    """
    joints: np.ndarray
    fps: float
    source_fps: float
    source_frames: int
    mapping: BoneMapping
    unit_scale: float                 # metres per source unit
    unit: str                         # 'm', 'cm', 'mm', 'in', 'fit' (auto-scaled), or 'custom' (a number)
    up_axis: str
    path: str | None
    source_skeleton: SourceSkeleton
    meta: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.joints.shape[0])

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    @property
    def mapped_joints(self) -> list[str]:
        """Canonical joints taken directly from a source bone (End-Site toes included)."""
        return [c for c in BODY_JOINT_NAMES if c in self.mapping.source_for]

    @property
    def synthesised_joints(self) -> list[str]:
        return [c for c in BODY_JOINT_NAMES if c in self.mapping.synthesised]

    def report(self) -> str:
        """Human-readable summary: frames, rates, units and the joint mapping."""
        head = (f"{self.path or 'clip'}: {self.source_frames} frames at {self.source_fps:g} fps -> "
                f"{self.num_frames} at {self.fps:g} fps; unit {self.unit} (x{self.unit_scale:g} to metres), "
                f"up axis {self.up_axis}; height about {estimate_height(self.joints[0]):.2f} m")
        return head + "\n" + self.mapping.summary()


def _load_bvh(path: str, overrides, unit, up_axis: str, fps: float) -> BodyClip:
    clip = read_bvh(path)
    mapping = map_bones(clip.names, clip.parents, overrides, source_offsets=clip.offsets,
                        is_end_site=clip.is_end_site)
    pos = convert_up_axis(clip.global_positions(), up_axis)
    joints = canonical_joints(pos, clip.names, mapping, clip.parents)
    if isinstance(unit, str) and unit.strip().lower() == "auto":
        scale, unit_name = detect_unit_scale(joints[0], canonical=True, return_unit=True)
    else:
        scale = unit_scale(unit)
        unit_name = unit.strip().lower() if isinstance(unit, str) else "custom"
    joints = joints * scale
    src_fps = clip.fps
    if abs(src_fps - fps) > 1e-9:
        joints = resample_linear(joints, src_fps, fps)
    skel = SourceSkeleton(list(clip.names), list(clip.parents),
                          convert_up_axis(clip.offsets, up_axis) * scale, list(clip.is_end_site))
    return BodyClip(joints=np.ascontiguousarray(joints, dtype=np.float64), fps=float(fps), source_fps=src_fps,
                    source_frames=clip.num_frames, mapping=mapping, unit_scale=float(scale), unit=unit_name,
                    up_axis=up_axis.upper(), path=path, source_skeleton=skel,
                    meta={"frame_time": clip.frame_time})


def _load_smplx(path: str, overrides, unit, up_axis: str, fps: float) -> BodyClip:
    """SMPL-X motion (AMASS .npz / official .pkl): the body joints by FK on the default skeleton.

    The file's rotations already name every SMPL-X joint, so no bone mapping is needed (``overrides``
    must be empty). Units are metres; the up axis is detected unless ``up_axis='Z'`` forces Z up.
    """
    from .smplx_motion import read_amass_npz, read_smplx_pkl

    if overrides:
        raise RetargetError(f"'{path}': SMPL-X files need no bone mapping; remove the overrides")
    reader = read_amass_npz if path.lower().endswith(".npz") else read_smplx_pkl
    motion = reader(path, up_axis="Z" if up_axis.upper() == "Z" else "auto")
    scale = 1.0 if isinstance(unit, str) and unit.strip().lower() in ("auto", "m") else unit_scale(unit)
    src_fps, src_frames = motion.fps, motion.num_frames
    if abs(src_fps - fps) > 1e-9:
        motion = motion.resampled(fps)
    joints = motion.joints()[:, :len(BODY_JOINT_NAMES)] * scale
    names = list(motion.skeleton.names)
    mapping = BoneMapping(source_for={n: n for n in BODY_JOINT_NAMES}, synthesised={},
                          unmapped_source=names[len(BODY_JOINT_NAMES):], profile="smplx")
    skel = SourceSkeleton(names, list(motion.skeleton.parents), motion.skeleton.offsets * scale,
                          [False] * len(names))
    return BodyClip(joints=np.ascontiguousarray(joints), fps=float(fps), source_fps=float(src_fps),
                    source_frames=src_frames, mapping=mapping, unit_scale=scale, unit="m" if scale == 1.0 else "custom",
                    up_axis="auto" if up_axis.upper() != "Z" else "Z", path=path, source_skeleton=skel,
                    meta={"format": "smplx"})


# suffix (lower case) -> loader(path, overrides, unit, up_axis, fps)
LOADERS: dict[str, Callable[..., BodyClip]] = {".bvh": _load_bvh, ".npz": _load_smplx, ".pkl": _load_smplx}


def load_body_clip(path, overrides=None, unit="auto", up_axis: str = "Y", fps: float = MOTION_FPS) -> BodyClip:
    """Load a motion file as canonical body joints (metres, Y up, ``fps``).

    overrides: dict canonical joint -> source bone name (None forces "not mapped"), or the path of a
    JSON file holding that dict. unit: 'auto' (see :func:`detect_unit_scale`), 'm', 'cm', 'mm', 'in'
    or metres per unit. up_axis: the source's up axis, 'Y' or 'Z' (right-handed Z-up is converted
    with (x, y, z) -> (x, z, -y)).
    """
    path = os.fspath(path)
    suffix = Path(path).suffix.lower()
    loader = LOADERS.get(suffix)
    if loader is None:
        raise UnsupportedFormatError(f"'{path}': unsupported motion file type '{suffix or '(none)'}'; "
                                     f"supported: {', '.join(sorted(LOADERS))}")
    if str(up_axis).upper() not in ("Y", "Z"):
        raise ValueError(f"up_axis must be 'Y' or 'Z', got '{up_axis}'")
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be positive, got {fps}")
    if isinstance(overrides, (str, os.PathLike)):
        overrides = load_mapping_file(overrides)
    return loader(path, overrides, unit, str(up_axis), float(fps))
