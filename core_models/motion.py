# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``Motion`` value type and resampling in time."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .rotations import quat_fix_continuity, quat_normalize, quat_slerp
from .skeleton import Skeleton

MOTION_FPS = 30.0        # frames per second of every motion inside the core; other rates convert at the boundary


def resample_times(num_frames: int, src_fps: float, dst_fps: float) -> np.ndarray:
    """Source-frame positions (fractional) of every output frame, keeping the clip's duration.

    A clip of n frames at ``src_fps`` lasts n / src_fps seconds; the output has round(n * dst / src)
    frames sampled at t = k / dst_fps, clamped to the last source frame.
    """
    if num_frames < 1:
        raise ValueError("cannot resample a clip with no frames")
    if src_fps <= 0 or dst_fps <= 0:
        raise ValueError(f"frame rates must be positive (got {src_fps} -> {dst_fps})")
    out_frames = max(1, int(round(num_frames * dst_fps / src_fps)))
    return np.minimum(np.arange(out_frames) * (src_fps / dst_fps), num_frames - 1)


def resample_linear(x: np.ndarray, src_fps: float, dst_fps: float) -> np.ndarray:
    """Linear resampling along axis 0 (positions, translations, features)."""
    x = np.asarray(x)
    if abs(src_fps - dst_fps) < 1e-9:
        return x.copy()
    pos = resample_times(x.shape[0], src_fps, dst_fps)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, x.shape[0] - 1)
    w = (pos - i0).reshape((-1,) + (1,) * (x.ndim - 1))
    return (1 - w) * x[i0] + w * x[i1]


def resample_quaternions(q: np.ndarray, src_fps: float, dst_fps: float) -> np.ndarray:
    """Slerp resampling of (T, ..., 4) quaternions along axis 0."""
    q = quat_fix_continuity(np.asarray(q, dtype=np.float64))
    if abs(src_fps - dst_fps) < 1e-9:
        return q
    pos = resample_times(q.shape[0], src_fps, dst_fps)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, q.shape[0] - 1)
    w = np.broadcast_to((pos - i0).reshape((-1,) + (1,) * (q.ndim - 2)), q[i0].shape[:-1])
    return quat_fix_continuity(quat_slerp(q[i0], q[i1], w))


@dataclass
class Motion:
    """Animation of a skeleton: local joint rotations plus root translation, in core space.

    rotations: (T, J, 4) w-first unit quaternions, local to the parent (rest pose = identity).
    root_translation: (T, 3) position of the root joint in metres (replaces ``skeleton.offsets[0]``).
    """
    rotations: np.ndarray
    root_translation: np.ndarray
    skeleton: Skeleton
    fps: float = MOTION_FPS
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.rotations = np.asarray(self.rotations, dtype=np.float64)
        self.root_translation = np.asarray(self.root_translation, dtype=np.float64)
        t, j = self.rotations.shape[:2] if self.rotations.ndim == 3 else (None, None)
        if self.rotations.ndim != 3 or self.rotations.shape[2] != 4 or j != self.skeleton.num_joints:
            raise ValueError(f"Motion rotations must be (T, {self.skeleton.num_joints}, 4); got {self.rotations.shape}")
        if self.root_translation.shape != (t, 3):
            raise ValueError(f"Motion root_translation must be ({t}, 3); got {self.root_translation.shape}")
        if t < 1:
            raise ValueError("a Motion needs at least one frame")
        if not (np.isfinite(self.rotations).all() and np.isfinite(self.root_translation).all()):
            raise ValueError("Motion contains NaN or infinite values")
        self.rotations = quat_normalize(self.rotations)

    @property
    def num_frames(self) -> int:
        return self.rotations.shape[0]

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    def joints(self) -> np.ndarray:
        """Global joint positions (T, J, 3) by forward kinematics."""
        from .kinematics import forward_kinematics

        return forward_kinematics(self.rotations, self.root_translation, self.skeleton)

    def resampled(self, fps: float) -> "Motion":
        return Motion(resample_quaternions(self.rotations, self.fps, fps),
                      resample_linear(self.root_translation, self.fps, fps), self.skeleton, fps, dict(self.meta))

    def body(self) -> "Motion":
        """The first 22 joints (the SMPL/HumanML3D body the models act on)."""
        from .skeleton import NUM_BODY_JOINTS

        return Motion(self.rotations[:, :NUM_BODY_JOINTS], self.root_translation,
                      self.skeleton.subset(NUM_BODY_JOINTS), self.fps, dict(self.meta))
