# SPDX-License-Identifier: GPL-3.0-or-later
"""ONNX Runtime vs torch on the CPU, same run, same threads: compact generation and FRDM.

    .venv/bin/python benchmarks/onnx_backend.py [--threads 2] [--seconds 30] [--repeats 2]

Compact generation: frames per second of sampling + decoding (``timings["frames_per_s"]`` of
``generation.generate``) for ``--seconds`` of synthesised drums with the shipped compact weights, no
references, on each backend; the tokens of both runs are compared (they must be identical). FRDM: seconds
to fix 1,024 frames (the sampler's time, footfix.DEFAULT_STEPS steps) with the shipped FRDM weights. Both backends get
``--threads`` threads (torch.set_num_threads / onnxruntime intra-op threads). Sets without an ONNX export
are exported into a temporary copy first. Best of ``--repeats``; ratios are onnxruntime / torch speed
(> 1: onnxruntime is faster), measured in this run. JSON on stdout and in
``benchmarks/results/onnx_backend.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import torch  # noqa: E402

from core_models import footfix  # noqa: E402
from core_models.onnx_backend import OnnxBackendError, load_onnx_weight_set  # noqa: E402
from core_models.runtime.backends import load_onnx_frdm  # noqa: E402
from core_models.onnx_export import export_onnx  # noqa: E402
from core_models.generation import generate  # noqa: E402
from core_models.weights import load_weight_set  # noqa: E402

ASSETS = REPO / "core_models" / "assets"


def _with_export(src: Path, tmp: Path, loader) -> Path:
    try:
        loader(src)
        return src
    except (OnnxBackendError, ValueError):
        return export_onnx(src, tmp / src.name, progress=lambda *_: None)


def _music(seconds: float, sr: int = 22050):
    from core_models.audio import synth_click_track

    clicks = synth_click_track(120, seconds, sr=sr)
    bass = 0.3 * np.sin(2 * np.pi * 55 * np.arange(clicks.size) / sr).astype(np.float32)
    return clicks + bass, sr


def bench_generation(folder: Path, threads: int, seconds: float, repeats: int) -> dict:
    music = _music(seconds)
    sets = {"torch": load_weight_set(folder, "cpu", "fp32"),
            "onnxruntime": load_onnx_weight_set(folder, "cpu", threads=threads)}
    rows, tokens = {}, {}
    for name, ws in sets.items():
        best = None
        for r in range(repeats):
            res = generate(music, "Latin", weights=ws, seed=1, references=None)
            fps = res.timings["frames_per_s"]
            if best is None or fps > best["frames_per_s"]:
                best = {"frames_per_s": round(fps, 1), "tokens_per_s": round(res.timings["tokens_per_s"], 1),
                        "generate_s": round(res.timings["generate_s"], 3), "decode_s": round(res.timings["decode_s"], 3),
                        "frames": res.num_frames, "device": res.device}
            tokens[name] = res.tokens
        rows[name] = best
    rows["onnxruntime_vs_torch_speed"] = round(rows["onnxruntime"]["frames_per_s"] / rows["torch"]["frames_per_s"], 3)
    rows["identical_tokens"] = bool(np.array_equal(tokens["torch"], tokens["onnxruntime"]))
    return rows


def _clip(frames: int = 1024) -> np.ndarray:
    from core_models.cli import _write_synthetic_dance
    from core_models.io import load_body_clip

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dance.bvh"
        _write_synthetic_dance(path, seconds=frames / 30.0 + 1)
        return load_body_clip(path).joints[:frames]


def bench_frdm(folder: Path, threads: int, repeats: int) -> dict:
    joints = _clip(1024)
    sets = {"torch": footfix.load_frdm_weights(folder, "cpu"), "onnxruntime": load_onnx_frdm(folder, "cpu", threads=threads)[0]}
    rows, outs = {}, {}
    for name, w in sets.items():
        best = None
        for _ in range(repeats):
            res = footfix.fix_feet(joints, weights=w, steps=footfix.DEFAULT_STEPS, seed=0)
            s = res.report["timings_s"]["sampling"]
            best = s if best is None else min(best, s)
            outs[name] = res.joints
        rows[name] = {"seconds_per_1024_frames": round(best, 3), "backend": res.report["backend"]}
    rows["onnxruntime_vs_torch_speed"] = round(rows["torch"]["seconds_per_1024_frames"] /
                                               rows["onnxruntime"]["seconds_per_1024_frames"], 3)
    rows["max_joint_difference_m"] = float(np.abs(outs["torch"] - outs["onnxruntime"]).max())
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    import onnxruntime

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        compact = _with_export(ASSETS / "compact", Path(tmp), load_onnx_weight_set)
        frdm_set = _with_export(ASSETS / "frdm", Path(tmp), load_onnx_frdm)
        t0 = time.perf_counter()
        result = {
            "benchmark": "onnx_backend", "threads": args.threads, "music_seconds": args.seconds,
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "cpu": platform.processor() or platform.machine(), "load_average": list(os.getloadavg()),
            "compact_generation": bench_generation(compact, args.threads, args.seconds, args.repeats),
            "frdm": bench_frdm(frdm_set, args.threads, args.repeats),
        }
        result["wall_s"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(result, indent=2)
    print(text)
    out = REPO / "benchmarks" / "results" / "onnx_backend.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
