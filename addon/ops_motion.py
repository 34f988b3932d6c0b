# SPDX-License-Identifier: GPL-3.0-or-later
"""Operators: add an SMPL-X dancer, load a motion file, import mocap with Blender's importers, scene audio."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import bpy
import numpy as np
from bpy.props import EnumProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from . import jobs
from .preferences import get_preferences


def _fail(op, context, message: str):
    """Report an error in the UI and remember it for the panel; nothing was written."""
    op.report({"ERROR"}, message)
    context.scene.choreo.last_report = message
    return {"CANCELLED"}


def _dancer_skeleton(context):
    """The skeleton for a new dancer: the user's SMPL-X model when preferences name one, else the default."""
    from ..core_models.skeleton import default_skeleton, smplx_skeleton

    prefs = get_preferences(context)
    path = bpy.path.abspath(prefs.smplx_model_path) if prefs and prefs.smplx_model_path else ""
    if not path:
        return default_skeleton()
    return smplx_skeleton(path)


def _active_dancer(context):
    obj = context.active_object
    if obj is None:
        raise ValueError("No armature selected: select an SMPL-X dancer or choose 'New dancer'")
    if obj.type != "ARMATURE":
        raise ValueError(f"'{obj.name}' is a {obj.type.lower()}, not an armature: select an SMPL-X dancer")
    if not obj.choreo.is_dancer:
        raise ValueError(f"'{obj.name}' is not an SMPL-X dancer; use 'Import Mocap' to map its bones, "
                         "then 'Convert to Dancer'")
    return obj


class CHOREO_OT_add_dancer(bpy.types.Operator):
    """Add an SMPL-X armature (55 bones); with an SMPL-X model file in preferences, also its skinned body"""
    bl_idname = "choreo.add_dancer"
    bl_label = "Add SMPL-X Dancer"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        from .armature import add_skinned_mesh, build_armature

        try:
            skel = _dancer_skeleton(context)
        except (ValueError, FileNotFoundError, OSError) as exc:
            return _fail(self, context, f"SMPL-X model file problem: {exc}")
        obj = build_armature(context, skel)
        add_skinned_mesh(context, obj, skel)
        context.scene.choreo.last_report = f"Added {obj.name} ({len(obj.data.bones)} bones, {skel.source})"
        return {"FINISHED"}


class CHOREO_OT_load_motion(bpy.types.Operator, ImportHelper):
    """Load a BVH or SMPL-X (.npz/.pkl) motion file as a new action on an SMPL-X dancer"""
    bl_idname = "choreo.load_motion"
    bl_label = "Load Motion File"
    bl_options = {"REGISTER", "UNDO"}

    filter_glob: StringProperty(default="*.bvh;*.npz;*.pkl", options={"HIDDEN"})
    target: EnumProperty(name="Target", default="NEW", items=(
        ("NEW", "New dancer", "Build a new SMPL-X armature with the clip's own proportions"),
        ("SELECTED", "Selected dancer", "Retarget onto the selected SMPL-X armature")))

    def execute(self, context):
        from ..core_models.io.motion_file import load_motion

        path = bpy.path.abspath(self.filepath)
        if not os.path.isfile(path):
            return _fail(self, context, f"Motion file not found: '{path}'")
        target, skeleton = None, None
        if self.target == "SELECTED":
            try:
                from .armature import armature_skeleton

                target = _active_dancer(context)
                skeleton = armature_skeleton(target)
            except ValueError as exc:
                return _fail(self, context, str(exc))
        scene = context.scene
        start = scene.choreo.start_frame

        def work(progress, cancel):
            progress("reading motion", 0, 2)
            motion = load_motion(path, skeleton=skeleton)
            progress("solving IK", 1, 2)
            return motion

        def apply(motion):
            from .keyframes import write_motion

            if target is None:
                obj, action = dancer_with_motion(bpy.context, motion, scene, start, name=Path(path).stem[:50],
                                                 action_name=Path(path).stem)
            else:
                obj = target
                action = write_motion(obj, motion, scene, start_frame=start, action_name=Path(path).stem)
            obj.choreo.source_file = path
            scene.choreo.last_report = (f"Loaded {Path(path).name}: {motion.num_frames} frames at "
                                        f"{motion.fps:g} fps as '{action.name}' on {obj.name}")

        return _run(self, context, "Load motion", work, apply)


def dancer_with_motion(context, motion, scene, start_frame: int, name: str, action_name: str,
                       skeleton=None, skin: bool = False):
    """A NEW SMPL-X armature keyed with ``motion`` as a new action; returns (object, action).

    The armature is built from ``skeleton`` (default: the motion's own). With ``skin`` the skeleton's
    body mesh (a user's SMPL-X model) is added too. If anything fails, nothing is left in the scene.
    """
    from .armature import add_skinned_mesh, build_armature
    from .keyframes import write_motion

    skel = skeleton or motion.skeleton
    obj = build_armature(context, skel, name=name, collection=scene.collection)
    try:
        if skin:
            add_skinned_mesh(context, obj, skel)
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


def _run(op, context, title, work, apply):
    try:
        state = jobs.run_job(title, work, apply)
    except Exception as exc:
        return _fail(op, context, str(exc))
    # Either done synchronously, or running with a progress bar; both end this operator call.
    del state
    return {"FINISHED"}


_IMPORTERS = {".bvh": "bvh", ".fbx": "fbx"}


def _import_with_blender(path: str, ext: str):
    before = set(bpy.data.objects)
    before_actions = set(bpy.data.actions)
    if ext == ".bvh":
        result = bpy.ops.import_anim.bvh(filepath=path, global_scale=1.0, use_fps_scale=True, update_scene_fps=False,
                                         rotate_mode="NATIVE", axis_forward="-Z", axis_up="Y")
    else:
        result = bpy.ops.import_scene.fbx(filepath=path, anim_offset=0.0, automatic_bone_orientation=True)
    new_objects = [o for o in bpy.data.objects if o not in before]
    new_actions = [a for a in bpy.data.actions if a not in before_actions]
    return result, new_objects, new_actions


def check_bvh(path: str) -> str:
    """The core's own BVH reader on ``path`` first: "" when it reads, else its message (naming the line),
    so a damaged file never reaches Blender's importer and its traceback."""
    from ..core_models.io.bvh import BvhError, read_bvh

    try:
        read_bvh(path)
    except BvhError as exc:
        return str(exc)
    return ""


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


def _remove(objects, actions):
    for obj in objects:
        data = obj.data
        bpy.data.objects.remove(obj)
        if isinstance(data, bpy.types.Armature) and data.users == 0:
            bpy.data.armatures.remove(data)
    for action in actions:
        if action.users == 0:
            bpy.data.actions.remove(action)


def store_mapping(obj, mapping) -> None:
    from ..core_models.skeleton import BODY_JOINT_NAMES

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
    from ..core_models.io.retarget import map_bones

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
    from .space import to_core

    w = pose.world
    return to_core(pose.heads @ w[:3, :3].T + w[:3, 3])


class CHOREO_OT_import_mocap(bpy.types.Operator, ImportHelper):
    """Import BVH or FBX mocap with Blender's own importer and show how its bones map to the canonical body"""
    bl_idname = "choreo.import_mocap"
    bl_label = "Import Mocap"
    bl_options = {"REGISTER", "UNDO"}

    filter_glob: StringProperty(default="*.bvh;*.fbx", options={"HIDDEN"})

    def execute(self, context):
        path = bpy.path.abspath(self.filepath)
        ext = Path(path).suffix.lower()
        if not os.path.isfile(path):
            return _fail(self, context, f"Mocap file not found: '{path}'")
        if ext not in _IMPORTERS:
            return _fail(self, context, f"'{Path(path).name}': only .bvh and .fbx are supported here; load "
                                        "SMPL-X .npz/.pkl with 'Load Motion File'")
        problem = check_bvh(path) if ext == ".bvh" else ""
        if problem:
            return _fail(self, context, f"{problem}. Nothing was imported: fix or re-export the file")
        try:
            result, objects, actions = _import_with_blender(path, ext)
        except RuntimeError as exc:
            return _fail(self, context, f"Blender could not import '{Path(path).name}': {exc}")
        armatures = [o for o in objects if o.type == "ARMATURE"]
        if "FINISHED" not in result or not armatures:
            _remove(objects, actions)
            return _fail(self, context, f"'{Path(path).name}' contains no armature")
        obj = armatures[0]
        try:
            mapping = map_armature(obj)
        except ValueError as exc:
            _remove(objects, actions)
            return _fail(self, context, f"{Path(path).name}: {exc}")
        store_mapping(obj, mapping)
        obj.choreo.source_file = path
        context.view_layer.objects.active = obj
        n_direct = len(mapping.source_for)
        context.scene.choreo.last_report = (f"Imported {obj.name}: {n_direct}/22 body joints mapped by name "
                                            f"({mapping.profile}), {len(mapping.synthesised)} synthesised")
        self.report({"INFO"}, context.scene.choreo.last_report)
        return {"FINISHED"}


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
    from ..core_models.io.retarget import canonical_joints, detect_unit_scale

    joints = canonical_joints(positions, names, mapping, parents)
    return joints * detect_unit_scale(joints)        # rigs imported in cm, mm or inches


class CHOREO_OT_convert_to_dancer(bpy.types.Operator):
    """Turn the selected imported rig's animation into a new SMPL-X dancer (the rig itself is untouched)"""
    bl_idname = "choreo.convert_to_dancer"
    bl_label = "Convert to SMPL-X Dancer"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        return obj is not None and obj.type == "ARMATURE" and len(obj.choreo.bone_map) > 0

    def execute(self, context):
        from ..core_models.io.motion_file import body_motion_from_joints
        from .keyframes import scene_fps

        obj = context.active_object
        scene = context.scene
        try:
            rig_action(obj, "convert")
            rig = rig_positions(obj, scene)
        except ValueError as exc:
            return _fail(self, context, str(exc))
        note = constraint_note(obj)
        fps = scene_fps(scene)
        start = scene.choreo.start_frame

        def work(progress, cancel):
            progress("mapping joints", 0, 2)
            joints = rig_body_joints(*rig)
            progress("solving IK", 1, 2)
            return body_motion_from_joints(joints, fps, source=obj.name)

        def apply(motion):
            dancer, _ = dancer_with_motion(bpy.context, motion, scene, start, name=f"{obj.name}_SMPLX",
                                           action_name=f"{obj.name}_SMPLX")
            scene.choreo.last_report = (f"Converted {obj.name} to {dancer.name} ({motion.num_frames} frames)"
                                        + (f"; {note}" if note else ""))

        return _run(self, context, "Convert to dancer", work, apply)


class CHOREO_OT_add_sound(bpy.types.Operator, ImportHelper):
    """Add a music file to the timeline as a sound strip (checked to decode first)"""
    bl_idname = "choreo.add_sound"
    bl_label = "Add Music"
    bl_options = {"REGISTER", "UNDO"}

    filter_glob: StringProperty(default="*.wav;*.ogg;*.mp3;*.flac;*.m4a;*.aif;*.aiff", options={"HIDDEN"})

    def execute(self, context):
        from ..core_models.audio import load_audio

        path = bpy.path.abspath(self.filepath)
        try:
            samples, sr = load_audio(path)
        except (ValueError, FileNotFoundError) as exc:
            return _fail(self, context, str(exc))
        scene = context.scene
        strip = add_sound_strip(scene, path, scene.choreo.start_frame)
        seconds = len(samples) / sr
        scene.choreo.last_report = f"Added music '{strip.name}' ({seconds:.1f} s)"
        return {"FINISHED"}


def add_sound_strip(scene, path: str, frame_start: int):
    editor = scene.sequence_editor or scene.sequence_editor_create()
    strips = editor.strips if hasattr(editor, "strips") else editor.sequences   # 4.4+ / before
    used = {s.channel for s in strips}
    channel = next(c for c in range(1, 129) if c not in used)
    return strips.new_sound(Path(path).stem[:60], path, channel, frame_start)


def sound_strips(scene) -> list:
    """The scene's sound strips (meta strips included), unmuted first, then in timeline order."""
    editor = scene.sequence_editor
    strips = [] if editor is None else (editor.strips_all if hasattr(editor, "strips_all") else editor.sequences_all)
    return sorted((s for s in strips if s.type == "SOUND"), key=lambda s: (s.mute, s.frame_final_start))


def scene_music(scene):
    """(samples, sample_rate, strip) of the first sound strip on the timeline, decoded by the core."""
    from ..core_models.audio import load_audio

    sounds = sound_strips(scene)
    if not sounds:
        raise ValueError("The scene has no sound strip: use 'Add Music' first")
    strip = sounds[0]
    samples, sr = load_audio(bpy.path.abspath(strip.sound.filepath))
    return samples, sr, strip


class CHOREO_OT_cancel_job(bpy.types.Operator):
    """Stop the running Choreo job; nothing it was computing is written"""
    bl_idname = "choreo.cancel_job"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        return jobs.is_running()

    def execute(self, context):
        jobs.cancel_current()
        return {"FINISHED"}


classes = (CHOREO_OT_add_dancer, CHOREO_OT_load_motion, CHOREO_OT_import_mocap, CHOREO_OT_convert_to_dancer,
           CHOREO_OT_add_sound, CHOREO_OT_cancel_job)

register, unregister = bpy.utils.register_classes_factory(classes)
