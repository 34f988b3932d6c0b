# SPDX-License-Identifier: GPL-3.0-or-later
"""SMPL-X motion files: AMASS-style ``.npz`` and the official release's joblib ``.pkl``.

Both store axis-angle rotations relative to the SMPL-X rest pose (Y up, facing +Z, left = +X), which is
also the frame of our default skeleton, so the rotations apply to it unchanged. AMASS places bodies in a
Z-up world; ``up_axis="auto"`` detects that from the pelvis-to-neck direction and converts to Y up.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from ..motion import Motion
from ..rotations import axis_angle_to_quat, quat_fix_continuity, quat_mul, quat_rotate
from ..skeleton import NUM_BODY_JOINTS, SMPLX_JOINT_NAMES, Skeleton, default_skeleton


class SmplxMotionError(ValueError):
    """A SMPL-X motion file that cannot be used; the message names the file and the problem."""


# Z-up (x, y, z) -> Y-up (x, z, -y): a rotation of -90 degrees about X.
_ZUP_TO_YUP = np.array([np.sqrt(0.5), -np.sqrt(0.5), 0.0, 0.0])


def _fail(path, msg: str) -> SmplxMotionError:
    return SmplxMotionError(f"{path}: {msg}")


def _as_frames(path, name: str, arr, width: int | None = None) -> np.ndarray:
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim == 3 and arr.shape[-1] == 3:
        arr = arr.reshape(arr.shape[0], -1)
    if arr.ndim != 2 or (width is not None and arr.shape[1] != width):
        want = f"(T, {width})" if width else "(T, N)"
        raise _fail(path, f"'{name}' has shape {arr.shape}, expected {want}")
    if not np.isfinite(arr).all():
        frame = int(np.argwhere(~np.isfinite(arr))[0, 0])
        raise _fail(path, f"'{name}' contains NaN/inf (first at frame {frame})")
    return arr


def _detect_z_up(rotations: np.ndarray, translation: np.ndarray, skeleton: Skeleton) -> bool:
    from ..kinematics import forward_kinematics

    sample = slice(0, rotations.shape[0], max(1, rotations.shape[0] // 16))
    joints = forward_kinematics(rotations[sample, :NUM_BODY_JOINTS], translation[sample],
                                skeleton.subset(NUM_BODY_JOINTS))
    up = (joints[:, 12] - joints[:, 0]).mean(0)       # pelvis -> neck
    return abs(up[2]) > abs(up[1])


def motion_from_axis_angle(path, global_orient, body_pose, transl, fps: float, extra_pose=None,
                           skeleton: Skeleton | None = None, up_axis: str = "auto") -> Motion:
    """Build a 55-joint ``Motion`` from SMPL-X axis-angle arrays (body only when no hands/face given)."""
    skeleton = skeleton or default_skeleton()
    g = _as_frames(path, "global_orient", global_orient, 3)
    b = _as_frames(path, "body_pose", body_pose, 63)
    t = _as_frames(path, "transl", transl, 3)
    if not (g.shape[0] == b.shape[0] == t.shape[0]):
        raise _fail(path, f"frame counts differ: global_orient {g.shape[0]}, body_pose {b.shape[0]}, "
                          f"transl {t.shape[0]}")
    if g.shape[0] < 1:
        raise _fail(path, "the motion has zero frames")
    aa = np.zeros((g.shape[0], len(SMPLX_JOINT_NAMES), 3))
    aa[:, 0] = g
    aa[:, 1:NUM_BODY_JOINTS] = b.reshape(-1, NUM_BODY_JOINTS - 1, 3)
    if extra_pose is not None:                    # jaw, eyes, hands (33 joints) when the file has them
        e = _as_frames(path, "jaw/eye/hand pose", extra_pose, 99)
        aa[:, NUM_BODY_JOINTS:] = e.reshape(-1, 33, 3)
    rotations = axis_angle_to_quat(aa)
    # SMPL-X "transl" moves the whole body; the pelvis sits at transl + rest pelvis offset.
    root = t + skeleton.offsets[0]
    if up_axis not in ("auto", "Y", "Z"):
        raise ValueError(f"up_axis must be 'auto', 'Y' or 'Z'; got '{up_axis}'")
    if up_axis == "Z" or (up_axis == "auto" and _detect_z_up(rotations, root, skeleton)):
        fix = np.broadcast_to(_ZUP_TO_YUP, rotations[:, 0].shape)
        rotations[:, 0] = quat_mul(fix, rotations[:, 0])
        root = quat_rotate(fix, root)
    rotations = quat_fix_continuity(rotations, axis=0)
    return Motion(rotations, root, skeleton, fps, meta={"source": str(path), "format": "smplx"})


def read_amass_npz(path, skeleton: Skeleton | None = None, up_axis: str = "auto") -> Motion:
    """AMASS-style npz: ``poses`` (T, 165 SMPL-X | 156 SMPL-H | >= 66), ``trans``, ``betas``, frame rate."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such motion file")
    try:
        data = np.load(path, allow_pickle=False)
        keys = set(data.files)
    except Exception as exc:
        raise _fail(path, f"not a readable .npz archive ({exc})") from exc
    missing = [k for k in ("poses", "trans") if k not in keys]
    if missing:
        raise _fail(path, f"missing key(s) {missing}; an AMASS-style file has 'poses', 'trans', 'betas' and "
                          f"'mocap_frame_rate' (found: {sorted(keys)})")
    rate_key = next((k for k in ("mocap_frame_rate", "mocap_framerate", "fps", "frame_rate") if k in keys), None)
    if rate_key is None:
        raise _fail(path, "no frame rate: expected 'mocap_frame_rate' or 'mocap_framerate'")
    fps = float(np.asarray(data[rate_key]).reshape(-1)[0])
    if not np.isfinite(fps) or fps <= 0:
        raise _fail(path, f"frame rate '{rate_key}' = {fps} is not a positive number")
    poses = _as_frames(path, "poses", data["poses"])
    if poses.shape[1] < 66:
        raise _fail(path, f"'poses' has {poses.shape[1]} values per frame; need at least 66 (root + 21 body joints)")
    extra = None
    if poses.shape[1] == 165:   # SMPL-X: body 66, jaw 3, eyes 6, hands 90 -> our order is identical
        extra = poses[:, 66:165]
    elif poses.shape[1] == 156:  # SMPL-H: body 66 then hands 90; no jaw/eyes
        extra = np.concatenate([np.zeros((poses.shape[0], 9)), poses[:, 66:156]], axis=1)
    motion = motion_from_axis_angle(path, poses[:, :3], poses[:, 3:66], data["trans"], fps, extra,
                                    skeleton, up_axis)
    if "betas" in keys:
        motion.meta["betas"] = np.asarray(data["betas"], np.float64)
    return motion


_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"), ("joblib.numpy_pickle", "NumpyArrayWrapper"),
    ("collections", "OrderedDict"),
}


def _safe_unpickle(path: Path):
    """Load a joblib/pickle file allowing only numpy arrays and plain containers (no code execution)."""
    from joblib.numpy_pickle import NumpyUnpickler, _validate_fileobject_and_memmap

    class SafeUnpickler(NumpyUnpickler):
        def find_class(self, module, name):
            if (module, name) not in _ALLOWED_GLOBALS:
                raise pickle.UnpicklingError(f"refusing to load '{module}.{name}': only numpy arrays and "
                                             "plain containers are allowed in motion files")
            return super().find_class(module, name)

    with open(path, "rb") as f:
        with _validate_fileobject_and_memmap(f, str(path), None) as (fobj, _):
            return SafeUnpickler(str(path), fobj, ensure_native_byte_order=True).load()


def read_smplx_pkl(path, fps: float = 30.0, skeleton: Skeleton | None = None, up_axis: str = "auto") -> Motion:
    """The official release's joblib pickle: ``body_pose``, ``global_orient``, ``transl`` (30 fps)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such motion file")
    try:
        data = _safe_unpickle(path)
    except pickle.UnpicklingError as exc:
        raise _fail(path, str(exc)) from exc
    except Exception as exc:
        raise _fail(path, f"not a readable joblib/pickle file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(data, dict):
        raise _fail(path, f"expected a dict of arrays, found {type(data).__name__}")
    missing = [k for k in ("body_pose", "global_orient", "transl") if k not in data]
    if missing:
        raise _fail(path, f"missing key(s) {missing}; the official SMPL-X pickle has 'body_pose', "
                          f"'global_orient' and 'transl' (found: {sorted(map(str, data))})")
    hands = None
    if "left_hand_pose" in data and "right_hand_pose" in data:
        n = np.asarray(data["body_pose"]).shape[0]
        face = [np.asarray(data.get(k, np.zeros((n, 3)))).reshape(n, -1) for k in ("jaw_pose", "leye_pose", "reye_pose")]
        lh, rh = (np.asarray(data[k]).reshape(n, -1) for k in ("left_hand_pose", "right_hand_pose"))
        if lh.shape[1] == 45 and rh.shape[1] == 45:
            hands = np.concatenate(face + [lh, rh], axis=1)
    if "fps" in data:
        fps = float(np.asarray(data["fps"]).reshape(-1)[0])
    return motion_from_axis_angle(path, data["global_orient"], data["body_pose"], data["transl"], fps,
                                  hands, skeleton, up_axis)
