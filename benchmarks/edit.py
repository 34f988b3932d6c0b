# SPDX-License-Identifier: GPL-3.0-or-later
"""Regenerating a range of a long take, against the Generate that made it (same process, same machine).

    python benchmarks/edit.py [--minutes 3] [--range-seconds 4] [--ranges 6] [--out results/edit.json]

The music is ``--minutes`` of the songs in ``../shared/data/music`` played one after another (synthesised
drums and bass when that folder is absent). A take is generated for all of it with the shipped compact set
and the starter library, then ``--ranges`` ranges of ``--range-seconds`` spread over the take are
regenerated one after another. Rows: ``generate_s`` (the baseline), per range its seconds, snapped frames,
seam jerk ratio and candidates; ``first_range_s`` includes the song's analysis for editing (cached after);
``warm_range_s`` median and max of the others, and their ratio to ``generate_s``. Goal: a warm range of
4 s on a 3-minute take in at most 2 s on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def long_song(path: Path, seconds: float) -> str:
    import soundfile

    from core_models.audio import load_audio

    songs = sorted((REPO.parent / "shared" / "data" / "music").glob("*.ogg"))
    if not songs:
        from generation_fixture import write_drum_track

        write_drum_track(path, seconds)
        return "synthesised drums and bass"
    parts, sr, names = [], 22050, []
    while sum(p.size for p in parts) < seconds * sr:
        for song in songs:
            y, _ = load_audio(song, sr=sr)
            parts.append(y if y.ndim == 1 else y.mean(axis=1))
            names.append(song.stem)
            if sum(p.size for p in parts) >= seconds * sr:
                break
    soundfile.write(path, np.concatenate(parts)[:int(seconds * sr)].astype(np.float32), sr)
    return " + ".join(names)


def main(argv=None) -> int:
    from core_models.editing import take_from_generation
    from core_models.editing.regenerate import regenerate_range
    from core_models.generation import Span, generate
    from core_models.starter_library import open_libraries

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=3.0)
    p.add_argument("--range-seconds", type=float, default=4.0)
    p.add_argument("--ranges", type=int, default=6)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "edit.json"))
    args = p.parse_args(argv)
    weights = REPO / "core_models" / "assets" / "compact"
    with tempfile.TemporaryDirectory() as tmp:
        song = Path(tmp) / "song.wav"
        what = long_song(song, 60 * args.minutes)
        library = open_libraries(None, with_shipped=True)
        t0 = time.perf_counter()
        result = generate(str(song), "Popular", weights, span=Span(0.0, None), library=library)
        generate_s = time.perf_counter() - t0
        take = take_from_generation(result, {"weight_set": str(weights)})
        rows = []
        span = take.duration_s - args.range_seconds - 2.0
        for k in range(args.ranges):
            start = 1.0 + span * (k + 0.5) / args.ranges
            t = time.perf_counter()
            _, report = regenerate_range(take, song, start, start + args.range_seconds, weights, library=library)
            rows.append({"start_s": round(start, 2), "seconds": round(time.perf_counter() - t, 3),
                         "range_frames": report["range_frames"],
                         "seam_jerk_ratio": round(report["seams"]["seam_jerk_ratio"], 3),
                         "candidates": len(report["candidates"])})
    warm = [r["seconds"] for r in rows[1:]]
    out = {"music": what, "take_seconds": round(take.duration_s, 1), "generate_s": round(generate_s, 3),
           "first_range_s": rows[0]["seconds"], "warm_range_s": {"median": statistics.median(warm), "max": max(warm)},
           "warm_median_over_generate": round(statistics.median(warm) / generate_s, 4), "ranges": rows,
           "machine": {"cpus": os.cpu_count(), "load": os.getloadavg()[0], "python": platform.python_version()}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
