# SPDX-License-Identifier: GPL-3.0-or-later
"""Takes in real Blender: every Generate is a take (an action with its parameters and tokens), the Takes
operators switch, duplicate and delete them, and the edits (regenerate a range, key the current pose, follow
a curve, repeat bars, accept a suggested repeat, key another take's or a library clip's pose) each make a NEW
take and are one undo step; bad input leaves no new action; a save and reload keeps everything.

This module installs its own copy of the extension (test_extension.py removes its copy at its end).
"""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import bpy
from bl_pkg import bl_extension_cli

REPO = Path(__file__).resolve().parents[2]
MODULE = "bl_ext.user_default.choreo"
TAKE_OPERATORS = ("take_use", "take_duplicate", "take_delete", "take_regenerate", "take_key_pose",
                  "take_follow_curve", "take_repeat", "take_suggest_repeats", "take_accept_repeat")


@pytest.fixture(scope="module")
def ext(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    assert bl_extension_cli.cli_extension_handler(["build", "--source-dir", str(REPO), "--output-dir", str(out)]) \
        in (0, None)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    (built,) = out.glob("choreo-*.zip")
    assert bpy.ops.extensions.package_install_files(filepath=str(built), repo="user_default",
                                                    enable_on_install=True) == {"FINISHED"}
    yield sys.modules[MODULE]
    repos = bpy.context.preferences.extensions.repos
    index = next(i for i, r in enumerate(repos) if r.module == "user_default")
    bpy.ops.extensions.package_uninstall(repo_index=index, pkg_id="choreo")


@pytest.fixture(scope="module")
def weight_set(tmp_path_factory):
    from generation_fixture import write_tiny_compact_weight_set

    return write_tiny_compact_weight_set(tmp_path_factory.mktemp("weights") / "compact")


@pytest.fixture(scope="module")
def drum_track(tmp_path_factory):
    from generation_fixture import write_drum_track

    return write_drum_track(tmp_path_factory.mktemp("music") / "drums.wav", 6.0)


@pytest.fixture
def dancer(ext, weight_set, drum_track):
    """A fresh scene at 30 fps with one generated dancer (6 s of drums from frame 1: frames 1-180)."""
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    for action in list(bpy.data.actions):
        bpy.data.actions.remove(action)
    for curve in list(bpy.data.curves):
        bpy.data.curves.remove(curve)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    scene.use_preview_range = False
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.weights_path, prefs.device = str(weight_set), "cpu"
    settings = scene.choreo
    settings.music_source, settings.music_file, settings.genre, settings.seed = "FILE", str(drum_track), "Latin", 7
    settings.start_frame = 1
    assert bpy.ops.choreo.generate() == {"FINISHED"}
    (obj,) = [o for o in bpy.data.objects if o.type == "ARMATURE"]
    yield obj
    prefs.weights_path, prefs.device = "", "auto"


def _takes(obj):
    return sys.modules[MODULE].addon.scene.takes.dancer_takes(obj)


def _channel(obj, action, bone, prop, frames):
    """(F, n) values of a pose-bone channel of ``action`` at scene frames."""
    fcurves = sys.modules[MODULE].addon.scene.keyframes.action_fcurves
    previous = obj.animation_data.action
    sys.modules[MODULE].addon.scene.takes.use_take(obj, action)
    curves = {(fc.data_path, fc.array_index): fc for fc in fcurves(action, obj)}
    size = 4 if prop == "rotation_quaternion" else 3
    values = np.array([[curves[(f'pose.bones["{bone}"].{prop}', i)].evaluate(f) for i in range(size)]
                       for f in frames])
    sys.modules[MODULE].addon.scene.takes.use_take(obj, previous)
    return values


def test_every_take_operator_is_registered_and_one_undo_step(ext):
    for name in TAKE_OPERATORS:
        assert hasattr(bpy.ops.choreo, name)
        cls = getattr(bpy.types, "CHOREO_OT_" + name)
        assert cls.bl_options == {"REGISTER", "UNDO"}, name
    assert hasattr(bpy.types, "CHOREO_PT_takes")


def test_generate_is_a_take_listed_switched_duplicated_and_deleted(dancer):
    action = dancer.animation_data.action
    info = json.loads(action["choreo_take"])
    assert info["genre"] == "Latin" and info["seed"] == 7 and info["start_frame"] == 1 and info["frames_30"] == 180
    assert info["span_s"] == pytest.approx([0.0, 6.0]) and info["params"]["music"].endswith("drums.wav")
    assert info["params"]["sampling"]["top_k"] == bpy.context.scene.choreo.top_k and info["edits"] == []
    assert len(action["choreo_take_tokens"]) == 3 * 45 and action.use_fake_user
    assert _takes(dancer) == [action]

    assert bpy.ops.choreo.take_duplicate() == {"FINISHED"}
    copy = dancer.animation_data.action
    assert copy != action and set(_takes(dancer)) == {action, copy}
    assert list(copy["choreo_take_tokens"]) == list(action["choreo_take_tokens"])
    assert bpy.ops.choreo.take_use(action=action.name) == {"FINISHED"}
    assert dancer.animation_data.action == action
    # the playing take is deleted only with a replacement: the other take plays
    assert bpy.ops.choreo.take_delete(action=action.name) == {"FINISHED"}
    assert dancer.animation_data.action == copy and _takes(dancer) == [copy]
    with pytest.raises(RuntimeError, match="only take"):
        bpy.ops.choreo.take_delete(action=copy.name)
    assert _takes(dancer) == [copy]


def test_regenerate_the_preview_range_is_a_new_take(dancer):
    scene = bpy.context.scene
    source = dancer.animation_data.action
    scene.use_preview_range, scene.frame_preview_start, scene.frame_preview_end = True, 61, 120
    before = set(bpy.data.actions)
    assert bpy.ops.choreo.take_regenerate() == {"FINISHED"}
    (new,) = set(bpy.data.actions) - before
    assert dancer.animation_data.action == new and new in _takes(dancer)
    report = scene.choreo.last_report
    assert "Regenerated frames" in report and "seam jerk" in report, report
    edit = json.loads(new["choreo_take"])["edits"][-1]
    lo, hi = edit["range_frames"]
    assert edit["edit"] == "regenerate" and 0 <= lo < hi <= 180
    frames = np.arange(1, 181)
    old_rot = _channel(dancer, source, "left_knee", "rotation_quaternion", frames)
    new_rot = _channel(dancer, new, "left_knee", "rotation_quaternion", frames)
    assert not np.allclose(old_rot[lo:hi], new_rot[lo:hi], atol=1e-3)          # it dances anew inside
    outside = np.r_[0:max(0, lo - 20), min(180, hi + 20):180]                   # beyond the blends: the take
    assert np.allclose(old_rot[outside], new_rot[outside], atol=1e-4)
    assert len(new["choreo_take_tokens"]) == len(source["choreo_take_tokens"])


def test_key_the_current_pose_at_the_current_frame(dancer):
    scene = bpy.context.scene
    scene.frame_set(90)
    bone = dancer.pose.bones["left_elbow"]
    posed = np.array([0.8, 0.6, 0.0, 0.0])
    bone.rotation_quaternion = posed.tolist()          # posed, not keyed
    before = set(bpy.data.actions)
    assert bpy.ops.choreo.take_key_pose() == {"FINISHED"}
    (new,) = set(bpy.data.actions) - before
    assert dancer.animation_data.action == new and json.loads(new["choreo_take"])["edits"][-1]["frame"] == 89
    got = _channel(dancer, new, "left_elbow", "rotation_quaternion", [90])[0]
    assert min(np.abs(got - posed).max(), np.abs(got + posed).max()) < 1e-3


def _curve(name, points):
    data = bpy.data.curves.new(name, "CURVE")
    data.dimensions = "3D"
    if points:
        spline = data.splines.new("POLY")
        spline.points.add(len(points) - 1)
        for p, co in zip(spline.points, points):
            p.co = (*co, 1.0)
    obj = bpy.data.objects.new(name, data)
    bpy.context.scene.collection.objects.link(obj)
    return obj


def test_follow_a_curve(dancer):
    curve = _curve("Path", [(0.0, 0.0, 0.0), (1.0, -1.0, 0.0), (2.0, -1.0, 0.0)])     # Blender: Z up
    bpy.context.view_layer.objects.active = dancer
    bpy.context.scene.choreo_take_curve = curve
    before = set(bpy.data.actions)
    assert bpy.ops.choreo.take_follow_curve() == {"FINISHED"}, bpy.context.scene.choreo.last_report
    (new,) = set(bpy.data.actions) - before
    assert dancer.animation_data.action == new and "follows 'Path'" in bpy.context.scene.choreo.last_report
    # the pelvis ends near the curve's end (world x 2, y -1)
    bpy.context.scene.frame_set(180)
    head = np.array(dancer.matrix_world @ dancer.pose.bones["pelvis"].head)
    assert np.hypot(head[0] - 2.0, head[1] + 1.0) < 0.2


@pytest.mark.parametrize("case", ["no_range", "outside_music", "key_outside", "empty_curve", "not_a_take"])
def test_bad_input_reports_and_adds_no_take(dancer, case):
    scene = bpy.context.scene
    if case == "no_range":
        call = bpy.ops.choreo.take_regenerate
    elif case == "outside_music":
        scene.use_preview_range, scene.frame_preview_start, scene.frame_preview_end = True, 150, 400
        call = bpy.ops.choreo.take_regenerate
    elif case == "key_outside":
        scene.frame_set(500)
        call = bpy.ops.choreo.take_key_pose
    elif case == "empty_curve":
        scene.choreo_take_curve = _curve("Empty", [])
        bpy.context.view_layer.objects.active = dancer
        call = bpy.ops.choreo.take_follow_curve
    else:
        dancer.animation_data.action = bpy.data.actions.new("Hand made")
        call = bpy.ops.choreo.take_key_pose
    before = set(bpy.data.actions)
    with pytest.raises(RuntimeError):
        call()
    assert set(bpy.data.actions) == before
    assert scene.choreo.last_report


def test_save_and_reload_keeps_the_takes(dancer, tmp_path):
    assert bpy.ops.choreo.take_duplicate() == {"FINISHED"}
    names = sorted(a.name for a in _takes(dancer))
    playing = dancer.animation_data.action.name
    path = tmp_path / "takes.blend"
    assert bpy.ops.wm.save_as_mainfile(filepath=str(path)) == {"FINISHED"}
    assert bpy.ops.wm.open_mainfile(filepath=str(path)) == {"FINISHED"}
    (obj,) = [o for o in bpy.data.objects if o.type == "ARMATURE"]
    assert sorted(a.name for a in _takes(obj)) == names and obj.animation_data.action.name == playing
    take = sys.modules[MODULE].addon.scene.takes.read_take(obj, bpy.context.scene)
    assert take.num_frames == 180 and take.tokens.shape == (45, 3) and take.genre == "Latin"
    # and an edit goes on from the reloaded take
    bpy.context.view_layer.objects.active = obj
    bpy.context.scene.frame_set(30)
    assert bpy.ops.choreo.take_key_pose() == {"FINISHED"}
    assert len(_takes(obj)) == len(names) + 1


def test_repeat_a_phrase_mirrored_and_not_onto_itself(dancer):
    before = set(bpy.data.actions)
    with pytest.raises(RuntimeError):                   # onto itself: overlapping copy
        bpy.ops.choreo.take_repeat(unit="FRAMES", frame_start=31, frame_end=90, frame_at=61, mirror=True)
    assert set(bpy.data.actions) == before
    assert bpy.ops.choreo.take_repeat(unit="FRAMES", frame_start=1, frame_end=60, frame_at=91,
                                      mirror=True) == {"FINISHED"}
    (new,) = set(bpy.data.actions) - before
    assert dancer.animation_data.action == new and json.loads(new["choreo_take"])["edits"][-1]


def _grid(obj):
    takes = sys.modules[MODULE].addon.scene.takes
    return takes.take_grid(takes.take_info(obj.animation_data.action))


def test_repeat_in_bars_copies_bar_a_to_bar_c(dancer):
    grid = _grid(dancer)
    before = set(bpy.data.actions)
    if not grid.meter:                         # no meter: bars cannot be used, frames can
        with pytest.raises(RuntimeError, match="no meter"):
            bpy.ops.choreo.take_repeat(unit="BARS", bar_start=1, bar_end=1, bar_at=2)
        assert set(bpy.data.actions) == before
        return
    bars = list(grid.bars) + [grid.frames]
    assert len(bars) >= 4, bars
    with pytest.raises(RuntimeError, match="not in the music"):
        bpy.ops.choreo.take_repeat(unit="BARS", bar_start=1, bar_end=1, bar_at=len(bars))
    assert set(bpy.data.actions) == before
    assert bpy.ops.choreo.take_repeat(unit="BARS", bar_start=1, bar_end=1, bar_at=3) == {"FINISHED"}
    (new,) = set(bpy.data.actions) - before
    edit = json.loads(new["choreo_take"])["edits"][-1]
    assert "bars 1-1@3" in new.name and "bars 1-1" in bpy.context.scene.choreo.last_report
    assert edit["edit"] == "repeat" and edit["from_frames"] == [int(bars[0]), int(bars[1])], edit


def test_suggested_repeats_are_markers_and_accepting_one_is_a_new_take(dancer):
    scene = bpy.context.scene
    if not _grid(dancer).meter:
        with pytest.raises(RuntimeError, match="no meter"):
            bpy.ops.choreo.take_suggest_repeats(phrase_bars=1)
        return
    assert bpy.ops.choreo.take_suggest_repeats(phrase_bars=1) == {"FINISHED"}, scene.choreo.last_report
    markers = [m for m in scene.timeline_markers if m.name.startswith("repeat ")]
    assert markers and all(m.name.endswith(" s") for m in markers)
    for m in scene.timeline_markers:
        m.select = False
    before = set(bpy.data.actions)
    with pytest.raises(RuntimeError, match="select one"):           # none selected: no new take
        bpy.ops.choreo.take_accept_repeat()
    assert set(bpy.data.actions) == before
    markers[0].select = True
    assert bpy.ops.choreo.take_accept_repeat() == {"FINISHED"}, scene.choreo.last_report
    (new,) = set(bpy.data.actions) - before
    assert dancer.animation_data.action == new and "Copied" in scene.choreo.last_report
    # suggesting again replaces the markers rather than piling them up
    assert bpy.ops.choreo.take_suggest_repeats(phrase_bars=1) == {"FINISHED"}
    assert len([m for m in scene.timeline_markers if m.name.startswith("repeat ")]) == len(markers)


def test_key_a_pose_from_another_take_at_a_frame(dancer):
    scene = bpy.context.scene
    first = dancer.animation_data.action
    assert bpy.ops.choreo.take_repeat(unit="FRAMES", frame_start=1, frame_end=60, frame_at=91) == {"FINISHED"}
    second = dancer.animation_data.action
    scene.frame_set(150)
    before = set(bpy.data.actions)
    assert bpy.ops.choreo.take_key_pose(pose_from="TAKE", source_take=first.name, source_frame=30) == {"FINISHED"}
    (new,) = set(bpy.data.actions) - before
    assert dancer.animation_data.action == new and "joint error" in scene.choreo.last_report
    assert json.loads(new["choreo_take"])["edits"][-1]["source"] == f"{first.name}@30"
    want = _channel(dancer, first, "left_knee", "rotation_quaternion", [30])[0]
    got = _channel(dancer, new, "left_knee", "rotation_quaternion", [150])[0]
    assert min(np.abs(got - want).max(), np.abs(got + want).max()) < 1e-3
    assert new != second
    with pytest.raises(RuntimeError, match="outside take"):
        bpy.ops.choreo.take_key_pose(pose_from="TAKE", source_take=first.name, source_frame=400)


def test_key_a_pose_from_a_library_clip(dancer):
    scene = bpy.context.scene
    library = sys.modules[MODULE].addon.scene.library.open_library(bpy.context)
    clips = library.clips()
    if not clips:
        pytest.skip("no starter library in this checkout")
    scene.frame_set(90)
    before = set(bpy.data.actions)
    assert bpy.ops.choreo.take_key_pose(pose_from="CLIP", clip=clips[0].name, source_frame=10) == {"FINISHED"}
    (new,) = set(bpy.data.actions) - before
    report = scene.choreo.last_report
    assert dancer.animation_data.action == new and f"clip {clips[0].name}@10" in report
    assert float(report.split("joint error ")[1].split(" cm")[0]) <= 3.0, report
    with pytest.raises(RuntimeError, match="outside the clip"):
        bpy.ops.choreo.take_key_pose(pose_from="CLIP", clip=clips[0].name, source_frame=10 ** 6)


def test_an_edit_is_one_undo_step(dancer):
    """Background Blender keeps an undo stack too: one undo after an edit gives back the scene before it (the
    new take gone, the old one playing), and a redo brings the new take back."""
    name, source = dancer.name, dancer.animation_data.action.name
    bpy.ops.ed.undo_push(message="before the edit")
    before = sorted(a.name for a in bpy.data.actions)
    assert bpy.ops.choreo.take_repeat("EXEC_DEFAULT", True, unit="FRAMES", frame_start=1, frame_end=60,
                                      frame_at=91) == {"FINISHED"}
    after = sorted(a.name for a in bpy.data.actions)
    assert len(after) == len(before) + 1
    assert bpy.ops.ed.undo() == {"FINISHED"}
    assert sorted(a.name for a in bpy.data.actions) == before          # data blocks are new after an undo: names
    assert bpy.data.objects[name].animation_data.action.name == source
    assert bpy.ops.ed.redo() == {"FINISHED"}
    assert sorted(a.name for a in bpy.data.actions) == after
