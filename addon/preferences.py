# SPDX-License-Identifier: GPL-3.0-or-later
"""Add-on preferences: SMPL-X model file, device, precision, dependency status."""
import importlib.util

import bpy
from bpy.props import EnumProperty, StringProperty

ADDON_ID = __package__.rpartition(".")[0] or __package__
REQUIRED_MODULES = ("numpy", "scipy", "torch", "librosa", "soundfile", "safetensors", "smplx")


def missing_modules() -> list[str]:
    return [m for m in REQUIRED_MODULES if importlib.util.find_spec(m) is None]


def get_preferences(context=None):
    """The add-on preferences, or None when the add-on was registered without an add-on entry."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon is not None else None


class ChoreoPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    smplx_model_path: StringProperty(
        name="SMPL-X model file", subtype="FILE_PATH",
        description="Your own SMPL-X model (.npz from smpl-x.is.tue.mpg.de). When set, new dancers get its "
                    "exact skeleton and skinned body; otherwise Choreo's own default skeleton is used")
    device: EnumProperty(name="Device", default="auto", items=(
        ("auto", "Auto", "CUDA when available, else CPU"), ("cuda", "CUDA", "NVIDIA GPU"), ("cpu", "CPU", "Processor")))
    precision: EnumProperty(name="Precision", default="auto", items=(
        ("auto", "Auto", "bf16 on capable GPUs, fp32 on CPU"), ("fp32", "fp32", "Full precision"),
        ("bf16", "bf16", "Half the memory on GPUs that support it")))

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "smplx_model_path")
        row = layout.row()
        row.prop(self, "device")
        row.prop(self, "precision")
        missing = missing_modules()
        box = layout.box()
        if missing:
            box.label(text="Missing Python packages: " + ", ".join(missing), icon="ERROR")
            box.label(text="Install them into Blender's Python (pip install choreo requirements).")
        else:
            box.label(text="All Python dependencies found", icon="CHECKMARK")


def register():
    bpy.utils.register_class(ChoreoPreferences)


def unregister():
    bpy.utils.unregister_class(ChoreoPreferences)
