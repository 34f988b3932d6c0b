# SPDX-License-Identifier: GPL-3.0-or-later
"""Retargeting: a source's motion on a target rig's hierarchy, rest offsets and channel layout.

Method (every step on the canonical 22-joint body that both rigs map onto, in the core's axes: Y up, metres):

1. **Rest alignment.** For each canonical joint c, a rotation Q_c turns the target's rest bone onto the
   source's rest bone, from the rest vectors to c's canonical children (each rig's own rest pose, turned to
   Y up): with two or more children (pelvis: hips and spine; chest: neck and collars) the best-fitting rotation
   of all of them (scipy ``Rotation.align_vectors``), which fixes the bone's roll; with one child the smallest
   rotation that points the bone where the source's points, after the parent's Q (so the roll follows the
   chain, as in an A-pose arm that turns about the forward axis onto a T-pose one); a leaf (head, wrists,
   toes) takes its parent's Q. Rest poses whose bones lie in odd directions (Bandai's all lie along X) work
   the same: only each rig's own rest vectors enter.
2. **Rotation transfer.** The source bone's global change from its rest, D_c(t), is applied to the
   target's aligned rest: the target bone's global orientation is D_c(t) Q_c (in the target's axes), so each
   mapped target bone points where the source bone points, whatever either rig's rest pose. Canonical joints
   that the source lacks (a spine2 made up between two spine bones) ride on their parent's change, as the
   made-up joint does in the source. Target bones with no canonical joint (fingers, twist, roll and extra
   spine or neck bones, IK and helper bones) keep their rest rotation: they follow their parent rigidly, so
   each segment between two mapped joints keeps exactly the source's direction (a share of the chain's
   rotation would bend the segment off it), and twist bones are normally driven by the character's own
   constraints.
3. **Root.** The pelvis follows the source's pelvis, scaled by the ratio of leg lengths (hip-knee-ankle) about
   the world origin and floor; it is written into the position channels of the pelvis bone or of its nearest
   ancestor that has them (the bones above the pelvis keep their rest).
4. **Feet.** While the source's feet are planted (:func:`core_models.footfix.detect_contacts` on its
   canonical body), the target's feet move as the source's do from where the target's foot lands
   (:func:`planted_like_source`); the legs are written back by the one rig solver
   (:func:`core_models.rig.solve_fix`), so retargeting adds no sliding.

The result has the target's hierarchy, offsets and channels (each joint's own rotation order) at the source's
frame rate.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from ..footfix import detect_contacts, fix_feet
from ..footfix.contacts import fade_fill, mask_runs
from ..footfix.ik_lock import solve_legs
from ..io.bvh import BvhClip, matrix_to_bvh_euler
from ..metrics import SKATING_THRESHOLD, foot_skating_ratio
from ..motion import MOTION_FPS, resample_linear
from ..skeleton import BODY_JOINT_NAMES, BODY_PARENTS, JOINT_INDEX, LEG_JOINTS
from .compare import bone_direction_difference, leg_length, pelvis_path_difference, sliding_on_contacts
from .rigs import RigMotion, load_source, load_target
from .solver import RigPose, leg_bones, solve_fix

TARGET_SLIDE_ALLOWANCE = 0.02   # FSR the target may show above the source's before its own contacts are planted

__all__ = ["RetargetResult", "retarget", "rest_alignment", "transfer_rotations", "root_carrier"]

_CHILDREN = {c: [k for k, p in enumerate(BODY_PARENTS) if p == c] for c in range(len(BODY_PARENTS))}
_EPS = 1e-9


@dataclass
class RetargetResult:
    """clip: the retargeted BVH clip (target hierarchy, source frame rate); report: figures and notes;
    source_joints / target_joints: (T, 22, 3) canonical bodies at the core rate (metres, Y up), the target's
    after the foot lock."""
    clip: BvhClip
    report: dict
    source_joints: np.ndarray
    target_joints: np.ndarray
    notes: list = field(default_factory=list)


def _smallest_turn(from_dir: np.ndarray, to_dir: np.ndarray) -> np.ndarray:
    """(3, 3) smallest rotation taking direction ``from_dir`` onto ``to_dir``."""
    return Rotation.align_vectors(to_dir[None], from_dir[None])[0].as_matrix()


def rest_alignment(source_rest: np.ndarray, target_rest: np.ndarray) -> np.ndarray:
    """(22, 3, 3) per canonical joint, the rotation turning the target's rest bone onto the source's (both
    (22, 3) canonical rest joints in the same axes); see the module docstring, step 1."""
    align = np.empty((len(BODY_PARENTS), 3, 3))
    for c, p in enumerate(BODY_PARENTS):               # parents come first
        parent = np.eye(3) if p < 0 else align[p]
        kids = [k for k in _CHILDREN[c] if np.linalg.norm(source_rest[k] - source_rest[c]) > _EPS
                and np.linalg.norm(target_rest[k] - target_rest[c]) > _EPS]
        if len(kids) >= 2:
            src = source_rest[kids] - source_rest[c]
            tgt = target_rest[kids] - target_rest[c]
            src /= np.linalg.norm(src, axis=-1, keepdims=True)
            tgt /= np.linalg.norm(tgt, axis=-1, keepdims=True)
            align[c] = Rotation.align_vectors(src, tgt)[0].as_matrix()
        elif kids:
            k = kids[0]
            align[c] = _smallest_turn(parent @ (target_rest[k] - target_rest[c]),
                                      source_rest[k] - source_rest[c]) @ parent
        else:
            align[c] = parent
    return align


def _source_changes(source: RigMotion) -> np.ndarray:
    """(F, 22, 3, 3) each canonical joint's global change from its rest, core axes; a joint the source has no
    bone for takes its canonical parent's (made-up joints ride on the bone they are made up on)."""
    m = source.to_common
    bones = source.bone_of()
    frames = source.num_frames
    out = np.empty((frames, len(BODY_PARENTS), 3, 3))
    for c, p in enumerate(BODY_PARENTS):
        name = BODY_JOINT_NAMES[c]
        if name in bones:
            out[:, c] = m @ source.rotations[:, bones[name]] @ m.T
        elif p >= 0:
            out[:, c] = out[:, p]
        else:                                   # no pelvis bone: the hips' common parent carries the body
            hip = bones.get("left_hip")
            parent = -1 if hip is None else source.parents[hip]
            out[:, c] = np.eye(3) if parent < 0 else m @ source.rotations[:, parent] @ m.T
    return out


def transfer_rotations(source: RigMotion, target: RigMotion) -> tuple[np.ndarray, list[str]]:
    """(F, J, 3, 3) target local rotations (relative to the parent, BVH channels) that point every mapped
    target bone where the source's points; unmapped target bones keep their rest (identity). Returns them
    and the names of the target bones kept at rest."""
    align = rest_alignment(source.canonical_rest(), target.canonical_rest())
    change = _source_changes(source)
    m = target.to_common
    canonical_of = {j: JOINT_INDEX[c] for c, j in target.bone_of().items()}
    frames, joints = source.num_frames, len(target.names)
    glob = np.empty((frames, joints, 3, 3))
    local = np.broadcast_to(np.eye(3), (frames, joints, 3, 3)).copy()
    kept = []
    for j, p in enumerate(target.parents):
        parent = np.broadcast_to(np.eye(3), (frames, 3, 3)) if p < 0 else glob[:, p]
        c = canonical_of.get(j)
        if c is None:
            glob[:, j] = parent
            if not target.is_end_site[j]:
                kept.append(target.names[j])
            continue
        glob[:, j] = m.T @ change[:, c] @ align[c] @ m
        local[:, j] = np.swapaxes(parent, -1, -2) @ glob[:, j]
    return local, kept


def root_carrier(target: RigMotion) -> tuple[int, int]:
    """(pelvis bone, the bone whose position channels carry it): the pelvis bone itself or its nearest
    ancestor with X/Y/Z position channels. Raises ValueError when none has them."""
    bones = target.bone_of()
    pelvis = bones.get("pelvis")
    if pelvis is None:
        hip = bones["left_hip"]
        pelvis = target.parents[hip] if target.parents[hip] >= 0 else hip
    j = pelvis
    while j >= 0:
        if {"Xposition", "Yposition", "Zposition"} <= set(target.channels[j]):
            return pelvis, j
        j = target.parents[j]
    raise ValueError(f"the target rig cannot move: neither its pelvis '{target.names[pelvis]}' nor a bone above "
                     "it has X/Y/Z position channels")


def _core_rate(joints: np.ndarray, fps: float) -> np.ndarray:
    return resample_linear(joints, fps, MOTION_FPS) if abs(fps - MOTION_FPS) > 1e-9 else joints


def _write_clip(target: RigMotion, local: np.ndarray, carrier: int, carrier_position: np.ndarray,
                frame_time: float) -> tuple[BvhClip, list[str]]:
    """The target's hierarchy with channels from local rotations and the carrier's position; other position
    channels hold their offsets (BVH position channels replace the offset)."""
    notes, columns = [], []
    for j, ch in enumerate(target.channels):
        order = "".join(c[0] for c in ch if c.endswith("rotation"))
        euler = None
        if order:
            if len(order) == 3 and len(set(order)) == 3:
                euler = np.unwrap(matrix_to_bvh_euler(local[:, j], order), period=360.0, axis=0)
            else:
                notes.append(f"'{target.names[j]}' has rotation channels {order}, not a full set of three: left at 0")
        k = 0
        for c in ch:
            if c.endswith("position"):
                axis = "XYZ".index(c[0])
                columns.append(carrier_position[:, axis] if j == carrier
                               else np.full(local.shape[0], target.offsets[j, axis]))
            else:
                columns.append(np.zeros(local.shape[0]) if euler is None else euler[:, k])
                k += 1
    motion = np.stack(columns, axis=1) if columns else np.zeros((local.shape[0], 0))
    return BvhClip(list(target.names), list(target.parents), target.offsets.copy(), list(target.channels),
                   list(target.is_end_site), frame_time, motion), notes


def _pose(target: RigMotion, local: np.ndarray, root_positions: np.ndarray, fps: float) -> RigPose:
    return RigPose.from_local(target.parents, target.offsets, local, root_positions, fps, up_axis="Y",
                              unit_scale=target.unit_scale, world_to_rig=target.to_common.T)


def planted_like_source(target: np.ndarray, source: np.ndarray, scale: float, contacts: np.ndarray):
    """Target joints (T, 22, 3) whose feet, while the source's are planted (``contacts`` (T, 2)), move as the
    source's do (scaled by leg length like the root) from where the target's foot lands: a planted source
    foot stays planted, one that slides slides as much, so retargeting adds no sliding and takes none of the
    performance away, and the landing spot is the target's own (within its legs' reach). The correction
    fades out over a few frames around each contact; knees from two-bone IK; root unchanged.
    Returns (joints, (T, 2) frames changed per foot)."""
    ankle_goal, toe_goal, changed = {}, {}, np.zeros((target.shape[0], 2), bool)
    for i, side in enumerate(("left", "right")):
        _, _, ankle, toe = LEG_JOINTS[side]
        planted = np.asarray(contacts[:, i], bool)
        for joint, goal in ((ankle, ankle_goal), (toe, toe_goal)):
            wanted = target[:, joint].copy()
            for a, b in mask_runs(planted):
                # from where the target's foot lands, it moves as the scaled source foot moves
                wanted[a:b] = target[a, joint] + scale * (source[a:b, joint] - source[a, joint])
            goal[side] = target[:, joint] + fade_fill(wanted - target[:, joint], planted)
        changed[:, i] = np.linalg.norm(ankle_goal[side] - target[:, ankle], axis=-1) > 1e-9
    knees = {side: target[:, LEG_JOINTS[side][1]] for side in ("left", "right")}
    return solve_legs(target, target[:, 0], knees, ankle_goal, toe_goal, changed), changed


def retarget(source, target, mapping_source=None, mapping_target=None, foot_lock: bool = True) -> RetargetResult:
    """SOURCE's motion on the TARGET rig (see the module docstring).

    source: a BVH path or :class:`BvhClip`, a generated take ``.npz``, an AMASS ``.npz`` or SMPL-X ``.pkl``;
    target: a BVH path or clip (hierarchy, rest offsets, channel layout). mapping_source / mapping_target:
    (partial) bone mappings, a dict canonical joint -> bone name or a JSON path. Raises
    :class:`~core_models.io.retarget.UnmappableRigError` when a rig's body is not found.
    """
    src = load_source(source, mapping_source)
    tgt = load_target(target, mapping_target)
    notes: list[str] = []
    local, kept = transfer_rotations(src, tgt)

    # root: the source pelvis scaled by leg length, in the target's axes and unit
    src_rest, tgt_rest = src.canonical_rest(), tgt.canonical_rest()
    scale = leg_length(tgt_rest) / leg_length(src_rest)
    src_joints = src.canonical()                                   # (F, 22, 3) metres, Y up
    pelvis_goal = tgt.to_common.T @ (scale * src_joints[:, 0]).T / tgt.unit_scale
    pelvis, carrier = root_carrier(tgt)
    shift = pelvis_goal.T - tgt.rest_positions()[pelvis]           # the bones above the pelvis keep their rest
    roots = [j for j, p in enumerate(tgt.parents) if p < 0]
    carrier_position = tgt.offsets[carrier] + shift
    root_positions = tgt.offsets[roots[0]] + shift
    pose = _pose(tgt, local, root_positions, src.fps)
    before = tgt.canonical(pose.positions)

    src30, before30 = _core_rate(src_joints, src.fps), _core_rate(before, src.fps)
    fix_report: dict = {"applied": False}
    source_contacts = detect_contacts(src30) if src30.shape[0] > 1 else None
    if foot_lock and source_contacts is not None:
        fixed_joints, changed = planted_like_source(before30, src30, scale, source_contacts.contacts)
        used = "source"
        fsr_source = foot_skating_ratio(src30)["mean"]
        if foot_skating_ratio(fixed_joints)["mean"] > fsr_source + TARGET_SLIDE_ALLOWANCE:
            # the target's feet sit lower or higher on its legs than the source's: frames the source lifts a
            # foot read as planted on the target, and slide there; plant the target's own contacts too (the
            # IK lock keeps its result only when it lowers FSR)
            locked = fix_feet(fixed_joints, method="ik_lock", orientation="ignore",
                              has_toes=all(f in tgt.mapping.source_for for f in ("left_foot", "right_foot")))
            if not locked.report.get("unchanged"):
                fixed_joints, used = locked.joints, "source, then the target's own"
                notes += locked.notes
        fix_report = {"applied": bool(changed.any()) or used != "source", "contacts": used,
                      "contact_frames": {side: int(source_contacts.contacts[:, i].sum())
                                         for i, side in enumerate(("left", "right"))},
                      "largest_foot_move_m": float(np.linalg.norm(fixed_joints - before30, axis=-1).max())}
        if fix_report["applied"]:
            legs, leg_notes = leg_bones(tgt.names, tgt.is_end_site, tgt.mapping)
            for side, bones in list(legs.items()):
                orders = ["".join(c[0] for c in tgt.channels[b] if c.endswith("rotation")) for b in bones[:3]]
                if any(len(set(o)) != 3 or len(o) != 3 for o in orders):
                    leg_notes.append(f"{side} leg: a leg bone has no full XYZ rotation channels; not planted")
                    del legs[side]
            notes += leg_notes
            edits = solve_fix(pose, legs, carrier, before30, fixed_joints)
            carrier_position = carrier_position + np.where(edits.root_frames[:, None], edits.root_delta, 0.0)
            root_positions = root_positions + np.where(edits.root_frames[:, None], edits.root_delta, 0.0)
            for j, rotation in edits.rotations.items():
                frames = edits.rotation_frames[j]
                local[frames, j] = rotation[frames]
            notes += edits.notes
            pose = _pose(tgt, local, root_positions, src.fps)
    clip, write_notes = _write_clip(tgt, local, carrier, carrier_position, src.frame_time)
    notes += write_notes
    after30 = _core_rate(tgt.canonical(pose.positions), src.fps)

    report = {
        "source": {"path": src.path, "frames": src.num_frames, "fps": src.fps, "profile": src.mapping.profile,
                   "up_axis": src.up, "rest_up_axis": src.rest_up, "rest_facing": src.rest_facing,
                   "unit_scale": src.unit_scale, "leg_length_m": round(leg_length(src_rest), 4)},
        "target": {"path": tgt.path, "bones": len(tgt.names), "profile": tgt.mapping.profile, "up_axis": tgt.up,
                   "rest_up_axis": tgt.rest_up, "rest_facing": tgt.rest_facing, "unit_scale": tgt.unit_scale,
                   "leg_length_m": round(leg_length(tgt_rest), 4), "root_bone": tgt.names[carrier],
                   "lowest_confidence": min(tgt.mapping.confidence.values(), default=None),
                   "mapping": dict(tgt.mapping.source_for), "synthesised": dict(tgt.mapping.synthesised),
                   "kept_at_rest": kept},
        "scale": round(float(scale), 6),
        "foot_lock": fix_report,
        "figures": figures(src30, after30, leg_length(src_rest), leg_length(tgt_rest),
                           None if source_contacts is None else source_contacts.joint_contacts),
        "notes": notes,
    }
    return RetargetResult(clip, report, src30, after30, notes)


def figures(source_joints: np.ndarray, target_joints: np.ndarray, source_leg: float, target_leg: float,
            joint_contacts: np.ndarray | None = None) -> dict:
    """The retarget's figures on two canonical bodies (T, 22, 3) at the core rate: bone-direction difference
    in the body's facing frame (degrees), pelvis path difference (leg lengths), FSR of each
    (:func:`~core_models.metrics.foot_skating_ratio`) and, on the source's contacts ``joint_contacts``
    (T, 4), the share of contact frames that slide (the target's threshold scaled by its leg length)."""
    if joint_contacts is None:
        joint_contacts = detect_contacts(source_joints).joint_contacts
    moving = len(source_joints) > 1
    direction = bone_direction_difference(source_joints, target_joints)
    path = pelvis_path_difference(source_joints, target_joints, source_leg, target_leg)
    slide_s = sliding_on_contacts(source_joints, joint_contacts)["mean"] if moving else 0.0
    slide_t = sliding_on_contacts(target_joints, joint_contacts,
                                  threshold=SKATING_THRESHOLD * target_leg / source_leg)["mean"] if moving else 0.0
    return {"bone_direction_deg": round(direction["mean"], 3), "bone_direction_worst_deg": round(direction["worst"], 3),
            "pelvis_path_legs": round(path["mean"], 4), "pelvis_path_worst_legs": round(path["max"], 4),
            "fsr_source": round(foot_skating_ratio(source_joints)["mean"] if moving else 0.0, 4),
            "fsr_target": round(foot_skating_ratio(target_joints)["mean"] if moving else 0.0, 4),
            "slide_source": round(slide_s, 4), "slide_target": round(slide_t, 4)}
