# SPDX-License-Identifier: GPL-3.0-or-later
"""Foot fix benchmark: speed for 1,024 frames and the quality table on held-out clips with synthetic skating.

    .venv/bin/python benchmarks/fix_feet.py [--weights runs/frdm/weights] [--max-clips 40] [--threads 2]

Speed: seconds to fix 1,024 frames (30 fps) with ``ik_lock`` and with FRDM on the CPU (1 and ``--threads``
torch threads), and on CUDA when available; FRDM is also given as a ratio to ``ik_lock`` measured in the
same run, with the machine's load average. Without a weight set FRDM is timed with random weights of the
default size (speed only).

Quality ("does no harm"): held-out clips of Bandai and CMU salsa (``core_models/train/splits/frdm_split.json``;
never trained on) and of CMU dance (FRDM never saw that corpus). Per corpus and method, the clean input row:
the hips path moved (largest 3-D distance of the hips before/after over all frames), the travel kept (hips
path length after / before, smoothed over 3 frames), FSR before -> after and the clips where it rose, and a
second pass on the result (path change). Skated copies (``core_models.skating``, a seed per clip): "slide"
(planted feet slide, jitter, float/penetration) and "drift" (the same with the whole body drifting at the
default speed, also while no foot is planted): FSR in -> out and the hips path error against the clean
original before and after the fix. Heights are measured above the clean clip's floor for every row. JSON on
stdout and in ``benchmarks/results/fix_feet.json``. Mocap rows fix with ``beats="free"`` (a capture's slides make
kinetic minima of their own, as the add-on and the CLI fix imported mocap).

Beats: five dances generated with the shipped weights from the shared music (16 s each), BAS before and after
each method's fix (joints keep their beats by default), the root moved and FSR.
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

from core_models import footfix  # noqa: E402
from core_models.skating import SkatingParams, add_skating  # noqa: E402



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
    out["ik_lock_s"] = _time(lambda: footfix.fix_feet(joints, method="ik_lock"))
    rows = [(f"cpu_{n}thread", "cpu", n) for n in sorted({1, threads})]
    if torch.cuda.is_available():
        rows.append(("cuda", "cuda", threads))
    for name, device, n in rows:
        torch.set_num_threads(n)
        if weights is not None:
            w = footfix.load_frdm_weights(weights, device)
            kind = "trained"
        else:
            model = footfix.FRDMDenoiser(footfix.FRDMConfig(layers=6)).to(device).eval()
            w = footfix.FRDMWeights(model, model.cfg, np.zeros(footfix.FRDM_DIM), np.ones(footfix.FRDM_DIM), {},
                                    None, torch.device(device))
            kind = "random (speed only)"
        sec = _time(lambda: footfix.fix_feet(joints, method="frdm", weights=w, steps=steps))
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


def _travel(joints: np.ndarray) -> float:
    """Horizontal path length (m) of the hips, smoothed over 3 frames (the travel, not the sway)."""
    from scipy.ndimage import gaussian_filter1d

    hips = gaussian_filter1d(joints[:, 0, [0, 2]], 3.0, axis=0, mode="nearest")
    return float(np.linalg.norm(np.diff(hips, axis=0), axis=-1).sum())


def path_change(a: np.ndarray, b: np.ndarray) -> float:
    """Largest distance (m) between the hips of two versions of a clip, over all frames (3-D)."""
    return float(np.linalg.norm(a[:, 0] - b[:, 0], axis=-1).max())


def _fsr(joints: np.ndarray, floor: float) -> float:
    return float(footfix.clip_metrics(joints, floor)["fsr"]["mean"])


def _clips(corpus: str, names: list[str], max_clips: int):
    """(name, clean joints) of held-out clips: the FRDM split's for bandai/cmu, every clip of cmu_dance (FRDM
    never saw it), evenly thinned to ``max_clips``."""
    from core_models.data import mocap_dir
    from core_models.io import load_body_clip

    try:
        folder = mocap_dir(corpus)
    except ValueError:                       # a core_models.data that does not know the corpus
        return None
    if folder is None:
        return None
    paths = {p.name: p for p in folder.rglob("*.bvh")}
    names = names or sorted(paths)
    chosen = names[::max(1, len(names) // max_clips)][:max_clips]
    return [(n, load_body_clip(paths[Path(n).name]).joints) for n in chosen]


def quality(weights, steps: int, max_clips: int, params: SkatingParams, sampler: dict | None = None) -> dict:
    """Per corpus and method: on the clean clips the hips path moved, the travel kept and FSR before -> after,
    and a second pass on the result; on skated copies (planted-foot slide, jitter and float: ``slide``; the same
    with the whole body drifting too: ``drift``) FSR and the hips path error against the clean original."""
    from core_models.train.frdm import load_split

    split = load_split()
    w = footfix.load_frdm_weights(weights, "cpu") if weights is not None else None
    # captures: the repair may move kinetic minima the capture's slides and jitter made (as the add-on and the
    # CLI fix imported mocap); generated dances keep theirs (``beat_rows``)
    methods = {"ik_lock": {"method": "ik_lock", "beats": "free"}}
    if w is not None:
        methods["frdm"] = {"method": "frdm", "weights": w, "beats": "free",
                           "sampler": footfix.SamplerConfig(**{"steps": steps, **(sampler or {})})}
    skatings = {"slide": SkatingParams(**{**params.to_dict(), "root_drift_speed": 0.0}), "drift": params}
    table, per_clip = {}, []
    corpora = {**split["held_out"], "cmu_dance": []}
    for corpus, names in corpora.items():
        clips = _clips(corpus, names, max_clips)
        if clips is None:
            table[corpus] = {"skipped": f"no {corpus} mocap"}
            continue
        rows: dict = {}
        for name, clean in clips:
            floor = _floor(clean)
            seed = int(hashlib.sha1(name.encode()).hexdigest(), 16) % (2 ** 31)
            skated = {k: add_skating(clean, SkatingParams(**{**p.to_dict(), "seed": seed}))[0]
                      for k, p in skatings.items()}
            clip = {"clip": name, "frames": int(len(clean)), "fsr_clean": _fsr(clean, floor)}
            for m, kw in methods.items():
                fixed = footfix.fix_feet(clean, orientation="ignore", **kw)
                again = footfix.fix_feet(fixed.joints, orientation="ignore", **kw)
                r = {"path_moved_m": path_change(fixed.joints, clean),
                     "travel_kept": _travel(fixed.joints) / max(_travel(clean), 1e-9),
                     "fsr_before": _fsr(clean, floor), "fsr_after": _fsr(fixed.joints, floor),
                     "unchanged": bool(fixed.report.get("unchanged", False)),
                     "second_pass_path_m": path_change(again.joints, fixed.joints),
                     "second_pass_unchanged": bool(again.report.get("unchanged", False))}
                for k, sk in skated.items():
                    out = footfix.fix_feet(sk, orientation="ignore", **kw).joints
                    r[f"{k}_fsr_before"], r[f"{k}_fsr_after"] = _fsr(sk, floor), _fsr(out, floor)
                    r[f"{k}_path_error_before_m"] = path_change(sk, clean)
                    r[f"{k}_path_error_after_m"] = path_change(out, clean)
                clip[m] = r
                rows.setdefault(m, []).append(r)
            per_clip.append({"corpus": corpus, **clip})
        summary = {"clips": len(clips), "frames": int(sum(len(c) for _, c in clips))}
        for m, rs in rows.items():
            agg = {}
            for k in rs[0]:
                vals = np.array([r[k] for r in rs], np.float64)
                if k.endswith("_m"):
                    agg[k + "_max"] = float(vals.max())
                    agg[k + "_mean"] = float(vals.mean())
                elif k == "travel_kept":
                    agg["travel_kept_min"], agg["travel_kept_max"] = float(vals.min()), float(vals.max())
                elif k in ("unchanged", "second_pass_unchanged"):
                    agg[k + "_clips"] = int(vals.sum())
                else:
                    agg[k] = float(vals.mean())
            agg["fsr_raised_clips"] = int(sum(r["fsr_after"] > r["fsr_before"] + 1e-9 for r in rs))
            summary[m] = agg
        table[corpus] = summary
    return {"table": table, "per_clip": per_clip, "skating": {k: p.to_dict() for k, p in skatings.items()},
            "frdm_steps": steps, "sampler": asdict(footfix.SamplerConfig(**{"steps": steps, **(sampler or {})}))}


# five generated dances: (music file in ../shared/data/music, start s, genre); 16 s each, shipped weights
BEAT_DANCES = (("Kevin_MacLeod_-_Vibe_Ace.ogg", 0.0, "Popular"),
               ("Kevin_MacLeod_-_P_I_Tchaikovsky_Dance_of_the_Sugar_Plum_Fairy.ogg", 10.0, "Modern"),
               ("Karissa_Hobbs_-_Lets_Go_Fishin.ogg", 20.0, "Popular"),
               ("Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra).ogg", 0.0, "Folk"),
               ("Kevin_MacLeod_-_Vibe_Ace.ogg", 30.0, "Latin"))
BEAT_SECONDS = 16.0


def beat_rows(weights, steps: int) -> dict:
    """BAS (``metrics.beat_align_score`` against ``audio.music_beat_frames``) of five dances generated with
    the shipped weights (``python -m core_models generate``), before and after each method's fix (defaults:
    joints keep their beats), with the root moved and whether the motion's beat frames are the same."""
    import subprocess
    import tempfile

    from core_models import audio, metrics
    from core_models.data import shared_data_dir
    from core_models.editing.take import load_take

    data = shared_data_dir()
    music = data / "music" if data else None
    if music is None or not music.is_dir():
        return {"skipped": "no shared music"}
    w = footfix.load_frdm_weights(weights, "cpu") if weights is not None else None
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, (name, start, genre) in enumerate(BEAT_DANCES):
            out = Path(tmp) / f"dance{k}.npz"
            subprocess.run([sys.executable, "-m", "core_models", "generate", "--music", str(music / name),
                            "--start", str(start), "--end", str(start + BEAT_SECONDS), "--genre", genre,
                            "--out", str(out), "--quiet"], check=True, cwd=REPO, capture_output=True)
            joints = load_take(out).joints()
            samples, sr = audio.load_audio(music / name)
            beats = audio.music_beat_frames(samples[int(start * sr):int((start + BEAT_SECONDS) * sr)], sr, 30)
            row = {"music": name, "start_s": start, "genre": genre, "bas_before": metrics.beat_align_score(joints, beats)}
            for m, kw in (("ik_lock", {}), ("frdm", {"weights": w, "steps": steps})):
                if m == "frdm" and w is None:
                    continue
                fixed = footfix.fix_feet(joints, method=m, **kw)
                row[f"{m}_bas_after"] = metrics.beat_align_score(fixed.joints, beats)
                row[f"{m}_root_moved_m"] = fixed.report["max_root_displacement_m"]
                row[f"{m}_fsr"] = [fixed.report["fsr_before"]["mean"], fixed.report["fsr_after"]["mean"]]
                row[f"{m}_beat_frames_kept"] = bool(np.array_equal(metrics.motion_beats(joints),
                                                                   metrics.motion_beats(fixed.joints)))
            rows.append(row)
    return {"rows": rows, "seconds": BEAT_SECONDS}


def beat_markdown(beats: dict) -> str:
    if "rows" not in beats:
        return f"BAS rows skipped: {beats.get('skipped')}"
    lines = ["| generated dance | BAS before | ik_lock: BAS after, root moved, FSR | frdm: BAS after, root moved, FSR |",
             "|---|---|---|---|"]
    for r in beats["rows"]:
        cells = []
        for m in ("ik_lock", "frdm"):
            if f"{m}_bas_after" not in r:
                cells.append("-")
                continue
            cells.append(f"{r[f'{m}_bas_after']:.4f} ({r[f'{m}_bas_after'] - r['bas_before']:+.4f}), "
                         f"{100 * r[f'{m}_root_moved_m']:.1f} cm, {100 * r[f'{m}_fsr'][0]:.1f} -> "
                         f"{100 * r[f'{m}_fsr'][1]:.1f} %" + ("" if r[f"{m}_beat_frames_kept"] else ", beats moved"))
        lines.append(f"| {r['genre']}: {r['music'][:28]} @{r['start_s']:g} s | {r['bas_before']:.4f} | {' | '.join(cells)} |")
    return "\n".join(lines)


def markdown(table: dict) -> str:
    lines = ["| corpus | method | clean: hips path moved (max / mean) | travel kept (min..max) | FSR before -> after "
             "| 2nd pass path (max) | skated slide: FSR in -> out, path err in -> out (max) | skated + drift: FSR "
             "in -> out, path err in -> out (max) |", "|---|---|---|---|---|---|---|---|"]
    for corpus, t in table.items():
        for m in ("ik_lock", "frdm"):
            if m not in t:
                continue
            r = t[m]
            lines.append(
                f"| {corpus} ({t['clips']} clips) | {m} | {100 * r['path_moved_m_max']:.1f} / "
                f"{100 * r['path_moved_m_mean']:.1f} cm | {100 * r['travel_kept_min']:.1f}..{100 * r['travel_kept_max']:.1f} % "
                f"| {100 * r['fsr_before']:.2f} -> {100 * r['fsr_after']:.2f} % (raised on {r['fsr_raised_clips']}) "
                f"| {100 * r['second_pass_path_m_max']:.2f} cm "
                f"| {100 * r['slide_fsr_before']:.1f} -> {100 * r['slide_fsr_after']:.1f} %, "
                f"{100 * r['slide_path_error_before_m_max']:.1f} -> {100 * r['slide_path_error_after_m_max']:.1f} cm "
                f"| {100 * r['drift_fsr_before']:.1f} -> {100 * r['drift_fsr_after']:.1f} %, "
                f"{100 * r['drift_path_error_before_m_max']:.1f} -> {100 * r['drift_path_error_after_m_max']:.1f} cm |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # the weight set shipped with the extension, else the latest of a training run in runs/frdm
    default_w = next((w for w in (REPO / "core_models" / "assets" / "frdm", REPO / "runs" / "frdm" / "weights")
                      if (w / "config.json").is_file()), None)
    p.add_argument("--weights", default=str(default_w) if default_w else None)
    p.add_argument("--steps", type=int, default=footfix.DEFAULT_STEPS)
    p.add_argument("--max-clips", type=int, default=40, help="held-out clips per corpus")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sampler", default="{}", help='FRDM sampler settings as JSON, e.g. {"t_th": 0.3}')
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--skip-quality", action="store_true")
    p.add_argument("--skip-beats", action="store_true", help="skip the BAS rows of five generated dances")
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
    if not args.skip_beats:
        result["beats"] = beat_rows(args.weights, args.steps)
        result["beats_markdown"] = beat_markdown(result["beats"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    summary = {k: v for k, v in result.items() if k != "quality"}
    if "quality" in result:
        summary["quality_table"] = result["quality"]["table"]
    print(json.dumps(summary, indent=2))
    for key in ("quality_markdown", "beats_markdown"):
        if key in result:
            print(result[key], file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
