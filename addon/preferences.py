# SPDX-License-Identifier: GPL-3.0-or-later
"""Add-on preferences: weight set, reference library, SMPL-X model file, device, precision, dependencies.

The settings are read through :mod:`.scene.settings`; this module only declares and draws them.
"""
import os

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty

from .scene.library import refresh_quietly
from .scene.settings import ADDON_ID, library_hint, missing_modules, weight_set_hint


def _library_path_changed(self, context):
    if context.scene is not None:            # the clip list shown in the panel follows the folder
        refresh_quietly(context.scene)


class ChoreoPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    weights_path: StringProperty(
        name="Weight set", subtype="DIR_PATH",
        description="Folder of a Choreo weight set (it holds config.json), used by Generate unless a scene "
                    "names its own. Empty: the compact set bundled with Choreo")
    library_path: StringProperty(
        name="Reference library", subtype="DIR_PATH", update=_library_path_changed,
        description="Folder of a Choreo reference library (it holds library.json): genre-tagged dances that "
                    "Generate retrieves as references, browsed in the Library section")
    use_starter_library: BoolProperty(
        name="Starter library", default=True, update=_library_path_changed,
        description="Retrieve references from (and list) the starter library of CMU dance clips that ships with "
                    "Choreo, besides your own library")
    frdm_weights_path: StringProperty(
        name="FRDM weights", subtype="DIR_PATH",
        description="Folder of an FRDM foot-fix weight set (it holds config.json). Empty: the set bundled with "
                    "Choreo; without one Fix Feet uses the analytic IK lock")
    smplx_model_path: StringProperty(
        name="SMPL-X model file", subtype="FILE_PATH",
        description="Your own SMPL-X model (.npz from smpl-x.is.tue.mpg.de). When set, new dancers get its "
                    "exact skeleton and skinned body; otherwise Choreo's own default skeleton is used")
    device: EnumProperty(name="Device", default="auto", items=(
        ("auto", "Auto", "CUDA when available, else CPU"), ("cuda", "CUDA", "NVIDIA GPU"), ("cpu", "CPU", "Processor")))
    backend: EnumProperty(name="Backend", default="auto", items=(
        ("auto", "Auto", "PyTorch when installed, else ONNX Runtime"),
        ("torch", "PyTorch", "Run the models with torch"),
        ("onnx", "ONNX Runtime", "Run the compact models and FRDM with onnxruntime (no torch needed; CUDA with "
                                 "onnxruntime-gpu). The weight set needs an ONNX export")))
    precision: EnumProperty(name="Precision", default="auto", items=(
        ("auto", "Auto", "bf16 on capable GPUs, fp32 on CPU"), ("fp32", "fp32", "Full precision"),
        ("bf16", "bf16", "Half the memory on GPUs that support it")))

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "weights_path")
        hint = weight_set_hint(self.weights_path)
        if hint:
            layout.label(text=hint, icon="INFO" if not self.weights_path else "ERROR")
        layout.prop(self, "library_path")
        layout.prop(self, "use_starter_library")
        folder = os.path.normpath(bpy.path.abspath(self.library_path)) if self.library_path.strip() else ""
        hint = library_hint(folder)
        if hint:
            layout.label(text=hint, icon="INFO" if not folder else "ERROR")
        if folder and not os.path.isfile(os.path.join(folder, "library.json")):
            layout.operator("choreo.library_create", icon="NEWFOLDER")
        layout.prop(self, "frdm_weights_path")
        layout.prop(self, "smplx_model_path")
        row = layout.row()
        row.prop(self, "device")
        row.prop(self, "precision")
        layout.prop(self, "backend")
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
