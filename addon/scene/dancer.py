# SPDX-License-Identifier: GPL-3.0-or-later
"""The SMPL-X dancer: an armature of 55 bones named as the SMPL-X joints (quaternion rotation mode, readable
display), with the user's skinned SMPL-X body when the preferences name a model file, keyed with a motion.

Bone rest orientations are chosen for display (each bone points at its main child); the core's local
rotations are defined in world-aligned rest frames, so :mod:`.keyframes` converts between the two with
each bone's rest rotation (see ``keyframes.bone_rest_matrices``).
"""
from __future__ import annotations

import bpy
import numpy as np

from ...core_models.skeleton import SMPLX_JOINT_NAMES, Skeleton, default_skeleton
from .keyframes import write_motion
from .mannequin import add_mannequin
from .settings import smplx_model_file
from .space import to_blender

ARMATURE_TAG = "choreo_skeleton_offsets"   # custom property: the core skeleton, so motion maps exactly

# The child a bone points at when it has several.
_MAIN_CHILD = {"pelvis": "spine1", "spine3": "neck", "left_wrist": "left_middle1", "right_wrist": "right_middle1",
               "head": None}


def _tails(skel: Skeleton, heads: np.ndarray) -> np.ndarray:
    tails = np.zeros_like(heads)
    for j, name in enumerate(skel.names):
        kids = skel.children(j)
        main = _MAIN_CHILD.get(name, skel.names[kids[0]] if len(kids) == 1 else None)
        if main is not None and main in skel.names:
            direction = heads[skel.index(main)] - heads[j]
            length = np.linalg.norm(direction)
        else:
            p = skel.parents[j]
            direction = heads[j] - heads[p] if p >= 0 else np.array([0.0, 0.1, 0.0])
            if name in ("head", "jaw") or name.startswith(("left_eye", "right_eye")):
                direction = np.array([0.0, 1.0, 0.0]) if name == "head" else np.array([0.0, 0.0, 1.0])
            length = 0.0
        if length < 1e-4:
            parent_len = np.linalg.norm(skel.offsets[j]) if skel.parents[j] >= 0 else 0.1
            length = max(0.35 * parent_len, 0.02) if name != "head" else 0.18
            direction = direction / max(np.linalg.norm(direction), 1e-9) * length
        tails[j] = heads[j] + direction
    return tails


def build_armature(context, skeleton: Skeleton | None = None, name: str = "SMPLX_dancer",
                   collection=None) -> bpy.types.Object:
    """Create an armature object for ``skeleton`` (default: the project's default SMPL-X skeleton)."""
    skel = skeleton or default_skeleton()
    if skel.names != SMPLX_JOINT_NAMES[:skel.num_joints]:
        raise ValueError("build_armature needs a skeleton in SMPL-X joint order")
    heads_core = skel.rest_positions()
    tails_core = _tails(skel, heads_core)
    heads, tails = to_blender(heads_core), to_blender(tails_core)

    data = bpy.data.armatures.new(name)
    data.display_type = "OCTAHEDRAL"
    obj = bpy.data.objects.new(name, data)
    obj.show_in_front = True
    (collection or context.scene.collection).objects.link(obj)
    previous_active = context.view_layer.objects.active
    previous_mode = previous_active.mode if previous_active is not None else "OBJECT"
    if previous_mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        edit = data.edit_bones
        forward = to_blender(np.array([0.0, 0.0, 1.0]))
        up = to_blender(np.array([0.0, 1.0, 0.0]))
        for j, bone_name in enumerate(skel.names):
            bone = edit.new(bone_name)
            bone.head = heads[j].tolist()
            bone.tail = tails[j].tolist()
            direction = (tails[j] - heads[j]) / np.linalg.norm(tails[j] - heads[j])
            bone.align_roll((up if abs(direction @ forward) > 0.7 else forward).tolist())
            if skel.parents[j] >= 0:
                bone.parent = edit[skel.names[skel.parents[j]]]
                bone.use_connect = False
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
    for pose_bone in obj.pose.bones:
        pose_bone.rotation_mode = "QUATERNION"
    obj[ARMATURE_TAG] = skel.offsets.reshape(-1).tolist()
    obj["choreo_skeleton_source"] = skel.source
    obj.choreo.is_dancer = True
    obj.choreo.skeleton_source = skel.source
    context.view_layer.objects.active = obj
    obj.select_set(True)
    return obj


def armature_skeleton(obj) -> Skeleton:
    """The core skeleton an armature was built from (stored on the object), or a fit to its rest bones."""
    names = tuple(b.name for b in obj.data.bones)
    if ARMATURE_TAG in obj.keys():
        offsets = np.asarray(obj[ARMATURE_TAG], dtype=np.float64).reshape(-1, 3)
        count = offsets.shape[0]
        skel = default_skeleton()
        return Skeleton(skel.names[:count], skel.parents[:count], offsets, source=obj.get("choreo_skeleton_source", "armature"))
    missing = [n for n in SMPLX_JOINT_NAMES[:22] if n not in names]
    if missing:
        raise ValueError(f"'{obj.name}' is not an SMPL-X armature: bones {missing} are missing")
    raise ValueError(f"'{obj.name}' was not built by Choreo; use 'Import mocap' to map its bones")


def add_skinned_mesh(context, armature_obj, skeleton: Skeleton) -> bpy.types.Object | None:
    """The user's SMPL-X body mesh (from the smplx-backed skeleton), skinned to the armature."""
    verts = skeleton.meta.get("rest_vertices")
    faces = skeleton.meta.get("faces")
    weights = skeleton.meta.get("skin_weights")
    if verts is None or faces is None or weights is None:
        return None
    mesh = bpy.data.meshes.new(armature_obj.name + "_body")
    mesh.from_pydata(to_blender(verts).tolist(), [], np.asarray(faces, dtype=np.int64).tolist())
    mesh.update()
    body = bpy.data.objects.new(armature_obj.name + "_body", mesh)
    armature_obj.users_collection[0].objects.link(body)
    body.parent = armature_obj
    for j, name in enumerate(skeleton.names):
        group = body.vertex_groups.new(name=name)
        idx = np.nonzero(weights[:, j] > 1e-6)[0]
        for v, w in zip(idx.tolist(), weights[idx, j].tolist()):
            group.add([v], w, "REPLACE")
    modifier = body.modifiers.new("Armature", "ARMATURE")
    modifier.object = armature_obj
    return body


def add_body(context, armature_obj, skeleton: Skeleton) -> bpy.types.Object:
    """The dancer's body: the user's skinned SMPL-X mesh when the skeleton carries one, else the mannequin
    (so a dancer without a model file still reads as a person in a preview)."""
    return add_skinned_mesh(context, armature_obj, skeleton) or add_mannequin(armature_obj)


def dancer_skeleton(context) -> Skeleton:
    """The skeleton for a new dancer: the user's SMPL-X model when preferences name one, else the default."""
    from ...core_models.skeleton import smplx_skeleton

    path = smplx_model_file(context)
    if not path:
        return default_skeleton()
    return smplx_skeleton(path)


def active_dancer(context):
    """The selected SMPL-X dancer; ValueError saying what is selected instead."""
    obj = context.active_object
    if obj is None:
        raise ValueError("No armature selected: select an SMPL-X dancer or choose 'New dancer'")
    if obj.type != "ARMATURE":
        raise ValueError(f"'{obj.name}' is a {obj.type.lower()}, not an armature: select an SMPL-X dancer")
    if not obj.choreo.is_dancer:
        raise ValueError(f"'{obj.name}' is not an SMPL-X dancer; use 'Import Mocap' to map its bones, "
                         "then 'Convert to Dancer'")
    return obj


def dancer_with_motion(context, motion, scene, start_frame: int, name: str, action_name: str,
                       skeleton=None, skin: bool = False):
    """A NEW SMPL-X armature keyed with ``motion`` as a new action; returns (object, action).

    The armature is built from ``skeleton`` (default: the motion's own). With ``skin`` the skeleton's
    body mesh (a user's SMPL-X model) is added, else the mannequin. If anything fails, nothing is left in
    the scene.
    """
    skel = skeleton or motion.skeleton
    obj = build_armature(context, skel, name=name, collection=scene.collection)
    try:
        if skin:
            add_skinned_mesh(context, obj, skel)
        else:
            add_mannequin(obj)
        action = write_motion(obj, motion, scene, start_frame=start_frame, action_name=action_name)
    except Exception:
        remove_dancer(obj)
        raise
    return obj, action


def remove_dancer(obj, action=None) -> None:
    """Remove a dancer this add-on just built: its skinned body, armature data and ``action``."""
    for child in list(obj.children):
        data = child.data
        bpy.data.objects.remove(child)
        if isinstance(data, bpy.types.Mesh) and data.users == 0:
            bpy.data.meshes.remove(data)
    data = obj.data
    bpy.data.objects.remove(obj)
    if data is not None and data.users == 0:
        bpy.data.armatures.remove(data)
    if action is not None:
        bpy.data.actions.remove(action)
