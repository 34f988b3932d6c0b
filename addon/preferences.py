# SPDX-License-Identifier: GPL-3.0-or-later
"""Add-on preferences: weight set, reference library, SMPL-X model file, device, precision, dependencies."""
import importlib.util
import os

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty

ADDON_ID = __package__.rpartition(".")[0] or __package__
REQUIRED_MODULES = ("numpy", "scipy", "librosa", "soundfile", "safetensors", "smplx")
# The models run on torch or on ONNX Runtime (the extension zip can ship onnxruntime): one of them is needed.
MODEL_RUNTIMES = ("torch", "onnxruntime")


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):         # a broken or blocked package counts as missing
        return False


def missing_modules() -> list[str]:
    missing = [m for m in REQUIRED_MODULES if not _installed(m)]
    if not any(_installed(m) for m in MODEL_RUNTIMES):
        missing.append("torch or onnxruntime")
    return missing


def get_preferences(context=None):
    """The add-on preferences, or None when the add-on was registered without an add-on entry."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon is not None else None


def bundled_weight_set() -> str:
    """The compact weight set shipped inside the extension (Generate's default), or '' if it is missing."""
    folder = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "core_models", "assets",
                          "compact")
    return folder if os.path.isfile(os.path.join(folder, "config.json")) else ""


def trained_genres(folder: str) -> dict:
    """Genre -> minutes of training dance recorded in a weight set's config.json ({} when it does not say or
    cannot be read); cached per file modification time, since menus ask for it on every redraw."""
    path = os.path.join(folder, "config.json") if folder else ""
    try:
        stamp = os.stat(path).st_mtime_ns
    except OSError:
        return {}
    cached = _TRAINED_GENRES.get(path)
    if cached is None or cached[0] != stamp:
        import json

        try:
            genres = json.loads(open(path, encoding="utf-8").read()).get("trained_genres") or {}
            genres = {str(g): float(m) for g, m in genres.items()}
        except (OSError, ValueError, AttributeError, TypeError):
            genres = {}
        cached = _TRAINED_GENRES[path] = (stamp, genres)
    return cached[1]


_TRAINED_GENRES: dict[str, tuple] = {}


def weight_set_hint(path: str) -> str:
    """A one-line problem with a weight-set folder setting (cheap enough for draw()), or ''."""
    if not path.strip():
        if bundled_weight_set():
            return "Empty: Generate uses the compact weight set bundled with Choreo"
        return "No weight set yet: choose a weight-set folder (with config.json) to generate dances"
    folder = bpy.path.abspath(path)
    if not os.path.isdir(folder):
        return f"Weight-set folder not found: {folder}"
    if not os.path.isfile(os.path.join(folder, "config.json")):
        return "This folder has no config.json, so it is not a weight set"
    return ""


def library_folder(context=None) -> str:
    """The reference library folder of the preferences (absolute), or '' when none is set."""
    prefs = get_preferences(context)
    path = prefs.library_path.strip() if prefs is not None else ""
    return os.path.normpath(bpy.path.abspath(path)) if path else ""


def use_starter_library(context=None) -> bool:
    """Whether Generate and the Library section use the starter library that ships with Choreo."""
    prefs = get_preferences(context)
    return True if prefs is None else bool(prefs.use_starter_library)


def library_hint(folder: str) -> str:
    """A one-line problem with the reference library folder (cheap enough for draw()), or ''."""
    if not folder:
        return "No reference library: choose a folder in Preferences > Add-ons > Choreo"
    if not os.path.isdir(folder):
        return f"Library folder not found: {folder} (Create Library Here makes it)"
    if not os.path.isfile(os.path.join(folder, "library.json")):
        return "This folder has no library.json: press Create Library Here to start a library in it"
    return ""


def _library_path_changed(self, context):
    from .library import refresh_quietly       # the clip list shown in the panel follows the folder

    if context.scene is not None:
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
