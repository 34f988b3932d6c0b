# SPDX-License-Identifier: GPL-3.0-or-later
"""Evaluation of a generator weight set on real music against held-out real dance, over windows.

``python -m core_models eval --weights DIR [--music FILES...] [--seconds 30] [--seeds 0 1 2] [--genre G ...]``

Every dance is cut into windows of 5 s (hop 2.5 s) and each window is scored on its own, so that a few
dances give enough samples for FID's covariances (a whole-dance FID of 5 dances against 40 clips is
singular). Per trained genre (default: the genres the weight set records) the rows are:

  model              the generation for each track x seed (what `generate` returns: on stage, on the floor)
  model + foot fix   the same after the FRDM foot fix with the bundled weights
  music zeroed       the model with its music input replaced by zeros (does the music matter?)
  held-out real      the dance takes of that genre held out of all training (never seen by any stage),
                     cut to the track length and played against the same music
  training real      dance takes of that genre the model trained on, played the same way (a ceiling)

FID-k / FID-g of every row are computed against the windows of all held-out real dance (every genre
pooled, so each genre's reference is large enough); the held-out row itself therefore has no FID. The
reading: the model's FID next to the training-real row's FID (how far another real set of that genre is).
Div-k / Div-g: mean pairwise distance of the row's windows, z-scored with the reference statistics.
BAS: music-beat-centric beat alignment per window (Bailando); FSR: foot skating ratio; jitter;
``travel_m_per_min`` and ``max_distance_m`` per dance (:func:`metrics.root_travel`); ``fk_error_m``: the
largest distance between the keyed SMPL-X armature's FK and the generated joints (model rows).
Feature dimensions constant over the reference windows are left out of FID and Div (z-scoring divides by
their std + 1e-10).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import metrics
from .motion import MOTION_FPS

WINDOW_S = 5.0
HOP_S = 2.5


def windows_of(joints: np.ndarray, beats: np.ndarray, window: int = int(WINDOW_S * MOTION_FPS),
               hop: int = int(HOP_S * MOTION_FPS)) -> list[tuple[np.ndarray, np.ndarray]]:
    """(joints, beats relative to the window) for each whole window of a dance."""
    out = []
    for s in range(0, joints.shape[0] - window + 1, hop):
        b = beats[(beats >= s) & (beats < s + window - 1)] - s
        out.append((joints[s:s + window], b))
    return out


def real_dance(part: str, genre: str | None = None) -> dict[str, list[np.ndarray]]:
    """Real dance takes of a split part ('test' or 'train') as joints, by genre (unwarped, not mirrored)."""
    from .data import mocap_files
    from .io import load_body_clip
    from .train.compact_data import cmu_dance_genres, dance_label, part_of

    tsv = cmu_dance_genres()
    out: dict[str, list[np.ndarray]] = {}
    for corpus in ("cmu_dance", "cmu"):
        for p in mocap_files(corpus):
            label = dance_label(corpus, p, tsv)
            if label is None or part_of(f"{corpus}/{p.name}", "dance") != part:
                continue
            if genre is not None and label[0] != genre:
                continue
            out.setdefault(label[0], []).append(load_body_clip(p).joints)
    return out


def _features(wins: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    kin = np.stack([metrics.kinetic_features(metrics.preprocess_for_fid(w)) for w, _ in wins])
    geo = np.stack([metrics.geometric_features(metrics.preprocess_for_fid(w)) for w, _ in wins])
    return kin, geo


def score_row(dances: list[np.ndarray], beats: list[np.ndarray], reference: dict, fk_errors=None,
              fsr_override=None, with_fid: bool = True) -> dict:
    """Window metrics of a set of dances (each with its music beats) against the reference windows."""
    wins = [w for d, b in zip(dances, beats) for w in windows_of(d, b)]
    if len(wins) < 2:
        raise ValueError(f"only {len(wins)} window(s) of {WINDOW_S:g} s: give longer music (--seconds)")
    bas = [metrics.beat_align_score(w, b) for w, b in wins if b.size]
    fsr = fsr_override if fsr_override is not None else [metrics.foot_skating_ratio(w)["mean"] for w, _ in wins]
    travel = [metrics.root_travel(d) for d in dances]
    kin, geo = _features(wins)
    kk, kg = reference["kept_k"], reference["kept_g"]
    out = {"windows": len(wins), "dances": len(dances), "bas": float(np.mean(bas)) if bas else float("nan"),
           "fsr": float(np.mean(fsr)), "jitter": float(np.mean([metrics.jitter(w) for w, _ in wins])),
           "travel_m_per_min": float(np.mean([t["travel_m_per_min"] for t in travel])),
           "max_distance_m": float(np.max([t["max_distance_m"] for t in travel])),
           "div_k": metrics.diversity(kin[:, kk], reference["kin"][:, kk]),
           "div_g": metrics.diversity(geo[:, kg], reference["geo"][:, kg])}
    if with_fid:
        out["fid_k"] = metrics.fid(kin[:, kk], reference["kin"][:, kk])
        out["fid_g"] = metrics.fid(geo[:, kg], reference["geo"][:, kg])
    if fk_errors:
        out["fk_error_m_max"] = float(np.max(fk_errors))
    return out


def _cut_to(real: list[np.ndarray], i: int, frames: int) -> np.ndarray:
    clip = real[i % len(real)]
    return clip[:frames]


def evaluate(weights, music_files=None, seconds: float = 30.0, seeds=(0, 1, 2), genres=None,
             library=None, device="cpu", log=print) -> dict:
    from .audio import load_audio, music_beat_frames
    from .data import music_files as shared_music
    from .footfix import fix_feet
    from .generation import MusicFeatures, generate, raw_music_features
    from .weights import load_weight_set

    ws = load_weight_set(weights, device)
    genres = list(genres or ws.trained_genres or ws.genres)
    music_files = [Path(m) for m in (music_files or shared_music())]
    if not music_files:
        raise FileNotFoundError("no music to evaluate on: give --music files or provide ../shared/data/music")
    held = real_dance("test")
    trained = real_dance("train")
    if not held:
        raise FileNotFoundError("the held-out dance takes are needed (../shared/data/mocap)")
    ref_wins = [w for clips in held.values() for c in clips for w in windows_of(c, np.zeros(0, np.int64))]
    kin, geo = _features(ref_wins)
    reference = {"kin": kin, "geo": geo, "kept_k": kin.std(axis=0) > 1e-8, "kept_g": geo.std(axis=0) > 1e-8}
    frdm_weights = Path(__file__).resolve().parent / "assets" / "frdm"
    frdm_weights = frdm_weights if (frdm_weights / "config.json").is_file() else None

    tracks = []
    for path in music_files:
        samples, sr = load_audio(path)
        end = min(seconds, len(samples) / sr)
        cut = samples[:int(end * sr)]
        tracks.append((path, cut, sr, music_beat_frames(cut, sr), raw_music_features(ws, cut, sr)))

    table = {}
    for genre in genres:
        rows = {k: ([], [], []) for k in ("model", "model + foot fix", "music zeroed")}
        fixed_fsr = []
        for path, cut, sr, beats, raw in tracks:
            for seed in seeds:
                res = generate((cut, sr), genre, ws, seed=seed, library=library, allow_untrained_genre=True)
                rows["model"][0].append(res.joints)
                rows["model"][1].append(beats)
                rows["model"][2].append(res.fk_error_m)
                fixed = fix_feet(res.joints, method="frdm", weights=frdm_weights, device=device)
                rows["model + foot fix"][0].append(fixed.joints)
                rows["model + foot fix"][1].append(beats)
                for w, _ in windows_of(fixed.joints, beats):
                    fixed_fsr.append(metrics.foot_skating_ratio(w)["mean"])
                zero = generate(MusicFeatures(np.zeros_like(raw)), genre, ws, seed=seed, references=None,
                                allow_untrained_genre=True)
                rows["music zeroed"][0].append(zero.joints[:res.num_frames])
                rows["music zeroed"][1].append(beats)
                rows["music zeroed"][2].append(zero.fk_error_m)
            log(f"{genre} / {path.name}: model BAS {metrics.beat_align_score(res.joints, beats):.4f}, "
                f"fk error {res.fk_error_m * 100:.2f} cm")
        out = {name: score_row(d, b, reference, fk_errors=e or None) for name, (d, b, e) in rows.items()}
        for name, real in (("held-out real", held.get(genre, [])), ("training real", trained.get(genre, []))):
            if not real:
                continue
            dances, beats = [], []
            for i, (path, cut, sr, b, raw) in enumerate(tracks):
                frames = min(real[i % len(real)].shape[0], b.size and int(len(cut) / sr * MOTION_FPS))
                dances.append(_cut_to(real, i, frames))
                beats.append(b[b < frames - 1])
            out[name] = score_row(dances, beats, reference, with_fid=name != "held-out real")
        table[genre] = out
    clean = [metrics.foot_skating_ratio(w)["mean"] for w, _ in ref_wins]
    return {"weights": str(ws.path), "tracks": [p.name for p, *_ in tracks], "seconds": seconds,
            "seeds": list(seeds), "genres": genres, "window_s": WINDOW_S, "hop_s": HOP_S,
            "reference_windows": len(ref_wins), "held_out_takes": {g: len(c) for g, c in held.items()},
            "clean_dance_fsr": float(np.mean(clean)),
            "feature_dims_used": {"kinetic": int(reference["kept_k"].sum()),
                                  "geometric": int(reference["kept_g"].sum())},
            "rows": table}


def format_table(result: dict) -> str:
    head = (f"{'genre':8s} {'row':17s} {'win':>4s} {'BAS':>7s} {'FSR %':>6s} {'jitter':>7s} {'Div-k':>6s} "
            f"{'Div-g':>6s} {'FID-k':>7s} {'FID-g':>7s} {'m/min':>6s} {'maxd m':>6s} {'fk cm':>6s}")
    lines = [head]
    for genre, rows in result["rows"].items():
        for name, r in rows.items():
            fk = r.get("fk_error_m_max")
            lines.append(f"{genre:8s} {name:17s} {r['windows']:4d} {r['bas']:7.4f} {100 * r['fsr']:6.2f} "
                         f"{r['jitter']:7.2f} {r['div_k']:6.2f} {r['div_g']:6.2f} {r.get('fid_k', float('nan')):7.2f} "
                         f"{r.get('fid_g', float('nan')):7.2f} {r['travel_m_per_min']:6.1f} {r['max_distance_m']:6.2f} "
                         f"{'' if fk is None else f'{100 * fk:6.2f}'}")
    lines.append(f"clean held-out dance FSR (windows): {100 * result['clean_dance_fsr']:.2f} %; reference: "
                 f"{result['reference_windows']} held-out windows of {result['window_s']:g} s")
    return "\n".join(lines)


def main_eval(args) -> int:
    result = evaluate(args.weights, args.music or None, args.seconds, tuple(args.seeds), args.genre or None)
    print(format_table(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return 0
