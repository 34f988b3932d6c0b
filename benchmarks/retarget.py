# SPDX-License-Identifier: GPL-3.0-or-later
"""Retarget figures (issue 18): a Bandai dance onto the Mixamo, UE5, UE4 (Z-up, A-pose) and Daz test rigs
(``tests/core/bone_map_rigs.py``, built in code in their own proportions) and back onto the source rig.

    .venv/bin/python benchmarks/retarget.py [--seconds 63]

Per rig: mean bone-direction difference in the body's facing frame (degrees; goal <= 10), pelvis path
difference in leg lengths (goal <= 0.10), FSR before -> after (``metrics.foot_skating_ratio``; goal: after <=
before + 2 points) and the share of the source's contact frames that slide (the same contacts on both bodies),
for source -> rig and for source -> rig -> source rig. Without the Bandai data a shipped CMU library clip
(264-d features) is written as a BVH and used instead. JSON in ``benchmarks/results/retarget.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "core")]

from bone_map_rigs import catalogue  # noqa: E402
from core_models.io import read_bvh, write_bvh  # noqa: E402
from core_models.rig.compare import leg_length  # noqa: E402
from core_models.rig.retarget import figures, retarget  # noqa: E402
from core_models.rig.rigs import load_source, rest_pose_clip  # noqa: E402

BANDAI = "Bandai-Namco-Research-Motiondataset-1/data/dataset-1_dance-short_normal_001.bvh"
CMU_CLIP = ROOT / "core_models" / "assets" / "library" / "clips" / "CMU_18_15_Dance-32384fbc.npz"
RIGS = ("mixamo", "unreal_ue5", "unreal_ue4", "daz_genesis8")


def source_clip(folder: Path, seconds: float):
    """(BVH clip, description): the Bandai dance, else the shipped CMU clip as a BVH."""
    from core_models.data import mocap_dir

    bandai = mocap_dir("bandai")
    if bandai is not None and (bandai / BANDAI).is_file():
        clip = read_bvh(bandai / BANDAI)
        what = f"Bandai {Path(BANDAI).name}"
    else:
        from core_models.features import features_to_joints
        from motion_fixture import CMU, rig_bvh

        joints = features_to_joints(np.load(CMU_CLIP)["features"])
        joints[..., 1] -= joints[:, [7, 8, 10, 11], 1].min()
        clip = read_bvh(rig_bvh(folder / "cmu.bvh", joints, fps=30.0, names=CMU))
        what = f"CMU library clip {CMU_CLIP.name} (Bandai data absent)"
    clip.motion = clip.motion[:int(round(seconds * clip.fps))]
    return clip, what


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=63.0, help="length of the dance used")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "retarget.json"))
    args = parser.parse_args(argv)
    rigs = catalogue()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clip, what = source_clip(Path(tmp), args.seconds)
        source = load_source(clip)
        source_leg = leg_length(source.canonical_rest())
        for name in RIGS:
            rig = rigs[name]
            start = time.perf_counter()
            there = retarget(source, rest_pose_clip(rig.names, rig.parents, rig.offsets))
            seconds = time.perf_counter() - start
            back = retarget(there.clip, clip)
            trip = figures(there.source_joints, back.target_joints, source_leg, source_leg)
            rows.append({"rig": name, "notes": rig.notes, "up_axis": there.report["target"]["up_axis"],
                         "scale": there.report["scale"], "seconds": round(seconds, 3),
                         "onto_rig": there.report["figures"], "round_trip": trip,
                         "foot_lock_applied": there.report["foot_lock"]["applied"]})
    result = {"source": what, "frames": int(clip.num_frames), "fps": clip.fps, "rows": rows,
              "goals": {"bone_direction_deg": 10.0, "pelvis_path_legs": 0.10, "fsr_after_minus_before": 0.02}}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"{what}: {clip.num_frames} frames at {clip.fps:g} fps")
    print(f"{'rig':14s} {'way':10s} {'bone dir (deg)':>14s} {'pelvis (legs)':>13s} {'FSR before->after':>18s} "
          f"{'sliding on source contacts':>27s}")
    for r in rows:
        for way in ("onto_rig", "round_trip"):
            f = r[way]
            print(f"{r['rig']:14s} {way:10s} {f['bone_direction_deg']:14.2f} {f['pelvis_path_legs']:13.4f} "
                  f"{100 * f['fsr_source']:8.1f} -> {100 * f['fsr_target']:5.1f} % "
                  f"{100 * f['slide_source']:14.1f} -> {100 * f['slide_target']:5.1f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
