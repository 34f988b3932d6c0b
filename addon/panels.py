# SPDX-License-Identifier: GPL-3.0-or-later
"""The "Choreo" sidebar tab: Generate, Foot Fix and Library sections, and the lists they show."""
import os
import textwrap

import bpy

from .scene.library import reference_summary
from .scene.report import FIX_FEET_JOB, GENERATE_JOB
from .scene.rig import foot_fix_report
from .scene.takes import current_take, dancer_takes
from .scene.settings import (ADDON_ID, frdm_weights_folder, library_folder, library_hint, missing_modules,
                             trained_genres, weight_set_folder, weight_set_hint)
from .scene.timeline import scene_fps, sound_strips


def draw_job_progress(layout, job) -> None:
    """The running job's progress bar with its Cancel button."""
    row = layout.row(align=True)
    row.progress(factor=job.progress, type="BAR", text=f"{job.title}: {job.stage}")
    row.operator("choreo.cancel_job", text="", icon="CANCEL")


class CHOREO_UL_library_clips(bpy.types.UIList):
    """Library clips: name, genre / sub-genre, duration, licence."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0):
        pinned = item.name in context.scene.choreo.library_pins
        split = layout.split(factor=0.4)
        split.label(text=item.name, icon="PINNED" if pinned else ("LOCKED" if item.shipped else "ARMATURE_DATA"))
        split = split.split(factor=0.45)
        split.label(text=f"{item.genre} / {item.subgenre}" if item.subgenre else item.genre)
        split = split.split(factor=0.4)
        split.label(text=f"{item.duration:.1f} s")
        split.label(text=item.licence)


class CHOREO_UL_library_results(bpy.types.UIList):
    """Retrieved references: music window, clip and segment start, score; a button pins the clip."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0):
        split = layout.split(factor=0.25)
        split.label(text=f"{item.music_s:.1f} s")
        split = split.split(factor=0.7)
        split.label(text=f"{item.name} @ {item.start_s:.1f} s")
        row = split.row(align=True)
        row.label(text=f"{item.score:.3f}")
        row.operator("choreo.library_pin", text="", icon="PINNED", emboss=False).clip = item.name


class _ChoreoPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Choreo"


class CHOREO_PT_main(_ChoreoPanel, bpy.types.Panel):
    bl_idname = "CHOREO_PT_main"
    bl_label = "Choreo"

    def draw(self, context):
        layout = self.layout
        job = context.window_manager.choreo_job
        if job.running and job.title not in (GENERATE_JOB, FIX_FEET_JOB):   # those show it in place of their button
            draw_job_progress(layout, job)
        if job.error:
            box = layout.box()
            box.alert = True
            box.label(text=job.error, icon="ERROR")
        missing = missing_modules()
        if missing:
            layout.label(text="Missing: " + ", ".join(missing) + " (see preferences)", icon="ERROR")
        report = context.scene.choreo.last_report
        if report:
            layout.label(text=report, icon="INFO")
        layout.prop(context.scene.choreo, "start_frame")


class CHOREO_PT_generate(_ChoreoPanel, bpy.types.Panel):
    bl_idname = "CHOREO_PT_generate"
    bl_label = "Generate"
    bl_parent_id = "CHOREO_PT_main"

    def draw(self, context):
        layout = self.layout
        scene = context.scene
        settings = scene.choreo
        layout.row().prop(settings, "music_source", expand=True)
        if settings.music_source == "FILE":
            layout.prop(settings, "music_file", text="")
        else:
            sounds = sound_strips(scene)
            if sounds:
                s = sounds[0]
                seconds = s.frame_final_duration / scene_fps(scene)
                layout.label(text=f"Music: {s.name} ({seconds:.1f} s, from frame {s.frame_final_start})",
                             icon="SOUND")
            else:
                layout.label(text="No music on the timeline", icon="SOUND")
            layout.operator("choreo.add_sound", icon="FILE_SOUND")
        layout.prop(settings, "genre")
        try:
            trained = trained_genres(weight_set_folder(context)[0])
        except ValueError:
            trained = {}
        if trained and settings.genre not in trained:
            box = layout.box()
            box.alert = not settings.allow_untrained_genre
            box.label(text=f"{settings.genre} is not a trained genre of this weight set", icon="ERROR")
            box.prop(settings, "allow_untrained_genre")
        layout.row().prop(settings, "length_mode", expand=True)
        if settings.length_mode == "RANGE":
            row = layout.row(align=True)
            row.prop(settings, "range_start")
            row.prop(settings, "range_length")
        layout.prop(settings, "seed")
        layout.prop(settings, "dancer_target")
        self.draw_weight_set(context, layout)
        pins = settings.library_pins
        layout.label(text=reference_summary(context), icon="PINNED" if len(pins) else "ASSET_MANAGER")
        job = context.window_manager.choreo_job
        if job.running and job.title == GENERATE_JOB:
            draw_job_progress(layout, job)
        else:
            row = layout.row()
            row.scale_y = 1.4
            row.operator("choreo.generate", icon="PLAY")
        layout.operator("choreo.add_dancer", icon="ARMATURE_DATA")

    @staticmethod
    def draw_weight_set(context, layout):
        try:
            folder, where = weight_set_folder(context)
        except ValueError:
            folder, where = "", ""
        box = layout.box()
        if not folder:
            box.alert = True
            box.label(text="No weight set: choose one in the preferences", icon="ERROR")
        else:
            problem = weight_set_hint(folder)
            box.alert = bool(problem)
            box.label(text=f"Weights: {os.path.basename(folder) or folder} ({where})",
                      icon="ERROR" if problem else "CHECKMARK")
            if problem:
                box.label(text=problem)
        if not folder or where == "preferences":
            box.operator("preferences.addon_show", text="Open Preferences", icon="PREFERENCES").module = ADDON_ID


class CHOREO_PT_generate_advanced(_ChoreoPanel, bpy.types.Panel):
    bl_idname = "CHOREO_PT_generate_advanced"
    bl_label = "Sampling & Weights"
    bl_parent_id = "CHOREO_PT_generate"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        settings = context.scene.choreo
        col = layout.column(align=True)
        col.prop(settings, "temperature")
        col.prop(settings, "top_k")
        col.prop(settings, "top_p")
        layout.prop(settings, "window_mode")
        layout.prop(settings, "allow_untrained_genre")
        layout.prop(settings, "weights_override", text="Scene weights")


class CHOREO_UL_contact_overrides(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0):
        row = layout.row(align=True)
        row.prop(item, "foot", text="")
        row.prop(item, "contact", text="")
        row.prop(item, "frame_start", text="")
        row.prop(item, "frame_end", text="")


class CHOREO_PT_foot_fix(_ChoreoPanel, bpy.types.Panel):
    bl_idname = "CHOREO_PT_foot_fix"
    bl_label = "Foot Fix"
    bl_parent_id = "CHOREO_PT_main"

    def draw(self, context):
        layout = self.layout
        layout.operator("choreo.import_mocap", icon="IMPORT")
        obj = context.active_object
        if obj is None or obj.type != "ARMATURE":
            layout.label(text="Select an armature to fix its feet")
            return
        settings = obj.choreo
        action = obj.animation_data.action if obj.animation_data is not None else None
        layout.label(text=f"{obj.name}: '{action.name}'" if action else f"{obj.name}: no action",
                     icon="ACTION" if action else "ERROR")
        col = layout.column()
        col.use_property_split = True
        col.prop(settings, "foot_method")
        if settings.foot_method == "FRDM":
            folder, where = frdm_weights_folder(context)
            if not folder:
                col.label(text="No FRDM weights: IK Lock will be used", icon="INFO")
            else:
                col.prop(settings, "foot_steps")
        col.prop(settings, "foot_mode")
        col.prop(settings, "foot_strength", slider=True)
        box = layout.box()
        box.label(text="Contact overrides (scene frames)", icon="SNAP_FACE")
        row = box.row()
        row.template_list("CHOREO_UL_contact_overrides", "", settings, "contact_overrides", settings,
                          "contact_override_index", rows=2)
        side = row.column(align=True)
        side.operator("choreo.contact_override_add", text="", icon="ADD")
        side.operator("choreo.contact_override_remove", text="", icon="REMOVE")
        job = context.window_manager.choreo_job
        if job.running and job.title == FIX_FEET_JOB:
            draw_job_progress(layout, job)
        else:
            row = layout.row()
            row.scale_y = 1.4
            row.operator("choreo.fix_feet", icon="MOD_DYNAMICPAINT")
            layout.operator("choreo.detect_contacts", icon="MARKER_HLT")
        report = foot_fix_report(obj)
        if report:
            box = layout.box()
            box.label(text=f"Fixed from '{report.get('source_action', '?')}' ({report['method']}, {report['mode']})",
                      icon="CHECKMARK")
            fb, fa = report.get("fsr_before"), report.get("fsr_after_on_rig")
            if fb and fa:
                box.label(text=f"Foot skating {100 * fb['mean']:.1f} % -> {100 * fa['mean']:.1f} %")
            if report.get("jitter_before") is not None:
                box.label(text=f"Jitter {report['jitter_before']:.1f} -> {report.get('jitter_after_on_rig') or 0:.1f}")
            box.label(text=f"Largest move: root {100 * report['max_root_displacement_m']:.1f} cm, "
                           f"foot {100 * report['max_foot_displacement_m']:.1f} cm")
            contacts = report.get("contact_frames", {})
            box.label(text=f"Contacts: left {contacts.get('left', 0)}, right {contacts.get('right', 0)} frames "
                           "(timeline markers)")
            for note in report.get("notes", [])[:4]:
                box.label(text=note, icon="INFO")


class CHOREO_PT_bone_map(_ChoreoPanel, bpy.types.Panel):
    bl_idname = "CHOREO_PT_bone_map"
    bl_label = "Bone Map"
    bl_parent_id = "CHOREO_PT_main"          # a section of its own: Fix Feet, Apply and Convert all use it
    bl_options = {"DEFAULT_CLOSED"}

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        return obj is not None and obj.type == "ARMATURE"

    def draw(self, context):
        layout = self.layout
        obj = context.active_object
        settings = obj.choreo
        if settings.is_dancer:
            layout.label(text=f"{obj.name}: SMPL-X dancer ({settings.skeleton_source})", icon="CHECKMARK")
        if settings.mapping_error:
            box = layout.box()
            box.alert = True
            for k, line in enumerate(textwrap.wrap(settings.mapping_error, 60)[:8]):
                box.label(text=line, icon="ERROR" if k == 0 else "BLANK1")
        if not settings.bone_map:
            layout.label(text="Not mapped yet: map automatically (Fix Feet and Apply also do it)")
            row = layout.row(align=True)
            row.operator("choreo.remap_bones", icon="BONE_DATA")
            row.operator("choreo.bone_map_load", text="Load Preset", icon="IMPORT")
            return
        layout.label(text=f"{settings.rig_profile or 'partial'} mapping; pick a bone to change it")
        col = layout.column(align=True)
        for item in settings.bone_map:
            row = col.row(align=True)
            row.alert = not item.bone and not item.note
            row.label(text=item.canonical)
            row.prop_search(item, "bone", obj.data, "bones", text="")
            row.label(text=f"{item.confidence:.2f}" if item.bone else "-")
            if item.candidates and (not item.bone or item.confidence < 0.75):
                col.label(text="    candidates: " + item.candidates)
        if settings.unmapped_bones:
            layout.label(text="Not used: " + settings.unmapped_bones)
        row = layout.row(align=True)
        row.operator("choreo.remap_bones", icon="BONE_DATA")
        if not settings.is_dancer:
            row.operator("choreo.convert_to_dancer", icon="ARMATURE_DATA")
        row = layout.row(align=True)
        row.operator("choreo.bone_map_save", text="Save Preset", icon="EXPORT")
        row.operator("choreo.bone_map_load", text="Load Preset", icon="IMPORT")
        if not settings.is_dancer:
            col = layout.column(align=True)
            col.label(text="Apply to this rig (a new action; its own are kept):")
            col.operator("choreo.apply_to_rig", text="Dancer's Take", icon="ARMATURE_DATA").source = "DANCER"
            col.operator("choreo.apply_to_rig", text="Library Clip", icon="ASSET_MANAGER").source = "LIBRARY"
            col.operator("choreo.apply_to_rig", text="Mocap File...", icon="FILE_MOVIE").source = "FILE"


class CHOREO_PT_library(_ChoreoPanel, bpy.types.Panel):
    bl_idname = "CHOREO_PT_library"
    bl_label = "Library"
    bl_parent_id = "CHOREO_PT_main"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.choreo
        folder = library_folder(context)
        problem = library_hint(folder) if folder else ""
        box = layout.box()
        row = box.row()
        if problem:
            box.alert = True
            row.label(text=problem, icon="ERROR")
            row = box.row()
            row.operator("choreo.library_create", icon="NEWFOLDER")
            row.operator("preferences.addon_show", text="Open Preferences", icon="PREFERENCES").module = ADDON_ID
        else:
            text = (f"Starter library + {os.path.basename(folder) or folder}" if folder
                    else "Starter library (read-only); your own: Preferences")
            row.label(text=text, icon="ASSET_MANAGER")
            if not folder:
                row.operator("preferences.addon_show", text="", icon="PREFERENCES").module = ADDON_ID
        row.operator("choreo.library_refresh", text="", icon="FILE_REFRESH")
        if settings.library_status:
            box.alert = True
            box.label(text=settings.library_status, icon="ERROR")
            if folder:
                box.operator("choreo.library_repair", icon="TOOL_SETTINGS")
        elif not len(settings.library_clips):
            box.label(text="Press Refresh to list the clips", icon="INFO")
        if not problem:                      # nothing to list until the folder is a library
            row = layout.row(align=True)
            row.prop(settings, "library_genre", text="")
            row.prop(settings, "library_text", text="", icon="VIEWZOOM")
            layout.template_list("CHOREO_UL_library_clips", "", settings, "library_clips", settings,
                                 "library_index", rows=4)
            row = layout.row(align=True)
            row.enabled = len(settings.library_clips) > 0
            row.operator("choreo.library_preview", icon="PLAY")
            row.operator("choreo.library_pin", icon="PINNED")
            row.operator("choreo.library_remove", text="", icon="TRASH")
        if len(settings.library_pins):
            box = layout.box()
            box.label(text=f"Pinned for Generate ({len(settings.library_pins)}, best first):", icon="PINNED")
            col = box.column(align=True)
            for pin in settings.library_pins:
                row = col.row(align=True)
                row.label(text=pin.name)
                row.operator("choreo.library_unpin", text="", icon="X").clip = pin.name
        op = layout.operator("choreo.load_motion", text="Load Motion as New Dancer", icon="FILE_MOVIE")
        op.target = "NEW"
        row = layout.row()
        obj = context.active_object
        row.enabled = obj is not None and obj.type == "ARMATURE" and obj.choreo.is_dancer
        op = row.operator("choreo.load_motion", text="Load Motion onto Selected", icon="POSE_HLT")
        op.target = "SELECTED"


class CHOREO_PT_library_retrieve(_ChoreoPanel, bpy.types.Panel):
    bl_idname = "CHOREO_PT_library_retrieve"
    bl_label = "References for This Music"
    bl_parent_id = "CHOREO_PT_library"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.choreo
        layout.label(text=f"Music and genre ({settings.genre}) from Generate", icon="SOUND")
        layout.operator("choreo.library_retrieve", icon="VIEWZOOM")
        if len(settings.library_results):
            layout.label(text=settings.library_results_info)
            layout.template_list("CHOREO_UL_library_results", "", settings, "library_results", settings,
                                 "library_results_index", rows=5)


class CHOREO_PT_library_add(_ChoreoPanel, bpy.types.Panel):
    bl_idname = "CHOREO_PT_library_add"
    bl_label = "Add to Library"
    bl_parent_id = "CHOREO_PT_library"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        settings = context.scene.choreo
        obj = context.active_object
        action = obj.animation_data.action if obj is not None and obj.animation_data is not None else None
        if obj is None or obj.type != "ARMATURE" or action is None:
            layout.label(text="Select an armature with an action", icon="INFO")
        else:
            layout.label(text=f"{obj.name}: '{action.name}'", icon="ACTION")
        layout.prop(settings, "library_new_name")
        layout.prop(settings, "library_new_genre")
        layout.prop(settings, "library_new_subgenre")
        layout.prop(settings, "library_new_licence")
        layout.operator("choreo.library_add_action", icon="ADD")


class CHOREO_PT_takes(_ChoreoPanel, bpy.types.Panel):
    """The active dancer's takes (one action each) and the edits that make a new take from the one playing."""
    bl_idname = "CHOREO_PT_takes"
    bl_label = "Takes"
    bl_parent_id = "CHOREO_PT_main"

    def draw(self, context):
        layout = self.layout
        obj = context.active_object
        takes = dancer_takes(obj) if obj is not None and obj.type == "ARMATURE" else []
        if not takes:
            layout.label(text="Select a generated dancer to see its takes", icon="INFO")
            return
        playing = obj.animation_data.action if obj.animation_data is not None else None
        col = layout.column(align=True)
        for action in takes:
            row = col.row(align=True)
            current = action == playing
            op = row.operator("choreo.take_use", text=action.name, depress=current,
                              icon="PLAY" if current else "ACTION")
            op.action = action.name
            row.operator("choreo.take_duplicate", text="", icon="DUPLICATE").action = action.name
            row.operator("choreo.take_delete", text="", icon="TRASH").action = action.name
        try:
            current_take(obj)
        except ValueError as exc:
            layout.label(text=str(exc), icon="ERROR")
            return
        scene = context.scene
        box = layout.box()
        if scene.use_preview_range:
            box.label(text=f"Preview range {scene.frame_preview_start}-{scene.frame_preview_end}", icon="PREVIEW_RANGE")
        else:
            box.label(text="Set a preview range (Ctrl P) to regenerate", icon="PREVIEW_RANGE")
        row = box.row()
        row.enabled = scene.use_preview_range
        row.operator("choreo.take_regenerate", icon="FILE_REFRESH")
        row = layout.row(align=True)
        row.operator("choreo.take_key_pose", text="Key Current Pose", icon="POSE_HLT").pose_from = "CURRENT"
        row.operator("choreo.take_key_pose", text="Take / Clip Pose...", icon="ACTION").pose_from = "TAKE"
        row = layout.row(align=True)
        row.prop(scene, "choreo_take_curve", text="")
        row.operator("choreo.take_follow_curve", text="Follow", icon="CURVE_PATH")
        col = layout.column(align=True)
        col.operator("choreo.take_repeat", text="Repeat Bars...", icon="DUPLICATE")
        row = col.row(align=True)
        row.operator("choreo.take_suggest_repeats", icon="MARKER")
        row.operator("choreo.take_accept_repeat", text="Accept", icon="CHECKMARK")


classes = (CHOREO_UL_library_clips, CHOREO_UL_library_results, CHOREO_UL_contact_overrides, CHOREO_PT_main,
           CHOREO_PT_generate, CHOREO_PT_generate_advanced, CHOREO_PT_foot_fix, CHOREO_PT_bone_map, CHOREO_PT_library,
           CHOREO_PT_library_retrieve, CHOREO_PT_library_add, CHOREO_PT_takes)

register, unregister = bpy.utils.register_classes_factory(classes)
