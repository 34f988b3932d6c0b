# SPDX-License-Identifier: GPL-3.0-or-later
"""Editing a take: repeat and mirror phrases, key poses, paths, beat-snapped ranges (real CMU dance motion
from the shipped library, real audio decoding of a synthesised drum track)."""
import json
from pathlib import Path

import numpy as np
import pytest

from core_models.editing import EditError, Take, load_take, save_take
from core_models.editing.constraints import distance_to_polyline, follow_path, hold_key_pose, key_error, key_for_body
from core_models.editing.frames import dancer_frame_joints, facing_yaw
from core_models.editing.music_structure import find_meter, music_grid, snap_range, suggest_repeats
from core_models.editing.phrases import mirror_joints, repeat_phrase
from core_models.editing.seams import seam_report
from core_models.features import features_to_joints
from core_models.io.motion_file import body_motion_from_joints, full_skeleton_from_body
from core_models.kinematics import fit_skeleton
from core_models.metrics import foot_skating_ratio
from core_models.skeleton import default_skeleton

CLIPS = Path(__file__).resolve().parents[2] / "core_models/assets/library/clips"


def take_of_clip(name: str, seconds: float = 20.0) -> Take:
    features = np.load(CLIPS / f"{name}.npz")["features"].astype(np.float64)[:int(seconds * 30)]
    joints = features_to_joints(features)
    skeleton = full_skeleton_from_body(fit_skeleton(joints, default_skeleton(body_only=True)))
    m = body_motion_from_joints(joints, 30.0, skeleton=skeleton)
    return Take(m.rotations, m.root_translation, m.skeleton, np.zeros((0, 3)), (0.0, seconds), genre="Popular")


@pytest.fixture(scope="module")
def take():
    return take_of_clip("CMU_131_01-02_Dance-5514e3cc", 18.0)


@pytest.fixture(scope="module")
def other():
    return take_of_clip("CMU_143_34-35_Dance-c2f7e293", 12.0)


def test_take_round_trip(tmp_path, take):
    t2 = take.with_motion(take.rotations, take.root, {"edit": "test"})
    save_take(t2, tmp_path / "t.npz")
    back = load_take(tmp_path / "t.npz")
    assert back.edits == [{"edit": "test"}] and take.edits == []
    np.testing.assert_allclose(back.joints(), t2.joints(), atol=1e-4)
    assert back.span_s == (0.0, 18.0)
    with pytest.raises(EditError, match="does not exist"):
        load_take(tmp_path / "missing.npz")


@pytest.mark.parametrize("mirror", [False, True])
def test_repeat_copies_the_phrase_and_keeps_the_rest(take, mirror):
    a, b, at = 60, 180, 330
    new, report = repeat_phrase(take, a, b, at, mirror=mirror)
    before, after = take.joints(), new.joints()
    np.testing.assert_array_equal(after[:at], before[:at])
    np.testing.assert_array_equal(after[at + b - a:], before[at + b - a:])
    src = dancer_frame_joints(before[a:b], facing_yaw(take.rotations[a:b, 0]))
    if mirror:
        src = mirror_joints(src, take.skeleton.names[:22])
    copy = dancer_frame_joints(after[at:at + b - a], facing_yaw(new.rotations[at:at + b - a, 0]))
    m = report["margin_frames"]
    err = np.linalg.norm(src - copy, axis=-1)[m:-m].max()
    assert err < 0.05, err
    assert report["copy_error_m"] == pytest.approx(err, abs=1e-9)
    assert report["seams"]["seam_frames"] == [at, at + b - a] and report["seams"]["seam_jerk_ratio"] > 0
    if not mirror:
        assert err < 1e-6
    else:          # a mirror image really is different from the phrase
        assert np.linalg.norm(src - dancer_frame_joints(before[a:b], facing_yaw(take.rotations[a:b, 0])),
                              axis=-1).max() > 0.1
    assert report["range_frames"] == [at, at + b - a]
    assert new.edits[-1]["edit"] == "repeat" and not take.edits


def test_repeat_onto_itself_is_refused(take):
    with pytest.raises(EditError, match="onto itself"):
        repeat_phrase(take, 60, 180, 100, mirror=True)
    with pytest.raises(EditError, match="take ends"):
        repeat_phrase(take, 60, 180, take.num_frames - 30)


def test_key_pose_from_another_take(take, other):
    frame, key_frame = 250, 200
    new, report = hold_key_pose(take, frame, other.rotations[key_frame], source="other:200")
    err = key_error(new, frame, other.joints()[key_frame], facing_yaw(other.rotations[key_frame:key_frame + 1, 0])[0])
    assert err < 0.03, err
    assert key_error(take, frame, other.joints()[key_frame],
                     facing_yaw(other.rotations[key_frame:key_frame + 1, 0])[0]) > 0.1
    lo, hi = report["window_frames"]
    np.testing.assert_array_equal(new.joints()[:lo], take.joints()[:lo])
    np.testing.assert_array_equal(new.joints()[hi:], take.joints()[hi:])
    with pytest.raises(EditError, match="outside the take"):
        hold_key_pose(take, take.num_frames + 5, other.rotations[0])


def test_key_pose_from_a_dancer_with_other_bones(take, other):
    """Takes generated apart fit their own skeletons: the key is reached on the take's bones, not copied."""
    from dataclasses import replace

    offsets = other.skeleton.offsets.copy()
    legs = [other.skeleton.index(n) for n in ("left_knee", "right_knee", "left_ankle", "right_ankle")]
    offsets[legs] *= 1.06
    longer = replace(other, skeleton=other.skeleton.with_offsets(offsets))
    frame, key_frame = 250, 200
    yaw = facing_yaw(longer.rotations[key_frame:key_frame + 1, 0])[0]
    copied, _ = hold_key_pose(take, frame, longer.rotations[key_frame])
    key, difference = key_for_body(take, longer, key_frame, frame)
    reached, _ = hold_key_pose(take, frame, key)
    err = key_error(reached, frame, longer.joints()[key_frame], yaw)
    assert difference > 0.04
    assert err <= difference + 0.005, (err, difference)
    assert err < key_error(copied, frame, longer.joints()[key_frame], yaw) - 0.005
    same, none = key_for_body(take, take, 100, frame)
    assert none == 0.0 and np.array_equal(same, take.rotations[100])


def test_follow_path(take):
    start = take.root[0, [0, 2]]
    points = np.array([[start[0], 0, start[1]], [start[0] + 1.5, 0, start[1] + 0.5], [start[0] + 2.5, 0,
                       start[1] + 2.0]])
    new, report = follow_path(take, points)
    root = new.joints()[:, 0, [0, 2]]
    assert distance_to_polyline(root, points[:, [0, 2]]).max() <= 0.15
    assert report["fsr_after"] <= report["fsr_before"] + 1e-9
    assert np.linalg.norm(root[-1] - points[-1, [0, 2]]) < 0.3          # it gets to the end of the curve
    with pytest.raises(EditError, match="no points"):
        follow_path(take, np.zeros((0, 3)))


def test_snap_and_suggest(tmp_path):
    from core_models.audio import load_audio
    from generation_fixture import write_drum_track

    y, sr = load_audio(write_drum_track(tmp_path / "drums.wav", 20.0))
    grid = music_grid(y, sr, 0.0, 20.0, key="drums")
    assert grid.beats.size > 30 and abs(np.median(np.diff(grid.beats)) - 15) <= 1     # 120 bpm at 30 fps
    s, e, unit = snap_range(grid, 100, 230, 600)
    marks = grid.bars if grid.meter else grid.beats
    assert s in marks and e in marks and unit in ("bars", "beats")
    with pytest.raises(EditError, match="shorter than one beat"):
        snap_range(grid, 100, 105, 600)
    with pytest.raises(EditError, match="whole take"):
        snap_range(grid, 0, 600, 600)
    with pytest.raises(EditError, match="outside the take"):
        snap_range(grid, 500, 700, 600)


def test_meter_from_accented_beats():
    beats = np.arange(0, 480, 15)
    onset = np.ones(500)
    onset[beats[1::4]] = 3.0            # every fourth beat accented, starting at the second
    assert find_meter(onset, beats) == (4, 1)
    assert find_meter(np.ones(500), beats)[0] is None


def test_fix_feet_of_a_take_is_a_new_take_with_only_root_and_legs_changed(take, tmp_path, capsys):
    """``fix-feet TAKE.npz --out NEW.npz``: the foot fix of the take's body written back by the rig solver."""
    from core_models.cli import main
    from core_models.footfix import fix_feet
    from core_models.skating import SkatingParams, add_skating

    skated_joints, _ = add_skating(take.joints(), SkatingParams(seed=3, root_drift_speed=0.0))
    body = body_motion_from_joints(skated_joints, take.fps, skeleton=take.skeleton.subset(22))
    rotations = take.rotations.copy()
    rotations[:, :22] = body.rotations
    skated = take.with_motion(rotations, body.root_translation, {"edit": "test skating"})
    src, out, bvh, report = tmp_path / "take.npz", tmp_path / "fixed.npz", tmp_path / "fixed.bvh", tmp_path / "r.json"
    save_take(skated, src)
    before = src.read_bytes()
    assert main(["fix-feet", str(src), "--method", "ik_lock", "--out", str(out), "--report", str(report)]) == 0
    assert src.read_bytes() == before
    fixed = load_take(out)
    assert fixed.edits[-1] == {"edit": "fix_feet", "method": "ik_lock", "unchanged": False}
    saved = load_take(src)                   # the take as stored (float32 on disk)
    expected = fix_feet(saved.joints(), fps=take.fps, method="ik_lock", beats="keep").joints
    np.testing.assert_allclose(fixed.joints(), expected, atol=1e-5)
    legs_and_root = [0, 1, 2, 4, 5, 7, 8, 10, 11]
    keep = [j for j in range(fixed.rotations.shape[1]) if j not in legs_and_root]
    np.testing.assert_array_equal(fixed.rotations[:, keep], saved.rotations[:, keep])
    r = json.loads(report.read_text())
    assert r["fsr_after"]["mean"] < r["fsr_before"]["mean"] and r["upper_body_change_m"] == 0
    assert main(["fix-feet", str(src), "--method", "ik_lock", "--out", str(bvh)]) == 0 and bvh.stat().st_size > 0
    assert main(["fix-feet", str(src), "--out", str(tmp_path / "fixed.txt")]) == 2
    assert "take .npz" in capsys.readouterr().err
