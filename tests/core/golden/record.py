# SPDX-License-Identifier: GPL-3.0-or-later
"""Record (``python tests/core/golden/record.py``) or recompute the golden outputs of Generate and Fix Feet.

The golden file pins behaviour across refactors: the same seed and weights must give the same tokens, joints
and foot-fix output. Everything goes through the command line (``core_models.cli.main``), so module moves
behind it do not touch this file. Inputs: a tiny random compact weight set with a retrieval net (seeded), a
synthesised drum track, a two-clip reference library of shipped CMU clips, and a shipped CMU clip with
synthetic skating on a Mixamo-named BVH rig, fixed with the shipped FRDM set and with the IK lock.
"""
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
GOLDEN = HERE / "golden.npz"
REAL_CLIPS = ("CMU_131_01-02_Dance-5514e3cc", "CMU_143_34-35_Dance-c2f7e293")


def _setup_paths():
    for p in (str(ROOT), str(ROOT / "tests")):
        if p not in sys.path:
            sys.path.insert(0, p)


def _skated_rig(dest: Path) -> Path:
    from core_models.features import features_to_joints
    from core_models.skating import SkatingParams, add_skating
    from motion_fixture import rig_bvh

    features = np.load(ROOT / "core_models/assets/library/clips" / f"{REAL_CLIPS[0]}.npz")["features"]
    joints = features_to_joints(features.astype(np.float32))[:240]
    skated, _ = add_skating(joints, SkatingParams(seed=5))
    return rig_bvh(dest, np.asarray(skated, np.float64), fps=30.0)


def _library(dest: Path) -> Path:
    from core_models.library import Library

    lib = Library.create(dest)
    for name in REAL_CLIPS:
        features = np.load(ROOT / "core_models/assets/library/clips" / f"{name}.npz")["features"]
        lib.add(name, "Popular", features=features.astype(np.float32)[:420])
    return dest


def _bvh_channels(path: Path) -> np.ndarray:
    from core_models.io import read_bvh

    return np.asarray(read_bvh(path).motion, np.float64)


def compute() -> dict[str, np.ndarray]:
    """Run the golden commands in a scratch folder and return their outputs as arrays."""
    _setup_paths()
    from core_models.cli import main
    from generation_fixture import write_drum_track, write_tiny_compact_weight_set

    out: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        weights = write_tiny_compact_weight_set(tmp / "tiny", seed=1, retrieval=True)
        music = write_drum_track(tmp / "drums.wav", 9.0)
        library = _library(tmp / "lib")
        runs = {"plain": ["--no-references"],
                "refs": ["--library", str(library), "--no-starter-library"]}
        for key, extra in runs.items():
            npz = tmp / f"{key}.npz"
            rc = main(["generate", "--music", str(music), "--genre", "Popular", "--weights", str(weights),
                       "--out", str(npz), "--seed", "3", "--backend", "torch", "--device", "cpu", "--quiet",
                       "--allow-untrained-genre", *extra])
            assert rc == 0, f"generate {key} failed"
            with np.load(npz) as d:
                for name in d.files:
                    if d[name].dtype.kind in "fiub":
                        out[f"gen_{key}_{name}"] = np.asarray(d[name])
        rig = _skated_rig(tmp / "skated.bvh")
        for method in ("frdm", "ik_lock"):
            bvh, report = tmp / f"fixed_{method}.bvh", tmp / f"fix_{method}.json"
            rc = main(["fix-feet", str(rig), "--out", str(bvh), "--report", str(report), "--method", method,
                       "--backend", "torch", "--device", "cpu", "--seed", "0"])
            assert rc == 0, f"fix-feet {method} failed"
            out[f"fix_{method}_channels"] = _bvh_channels(bvh)
            r = json.loads(report.read_text())
            out[f"fix_{method}_fsr"] = np.array([r["fsr_before"]["mean"], r["fsr_after"]["mean"]])
    return out


if __name__ == "__main__":
    arrays = compute()
    np.savez_compressed(GOLDEN, **arrays)
    for k, v in sorted(arrays.items()):
        print(f"{k:32s} {str(v.shape):16s} {v.dtype}")
