# SPDX-License-Identifier: GPL-3.0-or-later
"""The command line, run as a user would: python -m core_models ..."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from conftest import make_dance
from core_models.io import write_bvh
from core_models.io.bvh import bvh_from_rotations
from core_models.skeleton import BODY_JOINT_NAMES

REPO = Path(__file__).resolve().parents[2]


def _run(*args):
    return subprocess.run([sys.executable, "-m", "core_models", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def _mixamo_clip(path, frames=90):
    rot, root, skel, _ = make_dance(frames=frames)
    names = ["mixamorig:" + n for n in ("Hips", "LeftUpLeg", "RightUpLeg", "Spine", "LeftLeg", "RightLeg", "Spine1",
                                        "LeftFoot", "RightFoot", "Spine2", "LeftToeBase", "RightToeBase", "Neck",
                                        "LeftShoulder", "RightShoulder", "Head", "LeftArm", "RightArm",
                                        "LeftForeArm", "RightForeArm", "LeftHand", "RightHand")]
    clip = bvh_from_rotations(names, list(skel.parents), skel.offsets * 100.0, rot, root * 100.0, 1 / 60.0)
    write_bvh(path, clip)
    return path


def test_info_prints_summary_mapping_and_metrics(tmp_path):
    path = _mixamo_clip(tmp_path / "mixamo.bvh")
    out = _run("info", str(path), "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["source_frames"] == 90 and info["source_fps"] == 60.0
    assert info["frames"] == 45 and info["fps"] == 30.0 and info["duration_s"] == 1.5
    assert info["unit_scale_to_m"] == 0.01 and info["rig_profile"] == "mixamo"
    assert info["joints_mapped"]["left_knee"] == "mixamorig:LeftLeg"
    assert 0.0 <= info["fsr"] <= 1.0 and info["jitter"] > 0
    text = _run("info", str(path))
    assert "mapped      22/22" in text.stdout and "FSR" in text.stdout and "jitter" in text.stdout


def test_info_over_several_files_prints_corpus_line(tmp_path):
    a = _mixamo_clip(tmp_path / "a.bvh")
    b = _mixamo_clip(tmp_path / "b.bvh", frames=60)
    out = _run("info", str(a), str(b))
    assert out.returncode == 0 and "corpus: 2 clips, 75 frames" in out.stdout


def test_info_bad_input_exits_with_clear_error(tmp_path):
    bad = tmp_path / "truncated.bvh"
    text = _mixamo_clip(tmp_path / "ok.bvh").read_text()
    bad.write_text(text[: len(text) // 2])
    out = _run("info", str(bad))
    assert out.returncode == 2 and "truncated.bvh" in out.stderr and "error:" in out.stderr
    odd = tmp_path / "odd.bvh"
    rot, root, skel, _ = make_dance(frames=10)
    write_bvh(odd, bvh_from_rotations([f"b{i}" for i in range(22)], list(skel.parents), skel.offsets, rot, root, 1 / 30))
    out = _run("info", str(odd), "--json")       # meaningless names: mapped by hierarchy and rest pose
    assert out.returncode == 0 and json.loads(out.stdout)["rig_profile"] == "auto"
    keep = [i for i in range(22) if i not in (2, 5, 8, 11)]            # no right leg: nothing to guess from
    one_leg = tmp_path / "one_leg.bvh"
    write_bvh(one_leg, bvh_from_rotations([f"b{i}" for i in keep], [keep.index(p) if p >= 0 else -1 for p in
                                           np.asarray(skel.parents)[keep]], skel.offsets[keep], rot[:, keep], root,
                                          1 / 30))
    out = _run("info", str(one_leg))
    assert out.returncode == 2 and "right knee" in out.stderr and "--mapping" in out.stderr
    template = json.loads((tmp_path / "one_leg.mapping.json").read_text(encoding="utf-8"))
    assert template["right_knee"] == "" and str(tmp_path / "one_leg.mapping.json") in out.stderr
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({name: f"b{i}" for i, name in enumerate(BODY_JOINT_NAMES)}))
    out = _run("info", str(odd), "--mapping", str(mapping), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["joints_mapped"]["left_knee"] == "b4"


def test_demo_runs_end_to_end(tmp_path):
    out = _run("demo", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "demo_report.json").read_text())
    assert report["features_round_trip_max_error_m"] < 1e-9 and report["ik_fk_max_error_m"] < 1e-9
    assert Path(report["exported_bvh"]).is_file()
    assert np.isfinite(report["clip"]["fsr"])


def test_fix_feet_keeps_the_beats_of_a_generated_dance(tmp_path):
    """--beats keep: a generated dance fixed through the CLI has the same kinetic beat frames as before."""
    from core_models.cli import main
    from core_models.io import load_body_clip
    from core_models.metrics import motion_beats
    from generation_fixture import write_drum_track

    music = write_drum_track(tmp_path / "drums.wav", 12.0)
    dance, fixed = tmp_path / "dance.bvh", tmp_path / "fixed.bvh"
    assert main(["generate", "--music", str(music), "--out", str(dance), "--quiet"]) == 0
    assert main(["fix-feet", str(dance), "--out", str(fixed), "--method", "ik_lock", "--beats", "keep",
                 "--report", str(tmp_path / "r.json")]) == 0
    before, after = load_body_clip(dance).joints, load_body_clip(fixed).joints
    np.testing.assert_array_equal(motion_beats(before), motion_beats(after))
    assert json.loads((tmp_path / "r.json").read_text())["beats"] == "keep"
