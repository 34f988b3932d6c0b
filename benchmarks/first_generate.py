# SPDX-License-Identifier: GPL-3.0-or-later
"""The first Generate of a fresh process, and the next one: what a new user waits for.

    python benchmarks/first_generate.py [--seconds 20] [--repeats 2] [--out results.json]

Each repeat starts a new Python process that imports the core, generates a dance for ``--seconds`` of
music (synthesised drums and bass, written once as a WAV) with the shipped compact weight set and the
starter library (automatic references), then generates again in the same process. Rows (JSON):
``cold`` -- from the process start (interpreter and imports included) to the first result;
``cold_in_generate`` -- the first ``generate`` call alone, with its stage timings;
``warm`` -- the second call. Ratio ``cold / warm`` in the same run. Backend "auto" (ONNX Runtime for the
compact set when installed) and, for comparison, torch.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from core_models.generation import Runtime, generate
from core_models.starter_library import open_libraries
music, backend = sys.argv[1], sys.argv[2]
t1 = time.perf_counter()
first = generate(music, "Popular", sys.argv[3], library=open_libraries(), seed=0, runtime=Runtime(backend=backend))
t2 = time.perf_counter()
second = generate(music, "Popular", sys.argv[3], library=open_libraries(), seed=1, runtime=Runtime(backend=backend))
t3 = time.perf_counter()
print(json.dumps({"imports_s": t1 - t0, "cold_in_generate_s": t2 - t1, "cold_s": t2 - t0, "warm_s": t3 - t2,
                  "first_timings": {k: round(v, 3) for k, v in first.timings.items()},
                  "device": first.device, "torch_loaded": "torch" in sys.modules,
                  "references": bool(first.references and first.references[0]["references"])}))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--backends", nargs="+", default=["auto", "torch"])
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO))
    import numpy as np
    import soundfile

    from core_models.audio import synth_accompaniment

    tmp = Path(tempfile.mkdtemp(prefix="choreo-first-"))
    music = tmp / "song.wav"
    frames = int(args.seconds * 30)
    soundfile.write(music, synth_accompaniment(np.arange(6, frames, 15.25), frames, sr=44100, seed=5), 44100)
    weights = REPO / "core_models" / "assets" / "compact"
    rows = {}
    for backend in args.backends:
        runs = []
        for _ in range(args.repeats):
            start = __import__("time").perf_counter()
            out = subprocess.run([sys.executable, "-c", CHILD, str(music), backend, str(weights)], cwd=REPO,
                                 capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
            wall = __import__("time").perf_counter() - start
            if out.returncode != 0:
                raise SystemExit(out.stderr[-2000:])
            got = json.loads(out.stdout.strip().splitlines()[-1])
            got["process_wall_s"] = wall
            runs.append(got)
        best = min(runs, key=lambda r: r["cold_s"])
        rows[backend] = {"cold_s": round(best["cold_s"], 3), "cold_in_generate_s": round(best["cold_in_generate_s"], 3),
                         "warm_s": round(min(r["warm_s"] for r in runs), 3),
                         "cold_over_warm": round(best["cold_s"] / min(r["warm_s"] for r in runs), 2),
                         "process_wall_s": round(best["process_wall_s"], 3), "device": best["device"],
                         "torch_loaded": best["torch_loaded"], "references_retrieved": best["references"],
                         "first_timings": best["first_timings"], "runs": len(runs)}
    result = {"benchmark": "first_generate", "music_seconds": args.seconds, "cpu_count": os.cpu_count(),
              "rows": rows}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
