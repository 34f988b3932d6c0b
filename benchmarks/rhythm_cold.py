# SPDX-License-Identifier: GPL-3.0-or-later
"""Cold first call of ``audio.rhythm_features`` on 20 s of music in a fresh process: the numpy/scipy path
(core_models.rhythm) against the librosa path it replaced, measured in the same run. Prints JSON.

    python benchmarks/rhythm_cold.py [--music FILE] [--repeats N]

Each measurement is a new Python process that loads the 20-s excerpt (numpy only), then times the import
of what it needs plus the first call (``first_call_s``), then a second call (``warm_call_s``).
``process_s`` is the whole process, interpreter start included. The librosa path is the former
recipe: librosa.effects.percussive, onset_strength (median), beat_track and tempogram bin 0.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MUSIC = Path("/work/shared/data/music/Kevin_MacLeod_-_Vibe_Ace.ogg")

_CHILD = {
    "new": """
from core_models.audio import rhythm_features
out = rhythm_features(y, sr)
""",
    "librosa": """
import librosa
from core_models.audio import MUSIC55_COLUMNS, rhythm_from_music55
def run(y, sr):
    y = librosa.resample(y, orig_sr=sr, target_sr=15360).astype(np.float32) if sr != 15360 else y
    onset = librosa.onset.onset_strength(y=librosa.effects.percussive(y), sr=15360, hop_length=512,
                                         aggregate=np.median)
    _, beats = librosa.beat.beat_track(onset_envelope=onset, sr=15360, hop_length=512)
    feats = np.zeros((onset.shape[0], 55), np.float32)
    feats[:, MUSIC55_COLUMNS["onset"]] = onset
    feats[beats[beats < onset.shape[0]], MUSIC55_COLUMNS["beat"]] = 1.0
    feats[:, MUSIC55_COLUMNS["tempogram0"]] = librosa.feature.tempogram(onset_envelope=onset, sr=15360)[0]
    return rhythm_from_music55(feats)
out = run(y, sr)
""",
}


def _child_code(path: str, kind: str) -> str:
    first = _CHILD[kind]
    second = "out = rhythm_features(y, sr)" if kind == "new" else "out = run(y, sr)"
    return f"""
import json, sys, time
import numpy as np
data = np.load({path!r})
y, sr = data["y"], int(data["sr"])
t = time.perf_counter()
{first}
first = time.perf_counter() - t
t = time.perf_counter()
{second}
warm = time.perf_counter() - t
print(json.dumps({{"first_call_s": first, "warm_call_s": warm, "frames": int(out.shape[0]),
                  "librosa_loaded": "librosa" in sys.modules, "numba_loaded": "numba" in sys.modules}}))
"""


def _excerpt(music: Path):
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from core_models.audio import load_audio, synth_accompaniment

    if music.is_file():
        y, sr = load_audio(music)
        start = min(10 * sr, max(0, y.shape[-1] - 20 * sr))
        return y[start:start + 20 * sr].astype(np.float32), sr, str(music)
    return synth_accompaniment(np.arange(8, 600, 14), 600), 15360, "synth_accompaniment (no music file)"


def main() -> None:
    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--music", type=Path, default=DEFAULT_MUSIC)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    y, sr, source = _excerpt(args.music)
    result = {"audio": source, "seconds": round(y.shape[-1] / sr, 3), "sr": sr,
              "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
              "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "excerpt.npz")
        np.savez(path, y=y, sr=sr)
        for kind in ("new", "librosa"):
            runs = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                out = subprocess.run([sys.executable, "-c", _child_code(path, kind)], cwd=ROOT,
                                     capture_output=True, text=True, check=True)
                run = json.loads(out.stdout.strip().splitlines()[-1])
                run["process_s"] = time.perf_counter() - t
                runs.append(run)
            best = min(runs, key=lambda r: r["first_call_s"])
            result[kind] = {**best, "first_call_s_all": [round(r["first_call_s"], 3) for r in runs]}
    result["speedup_first_call"] = result["librosa"]["first_call_s"] / result["new"]["first_call_s"]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
