# SPDX-License-Identifier: GPL-3.0-or-later
"""The "Choreo" sidebar tab: Generate, Foot Fix and Library sections."""
import bpy

from .preferences import missing_modules


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
        if job.running:
            row = layout.row(align=True)
            row.progress(factor=job.progress, type="BAR", text=f"{job.title}: {job.stage}")
            row.operator("choreo.cancel_job", text="", icon="CANCEL")
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
        editor = scene.sequence_editor
        strips = [] if editor is None else (editor.strips_all if hasattr(editor, "strips_all") else editor.sequences_all)
        sounds = [s for s in strips if s.type == "SOUND"]
        if sounds:
            s = sounds[0]
            seconds = s.frame_final_duration / (scene.render.fps / scene.render.fps_base)
            layout.label(text=f"Music: {s.name} ({seconds:.1f} s)", icon="SOUND")
        else:
            layout.label(text="No music on the timeline", icon="SOUND")
        layout.operator("choreo.add_sound", icon="FILE_SOUND")
        layout.operator("choreo.add_dancer", icon="ARMATURE_DATA")


class CHOREO_PT_foot_fix(_ChoreoPanel, bpy.types.Panel):
    bl_idname = "CHOREO_PT_foot_fix"
    bl_label = "Foot Fix"
    bl_parent_id = "CHOREO_PT_main"

    def draw(self, context):
        layout = self.layout
        layout.operator("choreo.import_mocap", icon="IMPORT")
        obj = context.active_object
        if obj is None or obj.type != "ARMATURE":
            layout.label(text="Select an armature to see its bone mapping")
            return
        settings = obj.choreo
        if settings.is_dancer:
            layout.label(text=f"{obj.name}: SMPL-X dancer ({settings.skeleton_source})", icon="CHECKMARK")
            return
        if not settings.bone_map:
            layout.label(text=f"{obj.name}: not mapped yet (import it with Import Mocap)")
            return
        box = layout.box()
        box.label(text=f"{obj.name}: {settings.rig_profile} naming")
        col = box.column(align=True)
        for item in settings.bone_map:
            row = col.row()
            row.label(text=item.canonical)
            row.label(text=item.bone or f"({item.note or 'synthesised'})")
        if settings.unmapped_bones:
            box.label(text="Not used: " + settings.unmapped_bones)
        layout.operator("choreo.convert_to_dancer", icon="ARMATURE_DATA")


class CHOREO_PT_library(_ChoreoPanel, bpy.types.Panel):
    bl_idname = "CHOREO_PT_library"
    bl_label = "Library"
    bl_parent_id = "CHOREO_PT_main"

    def draw(self, context):
        layout = self.layout
        op = layout.operator("choreo.load_motion", text="Load Motion as New Dancer", icon="FILE_MOVIE")
        op.target = "NEW"
        row = layout.row()
        obj = context.active_object
        row.enabled = obj is not None and obj.type == "ARMATURE" and obj.choreo.is_dancer
        op = row.operator("choreo.load_motion", text="Load Motion onto Selected", icon="POSE_HLT")
        op.target = "SELECTED"


classes = (CHOREO_PT_main, CHOREO_PT_generate, CHOREO_PT_foot_fix, CHOREO_PT_library)

register, unregister = bpy.utils.register_classes_factory(classes)
