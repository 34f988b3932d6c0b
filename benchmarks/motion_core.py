# SPDX-License-Identifier: GPL-3.0-or-later
"""Motion-core throughput and exactness over the real mocap corpora; prints JSON.

For every clip of the Bandai Namco and CMU salsa archives (../shared/data/mocap, or CHOREO_MOCAP_DIR):
  timed pipeline   BVH parse + mapping to the canonical body (load_body_clip), 264-d features, IK;
  checks           BVH -> joints -> 264-d -> joints max error; joints -> IK -> FK max error on the
                   clip's own body skeleton; quaternion sign continuity; BVH write -> read max channel
                   error; FSR and jitter (the clean-mocap reference numbers).
Baseline in the same run: the same pipeline on one process (the timed run uses all cores).

Usage: python benchmarks/motion_core.py [--corpus bandai|cmu|all] [--limit N] [--workers N]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core_models import data, metrics  # noqa: E402
from core_models.features import features_to_joints, joints_to_features  # noqa: E402
from core_models.io import load_body_clip, read_bvh, write_bvh  # noqa: E402
from core_models.kinematics import fit_skeleton, forward_kinematics, inverse_kinematics  # noqa: E402
from core_models.skeleton import default_skeleton  # noqa: E402

TEMPLATE = default_skeleton(body_only=True)


def pipeline(path: str) -> dict:
    """The timed work for one clip: parse + map, features, IK."""
    t0 = time.perf_counter()
    clip = load_body_clip(path)
    t1 = time.perf_counter()
    feats, canon = joints_to_features(clip.joints, return_joints=True) if clip.num_frames >= 2 else (None, None)
    t2 = time.perf_counter()
    skel = fit_skeleton(clip.joints, TEMPLATE)
    rot, root = inverse_kinematics(clip.joints, skel)
    t3 = time.perf_counter()
    return {"clip": clip, "feats": feats, "canon": canon, "skel": skel, "rot": rot, "root": root,
            "t_load": t1 - t0, "t_features": t2 - t1, "t_ik": t3 - t2}


def timed_only(path: str) -> tuple[int, float, float, float]:
    r = pipeline(path)
    return r["clip"].num_frames, r["t_load"], r["t_features"], r["t_ik"]


def checks(path: str) -> dict:
    r = pipeline(path)
    clip = r["clip"]
    out = {"file": Path(path).name, "frames": clip.num_frames, "source_frames": clip.source_frames}
    if r["feats"] is not None:
        out["features_round_trip_m"] = float(np.abs(features_to_joints(r["feats"]) - r["canon"][:-1]).max())
    out["ik_fk_m"] = float(np.abs(forward_kinematics(r["rot"], r["root"], r["skel"]) - clip.joints).max())
    q = r["rot"]
    dots = (q[1:] * q[:-1]).sum(-1) if len(q) > 1 else np.ones(1)
    out["quat_min_dot"] = float(dots.min())
    out["quat_max_step_deg"] = float(np.degrees(2 * np.arccos(np.clip(dots.min(), -1, 1))))
    bvh = read_bvh(path)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "copy.bvh"
        write_bvh(copy, bvh)
        back = read_bvh(copy)
    out["bvh_write_read_max"] = float(np.abs(back.motion - bvh.motion).max())
    out["bvh_hierarchy_equal"] = back.names == bvh.names and back.parents == bvh.parents and \
        back.channels == bvh.channels and bool(np.allclose(back.offsets, bvh.offsets, atol=1e-6))
    out["fsr"] = metrics.foot_skating_ratio(clip.joints)["mean"]
    out["fsr_lodge"] = metrics.foot_skating_ratio(clip.joints, definition="lodge")["mean"]
    out["jitter"] = metrics.jitter(clip.joints) if clip.num_frames >= 4 else None
    return out


def run_corpus(name: str, files: list[str], workers: int) -> dict:
    t0 = time.perf_counter()
    with Pool(workers) as pool:
        timed = pool.map(timed_only, files, chunksize=8)
    wall = time.perf_counter() - t0
    frames = sum(t[0] for t in timed)
    # baseline: the same pipeline in this one process, on a sample of the clips
    sample = files[:: max(1, len(files) // 100)]
    t0 = time.perf_counter()
    base_frames = sum(timed_only(f)[0] for f in sample)
    base_wall = time.perf_counter() - t0
    with Pool(workers) as pool:
        rows = pool.map(checks, files, chunksize=8)
    jit = [r["jitter"] for r in rows if r["jitter"] is not None]
    result = {
        "clips": len(files), "frames_30fps": frames,
        "source_frames": sum(r["source_frames"] for r in rows),
        "pipeline_wall_s": round(wall, 2), "workers": workers,
        "frames_per_s": round(frames / wall, 1),
        "stage_cpu_s": {"parse_and_map": round(sum(t[1] for t in timed), 2),
                        "features": round(sum(t[2] for t in timed), 2), "ik": round(sum(t[3] for t in timed), 2)},
        "baseline_one_process_frames_per_s": round(base_frames / base_wall, 1),
        "speedup_vs_one_process": round((frames / wall) / (base_frames / base_wall), 2),
        "max_features_round_trip_m": max(r.get("features_round_trip_m", 0.0) for r in rows),
        "max_ik_fk_m": max(r["ik_fk_m"] for r in rows),
        "min_quat_dot": min(r["quat_min_dot"] for r in rows),
        "max_quat_step_deg": max(r["quat_max_step_deg"] for r in rows),
        "max_bvh_write_read": max(r["bvh_write_read_max"] for r in rows),
        "all_hierarchies_equal": all(r["bvh_hierarchy_equal"] for r in rows),
        "fsr_mean": float(np.mean([r["fsr"] for r in rows])),
        "fsr_lodge_mean": float(np.mean([r["fsr_lodge"] for r in rows])),
        "jitter_mean": float(np.mean(jit)) if jit else None,
        "worst_ik_clip": max(rows, key=lambda r: r["ik_fk_m"])["file"],
    }
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", default="all", choices=["bandai", "cmu", "all"])
    parser.add_argument("--limit", type=int, default=0, help="only the first N clips of each corpus")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    report = {"cpu_count": os.cpu_count()}
    for name in (["bandai", "cmu"] if args.corpus == "all" else [args.corpus]):
        files = [str(p) for p in data.mocap_files(name)]
        if not files:
            report[name] = "data not available (../shared/data/mocap or CHOREO_MOCAP_DIR)"
            continue
        if args.limit:
            files = files[:args.limit]
        report[name] = run_corpus(name, files, args.workers)
    text = json.dumps(report, indent=2)
    print(text)
    out = REPO / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / "motion_core.json").write_text(text)


if __name__ == "__main__":
    main()
