# SPDX-License-Identifier: GPL-3.0-or-later
"""ONNX Runtime backend: the compact family and FRDM without torch (e.g. inside Blender from the zip alone).

Which backend runs a set is chosen in :mod:`core_models.runtime.backends`; this module only runs an export.
The ONNX generator set offers the same numpy interface as the torch ``WeightSet`` (``sample_window``,
``decode_tokens``, ``encode_tokens``, ``encode_music``, ``encode_motion``), so ``generation.generate`` and
the library run unchanged, and its token loop is the shared one of :mod:`core_models.runtime.decoding`
with the shared numpy sampler: same seed, same tokens. Device "cuda" asks for the CUDAExecutionProvider.

Nothing here imports torch. Before a session is created every ONNX file (and the config and statistics
it reads) is checked against the sha256 of the set's manifest, and the export against the safetensors it
came from. A missing or damaged export, a missing provider or an opset the installed onnxruntime cannot
load gives a message that says what to do; with torch installed the loader falls back to torch and says
so in the notes, never silently.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from .configs import GeneratorConfig
from .runtime.decoding import decode_window
from .runtime.files import read_config, sha256_file, weight_files
from .weights import WeightSetInfo

ONNX_DIR = "onnx"
EXPORT_INFO = f"{ONNX_DIR}/export.json"
CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"


def export_command(folder) -> str:
    return f"python -m core_models export-onnx --weights {folder}"


class OnnxBackendError(ValueError):
    """The ONNX backend cannot run this weight set here; the message says why and what to do."""


def _ort():
    try:
        import onnxruntime
    except ImportError as exc:
        raise OnnxBackendError("onnxruntime is not installed (pip install onnxruntime, or onnxruntime-gpu for "
                               "CUDA); the extension zip ships it for its platforms") from exc
    return onnxruntime


def choose_providers(device: str = "auto") -> tuple[list[str], list[str]]:
    """Execution providers to ask for, and notes (e.g. why a CUDA request runs on the CPU)."""
    ort = _ort()
    device = str(device or "auto").lower()
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise OnnxBackendError(f"unknown device '{device}' for onnxruntime; use auto, cpu or cuda")
    available = ort.get_available_providers()
    if device == "cpu":
        return [CPU], []
    if CUDA in available:
        return [CUDA, CPU], []
    if device.startswith("cuda"):
        return [CPU], [f"CUDA was requested but this onnxruntime ({ort.__version__}) has no {CUDA} (available: "
                       f"{', '.join(available)}; install onnxruntime-gpu for CUDA): running on {CPU}"]
    return [CPU], []


def _read_manifest(folder: Path) -> dict:
    path = folder / "manifest.json"
    if not path.is_file():
        raise OnnxBackendError(f"'{folder}' has no manifest.json; its files cannot be verified")
    return json.loads(path.read_text()).get("files", {})


def read_export(folder: Path, needed: list[str], verify: bool = True) -> dict:
    """The set's ``onnx/export.json`` after checking it, ``needed`` files (relative) and the ONNX files
    against the manifest, and the export against the current safetensors."""
    info_path = folder / EXPORT_INFO
    if not info_path.is_file():
        raise OnnxBackendError(f"weight set '{folder}' has no ONNX export ({EXPORT_INFO} is missing): run "
                               f"{export_command(folder)}")
    manifest = _read_manifest(folder)
    info = json.loads(info_path.read_text())
    files = [f"{ONNX_DIR}/{n}" for n in info.get("files", [])] + [EXPORT_INFO] + list(needed)
    if verify:
        for rel in files:
            if rel not in manifest:
                raise OnnxBackendError(f"{rel} of '{folder}' is not in its manifest.json: run {export_command(folder)}")
            if not (folder / rel).is_file():
                raise OnnxBackendError(f"{rel} of '{folder}' is missing: run {export_command(folder)}")
            if sha256_file(folder / rel) != manifest[rel]["sha256"]:
                raise OnnxBackendError(f"{rel} of '{folder}' does not match the sha256 in its manifest.json (changed "
                                       f"or corrupted): run {export_command(folder)} again, or reinstall the weights")
        stale = sorted(k for k, sha in info.get("source_sha256", {}).items()
                       if k in manifest and manifest[k]["sha256"] != sha)
        if stale:
            raise OnnxBackendError(f"the ONNX files of '{folder}' were exported from other weights ({', '.join(stale)} "
                                   f"changed since): run {export_command(folder)}")
    return info


class Sessions:
    """onnxruntime sessions of one export on one provider list; ``provider`` is what actually runs."""

    def __init__(self, folder: Path, info: dict, device: str = "auto", threads: int | None = None):
        ort = _ort()
        providers, self.notes = choose_providers(device)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        self.sessions = {}
        for name in info.get("files", []):
            path = folder / ONNX_DIR / name
            try:
                self.sessions[name[:-5]] = ort.InferenceSession(str(path), opts, providers=providers)
            except Exception as exc:        # onnxruntime raises its own Fail / InvalidGraph / NotImplemented
                msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                hint = ""
                if "opset" in msg.lower() or "version" in msg.lower():
                    hint = (f" The file uses ONNX opset {info.get('opset')}; this onnxruntime {ort.__version__} does "
                            f"not support it: update onnxruntime, or re-export with an older --opset")
                raise OnnxBackendError(f"onnxruntime cannot load {ONNX_DIR}/{name} of '{folder}': {msg}.{hint}") from exc
        used = {s.get_providers()[0] for s in self.sessions.values()}
        self.provider = CUDA if used == {CUDA} else CPU
        if CUDA in providers and self.provider != CUDA:
            # onnxruntime-gpu falls back to the CPU when the CUDA libraries cannot be loaded: say so.
            self.notes.append(f"CUDA was requested but onnxruntime could not start {CUDA} (CUDA/cuDNN libraries "
                              f"missing or no GPU): running on {CPU}")

    def run(self, name: str, feeds: dict):
        return self.sessions[name].run(None, feeds)


@dataclass
class OnnxWeightSet(WeightSetInfo):
    """A compact weight set on ONNX Runtime, with the numpy interface of ``weights.WeightSet``."""
    path: Path
    config: dict
    generator: SimpleNamespace            # .cfg: GeneratorConfig
    tokenizer: SimpleNamespace            # .frames_per_latent
    retrieval: SimpleNamespace | None     # present when the set has RetrievalNet encoders
    mean: np.ndarray
    std: np.ndarray
    rag_mean: np.ndarray
    rag_std: np.ndarray
    sessions: Sessions
    notes: list = field(default_factory=list)
    music_mean: np.ndarray | None = None
    music_std: np.ndarray | None = None
    dtype: str = "float32"
    backend = "onnx"

    @property
    def device(self) -> str:
        return f"onnxruntime {self.sessions.provider}"

    def sample_window(self, music: np.ndarray, style: int, cond: np.ndarray, prefix: np.ndarray | None,
                      new_tokens: int, sampling, rng, cancel=None, on_token=None) -> np.ndarray:
        """As ``ChoreoLLaMA.generate_window`` (one prefill, one cached step per token, the shared sampler)."""
        cfg = self.generator.cfg
        q = cfg.num_quantizers
        logits, pk, pv = self.sessions.run("generator_prefill", {
            "music": np.ascontiguousarray(music, np.float32)[None], "style": np.array([int(style)], np.int64),
            "cond": np.ascontiguousarray(cond, np.float32)[None]})
        pos = cfg.music_len
        if prefix is not None and prefix.size:
            if prefix.size % q:
                raise ValueError(f"the prefix must hold whole latents (a multiple of {q} tokens), got {prefix.size}")
            n = prefix.size
            logits, pk, pv = self._step(prefix.reshape(1, -1), np.arange(n) % q, np.arange(pos, pos + n), pk, pv)
            pos += n
        cache = [pk, pv]

        def step(ids, slot, i):
            full, cache[0], cache[1] = self._step(ids, np.array([slot]), np.array([pos + i]), cache[0], cache[1])
            lo, hi = cfg.slot_range((i + 1) % q)
            return full[:, lo:hi]

        lo, hi = cfg.slot_range(0)
        return decode_window(logits[:, lo:hi], step, new_tokens, q, sampling, rng, cancel, on_token)

    def _step(self, ids, slots, positions, pk, pv):
        return self.sessions.run("generator_decode", {
            "ids": np.asarray(ids, np.int64), "slots": np.asarray(slots, np.int64),
            "positions": np.asarray(positions, np.int64), "past_k": pk, "past_v": pv})

    def decode_tokens(self, local: np.ndarray) -> np.ndarray:
        return self.sessions.run("tokenizer_decoder", {"ids": np.asarray(local, np.int64)[None]})[0][0]

    def encode_tokens(self, norm: np.ndarray) -> np.ndarray:
        norm = np.asarray(norm, np.float32)
        fpl = self.frames_per_latent
        if norm.ndim != 2 or norm.shape[0] == 0 or norm.shape[0] % fpl:
            raise ValueError(f"frame count {norm.shape[0]} must be a positive multiple of {fpl}")
        return self.sessions.run("tokenizer_encoder", {"features": norm[None]})[0][0]

    def encode_music(self, windows: np.ndarray) -> np.ndarray:
        return self.sessions.run("retrieval_music", {"windows": np.asarray(windows, np.float32)})[0]

    def encode_motion(self, windows: np.ndarray) -> np.ndarray:
        return self.sessions.run("retrieval_motion", {"windows": np.asarray(windows, np.float32)})[0]


def read_stats(path: Path) -> dict:
    from safetensors.numpy import load_file

    try:
        return {k: v.astype(np.float64) for k, v in load_file(str(path)).items()}
    except Exception as exc:            # safetensors has its own error types for damaged files
        raise OnnxBackendError(f"'{path}' cannot be read ({exc}); reinstall the weight set") from exc


def load_onnx_weight_set(folder, device: str = "auto", verify: bool = True, threads: int | None = None) -> OnnxWeightSet:
    """A compact weight set with an ONNX export, on onnxruntime (no torch)."""
    folder = Path(folder)
    config = read_config(folder)
    if config["family"] != "compact":
        raise OnnxBackendError(f"the ONNX backend runs the compact family; '{folder}' is '{config['family']}' "
                               "(use the torch backend)")
    files = weight_files(Path(folder), config)
    info = read_export(folder, ["config.json", files["stats"]], verify)
    missing = {"generator_prefill.onnx", "generator_decode.onnx", "tokenizer_decoder.onnx"} - set(info.get("files", []))
    if missing:
        raise OnnxBackendError(f"the ONNX export of '{folder}' lacks {', '.join(sorted(missing))}: run "
                               f"{export_command(folder)}")
    sessions = Sessions(folder, info, device, threads)
    gen_cfg = GeneratorConfig.from_dict(config["generator"])
    tok = config["tokenizer"]
    stats = read_stats(folder / files["stats"])
    retrieval = None
    if {"retrieval_music.onnx", "retrieval_motion.onnx"} <= set(info.get("files", [])):
        retrieval = SimpleNamespace(latent=config["retrieval"]["latent"])
    return OnnxWeightSet(folder, config, SimpleNamespace(cfg=gen_cfg),
                         SimpleNamespace(frames_per_latent=int(tok.get("stride_t", 2)) ** int(tok.get("down_t", 2))),
                         retrieval, stats["mean"], stats["std"], stats.get("rag_mean", stats["mean"]),
                         stats.get("rag_std", stats["std"]), sessions,
                         list(config.get("notes", [])) + list(sessions.notes), stats.get("music_mean"),
                         stats.get("music_std"))


# --- FRDM ------------------------------------------------------------------------------------------------

class OnnxDenoiser:
    """The FRDM denoiser on onnxruntime: ``denoise(x (B, W, 259) float32, t (B,) int64) -> x0``."""

    def __init__(self, sessions: Sessions):
        self.sessions = sessions

    def denoise(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        return self.sessions.run("frdm_denoiser", {"x": np.asarray(x, np.float32), "t": np.asarray(t, np.int64)})[0]


