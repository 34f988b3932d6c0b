# SPDX-License-Identifier: GPL-3.0-or-later
"""What the add-on's preferences say, read in one place: folders (weight sets, library, SMPL-X model file),
the hints the panels show about them, and the runtime (device, precision, backend) the core runs on.

Everything here is cheap enough for ``draw()``: nothing opens a model or a library.
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import bpy

# The preferences are registered under the extension's package (the folder above ``addon``); saved user
# preferences are keyed by it, so it must stay what ``addon/preferences.py`` always used.
_ADDON_PACKAGE = __package__.rpartition(".")[0]
ADDON_ID = _ADDON_PACKAGE.rpartition(".")[0] or _ADDON_PACKAGE
REQUIRED_MODULES = ("numpy", "scipy", "librosa", "soundfile", "safetensors", "smplx")
# The models run on torch or on ONNX Runtime (the extension zip can ship onnxruntime): one of them is needed.
MODEL_RUNTIMES = ("torch", "onnxruntime")
ASSETS_DIR = Path(__file__).resolve().parents[2] / "core_models" / "assets"   # shipped weight sets, library
NO_WEIGHT_SET = ("No weight set: choose a weight-set folder (with config.json) in Preferences > Add-ons > Choreo, "
                 "or a folder for this scene under Generate > Advanced")


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


def absolute_path(path: str, library=None) -> str:
    """A path as the user wrote it ('//' relative to the .blend file, or to a linked ``library``), absolute."""
    return os.path.normpath(os.path.abspath(bpy.path.abspath(path, library=library)))


def runtime(context=None):
    """The core's ``Runtime`` (device, dtype, backend) the preferences choose; the core's defaults when the
    add-on has no preferences entry. Precision "auto" is dtype None: the core picks bf16 or fp32."""
    from ...core_models.generation import Runtime

    prefs = get_preferences(context)
    if prefs is None:
        return Runtime()
    return Runtime(prefs.device, None if prefs.precision == "auto" else prefs.precision,
                   getattr(prefs, "backend", "auto"))


def bundled_weight_set() -> str:
    """The compact weight set shipped inside the extension (Generate's default), or '' if it is missing."""
    folder = ASSETS_DIR / "compact"
    return str(folder) if (folder / "config.json").is_file() else ""


def weight_set_folder(context) -> tuple[str, str]:
    """(absolute folder, where it is set) of the weight set Generate uses; ValueError when none is set."""
    override = context.scene.choreo.weights_override.strip()
    if override:
        return absolute_path(override), "this scene"
    prefs = get_preferences(context)
    path = prefs.weights_path.strip() if prefs is not None else ""
    if not path:
        bundled = bundled_weight_set()
        if not bundled:
            raise ValueError(NO_WEIGHT_SET)
        return bundled, "bundled"
    return absolute_path(path), "preferences"


def frdm_weights_folder(context) -> tuple[str, str]:
    """(folder, where it comes from) of the FRDM weights: the preferences' folder, else the bundled set."""
    prefs = get_preferences(context)
    path = prefs.frdm_weights_path.strip() if prefs is not None else ""
    if path:
        return absolute_path(path), "preferences"
    bundled = ASSETS_DIR / "frdm"
    return (str(bundled), "bundled") if (bundled / "config.json").is_file() else ("", "")


def smplx_model_file(context) -> str:
    """The user's SMPL-X model file of the preferences (absolute), or '' when none is set."""
    prefs = get_preferences(context)
    return bpy.path.abspath(prefs.smplx_model_path) if prefs and prefs.smplx_model_path else ""


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
