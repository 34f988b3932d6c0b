# SPDX-License-Identifier: GPL-3.0-or-later
"""A rig as the core reads it: its active action, its bones mapped to the canonical body (the Bone Map
panel's mapping, which every reader uses) and its pose evaluated on every frame.

Any armature counts as a rig: imported mocap of any naming or an SMPL-X dancer. Reading happens on the main
thread (``frame_set``); turning what was read into canonical joints (:func:`rig_body_joints`) runs anywhere.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from .space import to_core

FOOT_FIX_REPORT_KEY = "choreo_foot_fix"    # action ID property: the report of the Fix Feet that made the action


def rig_action(obj, purpose: str):
    """The action ``obj`` plays (ValueError saying why there is none: naming the NLA strip when the action
    sits only in a strip, which Choreo does not read)."""
    ad = obj.animation_data
    if ad is not None and ad.action is not None:
        return ad.action
    strips = [(track, strip) for track in (ad.nla_tracks if ad is not None else ()) for strip in track.strips
              if strip.action is not None]
    if strips:
        track, strip = strips[0]
        more = f" (and {len(strips) - 1} more strip(s))" if len(strips) > 1 else ""
        raise ValueError(f"'{obj.name}' has no active action to {purpose}: the action is in NLA strip '{strip.name}' "
                         f"(track '{track.name}', action '{strip.action.name}'){more}. Choreo reads the active action: "
                         "select the strip in the NLA editor and press Tab to edit it, or assign the action in the "
                         "Action editor, then try again")
    raise ValueError(f"'{obj.name}' has no action to {purpose}: import mocap onto it or select an animated rig")


def constraint_note(obj) -> str:
    """A note when the rig's motion is shaped by constraints ("" without any): Choreo reads the evaluated pose,
    so the result follows the constraints, not the keyframes alone."""
    found = [f"{c.type.replace('_', ' ').lower()} on {bone.name}" for bone in obj.pose.bones
             for c in bone.constraints if not c.mute and c.influence > 0]
    found += [f"{c.type.replace('_', ' ').lower()} on the object" for c in obj.constraints
              if not c.mute and c.influence > 0]
    if not found:
        return ""
    listed = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
    return (f"note: '{obj.name}' has {len(found)} active constraint(s) ({listed}); its motion was read with them "
            "applied, not from the keyframes alone (mute them first to use the raw mocap)")

def store_mapping(obj, mapping) -> None:
    """Keep ``mapping`` on the rig as its Bone Map (what the panel shows and lets the user edit)."""
    from ...core_models.skeleton import BODY_JOINT_NAMES

    settings = obj.choreo
    settings.bone_map.clear()
    for canonical in BODY_JOINT_NAMES:
        item = settings.bone_map.add()
        item.canonical = canonical
        item.bone = mapping.source_for.get(canonical, "")
        item.note = mapping.synthesised.get(canonical, "")
    settings.rig_profile = mapping.profile
    settings.unmapped_bones = ", ".join(mapping.unmapped_source)
    settings.mapping_error = ""


def map_armature(obj, overrides: dict | None = None):
    """Map an armature's bones to the canonical body by name, ``overrides`` (canonical -> bone or None)
    deciding where given (raises RetargetError listing what is missing)."""
    from ...core_models.io.retarget import map_bones

    names = [b.name for b in obj.data.bones]
    parents = [names.index(b.parent.name) if b.parent else -1 for b in obj.data.bones]
    offsets = np.array([np.array(b.head_local) for b in obj.data.bones])
    return map_bones(names, parents, overrides=overrides, source_rest_positions=offsets)


def stored_mapping(obj):
    """The rig's bone map as shown (and perhaps edited) in the Bone Map panel; mapped by name (and stored)
    when there is none yet. Everything that reads a rig's animation uses this one."""
    if not len(obj.choreo.bone_map):
        mapping = map_armature(obj)
        store_mapping(obj, mapping)
        return mapping
    return map_armature(obj, {item.canonical: (item.bone or None) for item in obj.choreo.bone_map})


@dataclass
class RigPose:
    """A rig evaluated on every frame of its action (armature space, the rig's own unit)."""
    frames: np.ndarray                 # (F,) scene frames
    names: list[str]
    parents: list[int]
    heads: np.ndarray                  # (F, B, 3) bone heads
    matrices: np.ndarray               # (F, B, 4, 4) pose-bone matrices
    rest: np.ndarray                   # (B, 4, 4) bone.matrix_local
    world: np.ndarray                  # (4, 4) object matrix
    channels: dict = field(default_factory=dict)   # (bone, property) -> (F, n) values as evaluated


def read_rig_pose(obj, scene, frames, properties=()) -> RigPose:
    """Evaluate ``obj`` at each frame (constraints, drivers and NLA included) with one ``foreach_get`` per
    quantity; ``properties`` lists (bone, property, size) to record too (e.g. rotation channels)."""
    bones = obj.pose.bones
    names = [b.name for b in obj.data.bones]
    order = [bones.find(n) for n in names]              # pose.bones may list bones in another order
    n, frames = len(names), np.asarray(frames, np.int64)
    heads = np.zeros((len(frames), n, 3))
    mats = np.zeros((len(frames), n, 4, 4))
    channels = {(b, p): np.zeros((len(frames), size)) for b, p, size in properties}
    head_buf, mat_buf = np.zeros(n * 3), np.zeros(n * 16)
    current = scene.frame_current
    try:
        for i, f in enumerate(frames):
            scene.frame_set(int(f))
            bones.foreach_get("head", head_buf)
            bones.foreach_get("matrix", mat_buf)
            heads[i] = head_buf.reshape(n, 3)[order]
            mats[i] = mat_buf.reshape(n, 4, 4).transpose(0, 2, 1)[order]   # foreach_get gives columns
            for (b, p), values in channels.items():
                values[i] = tuple(getattr(bones[b], p))
    finally:
        scene.frame_set(current)
    parents = [names.index(b.parent.name) if b.parent else -1 for b in obj.data.bones]
    rest = np.array([np.array(b.matrix_local) for b in obj.data.bones])
    return RigPose(frames, names, parents, heads, mats, rest, np.array(obj.matrix_world), channels)


def world_core(pose: RigPose) -> np.ndarray:
    """Bone heads in world space, core axes (F, B, 3)."""
    w = pose.world
    return to_core(pose.heads @ w[:3, :3].T + w[:3, 3])


def rig_positions(obj, scene):
    """Main thread: a mapped rig's action as evaluated bone-head positions, one row per frame of the action.

    Returns ``(positions, names, parents, mapping)`` for :func:`rig_body_joints`; ValueError (RetargetError)
    when the bones do not map to the canonical body.
    """
    lo, hi = (int(round(v)) for v in obj.animation_data.action.frame_range)
    mapping = stored_mapping(obj)
    pose = read_rig_pose(obj, scene, np.arange(lo, hi + 1))
    return world_core(pose), pose.names, pose.parents, mapping


def rig_body_joints(positions, names, parents, mapping) -> np.ndarray:
    """Any thread: the canonical body joints (F, 22, 3) in metres (core axes) of :func:`rig_positions`."""
    from ...core_models.io.retarget import canonical_joints, detect_unit_scale

    joints = canonical_joints(positions, names, mapping, parents)
    return joints * detect_unit_scale(joints)        # rigs imported in cm, mm or inches


def foot_fix_report(obj) -> dict | None:
    """The foot-fix report stored on the object's current action, if it was made by Fix Feet."""
    ad = obj.animation_data if obj is not None else None
    if ad is None or ad.action is None or FOOT_FIX_REPORT_KEY not in ad.action:
        return None
    try:
        return json.loads(ad.action[FOOT_FIX_REPORT_KEY])
    except (TypeError, ValueError):
        return None
