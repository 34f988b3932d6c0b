# SPDX-License-Identifier: GPL-3.0-or-later
"""Operators for the user's own rig: Apply to Selected Rig (a generated take, a library clip or a mocap file
onto the selected armature as a NEW action) and the Bone Map presets (save the mapping as JSON, load one).

The retarget itself is the core's (``core_models.rig.retarget``); :mod:`.scene.retarget` reads the rig and
keys the result.
"""
from __future__ import annotations

import os
from pathlib import Path

import bpy
from bpy.props import EnumProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from .scene.dancer import armature_skeleton
from .scene.keyframes import read_motion
from .scene.library import open_library, selected_clip
from .scene.mannequin import rest_skeleton
from .scene.report import fail, start_job
from .scene.retarget import (apply_result, bone_map_overrides, mapping_problem, retarget_onto, rig_rest_clip,
                             selected_rig, show_bone_map)

APPLY_JOB = "Apply to rig"
_MOTION_SUFFIXES = (".bvh", ".npz", ".pkl")


def source_dancer(context, target, name: str = ""):
    """The SMPL-X dancer whose take goes onto ``target``: the one named, else a selected dancer, else the
    scene's only dancer (ValueError saying which to select)."""
    if name:
        obj = bpy.data.objects.get(name)
        if obj is None or obj.type != "ARMATURE" or not obj.choreo.is_dancer:
            raise ValueError(f"'{name}' is not an SMPL-X dancer in this file")
        return obj
    selected = [o for o in context.selected_objects if o is not target and o.type == "ARMATURE" and o.choreo.is_dancer]
    if len(selected) == 1:
        return selected[0]
    dancers = [o for o in context.scene.objects if o is not target and o.type == "ARMATURE" and o.choreo.is_dancer
               and o.animation_data is not None and o.animation_data.action is not None]
    if len(selected) > 1 or len(dancers) > 1:
        raise ValueError("Several dancers: select the dancer and then your rig last (so the rig is active), or "
                         "name the dancer")
    if not dancers:
        raise ValueError("No generated dancer with a take in the scene: generate a dance first, or apply a "
                         "library clip or a mocap file")
    return dancers[0]


class CHOREO_OT_apply_to_rig(bpy.types.Operator):
    """Put a generated take, a library clip or a mocap file onto the selected armature as a new action (its
    own actions are kept untouched)"""
    bl_idname = "choreo.apply_to_rig"
    bl_label = "Apply to Selected Rig"
    bl_options = {"REGISTER", "UNDO"}

    source: EnumProperty(name="Source", default="DANCER", items=(
        ("DANCER", "Generated take", "The dancer's current take (its active action)"),
        ("LIBRARY", "Library clip", "The clip selected in the Library section"),
        ("FILE", "Mocap file", "A BVH, generated take (.npz) or SMPL-X (.npz/.pkl) file")))
    dancer: StringProperty(name="Dancer", description="The dancer whose take to apply (empty: the selected "
                                                      "or only dancer)")
    clip: StringProperty(name="Clip", description="Library clip (empty: the one selected in the list)")
    filepath: StringProperty(name="File", subtype="FILE_PATH")

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        return obj is not None and obj.type == "ARMATURE" and not obj.choreo.is_dancer

    def invoke(self, context, event):
        if self.source == "FILE" and not self.filepath:
            context.window_manager.fileselect_add(self)          # choose the mocap file first
            return {"RUNNING_MODAL"}
        return self.execute(context)

    def execute(self, context):
        scene = context.scene
        try:
            target = selected_rig(context)
            start = scene.choreo.start_frame
            if self.source == "DANCER":
                dancer = source_dancer(context, target, self.dancer)
                source = read_motion(dancer, armature_skeleton(dancer), scene=scene)
                start = int(round(dancer.animation_data.action.frame_range[0]))   # in sync with its music
                label = dancer.animation_data.action.name
            elif self.source == "LIBRARY":
                library = open_library(context)
                clip = selected_clip(context, self.clip)
                source, label = None, clip                     # the clip's body is solved in the job
            else:
                path = bpy.path.abspath(self.filepath)
                if not os.path.isfile(path):
                    raise ValueError(f"Motion file not found: '{path}'")
                if Path(path).suffix.lower() not in _MOTION_SUFFIXES:
                    raise ValueError(f"'{Path(path).name}': apply reads .bvh, .npz and .pkl files (for FBX: "
                                     "Import Mocap, Convert to SMPL-X Dancer, then apply the dancer's take)")
                source, label = path, Path(path).stem
        except (ValueError, OSError) as exc:
            return fail(self, context, str(exc))
        problem = mapping_problem(target)
        if problem:
            return fail(self, context, problem)
        target_clip, overrides = rig_rest_clip(target), bone_map_overrides(target)
        target_name, scene_name = target.name, scene.name
        action_name = f"{label} on {target.name}"
        from_library = self.source == "LIBRARY"        # the job outlives the operator: never read self there

        def work(progress, cancel):
            progress("reading the source", 0, 2)
            motion = source
            if from_library:
                from ..core_models.io.motion_file import body_motion_from_joints
                from ..core_models.motion import MOTION_FPS

                motion = body_motion_from_joints(library.joints(clip), MOTION_FPS, source=f"library:{clip}")
            progress("retargeting", 1, 2)
            return retarget_onto(motion, target_clip, overrides)

        def apply(result):
            apply_result(target_name, scene_name, result, start, action_name)   # its report goes to the panel

        return start_job(self, context, APPLY_JOB, work, apply)


class CHOREO_OT_bone_map_save(bpy.types.Operator, ExportHelper):
    """Save the selected rig's Bone Map as a JSON preset (the file the command line's --mapping reads)"""
    bl_idname = "choreo.bone_map_save"
    bl_label = "Save Bone Map Preset"
    bl_options = {"REGISTER"}

    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        return obj is not None and obj.type == "ARMATURE" and len(obj.choreo.bone_map) > 0

    def execute(self, context):
        from types import SimpleNamespace

        from ..core_models.io.mapping_template import write_mapping_template

        obj = context.active_object
        items = obj.choreo.bone_map
        candidates = {i.canonical: [(c.rsplit(" (", 1)[0], float(c.rsplit(" (", 1)[1].rstrip(")")))
                                    for c in i.candidates.split(", ") if " (" in c] for i in items}
        chosen = SimpleNamespace(source_for={i.canonical: i.bone for i in items if i.bone},
                                 confidence={}, candidates=candidates)
        path = bpy.path.abspath(self.filepath)
        try:
            names, _, _ = rest_skeleton(obj)
            write_mapping_template(path, names, chosen, min_confidence=0.0)
        except OSError as exc:
            return fail(self, context, f"Could not save the bone map to '{path}': {exc}")
        context.scene.choreo.last_report = f"Saved {obj.name}'s bone map to {Path(path).name}"
        return {"FINISHED"}


class CHOREO_OT_bone_map_load(bpy.types.Operator, ImportHelper):
    """Load a JSON bone map preset onto the selected rig; joints it leaves empty are found automatically"""
    bl_idname = "choreo.bone_map_load"
    bl_label = "Load Bone Map Preset"
    bl_options = {"REGISTER", "UNDO"}

    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        return obj is not None and obj.type == "ARMATURE"

    def execute(self, context):
        from types import SimpleNamespace

        from ..core_models.io.retarget import RetargetError, load_mapping_file
        from ..core_models.skeleton import BODY_JOINT_NAMES

        obj = context.active_object
        path = bpy.path.abspath(self.filepath)
        try:
            preset = load_mapping_file(path)
        except RetargetError as exc:
            return fail(self, context, str(exc))
        picks = {c: b for c, b in preset.items() if c in BODY_JOINT_NAMES and b}
        unknown = sorted(b for b in picks.values() if b not in obj.data.bones)
        if unknown:
            return fail(self, context, f"{Path(path).name} names bones {', '.join(unknown[:5])} that "
                                       f"'{obj.name}' does not have: is it the preset of another rig?")
        show_bone_map(obj, SimpleNamespace(source_for=picks))
        problem = mapping_problem(obj, "The preset's bones are shown.")
        if problem:
            return fail(self, context, problem)
        context.scene.choreo.last_report = (f"Loaded bone map {Path(path).name} onto {obj.name} "
                                            f"({len(picks)} joint(s) from the preset, the rest found automatically)")
        return {"FINISHED"}


classes = (CHOREO_OT_apply_to_rig, CHOREO_OT_bone_map_save, CHOREO_OT_bone_map_load)

register, unregister = bpy.utils.register_classes_factory(classes)
