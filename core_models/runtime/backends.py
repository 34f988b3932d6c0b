# SPDX-License-Identifier: GPL-3.0-or-later
"""Which backend runs a weight set, chosen in one place: torch, or ONNX Runtime (``onnx_backend``).

    load_generator(weights, backend, device, dtype) -> WeightSet | OnnxWeightSet    (generation, library)
    load_frdm(weights, backend, device)             -> (FRDMWeights, notes)         (the foot fix)

backend: "torch", "onnx" (onnxruntime; device "cuda" asks for its CUDAExecutionProvider) or "auto". For a
generator set "auto" is ONNX Runtime when the set has an export and onnxruntime is installed (on the CPU it
samples faster and a first Generate skips the seconds of importing torch), else torch; for FRDM it is torch
when installed (the denoiser is small, and torch keeps the report's device), else ONNX Runtime. When the ONNX
backend cannot run a set and torch is installed, the set loads on torch and the notes say why, never silently.

This module imports the foot fix's weight I/O, never the other way round: ``footfix`` asks for a loaded set
through :func:`load_frdm`.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Callable

from ..onnx_backend import OnnxBackendError, OnnxDenoiser, OnnxWeightSet, Sessions, export_command, read_export, \
    read_stats, load_onnx_weight_set
from .files import FRDM_FAMILY, WeightSetError, read_config, weight_files

BACKENDS = ("auto", "torch", "onnx")


def torch_available() -> bool:
    """Whether torch can be imported, without importing it (that alone takes seconds in a fresh process)."""
    if "torch" in sys.modules:
        return sys.modules["torch"] is not None
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def onnx_export_usable(folder) -> bool:
    """A weight-set folder with an ONNX export, and onnxruntime installed (checked without importing it)."""
    if not isinstance(folder, (str, os.PathLike)) or not (Path(folder) / "onnx").is_dir():
        return False
    try:
        return importlib.util.find_spec("onnxruntime") is not None
    except (ImportError, ValueError):
        return False


def auto_backend(folder) -> str:
    """The backend "auto" means for a generator set's folder (see the module's note)."""
    if onnx_export_usable(folder):
        return "onnx"
    return "torch" if torch_available() else "onnx"


def check_backend(backend: str) -> str:
    backend = str(backend or "auto").lower()
    if backend not in BACKENDS:
        raise OnnxBackendError(f"unknown backend '{backend}'; use one of {', '.join(BACKENDS)}")
    return backend


def _on_backend(backend: str, load_torch: Callable, load_onnx: Callable, no_torch: type[Exception]):
    """(loaded set, notes) on ``backend`` ("torch" or "onnx"): the choice and the fallback rule, once."""
    if backend == "torch":
        if not torch_available():
            raise no_torch("the torch backend was chosen but torch is not installed; choose the ONNX backend "
                           "(onnxruntime) or install torch")
        return load_torch(), []
    try:
        return load_onnx()
    except OnnxBackendError as exc:
        if not torch_available():
            raise
        return load_torch(), [f"the ONNX backend is unavailable ({exc}); fell back to torch"]


def load_generator(weights, backend: str = "auto", device="auto", dtype=None):
    """A loaded generator set (torch ``WeightSet`` or :class:`OnnxWeightSet`) for a folder; a set that is
    already loaded is returned as it is."""
    from ..weights import WeightSet, load_weight_set

    if isinstance(weights, (WeightSet, OnnxWeightSet)):
        return weights
    backend = check_backend(backend)
    if backend == "auto":
        backend = auto_backend(weights)
    if backend == "onnx" and dtype not in (None, "auto", "fp32", "float32"):
        raise WeightSetError(f"the ONNX backend runs in fp32; precision '{dtype}' needs the torch backend")
    ws, notes = _on_backend(backend, lambda: load_weight_set(weights, device, dtype),
                            lambda: (load_onnx_weight_set(weights, device), []), WeightSetError)
    ws.notes.extend(notes)
    return ws


def load_onnx_frdm(folder, device: str = "auto", verify: bool = True, threads: int | None = None):
    """(FRDMWeights whose model is an :class:`~core_models.onnx_backend.OnnxDenoiser`, notes) of an FRDM set
    with an ONNX export."""
    from ..footfix.errors import FootFixError
    from ..footfix.model import WEIGHT_FILES, FRDMConfig, FRDMWeights

    folder = Path(folder)
    config = read_config(folder, FRDM_FAMILY, FootFixError)
    try:
        files = weight_files(folder, config, WEIGHT_FILES)
    except WeightSetError as exc:
        raise FootFixError(str(exc)) from exc
    info = read_export(folder, ["config.json", files["stats"]], verify)
    if "frdm_denoiser.onnx" not in info.get("files", []):
        raise OnnxBackendError(f"the ONNX export of '{folder}' lacks frdm_denoiser.onnx: run {export_command(folder)}")
    sessions = Sessions(folder, info, device, threads)
    stats = read_stats(folder / files["stats"])
    weights = FRDMWeights(OnnxDenoiser(sessions), FRDMConfig.from_dict(config["model"]), stats["mean"],
                          stats["std"], config, folder, f"onnxruntime {sessions.provider}")
    return weights, list(sessions.notes)


def load_frdm(weights, backend: str = "auto", device="auto"):
    """(FRDMWeights, notes) for an FRDM folder on ``backend``; a loaded FRDMWeights is returned as it is."""
    from ..footfix.errors import FootFixError
    from ..footfix.model import FRDMWeights, load_frdm_weights

    if isinstance(weights, FRDMWeights):
        return weights, []
    backend = check_backend(backend)
    if backend == "auto":
        backend = "torch" if torch_available() else "onnx"
    return _on_backend(backend, lambda: load_frdm_weights(weights, device), lambda: load_onnx_frdm(weights, device),
                       FootFixError)
