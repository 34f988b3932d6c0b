# SPDX-License-Identifier: GPL-3.0-or-later
"""Evaluation of a generator weight set on real music against held-out real mocap.

``python -m core_models eval --weights DIR [--music FILES...] [--seconds 30] [--out table.json]``

For every music track (default: the five tracks of ../shared/data/music) and seed, three dances are scored
against the track's beats (librosa's beat tracker at 30 fps):
  model          the weight set's generation
  music zeroed   the same model with its music input replaced by zeros (does the music matter?)
  real mocap     held-out real clips (the test split) cut to the same length, played against the music
                 (what a real dance that ignores this song scores)
  model + feet   the model's dance after the foot fix (FRDM with the bundled weights): what `make demo` and the
                 add-on give; its FSR is measured against the floor the fix found (the frame-0 rule would move
                 the ground with the fix), the other rows' with the metric's frame-0 rule
Metrics per row: BAS (beat alignment, Bailando), FSR, jitter, and Div-k / Div-g over all dances of the row;
FID-k / FID-g of the model's dances against the held-out clips' features. Feature dimensions that are
constant over the held-out clips (geometric predicates that never hold in them) are left out of Div and FID:
the protocol's z-scoring divides by their std + 1e-10, so any dance where they hold would score ~1e8.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import metrics


def _held_out_clips(max_clips: int = 40, min_frames: int = 150) -> list[np.ndarray]:
    from .data import mocap_files
    from .io import load_body_clip
    from .train.compact import motion_split

    test = set(motion_split()["test"])
    clips = []
    for corpus in ("cmu", "bandai"):
        for p in mocap_files(corpus):
            if f"{corpus}/{p.name}" in test:
                joints = load_body_clip(p).joints
                if joints.shape[0] >= min_frames:
                    clips.append(joints)
    clips.sort(key=lambda j: -j.shape[0])          # longest first: CMU salsa before short gestures
    return clips[:max_clips]


def _row(dances: list[np.ndarray], beats: list[np.ndarray], gt_k, gt_g, kept: dict, fsr=None) -> dict:
    bas = [metrics.beat_align_score(d, b) for d, b in zip(dances, beats)]
    fsr = fsr if fsr is not None else [metrics.foot_skating_ratio(d)["mean"] for d in dances]
    jit = [metrics.jitter(d) for d in dances]
    kin = np.stack([metrics.kinetic_features(metrics.preprocess_for_fid(d)) for d in dances])[:, kept["kinetic"]]
    geo = np.stack([metrics.geometric_features(metrics.preprocess_for_fid(d)) for d in dances])[:, kept["geometric"]]
    gt_k, gt_g = gt_k[:, kept["kinetic"]], gt_g[:, kept["geometric"]]
    out = {"bas": float(np.mean(bas)), "bas_per_track": [round(b, 4) for b in bas], "fsr": float(np.mean(fsr)),
           "jitter": float(np.mean(jit)), "div_k": metrics.diversity(kin, gt_k), "div_g": metrics.diversity(geo, gt_g)}
    if len(dances) >= 2:
        out["fid_k"] = metrics.fid(kin, gt_k)
        out["fid_g"] = metrics.fid(geo, gt_g)
    return out


def evaluate(weights, music_files=None, seconds: float = 30.0, seeds=(0,), genre: str = "Latin",
             library=None, device="cpu", log=print) -> dict:
    from .audio import load_audio, music_beat_frames
    from .data import music_files as shared_music
    from .frdm import fix_feet
    from .pipeline import generate, raw_music_features
    from .weights import load_weight_set

    ws = load_weight_set(weights, device)
    music_files = [Path(m) for m in (music_files or shared_music())]
    if not music_files:
        raise FileNotFoundError("no music to evaluate on: give --music files or provide ../shared/data/music")
    held = _held_out_clips()
    if len(held) < 2:
        raise FileNotFoundError("the held-out mocap clips are needed (../shared/data/mocap)")
    gt_k = np.stack([metrics.kinetic_features(metrics.preprocess_for_fid(j)) for j in held])
    gt_g = np.stack([metrics.geometric_features(metrics.preprocess_for_fid(j)) for j in held])
    kept = {"kinetic": gt_k.std(axis=0) > 1e-8, "geometric": gt_g.std(axis=0) > 1e-8}
    rows = {"model": ([], []), "music zeroed": ([], []), "real mocap": ([], []), "model + feet": ([], [])}
    fixed_fsr = []
    frdm_weights = Path(__file__).resolve().parent / "assets" / "frdm"
    frdm_weights = frdm_weights if (frdm_weights / "config.json").is_file() else None
    for i, path in enumerate(music_files):
        samples, sr = load_audio(path)
        end = min(seconds, len(samples) / sr)
        cut = samples[:int(end * sr)]
        beats = music_beat_frames(cut, sr)
        raw = raw_music_features(ws, cut, sr)
        for seed in seeds:
            res = generate((cut, sr), genre, weights=ws, seed=seed, library=library)
            rows["model"][0].append(res.joints)
            rows["model"][1].append(beats)
            fixed = fix_feet(res.joints, method="frdm", weights=frdm_weights, device=device)
            rows["model + feet"][0].append(fixed.joints)
            rows["model + feet"][1].append(beats)
            fixed_fsr.append(fixed.report["fsr_after"]["mean"] if fixed.report["fsr_after"] else 0.0)
            zero = generate(None, genre, weights=ws, seed=seed, references=None,
                            music_feature_array=np.zeros_like(raw))
            rows["music zeroed"][0].append(zero.joints[:res.num_frames])
            rows["music zeroed"][1].append(beats)
        real = held[i % len(held)]
        frames = min(real.shape[0], int(round(end * 30)))
        rows["real mocap"][0].append(real[:frames])
        rows["real mocap"][1].append(beats[beats < frames - 1])
        log(f"{path.name}: {len(beats)} beats in {end:.1f} s; model BAS "
            f"{metrics.beat_align_score(res.joints, beats):.4f}")
    table = {name: _row(d, b, gt_k, gt_g, kept, fixed_fsr if name == "model + feet" else None)
             for name, (d, b) in rows.items()}
    clean_fsr = float(np.mean([metrics.foot_skating_ratio(j)["mean"] for j in held]))
    return {"weights": str(ws.path), "tracks": [p.name for p in music_files], "seconds": seconds,
            "seeds": list(seeds), "genre": genre, "held_out_clips": len(held),
            "clean_corpus_fsr": clean_fsr, "feature_dims_used": {k: int(v.sum()) for k, v in kept.items()},
            "rows": table}


def format_table(result: dict) -> str:
    lines = [f"{'':14s} {'BAS':>7s} {'FSR %':>7s} {'jitter':>8s} {'Div-k':>7s} {'Div-g':>7s} {'FID-k':>8s} {'FID-g':>8s}"]
    for name, r in result["rows"].items():
        lines.append(f"{name:14s} {r['bas']:7.4f} {100 * r['fsr']:7.2f} {r['jitter']:8.3f} {r['div_k']:7.3f} "
                     f"{r['div_g']:7.3f} {r.get('fid_k', float('nan')):8.2f} {r.get('fid_g', float('nan')):8.2f}")
    lines.append(f"clean held-out corpus FSR: {100 * result['clean_corpus_fsr']:.2f} %")
    return "\n".join(lines)


def main_eval(args) -> int:
    result = evaluate(args.weights, args.music or None, args.seconds, tuple(args.seeds), args.genre)
    print(format_table(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return 0
