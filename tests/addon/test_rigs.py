# SPDX-License-Identifier: GPL-3.0-or-later
"""The user's own rig in real Blender: Apply to Selected Rig on rigs imported through Blender's own BVH
importer (Mixamo and Rigify names), the rig's original action intact, save and reload, the mannequin body of
a dancer, an unmappable rig that fills the Bone Map with candidates and writes nothing, bone map presets.

This module installs its own copy of the extension (as test_takes.py does).
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
sys.path.insert(0, str(REPO / "tests" / "core"))          # the convention rigs of the bone-mapping tests

from bone_map_rigs import catalogue, without  # noqa: E402
from core_models.io import write_bvh  # noqa: E402
from core_models.rig.rigs import rest_pose_clip  # noqa: E402
from motion_fixture import CMU, make_dance, rig_bvh  # noqa: E402


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


@pytest.fixture
def scene(ext):
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    for action in list(bpy.data.actions):
        bpy.data.actions.remove(action)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    scene.choreo.start_frame = 1
    return scene


def _rig_bvh(path: Path, rig, frames: int = 20) -> Path:
    """The rig in its rest pose with a little motion of its own (its 'original action'), in centimetres."""
    clip = rest_pose_clip(rig.names, rig.parents, rig.offsets * 100.0, frames=frames)
    wave = 10.0 * np.sin(np.linspace(0.0, 3.0, frames))
    for j in range(1, len(rig.names)):
        start = clip.channel_columns(j).start
        clip.motion[:, start] = wave * (1 + j % 3)          # each bone turns a little about its first axis
    write_bvh(path, clip)
    return path


def _import(path: Path, z_up: bool = False):
    """Blender's own BVH importer (a Z-up file is imported as Z-up so the rig stands)."""
    before = set(bpy.data.objects)
    axes = dict(axis_forward="Y", axis_up="Z") if z_up else dict(axis_forward="-Z", axis_up="Y")
    assert bpy.ops.import_anim.bvh(filepath=str(path), global_scale=0.01, rotate_mode="NATIVE",
                                   update_scene_fps=False, **axes) == {"FINISHED"}
    (rig,) = [o for o in bpy.data.objects if o not in before]
    bpy.context.view_layer.objects.active = rig
    rig.select_set(True)
    return rig


def _curves(obj, action):
    return sys.modules[MODULE].addon.scene.keyframes.action_fcurves(action, obj)


def _snapshot(obj, action) -> dict:
    out = {}
    for fc in _curves(obj, action):
        co = np.zeros(len(fc.keyframe_points) * 2)
        fc.keyframe_points.foreach_get("co", co)
        out[(fc.data_path, fc.array_index)] = co
    return out


def _snapshot_of(obj, action) -> dict:
    """The keys of an action the object does not play (its first slot's channelbag)."""
    from bpy_extras import anim_utils

    bag = anim_utils.action_get_channelbag_for_slot(action, action.slots[0])
    out = {}
    for fc in bag.fcurves:
        co = np.zeros(len(fc.keyframe_points) * 2)
        fc.keyframe_points.foreach_get("co", co)
        out[(fc.data_path, fc.array_index)] = co
    return out


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def _source_bvh(tmp_path) -> Path:
    """A dance on a CMU-named rig (another naming, other proportions) at 30 fps, in centimetres."""
    joints = make_dance(frames=45, seed=2, spin=0.6)[3]
    return rig_bvh(tmp_path / "dance_cmu.bvh", joints, fps=30.0, names=CMU)


def _canonical_world(obj, scene, frames, mapping) -> np.ndarray:
    """The rig's body (F, 22, 3) as Blender evaluates it, core axes."""
    addon = sys.modules[MODULE].addon
    pose = addon.scene.rig.read_rig_pose(obj, scene, frames)
    from core_models.io.retarget import canonical_joints

    return canonical_joints(addon.scene.rig.world_core(pose), pose.names, mapping)


def _check_applied(rig, scene, original, before, source_bvh):
    from core_models.io.retarget import map_bones
    from core_models.io.bvh import read_bvh
    from core_models.rig.compare import bone_direction_difference
    from core_models.rig.rigs import rig_from_clip

    action = rig.animation_data.action
    assert action is not None and action != original and action.name.endswith(f"on {rig.name}")
    assert original.name in bpy.data.actions and _same(_snapshot(rig, original), before)   # untouched
    report = json.loads(action["choreo_retarget"])
    assert report["target"]["lowest_confidence"] is not None
    assert scene.choreo.last_report.startswith("Applied 45 frames")
    # every rotation channel keyed in each bone's own rotation mode, one key per frame
    paths = {(fc.data_path.split(".")[-1], len(fc.keyframe_points)) for fc in _curves(rig, action)}
    modes = {b.rotation_mode for b in rig.pose.bones}
    expected_prop = "rotation_quaternion" if modes == {"QUATERNION"} else "rotation_euler"
    assert {p for p, _ in paths} == {expected_prop, "location"} and {n for _, n in paths} == {45}
    # the rig's evaluated body points its bones where the source's point
    names = [b.name for b in rig.data.bones]
    parents = [names.index(b.parent.name) if b.parent else -1 for b in rig.data.bones]
    mapping = map_bones(names, parents, {i.canonical: i.bone for i in rig.choreo.bone_map if i.bone} or None,
                        source_rest_positions=np.array([np.array(b.head_local) for b in rig.data.bones]))
    got = _canonical_world(rig, scene, np.arange(1, 46), mapping)
    source = rig_from_clip(read_bvh(source_bvh))
    difference = bone_direction_difference(source.canonical(), got)
    assert difference["mean"] < 12.0, difference


@pytest.mark.parametrize("convention", ["mixamo", "rigify"])
def test_apply_a_mocap_file_to_an_imported_rig_as_a_new_action(scene, tmp_path, convention):
    rig_def = catalogue()[convention]
    z_up = convention == "rigify"
    rig = _import(_rig_bvh(tmp_path / f"{convention}.bvh", rig_def), z_up=z_up)
    original = rig.animation_data.action
    before = _snapshot(rig, original)
    source = _source_bvh(tmp_path)
    assert bpy.ops.choreo.apply_to_rig(source="FILE", filepath=str(source)) == {"FINISHED"}, \
        scene.choreo.last_report
    _check_applied(rig, scene, original, before, source)
    chosen = {i.canonical: i.bone for i in rig.choreo.bone_map}
    assert len(chosen) == 22 and chosen["left_knee"] == rig_def.expected["left_knee"]
    # save and reload: the new action plays, the original is kept
    blend = tmp_path / "applied.blend"
    rig_name, original_name = rig.name, original.name
    new_name, new_keys = rig.animation_data.action.name, _snapshot(rig, rig.animation_data.action)
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    rig = bpy.data.objects[rig_name]
    assert rig.animation_data.action.name == new_name and _same(_snapshot(rig, rig.animation_data.action), new_keys)
    assert original_name in bpy.data.actions and _same(_snapshot_of(rig, bpy.data.actions[original_name]), before)


def test_apply_a_generated_take_from_the_dancer(scene, tmp_path):
    rig = _import(_rig_bvh(tmp_path / "mixamo.bvh", catalogue()["mixamo"]))
    original = rig.animation_data.action
    before = _snapshot(rig, original)
    source = _source_bvh(tmp_path)
    assert bpy.ops.choreo.load_motion(filepath=str(source), target="NEW") == {"FINISHED"}
    dancer = bpy.context.active_object
    assert dancer.choreo.is_dancer
    bpy.context.view_layer.objects.active = rig
    assert bpy.ops.choreo.apply_to_rig(source="DANCER") == {"FINISHED"}, scene.choreo.last_report
    _check_applied(rig, scene, original, before, source)


def test_a_dancer_without_a_model_file_gets_the_mannequin(scene):
    assert bpy.ops.choreo.add_dancer() == {"FINISHED"}
    dancer = bpy.context.active_object
    (body,) = [o for o in dancer.children if o.type == "MESH"]
    assert body.get("choreo_mannequin") and len(body.data.vertices) > 1000
    groups = {g.name for g in body.vertex_groups}
    assert groups and groups <= {b.name for b in dancer.data.bones} and {"head", "left_knee", "pelvis"} <= groups
    (modifier,) = [m for m in body.modifiers if m.type == "ARMATURE"]
    assert modifier.object == dancer and body.parent == dancer
    # every vertex is weighted to one bone
    assert all(len(v.groups) == 1 for v in body.data.vertices)
    assert body.active_material is not None


def test_an_unmappable_rig_fills_the_bone_map_with_candidates_and_writes_nothing(scene, tmp_path):
    one_leg = without(catalogue()["mixamo"], "mixamorig:RightUpLeg")
    rig = _import(_rig_bvh(tmp_path / "one_leg.bvh", one_leg))
    actions = set(bpy.data.actions)
    before = _snapshot(rig, rig.animation_data.action)
    with pytest.raises(RuntimeError, match="right"):
        bpy.ops.choreo.apply_to_rig(source="FILE", filepath=str(_source_bvh(tmp_path)))
    assert set(bpy.data.actions) == actions and _same(_snapshot(rig, rig.animation_data.action), before)
    items = rig.choreo.bone_map
    assert len(items) == 22 and rig.choreo.mapping_error
    assert sum(bool(i.candidates) for i in items) >= 6             # the panel has bones to offer
    left_knee = next(i for i in items if i.canonical == "left_knee")
    assert "mixamorig:LeftLeg" in left_knee.candidates
    assert "Bone Map" in scene.choreo.last_report and "Nothing was written" in scene.choreo.last_report


def test_bone_map_preset_save_and_load_round_trip(scene, tmp_path):
    rig = _import(_rig_bvh(tmp_path / "mixamo.bvh", catalogue()["mixamo"]))
    assert bpy.ops.choreo.remap_bones() == {"FINISHED"}
    # a hand edit: the left collar is driven by the arm bone instead
    next(i for i in rig.choreo.bone_map if i.canonical == "spine2").bone = "mixamorig:Spine1"
    next(i for i in rig.choreo.bone_map if i.canonical == "spine1").bone = "mixamorig:Spine"
    saved = {i.canonical: i.bone for i in rig.choreo.bone_map}
    preset = tmp_path / "mixamo_map.json"
    assert bpy.ops.choreo.bone_map_save(filepath=str(preset)) == {"FINISHED"}
    data = json.loads(preset.read_text())
    assert {k: v for k, v in data.items() if not k.startswith("_") and v} == {k: v for k, v in saved.items() if v}
    assert "mixamorig:Hips" in data["_bones"]
    assert bpy.ops.choreo.remap_bones() == {"FINISHED"}           # forget the edit ...
    rig.choreo.bone_map.clear()
    assert bpy.ops.choreo.bone_map_load(filepath=str(preset)) == {"FINISHED"}, scene.choreo.last_report
    assert {i.canonical: i.bone for i in rig.choreo.bone_map} == saved                      # ... and get it back
    # a preset of another rig is refused, naming the bones this rig lacks
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"left_knee": "NoSuchKnee"}))
    with pytest.raises(RuntimeError, match="NoSuchKnee"):
        bpy.ops.choreo.bone_map_load(filepath=str(other))


def test_generate_onto_the_selected_rig(scene, tmp_path):
    from generation_fixture import write_drum_track, write_tiny_compact_weight_set

    weights = write_tiny_compact_weight_set(tmp_path / "weights" / "compact")
    music = write_drum_track(tmp_path / "drums.wav", 4.0)
    rig = _import(_rig_bvh(tmp_path / "mixamo.bvh", catalogue()["mixamo"]))
    original = rig.animation_data.action
    before, objects = _snapshot(rig, original), set(bpy.data.objects)
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.weights_path, prefs.device = str(weights), "cpu"
    settings = scene.choreo
    settings.music_source, settings.music_file, settings.genre, settings.seed = "FILE", str(music), "Latin", 3
    settings.dancer_target = "SELECTED_RIG"
    try:
        assert bpy.ops.choreo.generate() == {"FINISHED"}, settings.last_report
    finally:
        prefs.weights_path, prefs.device, settings.dancer_target = "", "auto", "NEW"
    assert set(bpy.data.objects) == objects                        # no new dancer: the rig got the dance
    action = rig.animation_data.action
    assert action != original and action["choreo_generation"]["genre"] == "Latin"
    assert _same(_snapshot(rig, original), before)
    assert int(action["choreo_frames"]) == 120 and settings.last_report.startswith("Applied 120 frames")
    assert [s for s in scene.sequence_editor.strips if s.type == "SOUND"]          # the music is on the timeline


class _Layout:
    """Stands in for UILayout (draw() never runs in background): records what a panel shows and checks that
    every property and operator it names exists."""

    def __init__(self, log):
        self.log = log

    def __getattr__(self, name):
        if name in ("row", "column", "box", "split"):
            return lambda *args, **kwargs: _Layout(self.log)
        return lambda *args, **kwargs: self.log.append((name, kwargs.get("text", args[0] if args else "")))

    def prop(self, data, name, **kwargs):
        assert name in data.bl_rna.properties, name
        self.log.append(("prop", name))

    def prop_search(self, data, name, search_data, search_name, **kwargs):
        assert name in data.bl_rna.properties and search_name in search_data.bl_rna.properties
        self.log.append(("prop_search", getattr(data, name)))

    def operator(self, idname, **kwargs):
        module, op = idname.split(".")
        assert hasattr(getattr(bpy.ops, module), op), idname
        self.log.append(("operator", idname))
        return type("OperatorProperties", (), {})()


def _draw(ext, panel: str) -> list:
    from types import SimpleNamespace

    log = []
    cls = getattr(ext.addon.panels, panel)
    helpers = {name: getattr(cls, name) for name in dir(cls) if name.startswith("draw_")}
    cls.draw(SimpleNamespace(layout=_Layout(log), **helpers), bpy.context)
    return log


def test_the_bone_map_panel_lists_every_joint_with_candidates_even_when_mapping_fails(ext, scene, tmp_path):
    one_leg = without(catalogue()["mixamo"], "mixamorig:RightUpLeg")
    rig = _import(_rig_bvh(tmp_path / "one_leg.bvh", one_leg))
    with pytest.raises(RuntimeError):
        bpy.ops.choreo.remap_bones()
    log = _draw(ext, "CHOREO_PT_bone_map")
    assert sum(1 for kind, _ in log if kind == "prop_search") == 22
    shown = " ".join(str(text) for kind, text in log if kind == "label")
    assert "candidates: mixamorig:LeftLeg" in shown and "could not find" in shown
    assert ("operator", "choreo.bone_map_load") in log and ("operator", "choreo.apply_to_rig") in log
    assert ("prop", "dancer_target") in _draw(ext, "CHOREO_PT_generate")
    assert rig.choreo.mapping_error


def test_apply_a_library_clip(ext, scene, tmp_path):
    library = ext.addon.scene.library.open_library(bpy.context)
    clips = library.clips()
    if not clips:
        pytest.skip("no starter library in this checkout")
    rig = _import(_rig_bvh(tmp_path / "rigify.bvh", catalogue()["rigify"]), z_up=True)
    original = rig.animation_data.action
    before = _snapshot(rig, original)
    assert bpy.ops.choreo.apply_to_rig(source="LIBRARY", clip=clips[0].name) == {"FINISHED"}, \
        scene.choreo.last_report
    action = rig.animation_data.action
    assert action != original and action.name == f"{clips[0].name} on {rig.name}"
    assert _same(_snapshot(rig, original), before)
    assert json.loads(action["choreo_retarget"])["figures"]["bone_direction_deg"] < 10.0
