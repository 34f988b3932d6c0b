# SPDX-License-Identifier: GPL-3.0-or-later
"""Writing a repaired body back onto the original BVH rig: root translation and leg rotations only.

A foot fix produces canonical body joints at 30 fps (:func:`core_models.frdm.fix_feet`). Here the changes of
the root, knees, ankles and toes are resampled to the source rate and applied to the source rig:
* the root joint's position channels move by the root's change (everything rides along, so the upper
  body keeps every channel value);
* per leg, the bones mapped to the canonical hip, knee and ankle are re-solved with two-bone IK (the
  original knee as pole) towards the repaired ankle, and the ankle bone turns by the smallest rotation that
  points the foot at the repaired toe (the foot keeps its orientation otherwise). Bones in between keep their
  local rotations. Frames a leg's fix does not touch keep their channel values bit for bit.
Only the position channels of the root and the rotation channels of hip, knee and ankle bones change.
:func:`solve_leg_rotations` is the rig-agnostic part (rotation matrices in, rotation matrices out), for any
armature whose bones map to the canonical body (the Blender add-on uses it on pose bones).
"""
from __future__ import annotations

import numpy as np

from ..kinematics import two_bone_end, two_bone_ik
from ..rotations import normalize, quat_between, quat_to_matrix
from .bvh import BvhClip, matrix_to_bvh_euler

_LEGS = {"left": ("left_hip", "left_knee", "left_ankle", "left_foot"),
         "right": ("right_hip", "right_knee", "right_ankle", "right_foot")}
_CANONICAL_INDEX = {"pelvis": 0, "left_hip": 1, "right_hip": 2, "left_knee": 4, "right_knee": 5, "left_ankle": 7,
                    "right_ankle": 8, "left_foot": 10, "right_foot": 11}


class RigFixError(ValueError):
    """The rig cannot take the repair directly (the caller writes the canonical body instead)."""


def _to_source_axes(v: np.ndarray, up_axis: str) -> np.ndarray:
    """Inverse of retarget.convert_up_axis for directions/displacements."""
    if up_axis.upper() == "Z":                # core (x, y, z) = (xs, zs, -ys)
        return np.stack([v[..., 0], -v[..., 2], v[..., 1]], axis=-1)
    return v


def resample_to_frames(values: np.ndarray, core_fps: float, source_fps: float, source_frames: int) -> np.ndarray:
    """Core-rate values (T, ...) at each source frame (linear; the inverse of the load-time resampling)."""
    pos = np.arange(source_frames) * (core_fps / source_fps)
    frames = np.arange(values.shape[0])
    flat = values.reshape(values.shape[0], -1)
    out = np.stack([np.interp(pos, frames, flat[:, k]) for k in range(flat.shape[1])], axis=-1)
    return out.reshape((source_frames,) + values.shape[1:])


def _swing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(F, 3, 3) smallest rotations turning directions a onto b."""
    return quat_to_matrix(quat_between(normalize(a), normalize(b)))


def leg_bones(names, is_end_site, mapping) -> tuple[dict[str, tuple], list[str]]:
    """Per leg, the rig's (hip, knee, ankle, toe-or-None) bone indices from a :class:`BoneMapping`; a leg
    whose hip, knee or ankle is not a real bone of the rig is left out (with a note)."""
    index = {n: i for i, n in enumerate(names)}
    legs, notes = {}, []
    for side, (c_hip, c_knee, c_ankle, c_toe) in _LEGS.items():
        bones = []
        for c in (c_hip, c_knee, c_ankle):
            name = mapping.source_for.get(c)
            if name is None or c in mapping.synthesised or name not in index or is_end_site[index[name]]:
                bones = None
                break
            bones.append(index[name])
        if bones is None:
            notes.append(f"{side} leg: hip, knee and ankle are not all bones of the rig; its rotations are kept")
            continue
        legs[side] = (*bones, index.get(mapping.source_for.get(c_toe)))   # a toe bone or the ankle's End Site
    return legs, notes


def leg_targets(glob_p: np.ndarray, legs: dict, delta: np.ndarray) -> dict:
    """Per leg, (knee, ankle, toe-or-None) target positions (F, 3) on the rig's own joints.

    glob_p: (F, J, 3) rig joint positions with the root's move already added; delta: (F, 22, 3) change of
    each canonical joint (rig space and unit), whose root change ``delta[:, 0]`` is the move already added.
    """
    root_delta = delta[:, 0]
    targets = {}
    for side, (hip, knee, ankle, toe) in legs.items():
        c_knee, c_ankle, c_toe = (_CANONICAL_INDEX[c] for c in _LEGS[side][1:])
        targets[side] = (glob_p[:, knee] + delta[:, c_knee] - root_delta,
                         glob_p[:, ankle] + delta[:, c_ankle] - root_delta,
                         None if toe is None else glob_p[:, toe] + delta[:, c_toe] - root_delta)
    return targets


def solve_leg_rotations(parents, local_r: np.ndarray, glob_r: np.ndarray, glob_p: np.ndarray, legs: dict,
                        targets: dict) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray], list[str]]:
    """New local rotations of the hip, knee and ankle bones of any rig so its legs reach repaired targets.

    parents: (J,) rig hierarchy; local_r / glob_r: (F, J, 3, 3) local and global rotations (global = parent
    global @ local); glob_p: (F, J, 3) global positions, with any root move already added. legs: side ->
    (hip, knee, ankle, toe or None) bone indices (:func:`leg_bones`); targets: side -> (knee, ankle, toe)
    target positions (F, 3) each, in the rig's space. Per leg: two-bone IK with the knee target as pole
    puts the ankle at its target (bones keep their lengths), the thigh and shin turn by the smallest
    rotations that do it (the knee keeps its twist), and the ankle bone turns by the smallest rotation that
    points the foot at the toe target (no toe: it keeps its world orientation). Bones between them keep
    their local rotations. Returns {bone: new local rotations (F, 3, 3)}, {bone: frames changed (F,) bool}
    and notes. Unchanged frames are exactly the old rotations.
    """
    notes: list[str] = []
    desired: dict[int, np.ndarray] = {}
    frames_of: dict[int, np.ndarray] = {}
    for side, (hip, knee, ankle, toe) in legs.items():
        k_t, a_t, t_t = targets[side]
        h, k_old, a_old = glob_p[:, hip], glob_p[:, knee], glob_p[:, ankle]
        frames = (np.abs(a_t - a_old).max(-1) > 0) | (np.abs(k_t - k_old).max(-1) > 0)
        if toe is not None:
            frames |= np.abs(t_t - glob_p[:, toe]).max(-1) > 0
        if not frames.any():
            continue
        l1, l2 = np.linalg.norm(k_old - h, axis=-1), np.linalg.norm(a_old - k_old, axis=-1)
        k_new = two_bone_ik(h, k_t, a_t, l1, l2)
        a_new = two_bone_end(h, a_t, l1, l2)
        s_hip = _swing(k_old - h, k_new - h)
        a_after_hip = h + np.einsum("fij,fj->fi", s_hip, a_old - h)
        s_knee = _swing(a_after_hip - k_new, a_new - k_new)
        desired[hip] = s_hip @ glob_r[:, hip]
        desired[knee] = s_knee @ s_hip @ glob_r[:, knee]
        if toe is not None:
            t_old = glob_p[:, toe]
            desired[ankle] = _swing(t_old - a_old, t_t - a_new) @ glob_r[:, ankle]
        else:
            desired[ankle] = glob_r[:, ankle]              # no toe: the foot keeps its world orientation
            notes.append(f"{side} leg: no toe bone; the foot keeps its orientation")
        for b in (hip, knee, ankle):
            frames_of[b] = frames
    # one pass down the hierarchy: the leg bones get their desired global rotation, the rest keep their locals
    new_glob = glob_r.copy()
    new_local: dict[int, np.ndarray] = {}
    for j, p in enumerate(parents):
        parent = np.broadcast_to(np.eye(3), glob_r[:, j].shape) if p < 0 else new_glob[:, p]
        if j in desired:
            g = np.where(frames_of[j][:, None, None], desired[j], parent @ local_r[:, j])
            new_glob[:, j] = g
            new_local[j] = np.where(frames_of[j][:, None, None], np.swapaxes(parent, -1, -2) @ g, local_r[:, j])
        else:
            new_glob[:, j] = parent @ local_r[:, j]
    return new_local, frames_of, notes


def apply_fix_to_bvh(clip: BvhClip, body, fixed_joints: np.ndarray) -> tuple[BvhClip, list[str]]:
    """A copy of ``clip`` whose root translation and leg rotations reproduce ``fixed_joints``.

    clip: the BVH as read; body: its :class:`BodyClip` (mapping, unit scale, up axis, rates); fixed_joints:
    (T, 22, 3) repaired canonical joints at ``body.fps``. Returns the new clip and notes. Raises
    :class:`RigFixError` when the rig's root has no position channels.
    """
    fixed_joints = np.asarray(fixed_joints, np.float64)
    if fixed_joints.shape != body.joints.shape:
        raise RigFixError(f"fixed joints {fixed_joints.shape} do not match the clip's body {body.joints.shape}")
    root = [j for j, p in enumerate(clip.parents) if p < 0][0]
    axis_col = {c[0]: clip.channel_columns(root).start + k for k, c in enumerate(clip.channels[root])
                if c.endswith("position")}
    if len(axis_col) != 3:
        raise RigFixError(f"the rig's root '{clip.names[root]}' has no X/Y/Z position channels to move")
    delta_core = fixed_joints - body.joints                                  # metres, core axes
    delta = _to_source_axes(resample_to_frames(delta_core, body.fps, body.source_fps, clip.num_frames),
                            body.up_axis) / body.unit_scale
    out = clip.copy()
    root_delta = delta[:, 0]
    moved = np.abs(root_delta).max(-1) > 0
    for a, axis in enumerate("XYZ"):
        out.motion[moved, axis_col[axis]] = clip.motion[moved, axis_col[axis]] + root_delta[moved, a]

    glob_r, glob_p = clip.global_transforms()
    glob_p = glob_p + root_delta[:, None]
    legs, notes = leg_bones(clip.names, clip.is_end_site, body.mapping)
    targets = leg_targets(glob_p, legs, delta)
    new_local, frames_of, more = solve_leg_rotations(clip.parents, clip.local_rotation_matrices(), glob_r, glob_p,
                                                     legs, targets)
    notes += more
    for side, bones in legs.items():
        if any(len(clip.rotation_order(b)) != 3 or len(set(clip.rotation_order(b))) != 3 for b in bones[:3]):
            notes.append(f"{side} leg: a leg bone has no full XYZ rotation channels; its rotations are kept")
            for b in bones[:3]:
                new_local.pop(b, None)
    for j, local in new_local.items():
        sel = frames_of[j]
        cols = [clip.channel_columns(j).start + k for k, c in enumerate(clip.channels[j]) if c.endswith("rotation")]
        old = clip.motion[:, cols]
        new = matrix_to_bvh_euler(local, clip.rotation_order(j))
        new = old + (new - old + 180.0) % 360.0 - 180.0          # closest to the original curves
        out.motion[np.ix_(sel, cols)] = new[sel]
    return out, notes


def upper_body_channels_identical(original: BvhClip, fixed: BvhClip, body) -> bool:
    """True when every channel of every bone outside the legs (and the root's rotation) is bit-identical."""
    legs = set()
    index = {n: i for i, n in enumerate(original.names)}
    for side_bones in _LEGS.values():
        for c in side_bones[:3]:
            name = body.mapping.source_for.get(c)
            if name in index:
                legs.add(index[name])
    for j in range(original.num_joints):
        cols = original.channel_columns(j)
        ch = original.channels[j]
        keep = [cols.start + k for k, c in enumerate(ch)
                if not (j in legs and c.endswith("rotation")) and not (original.parents[j] < 0 and c.endswith("position"))]
        if keep and not np.array_equal(original.motion[:, keep], fixed.motion[:, keep]):
            return False
    return True


__all__ = ["apply_fix_to_bvh", "leg_bones", "leg_targets", "resample_to_frames", "solve_leg_rotations", "upper_body_channels_identical", "RigFixError"]
