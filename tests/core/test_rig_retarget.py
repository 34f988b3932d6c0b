# SPDX-License-Identifier: GPL-3.0-or-later
"""Retargeting (core_models.rig.retarget): a shipped CMU dance onto the Mixamo, UE5 (Z-up, also A-posed) and
Daz test rigs of ``bone_map_rigs`` and back, the figures of issue 18, unmapped bones at rest, a generated take
as the source, and the CLI's error paths."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

import bone_map_rigs
from bone_map_rigs import catalogue, quadruped
from core_models.features import features_to_joints
from core_models.io import read_bvh, write_bvh
from core_models.rig import command
from core_models.rig.compare import bone_direction_difference, leg_length, pelvis_path_difference
from core_models.metrics import foot_skating_ratio
from core_models.rig.retarget import retarget
from core_models.rig.rigs import load_source, rest_pose_clip
from motion_fixture import CMU, make_dance, rig_bvh

ROOT = Path(__file__).resolve().parents[2]
CLIP = ROOT / "core_models" / "assets" / "library" / "clips" / "CMU_18_15_Dance-32384fbc.npz"
RIGS = catalogue()


@pytest.fixture(scope="module")
def dance(tmp_path_factory) -> Path:
    """A shipped CMU dance clip (10 s) as a CMU-named BVH at 30 fps, centimetres."""
    joints = features_to_joints(np.load(CLIP)["features"])[:300]
    joints[..., 1] -= joints[:, [7, 8, 10, 11], 1].min()
    return rig_bvh(tmp_path_factory.mktemp("dance") / "dance.bvh", joints, fps=30.0, names=CMU)


def _rig_file(folder: Path, rig: bone_map_rigs.TestRig, name: str, order: str = "ZXY") -> Path:
    path = folder / f"{name}.bvh"
    write_bvh(path, rest_pose_clip(rig.names, rig.parents, rig.offsets, rotation_order=order))
    return path


def a_posed(rig: bone_map_rigs.TestRig, degrees: float = 45.0) -> bone_map_rigs.TestRig:
    """The rig with both arms (and everything below the upper arms) turned down about the forward axis."""
    from scipy.spatial.transform import Rotation

    out = bone_map_rigs.TestRig(rig.convention + "-a-pose", list(rig.names), list(rig.parents), [p.copy() for p in rig.rest],
                  dict(rig.expected), rig.notes)
    up = np.array([0.0, 0.0, 1.0]) if "Z-up" in rig.notes else np.array([0.0, 1.0, 0.0])
    for side in ("left", "right"):
        shoulder = rig.names.index(rig.expected[f"{side}_shoulder"])
        below = {shoulder}
        for k, p in enumerate(rig.parents):             # parents come before their children
            if p in below:
                below.add(k)
        below.discard(shoulder)
        elbow = rig.names.index(rig.expected[f"{side}_elbow"])
        arm = rig.rest[elbow] - rig.rest[shoulder]
        axis = np.cross(arm, up)
        turn = Rotation.from_rotvec(np.radians(degrees) * axis / np.linalg.norm(axis)).as_matrix()
        if np.dot(turn @ arm, up) > 0:
            turn = turn.T
        for k in below:
            out.rest[k] = rig.rest[shoulder] + turn @ (rig.rest[k] - rig.rest[shoulder])
    return out


@pytest.mark.parametrize("name", ["mixamo", "unreal_ue5", "daz_genesis8"])
def test_onto_test_rigs_meets_the_goals(dance, tmp_path, name):
    target = _rig_file(tmp_path, RIGS[name], name, order="XYZ" if name == "daz_genesis8" else "ZXY")
    result = retarget(dance, target)
    f = result.report["figures"]
    assert f["bone_direction_deg"] <= 10.0, f
    assert f["pelvis_path_legs"] <= 0.10, f
    assert f["fsr_target"] <= f["fsr_source"] + 0.02, f
    assert f["slide_target"] <= f["slide_source"] + 0.02, f
    rig, source = read_bvh(target), read_bvh(dance)
    clip = result.clip
    assert clip.names == rig.names and clip.channels == rig.channels and np.array_equal(clip.offsets, rig.offsets)
    assert clip.num_frames == source.num_frames and clip.frame_time == source.frame_time
    assert result.report["target"]["up_axis"] == ("+Z" if name == "unreal_ue5" else "+Y")
    out = tmp_path / "out.bvh"
    write_bvh(out, clip)
    again = retarget(dance, out)          # what was written reads back as the same rig
    assert again.report["target"]["profile"] == result.report["target"]["profile"]


def test_a_pose_and_t_pose_targets_get_the_same_motion(dance, tmp_path):
    t_pose = retarget(dance, _rig_file(tmp_path, RIGS["unreal_ue5"], "t"))
    a_rig = a_posed(RIGS["unreal_ue5"])
    a_pose = retarget(dance, _rig_file(tmp_path, a_rig, "a"))
    assert a_pose.report["target"]["up_axis"] == "+Z"
    assert np.abs(a_pose.target_joints - t_pose.target_joints).max() < 1e-6
    f = a_pose.report["figures"]
    assert f["bone_direction_deg"] <= 10.0 and f["pelvis_path_legs"] <= 0.10
    # the A-pose rig's arm channels are not the T-pose rig's: the rotations are relative to each rest pose
    col = a_pose.clip.channel_columns(a_pose.clip.index("upperarm_l"))
    assert np.abs(a_pose.clip.motion[:, col] - t_pose.clip.motion[:, col]).max() > 10.0


@pytest.mark.parametrize("name", ["mixamo", "unreal_ue5", "daz_genesis8"])
def test_round_trip_back_onto_the_source_rig(dance, tmp_path, name):
    there = retarget(dance, _rig_file(tmp_path, RIGS[name], name))
    back = retarget(there.clip, dance)
    source = load_source(dance)
    rest = source.canonical_rest()
    assert bone_direction_difference(there.source_joints, back.target_joints)["mean"] < 2.0
    path = pelvis_path_difference(there.source_joints, back.target_joints, leg_length(rest), leg_length(rest))
    assert path["mean"] < 0.02
    f = back.report["figures"]
    assert f["slide_target"] <= f["slide_source"] + 0.02
    # FSR of the dance brought back is the original's (the foot lock on the way out took nothing away)
    original = foot_skating_ratio(there.source_joints)["mean"]
    assert foot_skating_ratio(back.target_joints)["mean"] <= original + 0.02


def test_bones_without_a_source_keep_their_rest_pose(dance, tmp_path):
    result = retarget(dance, _rig_file(tmp_path, RIGS["unreal_ue5"], "ue5"))
    clip = result.clip
    kept = result.report["target"]["kept_at_rest"]
    for bone in ("upperarm_twist_01_l", "thigh_twistCor_01_r", "spine_02", "spine_04", "neck_02", "calf_correctiveRoot_l", "root"):
        assert bone in kept
        cols = [clip.channel_columns(clip.index(bone)).start + k for k, c in enumerate(clip.channels[clip.index(bone)])
                if c.endswith("rotation")]
        assert np.abs(clip.motion[:, cols]).max() < 1e-9, bone
    fingers = retarget(dance, _rig_file(tmp_path, RIGS["mixamo"], "mixamo"))
    finger = fingers.clip.index("mixamorig:LeftHandIndex2")
    assert np.abs(fingers.clip.motion[:, fingers.clip.channel_columns(finger)]).max() < 1e-9
    assert "mixamorig:LeftHandIndex2" in fingers.report["target"]["kept_at_rest"]


def test_generated_take_as_the_source(tmp_path):
    rot, root, skel, _ = make_dance(90, joints=55)
    take = tmp_path / "take.npz"
    np.savez(take, rotations=rot.astype(np.float32), root_translation=root.astype(np.float32), offsets=skel.offsets,
             parents=np.asarray(skel.parents), joint_names=np.asarray(skel.names), fps=np.float32(30.0))
    result = retarget(take, _rig_file(tmp_path, RIGS["daz_genesis8"], "daz"), foot_lock=False)
    assert result.clip.num_frames == 90 and result.report["source"]["profile"] == "smplx"
    assert result.report["figures"]["bone_direction_deg"] <= 10.0
    assert result.report["figures"]["pelvis_path_legs"] <= 0.10


def _cli(*argv) -> int:
    parser = argparse.ArgumentParser()
    command.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["retarget", *map(str, argv)])
    return args.func(args)


def test_cli_writes_the_target_hierarchy_and_a_report(dance, tmp_path, capsys):
    target = _rig_file(tmp_path, RIGS["daz_genesis8"], "daz")
    out, report = tmp_path / "out.bvh", tmp_path / "report.json"
    assert _cli(dance, "--onto", target, "--out", out, "--report", report) == 0
    assert read_bvh(out).names == read_bvh(target).names
    assert json.loads(report.read_text())["figures"]["bone_direction_deg"] <= 10.0
    assert "bone directions" in capsys.readouterr().out


def test_cli_unmappable_rig_names_mapping_and_writes_a_template(dance, tmp_path, capsys):
    q = quadruped()
    target = _rig_file(tmp_path, q, "quadruped")
    out = tmp_path / "out.bvh"
    assert _cli(dance, "--onto", target, "--out", out) == 2
    err = capsys.readouterr().err
    assert "quadruped" in err and "--mapping" in err and "to_map_bones" not in err
    template = tmp_path / "quadruped.mapping.json"
    assert template.is_file() and str(template) in err
    assert "_candidates" in json.loads(template.read_text())
    assert not out.exists()


def test_cli_refuses_to_overwrite_an_input(dance, tmp_path, capsys):
    target = _rig_file(tmp_path, RIGS["mixamo"], "mixamo")
    before = target.read_bytes()
    assert _cli(dance, "--onto", target, "--out", target) == 2
    assert "one of the inputs" in capsys.readouterr().err
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mixamo.bvh"]
