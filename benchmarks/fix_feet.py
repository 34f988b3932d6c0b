# SPDX-License-Identifier: GPL-3.0-or-later
"""Foot fix benchmark: speed for 1,024 frames and the quality table on held-out clips with synthetic skating.

    .venv/bin/python benchmarks/fix_feet.py [--weights runs/frdm/weights] [--max-clips 40] [--threads 2]

Speed: seconds to fix 1,024 frames (30 fps) with ``ik_lock`` and with FRDM on the CPU (1 and ``--threads``
torch threads), and on CUDA when available; FRDM is also given as a ratio to ``ik_lock`` measured in the
same run, with the machine's load average. Without a weight set FRDM is timed with random weights of the
default size (speed only).

Quality: held-out clips of both corpora (``core_models/train/splits/frdm_split.json``; never trained on)
get synthetic skating (``core_models.skating``, a seed per clip), then ``ik_lock`` and FRDM repair them.
Columns: FSR, jitter, floor-penetration rate, upper-body change (largest, m, relative to the root, rounded to
1e-9 m) and mean joint error against the clean original (m, world positions, all 22 joints), for the clean
clips (the reference), the skated input, ik_lock, FRDM (default sampler) and FRDM sampled by the paper's
Algorithm 2 to the letter (t_th = T/2, re-noising with the initial noise, root velocities left to the model in
the foot-contact steps). Heights are measured above the clean clip's floor for
every row (the metrics' frame-0 toe rule applied to the clean clip; applied to each row it would move the
ground with the fix). JSON on stdout and in
``benchmarks/results/fix_feet.json``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core_models import frdm  # noqa: E402
from core_models.skating import SkatingParams, add_skating  # noqa: E402

ROWS = ("clean", "skated", "ik_lock", "frdm", "frdm_paper")


def _speed_clip(frames: int = 1024) -> np.ndarray:
    """1,024 frames of real motion when the data is there (a held-out clip played forth and back, which keeps
    it continuous), else a synthesised dance."""
    from core_models.data import mocap_dir
    from core_models.io import load_body_clip

    folder = mocap_dir("cmu")
    if folder is not None and (folder / "60_14_scaled.bvh").is_file():
        j = load_body_clip(folder / "60_14_scaled.bvh").joints
    else:
        import tempfile

        from core_models.cli import _write_synthetic_dance
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "dance.bvh"
            _write_synthetic_dance(path, seconds=frames / 30.0 + 1)
            j = load_body_clip(path).joints
    while len(j) < frames:
        j = np.concatenate([j, j[::-1]])
    return j[:frames]


def _time(fn, repeats: int = 3) -> float:
    fn()                                              # warm-up (imports, allocations)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def speed(weights, steps: int, threads: int) -> dict:
    """ik_lock and FRDM seconds for 1,024 frames; FRDM on the CPU with 1 and with ``threads`` torch threads
    (on a loaded machine several threads can be far slower than one: each parallel op waits for a thread
    the scheduler has parked), and on CUDA when available. The load average is recorded with the numbers."""
    import os

    import torch

    joints = _speed_clip()
    out = {"frames": int(len(joints)), "cpu": platform.processor() or platform.machine(),
           "cpu_count": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2)}
    out["ik_lock_s"] = _time(lambda: frdm.fix_feet(joints, method="ik_lock"))
    rows = [(f"cpu_{n}thread", "cpu", n) for n in sorted({1, threads})]
    if torch.cuda.is_available():
        rows.append(("cuda", "cuda", threads))
    for name, device, n in rows:
        torch.set_num_threads(n)
        if weights is not None:
            w = frdm.load_weight_set(weights, device)
            kind = "trained"
        else:
            model = frdm.FRDMDenoiser(frdm.FRDMConfig(layers=6)).to(device).eval()
            w = frdm.FRDMWeights(model, model.cfg, np.zeros(frdm.FRDM_DIM), np.ones(frdm.FRDM_DIM), {}, None,
                                 torch.device(device))
            kind = "random (speed only)"
        sec = _time(lambda: frdm.fix_feet(joints, method="frdm", weights=w, steps=steps))
        out[f"frdm_{name}_s"] = sec
        out[f"frdm_{name}_vs_ik_lock"] = sec / out["ik_lock_s"]
        out["frdm_weights"] = kind
    out["frdm_steps"] = steps
    out["paper_frdm_a100_s"] = 1.83
    return out


def _floor(clean: np.ndarray) -> float:
    """The clean clip's ground by the metrics' own frame-0 toe rule; every row is measured against it."""
    from core_models.metrics import normalize_ground

    return float(clean[0, 0, 1] - normalize_ground(clean)[0, 0, 1])


def _row_metrics(joints: np.ndarray, clean: np.ndarray, floor: float) -> dict:
    m = frdm.clip_metrics(joints, floor)
    return {"fsr": m["fsr"]["mean"], "jitter": m["jitter"], "penetration": m["penetration"]["rate"],
            # below 1e-9 m is floating-point rounding of adding the new root position (the rig's channels are
            # bit-identical, see core_models.io.rig_fix)
            "upper_body_change_m": round(frdm.upper_body_change(clean, joints), 9),
            "joint_error_m": float(np.linalg.norm(joints - clean, axis=-1).mean())}


def quality(weights, steps: int, max_clips: int, params: SkatingParams, sampler: dict | None = None) -> dict:
    from core_models.data import mocap_dir
    from core_models.io import load_body_clip
    from core_models.train.frdm import load_split

    split = load_split()
    w = frdm.load_weight_set(weights, "cpu") if weights is not None else None
    table, per_clip = {}, []
    for corpus, names in split["held_out"].items():
        folder = mocap_dir(corpus)
        if folder is None:
            table[corpus] = {"skipped": f"no {corpus} mocap"}
            continue
        paths = {p.name: p for p in folder.rglob("*.bvh")}
        chosen = [n for n in names][:max_clips] if corpus == "cmu" else names[::max(1, len(names) // max_clips)][:max_clips]
        rows = {r: [] for r in ROWS}
        frames = 0
        for name in chosen:
            clean = load_body_clip(paths[Path(name).name]).joints
            seed = int(hashlib.sha1(name.encode()).hexdigest(), 16) % (2 ** 31)
            skated, _ = add_skating(clean, SkatingParams(**{**params.to_dict(), "seed": seed}))
            floor = _floor(clean)
            res = {"clean": clean, "skated": skated,
                   "ik_lock": frdm.fix_feet(skated, method="ik_lock").joints}
            if w is not None:
                res["frdm"] = frdm.fix_feet(skated, method="frdm", weights=w, sampler=frdm.SamplerConfig(
                    **{"steps": steps, **(sampler or {})})).joints
                # the paper's Algorithm 2 to the letter: root guided only in the geometric steps, re-noising
                # with the initial noise, t_th = T / 2
                res["frdm_paper"] = frdm.fix_feet(skated, method="frdm", weights=w, sampler=frdm.SamplerConfig(
                    steps=steps, root_always=False, renoise="initial", t_th=0.5)).joints
            clip_rows = {r: _row_metrics(j, clean, floor) for r, j in res.items()}
            for r, m in clip_rows.items():
                rows[r].append(m)
            per_clip.append({"clip": name, "frames": int(len(clean)), **{r: m for r, m in clip_rows.items()}})
            frames += len(clean)
        table[corpus] = {"clips": len(chosen), "frames": frames,
                         **{r: {k: float(np.mean([m[k] for m in ms])) if k != "upper_body_change_m"
                                else float(np.max([m[k] for m in ms]))
                                for k in ms[0]} for r, ms in rows.items() if ms}}
    return {"table": table, "per_clip": per_clip, "skating": params.to_dict(), "frdm_steps": steps,
            "sampler": asdict(frdm.SamplerConfig(**{"steps": steps, **(sampler or {})}))}


def markdown(table: dict) -> str:
    lines = ["| corpus | row | FSR % | jitter | penetration % | upper-body change (m, max) | joint error vs clean (m) |",
             "|---|---|---|---|---|---|---|"]
    for corpus, t in table.items():
        for r in ROWS:
            if r in t:
                m = t[r]
                lines.append(f"| {corpus} ({t['clips']} clips) | {r} | {100 * m['fsr']:.2f} | {m['jitter']:.2f} | "
                             f"{100 * m['penetration']:.2f} | {m['upper_body_change_m']:.2g} | {m['joint_error_m']:.4f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # the weight set shipped with the extension, else the latest of a training run in runs/frdm
    default_w = next((w for w in (REPO / "core_models" / "assets" / "frdm", REPO / "runs" / "frdm" / "weights")
                      if (w / "config.json").is_file()), None)
    p.add_argument("--weights", default=str(default_w) if default_w else None)
    p.add_argument("--steps", type=int, default=frdm.DEFAULT_STEPS)
    p.add_argument("--max-clips", type=int, default=40, help="held-out clips per corpus")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sampler", default="{}", help='FRDM sampler settings as JSON, e.g. {"t_th": 0.3}')
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--skip-quality", action="store_true")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "fix_feet.json"))
    args = p.parse_args(argv)
    args.weights = args.weights or None          # --weights "" times and scores without FRDM
    result = {"weights": args.weights}
    if args.weights:
        config = json.loads((Path(args.weights) / "config.json").read_text())
        result["weights_step"] = config.get("step")
        result["weights_held_out_loss"] = config.get("held_out_loss")
    if not args.skip_speed:
        result["speed_1024_frames"] = speed(args.weights, args.steps, args.threads)
    if not args.skip_quality:
        import torch
        torch.set_num_threads(1)                # scores do not depend on it; one thread is robust under load
        result["quality"] = quality(args.weights, args.steps, args.max_clips, SkatingParams(), json.loads(args.sampler))
        result["quality_markdown"] = markdown(result["quality"]["table"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    summary = {k: v for k, v in result.items() if k != "quality"}
    if "quality" in result:
        summary["quality_table"] = result["quality"]["table"]
    print(json.dumps(summary, indent=2))
    if "quality_markdown" in result:
        print(result["quality_markdown"], file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
