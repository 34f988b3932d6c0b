# SPDX-License-Identifier: GPL-3.0-or-later
"""The one rig solver: a repaired canonical body put back onto any rig as edits of the rig's own channels.

A foot fix produces canonical body joints at the core's motion rate (:func:`core_models.footfix.fix_feet`).
:func:`solve_fix` takes a rig as arrays (:class:`RigPose`: hierarchy, global rotations and head positions per
rig frame, rest orientations, rate, up axis, unit) and the canonical joints before and after the fix, and
returns :class:`RigEdits`: the change of the root bone's location channel and new rotations for the hip, knee
and ankle bones, each with the rig frames it changes. It resamples the fix from the motion rate to the rig's:
* the root bone's location moves by the pelvis's change, carried through its parent's pose and its own rest
  orientation into the channel's space (every descendant rides along, so the upper body keeps its channels);
* per leg, hip and knee are re-solved by two-bone IK (the original knee as pole) towards the repaired ankle,
  and the ankle bone turns by the smallest rotation that points the foot at the repaired toe (the foot keeps
  its orientation otherwise). Bones in between keep their local rotations. Frames a leg's fix does not touch
  keep their old rotations exactly.
The BVH writer (:func:`core_models.io.rig_fix.apply_fix_to_bvh`) and the Blender add-on are adapters around it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..kinematics import two_bone_end, two_bone_ik
from ..motion import MOTION_FPS
from ..rotations import normalize, quat_between, quat_to_matrix

LEG_CHAINS = {"left": ("left_hip", "left_knee", "left_ankle", "left_foot"),
              "right": ("right_hip", "right_knee", "right_ankle", "right_foot")}
_CANONICAL_INDEX = {"pelvis": 0, "left_hip": 1, "right_hip": 2, "left_knee": 4, "right_knee": 5, "left_ankle": 7,
                    "right_ankle": 8, "left_foot": 10, "right_foot": 11}


@dataclass
class RigPose:
    """One rig's animation on its own frames, in the rig's own space and unit.

    parents: (J,) parent bone of each bone, -1 for a root; rotations: (F, J, 3, 3) each bone's global
    orientation (it may carry scale: used as it is to carry the root's location, orthonormalised for the legs);
    positions: (F, J, 3) each bone's head; fps: the rig's frame rate. rest: (J, 3, 3) each bone's rest
    orientation in the rig's space (Blender: the rotation of ``bone.matrix_local``, the bone roll included);
    None means identity (BVH: channels rotate the parent's axes). up_axis "Y" or "Z" and unit_scale (metres per
    rig unit) say how the rig's world relates to the core's (metres, Y up); world_to_rig (3, 3), when the rig
    sits in a transformed object (Blender: the inverse of the armature's ``matrix_world`` 3x3), maps a
    displacement of that world into the rig's space. local_rotations: (F, J, 3, 3) each bone's rotation
    relative to its parent's global orientation, when they are known exactly (forward kinematics, BVH);
    otherwise they are derived from ``rotations``.
    """
    parents: Sequence[int]
    rotations: np.ndarray
    positions: np.ndarray
    fps: float
    rest: np.ndarray | None = None
    up_axis: str = "Y"
    unit_scale: float = 1.0
    world_to_rig: np.ndarray | None = None
    local_rotations: np.ndarray | None = None

    @classmethod
    def from_local(cls, parents: Sequence[int], offsets: np.ndarray, local_rotations: np.ndarray,
                   root_positions: np.ndarray, fps: float, **rig) -> "RigPose":
        """Forward kinematics of a rig given by rest offsets (J, 3) (each head in its parent's frame), local
        rotations (F, J, 3, 3) (relative to the parent) and root positions (F, 3) (every root bone's head);
        ``rig`` passes rest, up_axis, unit_scale and world_to_rig on."""
        local_rotations = np.asarray(local_rotations, np.float64)
        offsets = np.asarray(offsets, np.float64)
        frames, joints = local_rotations.shape[:2]
        rotations = np.empty_like(local_rotations)
        positions = np.empty((frames, joints, 3))
        for j, p in enumerate(parents):
            if p < 0:
                rotations[:, j] = local_rotations[:, j]
                positions[:, j] = root_positions
            else:
                rotations[:, j] = rotations[:, p] @ local_rotations[:, j]
                positions[:, j] = positions[:, p] + np.einsum("fab,b->fa", rotations[:, p], offsets[j])
        return cls(list(parents), rotations, positions, float(fps), local_rotations=local_rotations, **rig)


@dataclass
class RigEdits:
    """What :func:`solve_fix` changes on a rig (rig frames, the rig's space and unit).

    root_bone: the bone whose location channel carries the root; root_delta: (F, 3) change of that location
    channel (add it to the channel's values); root_frames: (F,) bool, the frames it changes. rotations:
    bone -> (F, 3, 3) new rotation of the bone relative to its rest orientation (Blender: the pose bone's basis
    rotation; BVH: the joint's channel rotation); rotation_frames: bone -> (F,) bool, the frames to write
    (on the others the matrices are the old rotations). notes: what was left as it was, and why.
    """
    root_bone: int
    root_delta: np.ndarray
    root_frames: np.ndarray
    rotations: dict[int, np.ndarray]
    rotation_frames: dict[int, np.ndarray]
    notes: list[str] = field(default_factory=list)


def resample_to_frames(values: np.ndarray, core_fps: float, source_fps: float, source_frames: int) -> np.ndarray:
    """Core-rate values (T, ...) at each source frame (linear; the inverse of the load-time resampling)."""
    pos = np.arange(source_frames) * (core_fps / source_fps)
    frames = np.arange(values.shape[0])
    flat = values.reshape(values.shape[0], -1)
    out = np.stack([np.interp(pos, frames, flat[:, k]) for k in range(flat.shape[1])], axis=-1)
    return out.reshape((source_frames,) + values.shape[1:])


def core_to_rig_axes(v: np.ndarray, up_axis: str) -> np.ndarray:
    """Core displacements (Y up) in a rig's axes: Z up is (x, y, z) -> (x, -z, y), the inverse of
    :func:`core_models.io.retarget.convert_up_axis` and the same turn as Blender's core-to-Blender space."""
    if up_axis.upper() == "Z":
        return np.stack([v[..., 0], -v[..., 2], v[..., 1]], axis=-1)
    return v


def leg_bones(names, is_end_site, mapping) -> tuple[dict[str, tuple], list[str]]:
    """Per leg, the rig's (hip, knee, ankle, toe-or-None) bone indices from a bone mapping (``source_for``:
    canonical joint -> bone name, ``synthesised``: canonical joints made up, not bones); a leg whose hip, knee
    or ankle is not a real bone of the rig is left out (with a note)."""
    index = {n: i for i, n in enumerate(names)}
    legs, notes = {}, []
    for side, (c_hip, c_knee, c_ankle, c_toe) in LEG_CHAINS.items():
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
        c_knee, c_ankle, c_toe = (_CANONICAL_INDEX[c] for c in LEG_CHAINS[side][1:])
        targets[side] = (glob_p[:, knee] + delta[:, c_knee] - root_delta,
                         glob_p[:, ankle] + delta[:, c_ankle] - root_delta,
                         None if toe is None else glob_p[:, toe] + delta[:, c_toe] - root_delta)
    return targets


def _swing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(F, 3, 3) smallest rotations turning directions a onto b."""
    return quat_to_matrix(quat_between(normalize(a), normalize(b)))


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


def _orthonormal(m: np.ndarray) -> np.ndarray:
    """Rotation part of (..., 3, 3) matrices that may carry scale (each column scaled to unit length)."""
    return m / np.linalg.norm(m, axis=-2, keepdims=True)


def _descendants(parents: Sequence[int], root: int) -> list[int]:
    """``root`` and every bone below it (parents come before their children)."""
    out = [root]
    for j, p in enumerate(parents):
        if p in out and j not in out:
            out.append(j)
    return out


def solve_fix(rig: RigPose, legs: dict, root_bone: int, before: np.ndarray, after: np.ndarray,
              motion_fps: float = MOTION_FPS) -> RigEdits:
    """The channel edits that make ``rig`` follow a foot fix of its canonical body.

    rig: the rig's animation (:class:`RigPose`); legs: side -> (hip, knee, ankle, toe or None) bone indices
    (:func:`leg_bones`; leave a leg out to keep its rotations); root_bone: the bone whose location channel
    carries the pelvis move (a BVH's root joint; in Blender the pelvis bone or the nearest ancestor keyed with
    a location); before, after: (T, 22, 3) canonical joints in metres, core axes (Y up), at ``motion_fps``:
    the fix's input and output, T frames covering the rig's F frames (resampled to the rig's rate when the
    rates differ).
    """
    before, after = np.asarray(before, np.float64), np.asarray(after, np.float64)
    if before.shape != after.shape or before.ndim != 3:
        raise ValueError(f"the canonical joints before {before.shape} and after {after.shape} the fix differ in shape")
    frames = rig.positions.shape[0]
    delta = after - before                                                   # metres, core axes
    if abs(rig.fps - motion_fps) > 1e-6 or delta.shape[0] != frames:
        delta = resample_to_frames(delta, motion_fps, rig.fps, frames)
    delta = core_to_rig_axes(delta, rig.up_axis) / rig.unit_scale
    if rig.world_to_rig is not None:
        delta = delta @ np.asarray(rig.world_to_rig, np.float64).T
    root_delta = delta[:, 0]
    parents = list(rig.parents)
    rest = None if rig.rest is None else _orthonormal(np.asarray(rig.rest, np.float64))

    # the location channel of the root bone lives in its parent's posed frame turned by its own rest orientation
    parent = parents[root_bone]
    carry = None if parent < 0 else np.asarray(rig.rotations[:, parent], np.float64)
    if rest is not None:
        own = rest[root_bone] if parent < 0 else rest[parent].T @ rest[root_bone]
        carry = np.broadcast_to(own, (frames, 3, 3)) if carry is None else carry @ own
    location_delta = root_delta if carry is None else np.linalg.solve(carry, root_delta[..., None])[..., 0]
    root_frames = np.abs(root_delta).max(-1) > 0

    glob_r = _orthonormal(np.asarray(rig.rotations, np.float64))
    if rig.local_rotations is not None:
        local_r = np.asarray(rig.local_rotations, np.float64)
    else:
        local_r = glob_r.copy()
        for j, p in enumerate(parents):
            if p >= 0:
                local_r[:, j] = np.swapaxes(glob_r[:, p], -1, -2) @ glob_r[:, j]
    glob_p = np.array(rig.positions, np.float64)
    glob_p[:, _descendants(parents, root_bone)] += root_delta[:, None]
    targets = leg_targets(glob_p, legs, delta)
    new_local, frames_of, notes = solve_leg_rotations(parents, local_r, glob_r, glob_p, legs, targets)
    rotations = {}
    for j, local in new_local.items():
        if rest is None:
            rotations[j] = local
        else:                               # relative to the parent's pose -> relative to the bone's rest
            p = parents[j]
            rotations[j] = (rest[j].T if p < 0 else rest[j].T @ rest[p])[None] @ local
    return RigEdits(root_bone, location_delta, root_frames, rotations, frames_of, notes)


__all__ = ["LEG_CHAINS", "RigEdits", "RigPose", "core_to_rig_axes", "leg_bones", "leg_targets", "resample_to_frames",
           "solve_fix", "solve_leg_rotations"]
