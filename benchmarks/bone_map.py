# SPDX-License-Identifier: GPL-3.0-or-later
"""Bone mapping table: every test rig convention (``tests/core/bone_map_rigs.py``, built in code), mapped
as a user's rig is (named profile when one fits, else hierarchy + rest pose) and by the hierarchy + rest
pose method alone (``profile='auto'``).

    .venv/bin/python benchmarks/bone_map.py

Per convention: joints mapped to the expected bone (or made up where the rig has no bone) / 22, the lowest
per-joint confidence, the profile used, the detected up axis and facing. Bad rigs (quadruped, one leg, two
pairs of arms, no hierarchy) list the error's first sentence. JSON in ``benchmarks/results/bone_map.json``.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "core")]

from bone_map_rigs import catalogue, quadruped, with_second_arms, without  # noqa: E402
from core_models.io.retarget import CANONICAL_JOINTS, RetargetError, map_bones  # noqa: E402


def _row(rig, profile):
    start = time.perf_counter()
    m = map_bones(rig.names, rig.parents, source_rest_positions=rig.rest_positions, profile=profile)
    seconds = time.perf_counter() - start
    right = sum(m.source_for.get(c) == rig.expected.get(c) for c in CANONICAL_JOINTS)
    return {"mapped": right, "expected": len(CANONICAL_JOINTS), "lowest_confidence": min(m.confidence.values()),
            "profile": m.profile, "up": m.up_axis, "facing": m.facing, "ms": round(1000 * seconds, 1)}


def main() -> int:
    rigs = catalogue()
    table = {name: {"notes": rig.notes, "bones": len(rig.names), "default": _row(rig, None), "auto": _row(rig, "auto")}
             for name, rig in rigs.items()}
    anon = rigs["anonymous"]
    bad = {"quadruped": quadruped(), "one_leg": without(catalogue()["anonymous"], anon.expected["right_hip"]),
           "two_arm_pairs": with_second_arms(catalogue()["anonymous"], (anon.expected["left_shoulder"],
                                             anon.expected["right_shoulder"]), anon.expected["spine3"])}
    errors = {}
    for name, rig in bad.items():
        try:
            map_bones(rig.names, rig.parents, source_rest_positions=rig.rest_positions)
            errors[name] = "MAPPED (should not be)"
        except RetargetError as exc:
            errors[name] = str(exc).split(" To fix it")[0]
    try:
        map_bones(anon.names, [-1] * len(anon.names), source_offsets=anon.rest_positions)
        errors["no_hierarchy"] = "MAPPED (should not be)"
    except RetargetError as exc:
        errors["no_hierarchy"] = str(exc).split(" To fix it")[0]
    print(f"{'convention':18s} {'bones':>5s}  {'default':>7s} {'min conf':>8s} {'profile':12s}  "
          f"{'auto':>5s} {'min conf':>8s} {'up':>3s} {'facing':>6s}  notes")
    for name, row in table.items():
        d, a = row["default"], row["auto"]
        print(f"{name:18s} {row['bones']:5d}  {d['mapped']:3d}/{d['expected']:<3d} {d['lowest_confidence']:8.2f} "
              f"{d['profile']:12s}  {a['mapped']:2d}/{a['expected']:<2d} {a['lowest_confidence']:8.2f} {a['up']:>3s} "
              f"{a['facing']:>6s}  {row['notes']}")
    for name, text in errors.items():
        print(f"{name}: {text[:300]}")
    out = ROOT / "benchmarks" / "results" / "bone_map.json"
    out.write_text(json.dumps({"conventions": table, "bad_input": errors}, indent=2, ensure_ascii=False) + "\n",
                   encoding="utf-8")
    return 0 if all(r["default"]["mapped"] == r["default"]["expected"] for r in table.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
