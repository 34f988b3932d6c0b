# SPDX-License-Identifier: GPL-3.0-or-later
"""Settings: per scene (music, start frame), per armature object (mapping, source), job state (window manager)."""
import bpy
from bpy.props import (BoolProperty, CollectionProperty, FloatProperty, IntProperty, PointerProperty,
                       StringProperty)


class ChoreoBoneMapItem(bpy.types.PropertyGroup):
    canonical: StringProperty(name="Canonical joint", description="SMPL-X body joint")
    bone: StringProperty(name="Bone", description="Bone of this rig that drives the canonical joint; "
                                                  "empty when it is synthesised from its neighbours")
    note: StringProperty(name="Note")


class ChoreoObjectSettings(bpy.types.PropertyGroup):
    """Stored on each armature object, so several characters keep their own settings."""
    is_dancer: BoolProperty(name="SMPL-X dancer", default=False,
                            description="This armature was built by Choreo with SMPL-X bone names")
    skeleton_source: StringProperty(name="Skeleton", description="Where the rest skeleton came from")
    source_file: StringProperty(name="Source file", subtype="FILE_PATH")
    rig_profile: StringProperty(name="Rig profile", description="Naming scheme recognised for this rig")
    bone_map: CollectionProperty(type=ChoreoBoneMapItem)
    unmapped_bones: StringProperty(name="Unused bones")
    mapping_error: StringProperty(name="Mapping problem")


class ChoreoSceneSettings(bpy.types.PropertyGroup):
    start_frame: IntProperty(name="Start frame", default=1, min=-100000, max=1000000,
                             description="Frame where loaded and generated motion starts")
    last_report: StringProperty(name="Last result")


class ChoreoJobStatus(bpy.types.PropertyGroup):
    """Transient state of the running job (window manager: not saved with the file)."""
    running: BoolProperty(default=False)
    title: StringProperty()
    stage: StringProperty()
    progress: FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    error: StringProperty()


classes = (ChoreoBoneMapItem, ChoreoObjectSettings, ChoreoSceneSettings, ChoreoJobStatus)


def register():
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.Object.choreo = PointerProperty(type=ChoreoObjectSettings)
    bpy.types.Scene.choreo = PointerProperty(type=ChoreoSceneSettings)
    bpy.types.WindowManager.choreo_job = PointerProperty(type=ChoreoJobStatus)


def unregister():
    del bpy.types.WindowManager.choreo_job
    del bpy.types.Scene.choreo
    del bpy.types.Object.choreo
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
