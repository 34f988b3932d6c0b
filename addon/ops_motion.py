# SPDX-License-Identifier: GPL-3.0-or-later
"""Operators that bring motion and music into the scene: add an SMPL-X dancer, load a motion file onto one,
import mocap with Blender's importers and map its bones (again), convert a mapped rig to a dancer, add music.
"""
from __future__ import annotations

import os
from pathlib import Path

import bpy
from bpy.props import EnumProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from .scene.dancer import (active_dancer, add_body, armature_skeleton, build_armature, dancer_skeleton,
                           dancer_with_motion)
from .scene.keyframes import write_motion
from .scene.report import fail, start_job
from .scene.retarget import mapping_problem
from .scene.rig import constraint_note, map_armature, rig_action, rig_body_joints, rig_positions, store_mapping
from .scene.timeline import add_sound_strip, scene_fps


class CHOREO_OT_add_dancer(bpy.types.Operator):
    """Add an SMPL-X armature (55 bones); with an SMPL-X model file in preferences, also its skinned body"""
    bl_idname = "choreo.add_dancer"
    bl_label = "Add SMPL-X Dancer"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        try:
            skel = dancer_skeleton(context)
        except (ValueError, FileNotFoundError, OSError) as exc:
            return fail(self, context, f"SMPL-X model file problem: {exc}")
        obj = build_armature(context, skel)
        add_body(context, obj, skel)
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
            return fail(self, context, f"Motion file not found: '{path}'")
        target, skeleton = None, None
        if self.target == "SELECTED":
            try:
                target = active_dancer(context)
                skeleton = armature_skeleton(target)
            except ValueError as exc:
                return fail(self, context, str(exc))
        scene = context.scene
        start = scene.choreo.start_frame

        def work(progress, cancel):
            progress("reading motion", 0, 2)
            motion = load_motion(path, skeleton=skeleton)
            progress("solving IK", 1, 2)
            return motion

        def apply(motion):
            if target is None:
                obj, action = dancer_with_motion(bpy.context, motion, scene, start, name=Path(path).stem[:50],
                                                 action_name=Path(path).stem)
            else:
                obj = target
                action = write_motion(obj, motion, scene, start_frame=start, action_name=Path(path).stem)
            obj.choreo.source_file = path
            scene.choreo.last_report = (f"Loaded {Path(path).name}: {motion.num_frames} frames at "
                                        f"{motion.fps:g} fps as '{action.name}' on {obj.name}")

        return start_job(self, context, "Load motion", work, apply)


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


def _remove(objects, actions):
    for obj in objects:
        data = obj.data
        bpy.data.objects.remove(obj)
        if isinstance(data, bpy.types.Armature) and data.users == 0:
            bpy.data.armatures.remove(data)
    for action in actions:
        if action.users == 0:
            bpy.data.actions.remove(action)


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
            return fail(self, context, f"Mocap file not found: '{path}'")
        if ext not in _IMPORTERS:
            return fail(self, context, f"'{Path(path).name}': only .bvh and .fbx are supported here; load "
                                       "SMPL-X .npz/.pkl with 'Load Motion File'")
        problem = check_bvh(path) if ext == ".bvh" else ""
        if problem:
            return fail(self, context, f"{problem}. Nothing was imported: fix or re-export the file")
        try:
            result, objects, actions = _import_with_blender(path, ext)
        except RuntimeError as exc:
            return fail(self, context, f"Blender could not import '{Path(path).name}': {exc}")
        armatures = [o for o in objects if o.type == "ARMATURE"]
        if "FINISHED" not in result or not armatures:
            _remove(objects, actions)
            return fail(self, context, f"'{Path(path).name}' contains no armature")
        obj = armatures[0]
        try:
            mapping = map_armature(obj)
        except ValueError as exc:
            _remove(objects, actions)
            return fail(self, context, f"{Path(path).name}: {exc}")
        store_mapping(obj, mapping)
        obj.choreo.source_file = path
        context.view_layer.objects.active = obj
        n_direct = len(mapping.source_for)
        context.scene.choreo.last_report = (f"Imported {obj.name}: {n_direct}/22 body joints mapped by name "
                                            f"({mapping.profile}), {len(mapping.synthesised)} synthesised")
        self.report({"INFO"}, context.scene.choreo.last_report)
        return {"FINISHED"}


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

        obj = context.active_object
        scene = context.scene
        try:
            rig_action(obj, "convert")
            rig = rig_positions(obj, scene)
        except ValueError as exc:
            return fail(self, context, str(exc))
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

        return start_job(self, context, "Convert to dancer", work, apply)


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
            return fail(self, context, str(exc))
        scene = context.scene
        strip = add_sound_strip(scene, path, scene.choreo.start_frame)
        seconds = len(samples) / sr
        scene.choreo.last_report = f"Added music '{strip.name}' ({seconds:.1f} s)"
        return {"FINISHED"}


class CHOREO_OT_remap_bones(bpy.types.Operator):
    """Map the selected rig's bones to the canonical body again, from the hierarchy and names (discards manual
    edits)"""
    bl_idname = "choreo.remap_bones"
    bl_label = "Map Bones Automatically"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        return obj is not None and obj.type == "ARMATURE"

    def execute(self, context):
        obj = context.active_object
        obj.choreo.bone_map.clear()                # map afresh: the manual picks are discarded
        problem = mapping_problem(obj, "Nothing else changed.")
        if problem:
            obj.choreo.mapping_error = problem
            return fail(self, context, problem)
        lowest = min((i.confidence for i in obj.choreo.bone_map if i.bone), default=1.0)
        context.scene.choreo.last_report = (f"{obj.name}: bones mapped automatically ({obj.choreo.rig_profile}, "
                                            f"lowest confidence {lowest:.2f})")
        return {"FINISHED"}


classes = (CHOREO_OT_add_dancer, CHOREO_OT_load_motion, CHOREO_OT_import_mocap, CHOREO_OT_convert_to_dancer,
           CHOREO_OT_add_sound, CHOREO_OT_remap_bones)

register, unregister = bpy.utils.register_classes_factory(classes)
