# SPDX-License-Identifier: GPL-3.0-or-later
"""The extension in real Blender: build with Blender's builder, install, operators, uninstall.

Tests run in file order and share one installed extension; the last test removes it.
"""
import json
import os
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import bpy
from bl_pkg import bl_extension_cli

from core_models import data
from core_models.audio import synth_click_track
from core_models.io import load_body_clip, write_bvh
from core_models.io.bvh import bvh_from_rotations
from core_models.rotations import axis_angle_to_quat

REPO = Path(__file__).resolve().parents[2]
MODULE = "bl_ext.user_default.choreo"
BANDAI_DANCE = "dataset-1_dance-short_normal_001.bvh"
LIBRARY_OPERATORS = ("create", "refresh", "repair", "preview", "pin", "unpin", "remove", "add_action", "retrieve")
GENERATE_SETTINGS = ("music_source", "music_file", "genre", "length_mode", "range_start", "range_length", "seed",
                     "temperature", "top_k", "top_p", "window_mode", "weights_override")


@pytest.fixture(scope="module")
def built_zip(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    assert bl_extension_cli.cli_extension_handler(["validate", str(REPO)]) in (0, None)
    rc = bl_extension_cli.cli_extension_handler(["build", "--source-dir", str(REPO), "--output-dir", str(out)])
    assert rc in (0, None)
    zips = list(out.glob("choreo-*.zip"))
    assert len(zips) == 1
    return zips[0]


@pytest.fixture(scope="module")
def ext(built_zip):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    result = bpy.ops.extensions.package_install_files(filepath=str(built_zip), repo="user_default",
                                                       enable_on_install=True)
    assert result == {"FINISHED"}
    return sys.modules[MODULE]


@pytest.fixture
def scene(ext):
    """An empty scene at 30 fps for each test (the extension stays enabled)."""
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    for action in list(bpy.data.actions):
        bpy.data.actions.remove(action)
    sc = bpy.context.scene
    if sc.sequence_editor:
        for strip in list(sc.sequence_editor.strips):
            sc.sequence_editor.strips.remove(strip)
    sc.render.fps, sc.render.fps_base = 30, 1.0
    sc.frame_start, sc.frame_end = 1, 250
    sc.choreo.start_frame = 1
    sc.choreo.last_report = ""
    for prop in GENERATE_SETTINGS:
        sc.choreo.property_unset(prop)
    return sc


def _bandai_dance():
    folder = data.mocap_dir("bandai")
    if folder is None:
        pytest.skip("../shared/data/mocap (Bandai Namco archive) is not available")
    hits = list(folder.rglob(BANDAI_DANCE))
    assert hits, f"{BANDAI_DANCE} missing from the Bandai archive"
    return hits[0]


def _world_body_joints(obj, frame):
    """Evaluated world positions of the 22 body bones' heads, in core axes (metres, Y up)."""
    bpy.context.scene.frame_set(frame)
    ext = sys.modules[MODULE]
    names = [b for b in ext.core_models.skeleton.BODY_JOINT_NAMES]
    world = np.array(obj.matrix_world)
    heads = np.array([np.array(obj.pose.bones[n].head) for n in names]) @ world[:3, :3].T + world[:3, 3]
    return ext.addon.scene.space.to_core(heads)


def _fcurves(obj):
    ext = sys.modules[MODULE]
    return ext.addon.scene.keyframes.action_fcurves(obj.animation_data.action, obj)


def test_zip_is_built_by_blender_and_holds_only_the_extension(built_zip):
    names = zipfile.ZipFile(built_zip).namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names
    assert "core_models/kinematics.py" in names and "addon/scene/keyframes.py" in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", ".")) or n in ("Makefile", "pyproject.toml")]


def test_enabled_and_every_class_registered(ext):
    assert MODULE in bpy.context.preferences.addons
    for cls_name in ("CHOREO_PT_main", "CHOREO_PT_generate", "CHOREO_PT_generate_advanced", "CHOREO_PT_foot_fix",
                     "CHOREO_PT_library", "CHOREO_OT_add_dancer", "CHOREO_OT_load_motion", "CHOREO_OT_import_mocap",
                     "CHOREO_OT_convert_to_dancer", "CHOREO_OT_add_sound", "CHOREO_OT_cancel_job",
                     "CHOREO_OT_generate", "CHOREO_PT_library_retrieve", "CHOREO_PT_library_add",
                     "CHOREO_UL_library_clips", "CHOREO_UL_library_results"):
        assert hasattr(bpy.types, cls_name), cls_name
    for op in ("add_dancer", "load_motion", "import_mocap", "convert_to_dancer", "add_sound", "cancel_job",
               "generate") + tuple(f"library_{op}" for op in LIBRARY_OPERATORS):
        assert hasattr(bpy.ops.choreo, op)
    prefs = bpy.context.preferences.addons[MODULE].preferences
    assert prefs.device == "auto" and prefs.smplx_model_path == "" and prefs.weights_path == ""
    assert prefs.library_path == "" and bpy.context.scene.choreo.library_genre == "ALL"
    settings = bpy.context.scene.choreo
    assert (settings.music_source, settings.genre, settings.length_mode, settings.seed, settings.window_mode) == \
        ("STRIP", "Popular", "WHOLE", 42, "full")
    assert (settings.temperature, settings.top_k, settings.top_p) == (pytest.approx(0.8), 15, pytest.approx(0.95))
    # the genre menu: every genre, trained ones of the bundled set first with their minutes, the others marked
    items = sys.modules[MODULE].addon.properties.genre_items(settings, bpy.context)
    from core_models.choreollama import GENRES

    assert sorted(i[0] for i in items) == sorted(GENRES) and sorted(i[4] for i in items) == list(range(len(GENRES)))
    assert [i[0] for i in items[:4]] == ["Popular", "Latin", "Modern", "Folk"] and "min)" in items[0][1]
    assert all("(not trained)" in i[1] for i in items[4:])
    assert hasattr(bpy.types.Object, "choreo") and hasattr(bpy.types.Scene, "choreo")


def test_add_dancer_builds_55_quaternion_bones(scene):
    assert bpy.ops.choreo.add_dancer() == {"FINISHED"}
    obj = bpy.context.active_object
    assert obj.type == "ARMATURE" and obj.choreo.is_dancer
    ext = sys.modules[MODULE]
    assert [b.name for b in obj.data.bones] != [] and len(obj.data.bones) == 55
    assert set(b.name for b in obj.data.bones) == set(ext.core_models.skeleton.SMPLX_JOINT_NAMES)
    assert all(pb.rotation_mode == "QUATERNION" for pb in obj.pose.bones)
    # Y-up core -> Z-up Blender: the head is above the pelvis, the left hip at +X, toes towards -Y
    bones = obj.data.bones
    assert bones["head"].head_local.z > bones["pelvis"].head_local.z + 0.4
    assert bones["left_hip"].head_local.x > 0 > bones["right_hip"].head_local.x
    assert bones["left_foot"].head_local.y < bones["left_ankle"].head_local.y


def test_add_dancer_from_users_smplx_model_has_exact_skeleton_and_skinned_body(scene, tmp_path):
    from core_models.skeleton import default_skeleton
    from smplx_fixture import write_synthetic_smplx_model

    rest = default_skeleton(height=1.8).rest_positions()
    model = tmp_path / "SMPLX_NEUTRAL.npz"
    write_synthetic_smplx_model(model, rest)
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.smplx_model_path = str(model)
    try:
        assert bpy.ops.choreo.add_dancer() == {"FINISHED"}
    finally:
        prefs.smplx_model_path = ""
    arm = bpy.context.active_object
    assert arm.choreo.skeleton_source == "smplx:SMPLX_NEUTRAL.npz"
    heads = np.array([np.array(arm.data.bones[n].head_local) for n in
                      sys.modules[MODULE].core_models.skeleton.SMPLX_JOINT_NAMES])
    expected = sys.modules[MODULE].addon.scene.space.to_blender(rest - [0, rest[:, 1].min(), 0])
    floor = heads[:, 2].min() - expected[:, 2].min()
    assert np.abs(heads - expected - [0, 0, floor]).max() < 1e-5        # exact joints, lifted to the floor
    bodies = [o for o in bpy.data.objects if o.type == "MESH"]
    assert len(bodies) == 1 and bodies[0].parent == arm
    body = bodies[0]
    assert len(body.data.vertices) == 100 and len(body.vertex_groups) == 55
    assert body.modifiers[0].type == "ARMATURE" and body.modifiers[0].object == arm
    # the skin follows the bones: bend the left elbow, the vertex sitting on the left wrist moves
    wrist = sys.modules[MODULE].core_models.skeleton.SMPLX_JOINT_NAMES.index("left_wrist")
    before = np.array(body.evaluated_get(bpy.context.evaluated_depsgraph_get()).data.vertices[wrist].co)
    arm.pose.bones["left_elbow"].rotation_quaternion = (0.7071, 0.0, 0.0, 0.7071)
    bpy.context.view_layer.update()
    after = np.array(body.evaluated_get(bpy.context.evaluated_depsgraph_get()).data.vertices[wrist].co)
    assert np.linalg.norm(after - before) > 0.1


def test_real_bandai_bvh_on_smplx_armature(scene, tmp_path):
    path = _bandai_dance()
    clip = load_body_clip(path)                       # the core's canonical joints, 30 fps
    assert bpy.ops.choreo.load_motion(filepath=str(path), target="NEW") == {"FINISHED"}
    obj = bpy.context.active_object
    assert len(obj.data.bones) == 55
    curves = _fcurves(obj)
    assert len(curves) == 55 * 4 + 3
    frames = clip.num_frames
    for fc in curves:
        assert len(fc.keyframe_points) == frames
    co = np.empty(frames * 2)
    curves[0].keyframe_points.foreach_get("co", co)
    assert np.array_equal(co[0::2], np.arange(1, frames + 1))
    for frame in (1, frames // 2, frames):
        err = np.abs(_world_body_joints(obj, frame) - clip.joints[frame - 1]).max()
        assert err < 1e-3, f"frame {frame}: {err * 1000:.3f} mm"
    # original scene untouched otherwise: one armature (with its mannequin body), one action
    assert sorted(o.type for o in bpy.data.objects) == ["ARMATURE", "MESH"] and len(bpy.data.actions) == 1

    # save, reload in a fresh process, every key kept
    blend = tmp_path / "bandai.blend"
    keys = {f"{fc.data_path}[{fc.array_index}]": _co(fc) for fc in curves}
    np.savez(tmp_path / "keys.npz", **keys)
    bpy.ops.wm.save_as_mainfile(filepath=str(blend), copy=True)
    script = f"""
import os, sys, json, numpy as np
os.environ["BLENDER_USER_RESOURCES"] = {os.environ['BLENDER_USER_RESOURCES']!r}
import bpy
bpy.ops.wm.open_mainfile(filepath={str(blend)!r})
obj = bpy.data.objects[{obj.name!r}]
ad = obj.animation_data
from bpy_extras import anim_utils
bag = anim_utils.action_get_channelbag_for_slot(ad.action, ad.action_slot)
saved = np.load({str(tmp_path / 'keys.npz')!r})
bad = []
for fc in bag.fcurves:
    co = np.empty(len(fc.keyframe_points) * 2); fc.keyframe_points.foreach_get("co", co)
    key = f"{{fc.data_path}}[{{fc.array_index}}]"
    if key not in saved or not np.array_equal(saved[key], co): bad.append(key)
print(json.dumps({{"curves": len(bag.fcurves), "bad": bad}}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"curves": 55 * 4 + 3, "bad": []}


def _co(fc):
    co = np.empty(len(fc.keyframe_points) * 2)
    fc.keyframe_points.foreach_get("co", co)
    return co


@pytest.mark.parametrize("fps, fps_base", [(24, 1.0), (25, 1.0), (30000, 1001.0), (60, 1.0)])
def test_scene_fps_keeps_the_duration(scene, tmp_path, fps, fps_base):
    bvh = _write_synthetic_bvh(tmp_path / "steps.bvh", frames=93)      # 3.1 s at 30 fps
    scene.render.fps, scene.render.fps_base = fps, fps_base
    scene.choreo.start_frame = 10
    assert bpy.ops.choreo.load_motion(filepath=str(bvh)) == {"FINISHED"}
    obj = bpy.context.active_object
    first, last = obj.animation_data.action.frame_range
    scene_rate = fps / fps_base
    assert first == 10
    assert abs((last - first + 1) / scene_rate - 93 / 30) <= 1.0 / scene_rate
    # the motion read back through the F-curve fast path matches the core's joints in time
    ext = sys.modules[MODULE]
    skel = ext.addon.scene.dancer.armature_skeleton(obj)
    motion = ext.addon.scene.keyframes.read_motion(obj, skel)
    assert motion.fps == pytest.approx(scene_rate)
    back = motion.resampled(30.0).joints()[:, :22]
    clip = load_body_clip(bvh)
    n = min(len(back), clip.num_frames)
    assert np.abs(back[:n] - clip.joints[:n]).max() < 0.03                # resampled twice: small error


def test_read_back_fast_and_evaluated_paths_agree(scene, tmp_path):
    bvh = _write_synthetic_bvh(tmp_path / "steps.bvh", frames=40)
    assert bpy.ops.choreo.load_motion(filepath=str(bvh)) == {"FINISHED"}
    obj = bpy.context.active_object
    ext = sys.modules[MODULE]
    skel = ext.addon.scene.dancer.armature_skeleton(obj)
    fast = ext.addon.scene.keyframes.read_motion(obj, skel)
    evaluated = ext.addon.scene.keyframes.read_motion(obj, skel, evaluated=True)
    assert np.abs(fast.joints() - evaluated.joints()).max() < 1e-5
    clip = load_body_clip(bvh)
    assert np.abs(fast.joints()[:, :22] - clip.joints).max() < 1e-4
    # a constraint is only seen by the evaluated path
    con = obj.pose.bones["left_elbow"].constraints.new("LIMIT_ROTATION")
    con.use_limit_x = con.use_limit_y = con.use_limit_z = True
    con.owner_space = "LOCAL"
    constrained = ext.addon.scene.keyframes.read_motion(obj, skel, evaluated=True)
    assert np.abs(constrained.joints()[:, 20] - fast.joints()[:, 20]).max() > 0.01


def test_load_onto_selected_dancer_and_original_action_kept(scene, tmp_path):
    bvh = _write_synthetic_bvh(tmp_path / "steps.bvh", frames=30)
    bpy.ops.choreo.add_dancer()
    dancer = bpy.context.active_object
    bpy.ops.choreo.load_motion(filepath=str(bvh), target="SELECTED")
    first = dancer.animation_data.action
    first_keys = [_co(fc).copy() for fc in _fcurves(dancer)]
    bpy.ops.choreo.load_motion(filepath=str(bvh), target="SELECTED")
    second = dancer.animation_data.action
    assert second != first and first.name in bpy.data.actions          # a NEW action each time
    assert first.use_fake_user
    dancer.animation_data.action = first
    assert all(np.array_equal(a, _co(fc)) for a, fc in zip(first_keys, _fcurves(dancer)))


def _write_synthetic_bvh(path, frames, names=None, drop=()):
    """A stepping figure on the default skeleton written as BVH; ``names`` renames the bones, the joints in
    ``drop`` (and everything below them) are left out."""
    from core_models.skeleton import BODY_JOINT_NAMES, default_skeleton

    skel = default_skeleton(body_only=True)
    t = np.arange(frames) / 30.0
    aa = np.zeros((frames, 22, 3))
    aa[:, 1, 0] = -0.4 * np.clip(np.sin(2 * np.pi * t), 0, None)
    aa[:, 4, 0] = 0.8 * np.clip(np.sin(2 * np.pi * t), 0, None)
    aa[:, 16, 2] = -1.0 + 0.3 * np.sin(4 * np.pi * t)
    aa[:, 18, 1] = 0.6
    aa[:, 0, 1] = 0.5 * t
    root = np.stack([0.2 * t, np.full(frames, skel.offsets[0, 1]), 0.3 * t], -1)
    names = list(names or BODY_JOINT_NAMES)
    keep = [j for j in range(22) if j not in drop]
    parents = [keep.index(skel.parents[j]) if skel.parents[j] >= 0 else -1 for j in keep]
    clip = bvh_from_rotations([names[j] for j in keep], parents, skel.offsets[keep],
                              axis_angle_to_quat(aa)[:, keep], root, 1.0 / 30.0)
    write_bvh(path, clip)
    return path


CMU_NAMES = ["hip", "lThigh", "rThigh", "abdomen", "lShin", "rShin", "abdomen2", "lFoot", "rFoot", "chest",
             "lToe", "rToe", "neck", "lCollar", "rCollar", "head", "lShldr", "rShldr", "lForeArm", "rForeArm",
             "lHand", "rHand"]


def test_import_mocap_with_blenders_importer_maps_cmu_names(scene, tmp_path):
    bvh = _write_synthetic_bvh(tmp_path / "cmu_style.bvh", frames=60, names=CMU_NAMES)
    assert bpy.ops.choreo.import_mocap(filepath=str(bvh)) == {"FINISHED"}
    rig = bpy.context.active_object
    assert rig.type == "ARMATURE" and not rig.choreo.is_dancer
    mapping = {item.canonical: item.bone for item in rig.choreo.bone_map}
    assert mapping["left_knee"] == "lShin" and mapping["right_wrist"] == "rHand" and mapping["pelvis"] == "hip"
    assert "cmu" in rig.choreo.rig_profile.lower()
    # convert: a new SMPL-X dancer whose joints follow the imported rig; the rig keeps its action
    rig_action = rig.animation_data.action
    assert bpy.ops.choreo.convert_to_dancer() == {"FINISHED"}
    dancer = bpy.context.active_object
    assert dancer != rig and dancer.choreo.is_dancer and rig.animation_data.action == rig_action
    clip = load_body_clip(bvh)
    for frame in (1, 30, 60):
        err = np.abs(_world_body_joints(dancer, frame) - clip.joints[frame - 1]).max()
        assert err < 1e-3, f"frame {frame}: {err * 1000:.2f} mm"


def test_import_mocap_fbx_through_blenders_importer(scene, tmp_path):
    """An FBX written by Blender's exporter (Mixamo-style names) comes back mapped and converts exactly."""
    names = ["mixamorig:" + n for n in ("Hips", "LeftUpLeg", "RightUpLeg", "Spine", "LeftLeg", "RightLeg", "Spine1",
                                        "LeftFoot", "RightFoot", "Spine2", "LeftToeBase", "RightToeBase", "Neck",
                                        "LeftShoulder", "RightShoulder", "Head", "LeftArm", "RightArm",
                                        "LeftForeArm", "RightForeArm", "LeftHand", "RightHand")]
    bvh = _write_synthetic_bvh(tmp_path / "mixamo.bvh", frames=45, names=names)
    bpy.ops.import_anim.bvh(filepath=str(bvh), axis_forward="-Z", axis_up="Y")
    rig = bpy.context.active_object
    fbx = tmp_path / "mixamo.fbx"
    bpy.ops.export_scene.fbx(filepath=str(fbx), use_selection=True, object_types={"ARMATURE"},
                             add_leaf_bones=False, bake_anim=True, bake_anim_use_all_actions=False,
                             bake_anim_use_nla_strips=False)
    scene_before = len(bpy.data.objects)
    bpy.data.objects.remove(rig)
    assert bpy.ops.choreo.import_mocap(filepath=str(fbx)) == {"FINISHED"}
    imported = bpy.context.active_object
    assert imported.type == "ARMATURE" and len(bpy.data.objects) == scene_before
    mapping = {item.canonical: item.bone for item in imported.choreo.bone_map}
    assert mapping["left_knee"] == "mixamorig:LeftLeg" and imported.choreo.rig_profile == "mixamo"
    assert bpy.ops.choreo.convert_to_dancer() == {"FINISHED"}
    dancer = bpy.context.active_object
    clip = load_body_clip(bvh)
    lo = int(dancer.animation_data.action.frame_range[0])
    for k in (0, 20, 44):
        err = np.abs(_world_body_joints(dancer, lo + k) - clip.joints[k]).max()
        assert err < 2e-3, f"frame {k}: {err * 1000:.2f} mm"


def test_scene_audio_strip_and_samples(scene, tmp_path):
    import soundfile as sf

    wav = tmp_path / "drums.wav"
    sf.write(wav, synth_click_track(120, 7.5, sr=22050), 22050)
    assert bpy.ops.choreo.add_sound(filepath=str(wav)) == {"FINISHED"}
    strips = [s for s in scene.sequence_editor.strips if s.type == "SOUND"]
    assert len(strips) == 1 and strips[0].frame_final_duration == 225   # 7.5 s at 30 fps
    samples, sr, strip = sys.modules[MODULE].addon.scene.timeline.scene_music(scene)
    assert sr == 22050 and samples.shape[0] == int(7.5 * 22050) and strip == strips[0]


@pytest.mark.parametrize("case", ["no_selection", "not_armature", "missing_file", "unmappable_rig",
                                  "missing_audio", "bad_audio", "bad_smplx_path", "not_a_dancer"])
def test_bad_input_reports_and_writes_nothing(scene, tmp_path, case):
    prefs = bpy.context.preferences.addons[MODULE].preferences
    bvh = _write_synthetic_bvh(tmp_path / "ok.bvh", frames=20)
    if case in ("not_armature", "not_a_dancer"):
        mesh = bpy.data.meshes.new("cube")
        thing = bpy.data.objects.new("Cube", mesh if case == "not_armature" else bpy.data.armatures.new("rig"))
        scene.collection.objects.link(thing)
        bpy.context.view_layer.objects.active = thing
    before = (set(bpy.data.objects), set(bpy.data.actions), len(scene.sequence_editor.strips) if scene.sequence_editor else 0)
    calls = {
        "no_selection": (lambda: bpy.ops.choreo.load_motion(filepath=str(bvh), target="SELECTED"), "No armature selected"),
        "not_armature": (lambda: bpy.ops.choreo.load_motion(filepath=str(bvh), target="SELECTED"), "not an armature"),
        "not_a_dancer": (lambda: bpy.ops.choreo.load_motion(filepath=str(bvh), target="SELECTED"), "not an SMPL-X dancer"),
        "missing_file": (lambda: bpy.ops.choreo.load_motion(filepath=str(tmp_path / "nope.bvh")), "not found"),
        # meaningless names on a one-legged rig: nothing to map the right leg from
        "unmappable_rig": (lambda: bpy.ops.choreo.import_mocap(filepath=str(_write_synthetic_bvh(
            tmp_path / "odd.bvh", 20, names=[f"bone{i}" for i in range(22)], drop=(2, 5, 8, 11)))),
            "right knee"),
        "missing_audio": (lambda: bpy.ops.choreo.add_sound(filepath=str(tmp_path / "nope.ogg")), "nope.ogg"),
        "bad_audio": (lambda: bpy.ops.choreo.add_sound(filepath=str(_garbage(tmp_path / "song.ogg"))), "song.ogg"),
        "bad_smplx_path": (lambda: _with_pref(prefs, str(tmp_path / "SMPLX_NEUTRAL.npz"), bpy.ops.choreo.add_dancer),
                           "SMPL-X model file"),
    }
    call, message = calls[case]
    with pytest.raises(RuntimeError, match=message):
        call()
    assert message.split()[0] in scene.choreo.last_report or message in scene.choreo.last_report
    after = (set(bpy.data.objects), set(bpy.data.actions), len(scene.sequence_editor.strips) if scene.sequence_editor else 0)
    assert after == before


def _garbage(path):
    path.write_bytes(os.urandom(4096))
    return path


def _with_pref(prefs, value, op):
    prefs.smplx_model_path = value
    try:
        return op()
    finally:
        prefs.smplx_model_path = ""


def test_threaded_job_applies_on_main_thread_and_cancels(scene):
    """The interactive path: work in a thread, apply from the poll function (timers never fire here)."""
    jobs = sys.modules[MODULE].addon.jobs
    applied = []
    status = bpy.context.window_manager.choreo_job

    def work(progress, cancel):
        for i in range(3):
            progress("step", i, 3)
        return "result"

    assert jobs.run_job("test job", work, applied.append, synchronous=False) == "RUNNING"
    assert status.running and jobs.is_running()
    with pytest.raises(jobs.JobError, match="still running"):
        jobs.run_job("second", work, applied.append, synchronous=False)
    jobs._current.thread.join(5)
    assert jobs._poll() is None and applied == ["result"] and not status.running

    release = threading.Event()

    def slow(progress, cancel):
        while not cancel.is_set():
            time.sleep(0.01)
        sys.modules[MODULE].core_models.progress.check_cancel(cancel)

    jobs.run_job("slow job", slow, applied.append, synchronous=False)
    assert bpy.ops.choreo.cancel_job() == {"FINISHED"}
    jobs._current.thread.join(5)
    assert jobs._poll() is None
    assert applied == ["result"] and "cancelled" in status.error and not status.running
    release.set()


# ------------------------------------------------------------------------------------------------ Generate

@pytest.fixture(scope="module")
def weight_set(tmp_path_factory):
    """A tiny random compact-family weight set."""
    from generation_fixture import write_tiny_compact_weight_set

    return write_tiny_compact_weight_set(tmp_path_factory.mktemp("weights") / "compact")


@pytest.fixture(scope="module")
def drum_track(tmp_path_factory):
    """6 s of 120 bpm clicks over a low sine 'bass'."""
    from generation_fixture import write_drum_track

    return write_drum_track(tmp_path_factory.mktemp("music") / "drums.wav", 6.0)


@pytest.fixture
def gen_prefs(ext, weight_set):
    """Preferences pointing at the tiny weight set, on the CPU."""
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.weights_path, prefs.device = str(weight_set), "cpu"
    yield prefs
    prefs.weights_path, prefs.device, prefs.smplx_model_path = "", "auto", ""


def _scene_state(scene):
    strips = scene.sequence_editor.strips if scene.sequence_editor else []
    return (set(bpy.data.objects), set(bpy.data.actions), set(bpy.data.armatures), set(bpy.data.meshes),
            sorted((s.name, s.frame_final_start, s.frame_final_end) for s in strips),
            (scene.frame_start, scene.frame_end))


def _sound_strips(scene):
    return [s for s in scene.sequence_editor.strips if s.type == "SOUND"] if scene.sequence_editor else []


def _new_dancer(before_objects):
    # the dancer's mannequin body is a new object too: the dancer is the new armature
    new = [o for o in bpy.data.objects if o not in before_objects and o.type == "ARMATURE"]
    assert len(new) == 1, [o.name for o in new]
    return new[0]


def _key_frames(obj):
    curves = _fcurves(obj)
    assert len(curves) == 55 * 4 + 3
    counts = {len(fc.keyframe_points) for fc in curves}
    assert len(counts) == 1
    return _co(curves[0])[0::2]


def test_generate_from_file_adds_a_dancer_and_its_music_at_the_start_frame(scene, gen_prefs, drum_track):
    scene.render.fps = 24                             # the core's 30 fps dance is resampled to the scene
    scene.choreo.start_frame = 10
    scene.frame_end = 40
    cube = bpy.data.objects.new("Cube", bpy.data.meshes.new("cube"))
    scene.collection.objects.link(cube)
    cube.location = (1.0, 2.0, 3.0)
    existing = bpy.data.actions.new("Existing")
    existing.use_fake_user = True
    before = set(bpy.data.objects)
    settings = scene.choreo
    settings.music_source, settings.music_file = "FILE", str(drum_track)
    settings.genre, settings.seed = "Latin", 7

    assert bpy.ops.choreo.generate() == {"FINISHED"}
    dancer = _new_dancer(before)
    assert dancer.type == "ARMATURE" and dancer.choreo.is_dancer and len(dancer.data.bones) == 55
    assert all(pb.rotation_mode == "QUATERNION" for pb in dancer.pose.bones)
    action = dancer.animation_data.action
    assert action.name == "Choreo Latin seed7"
    frames = _key_frames(dancer)
    assert len(frames) == round(6.0 * 24) and frames[0] == 10 and np.array_equal(frames, np.arange(10, 10 + 144))
    assert action["choreo_generation"]["seed"] == 7 and action["choreo_generation"]["genre"] == "Latin"
    assert (scene.frame_start, scene.frame_end) == (1, 10 + 144 - 1)       # extended to cover the dance
    # it dances: the pose changes over time
    assert np.abs(_world_body_joints(dancer, 10) - _world_body_joints(dancer, 120)).max() > 1e-3
    strips = _sound_strips(scene)
    assert len(strips) == 1 and strips[0].frame_final_start == 10 and strips[0].frame_final_duration == 144
    assert Path(bpy.path.abspath(strips[0].sound.filepath)) == drum_track
    # nothing else touched
    assert tuple(cube.location) == (1.0, 2.0, 3.0) and cube.animation_data is None
    assert "Existing" in bpy.data.actions and len(bpy.data.actions) == 2
    report = settings.last_report
    assert "144 frames" in report and "Latin" in report and "seed 7" in report and "Took" in report
    assert "has no RetrievalNet" in report                                # the core's notes are passed on

    # another seed on the same music: a second dancer, the music strip is reused
    settings.seed = 8
    assert bpy.ops.choreo.generate() == {"FINISHED"}
    second = _new_dancer(before | {dancer})
    assert second.animation_data.action.name == "Choreo Latin seed8" and len(_sound_strips(scene)) == 1
    assert not np.array_equal(_co(_fcurves(second)[5]), _co(_fcurves(dancer)[5]))


def test_generate_a_range_of_a_file_trims_its_strip_to_the_dance(scene, gen_prefs, drum_track):
    settings = scene.choreo
    settings.music_source, settings.music_file = "FILE", str(drum_track)
    settings.length_mode, settings.range_start, settings.range_length = "RANGE", 1.5, 3.0
    settings.start_frame = 5
    before = set(bpy.data.objects)
    assert bpy.ops.choreo.generate() == {"FINISHED"}
    dancer = _new_dancer(before)
    frames = _key_frames(dancer)
    assert frames[0] == 5 and len(frames) == 90
    info = dancer.animation_data.action["choreo_generation"]
    assert info["music_start_s"] == pytest.approx(1.5) and info["music_end_s"] == pytest.approx(4.5)
    (strip,) = _sound_strips(scene)
    # the file's 1.5 s mark plays at frame 5, and only the danced part of the music is shown
    assert strip.frame_start == 5 - 45 and strip.frame_final_start == 5 and strip.frame_final_end == 5 + 90


def test_generate_from_the_timeline_strip_starts_where_the_music_plays(scene, gen_prefs, drum_track):
    scene.choreo.start_frame = 50
    assert bpy.ops.choreo.add_sound(filepath=str(drum_track)) == {"FINISHED"}
    scene.choreo.start_frame = 1                      # the strip decides, not the start frame
    (strip,) = _sound_strips(scene)
    assert strip.frame_final_start == 50
    before = set(bpy.data.objects)
    assert bpy.ops.choreo.generate() == {"FINISHED"}          # music source defaults to the timeline
    dancer = _new_dancer(before)
    frames = _key_frames(dancer)
    assert frames[0] == 50 and len(frames) == 180
    assert len(_sound_strips(scene)) == 1 and "in sync with" in scene.choreo.last_report

    # a trimmed strip and a range: the dance starts range_start after the strip's first visible frame,
    # on the music heard there
    strip.frame_final_start = 80                      # 1 s of the music trimmed away
    settings = scene.choreo
    settings.length_mode, settings.range_start, settings.range_length = "RANGE", 0.5, 2.0
    before = set(bpy.data.objects)
    assert bpy.ops.choreo.generate() == {"FINISHED"}
    dancer = _new_dancer(before)
    frames = _key_frames(dancer)
    assert frames[0] == 80 + 15 and len(frames) == 60
    info = dancer.animation_data.action["choreo_generation"]
    assert info["music_start_s"] == pytest.approx(1.5) and info["music_end_s"] == pytest.approx(3.5)


def test_generate_onto_the_users_smplx_body(scene, gen_prefs, drum_track, tmp_path):
    from core_models.skeleton import default_skeleton
    from smplx_fixture import write_synthetic_smplx_model

    model = tmp_path / "SMPLX_NEUTRAL.npz"
    write_synthetic_smplx_model(model, default_skeleton(height=1.8).rest_positions())
    gen_prefs.smplx_model_path = str(model)
    scene.choreo.music_source, scene.choreo.music_file = "FILE", str(drum_track)
    before = set(bpy.data.objects)
    assert bpy.ops.choreo.generate() == {"FINISHED"}
    new = [o for o in bpy.data.objects if o not in before]
    (arm,) = [o for o in new if o.type == "ARMATURE"]
    (body,) = [o for o in new if o.type == "MESH"]
    assert arm.choreo.skeleton_source == "smplx:SMPLX_NEUTRAL.npz" and body.parent == arm
    assert len(_key_frames(arm)) == 180


def _silent(path):
    import soundfile as sf

    sf.write(path, np.zeros(22050 * 4, np.float32), 22050)
    return path


def test_a_fresh_install_generates_with_the_bundled_weights_and_the_starter_library(scene, ext, tmp_path):
    """No preferences set: Generate uses the compact set inside the extension and retrieves references from
    the starter library that ships with it; the Library section lists that library, read-only."""
    from generation_fixture import write_drum_track

    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.weights_path, prefs.library_path, prefs.device = "", "", "cpu"
    settings = scene.choreo
    music = write_drum_track(tmp_path / "drums.wav", 14.0)
    settings.music_source, settings.music_file, settings.genre = "FILE", str(music), "Latin"
    before = set(bpy.data.objects)
    try:
        assert bpy.ops.choreo.generate() == {"FINISHED"}
        dancer = _new_dancer(before)
        record = dancer.animation_data.action["choreo_generation"]
        assert record["reference_mode"] == "auto" and "starter library" in record["library"]
        refs = [r for w in record["references"] for r in w]
        assert refs and all(r.startswith("CMU ") for r in refs)
        assert record["fk_error_m"] <= 0.05 and "References (auto): CMU" in settings.last_report
        assert bpy.ops.choreo.library_refresh() == {"FINISHED"}
        listed = [item for item in settings.library_clips]
        assert len(listed) >= 40 and all(item.shipped for item in listed)
        _select(settings, listed[0].name)
        with pytest.raises(RuntimeError, match="part of the starter library"):
            bpy.ops.choreo.library_remove(clip=listed[0].name)
    finally:
        prefs.device = "auto"
        _clear_library_state(settings)


@pytest.mark.parametrize("case", ["untrained_genre", "not_a_weight_set", "no_music_file", "missing_music",
                                  "no_sound_strip", "silent_music", "range_past_strip", "bad_smplx_path"])
def test_generate_bad_input_reports_and_writes_nothing(scene, gen_prefs, drum_track, tmp_path, case):
    settings = scene.choreo
    settings.music_source, settings.music_file = "FILE", str(drum_track)
    if case == "untrained_genre":                        # the bundled set (no folder set) never learned Ballet
        gen_prefs.weights_path = ""
        settings.genre = "Ballet"
    elif case == "not_a_weight_set":
        settings.weights_override = str(tmp_path)
    elif case == "no_music_file":
        settings.music_file = ""
    elif case == "missing_music":
        settings.music_file = str(tmp_path / "nope.wav")
    elif case == "no_sound_strip":
        settings.music_source = "STRIP"
    elif case == "silent_music":
        settings.music_file = str(_silent(tmp_path / "silence.wav"))
    elif case == "range_past_strip":
        add_sound = sys.modules[MODULE].addon.scene.timeline.add_sound_strip
        add_sound(scene, str(drum_track), 1)
        settings.music_source = "STRIP"
        settings.length_mode, settings.range_start = "RANGE", 7.0
    elif case == "bad_smplx_path":
        gen_prefs.smplx_model_path = str(tmp_path / "SMPLX_NEUTRAL.npz")
    message = {"untrained_genre": "not trained on Ballet", "not_a_weight_set": "no config.json", "no_music_file": "No music file",
               "missing_music": "nope.wav", "no_sound_strip": "no sound strip", "silent_music": "silent",
               "range_past_strip": "plays only 6.00 s", "bad_smplx_path": "SMPL-X model file"}[case]
    before = _scene_state(scene)
    with pytest.raises(RuntimeError, match=message):
        bpy.ops.choreo.generate()
    assert message in settings.last_report
    assert _scene_state(scene) == before
    assert not bpy.context.window_manager.choreo_job.running


def test_generate_in_a_worker_thread_then_cancel(scene, gen_prefs, drum_track, monkeypatch):
    """The interactive path: the job runs in a thread, the result is applied from the poll; Cancel writes nothing."""
    jobs = sys.modules[MODULE].addon.jobs
    threaded = jobs.run_job
    monkeypatch.setattr(jobs, "run_job", lambda title, work, apply: threaded(title, work, apply, synchronous=False))
    status = bpy.context.window_manager.choreo_job
    scene.choreo.music_source, scene.choreo.music_file = "FILE", str(drum_track)
    before = set(bpy.data.objects)
    assert bpy.ops.choreo.generate() == {"FINISHED"}
    assert jobs.is_running() and status.running and status.title == "Generate"
    assert not bpy.ops.choreo.generate.poll()                 # one job at a time
    jobs._current.thread.join(120)
    assert jobs._poll() is None and status.error == "" and not status.running
    dancer = _new_dancer(before)
    assert _key_frames(dancer)[0] == 1 and "180 frames" in scene.choreo.last_report

    state = _scene_state(scene)
    assert bpy.ops.choreo.generate() == {"FINISHED"}
    assert bpy.ops.choreo.cancel_job() == {"FINISHED"}
    jobs._current.thread.join(120)
    assert jobs._poll() is None
    assert "cancelled" in status.error and not status.running and _scene_state(scene) == state
    status.error = ""


class _FakeLayout:
    """Stands in for UILayout (Blender never calls draw() in background): every property and operator
    a panel names must exist."""

    def __init__(self, log):
        self.log = log

    def __getattr__(self, name):
        if name in ("row", "column", "box", "split"):
            return lambda *args, **kwargs: _FakeLayout(self.log)
        return lambda *args, **kwargs: self.log.append((name, args, kwargs))

    def prop(self, data, name, **kwargs):
        rna = getattr(data, "bl_rna", None)
        assert name in rna.properties if rna is not None else hasattr(data, name), name
        self.log.append(("prop", name))

    def operator(self, idname, **kwargs):
        module, op = idname.split(".")
        assert hasattr(getattr(bpy.ops, module), op), idname
        self.log.append(("operator", idname))
        return type("OperatorProperties", (), {})()


def _draw(panel_cls, **attrs):
    from types import SimpleNamespace

    log = []
    panel_cls.draw(SimpleNamespace(layout=_FakeLayout(log), **attrs), bpy.context)
    return log


def test_installed_extension_generates_without_the_repository(built_zip, weight_set, drum_track, tmp_path):
    """As in a real Blender: only the installed extension, nothing importable from this repository."""
    import site

    script = f"""
import os, sys
sys.path.extend({site.getsitepackages()!r})      # site-packages without its .pth files: no editable install
os.environ["BLENDER_USER_RESOURCES"] = {str(tmp_path / "home")!r}
os.environ["XDG_CACHE_HOME"] = {str(tmp_path / "cache")!r}
import bpy
bpy.ops.wm.read_factory_settings(use_empty=True)
result = bpy.ops.extensions.package_install_files(filepath={str(built_zip)!r}, repo="user_default",
                                                  enable_on_install=True)
assert result == {{"FINISHED"}}, result
for name in ("core_models", "weights_fetch"):
    try:
        __import__(name)
        sys.exit(name + " is importable from the repository; this test needs a clean path")
    except ImportError:
        pass
prefs = bpy.context.preferences.addons["bl_ext.user_default.choreo"].preferences
prefs.weights_path, prefs.device = {str(weight_set)!r}, "cpu"
scene = bpy.context.scene
scene.render.fps, scene.render.fps_base = 30, 1.0
scene.choreo.music_source, scene.choreo.music_file = "FILE", {str(drum_track)!r}
print(bpy.ops.choreo.generate(), scene.choreo.last_report)
"""
    out = subprocess.run([sys.executable, "-S", "-c", script], capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert "FINISHED" in out.stdout and "180 frames" in out.stdout


def _named(log):
    """The (kind, name) entries of a draw log: properties and operators."""
    return {entry for entry in log if len(entry) == 2}


def test_generate_panel_draws_every_state(scene, gen_prefs, weight_set):
    ext = sys.modules[MODULE]
    panels = ext.addon.panels
    gen_panel = panels.CHOREO_PT_generate
    settings = scene.choreo
    texts = lambda log: " | ".join(str(kw.get("text", "")) for kind, _, kw in
                                   (e for e in log if len(e) == 3) if kind in ("label", "progress"))
    log = _draw(gen_panel, draw_weight_set=gen_panel.draw_weight_set)
    assert ("operator", "choreo.generate") in log and ("prop", "music_source") in log
    assert "No music on the timeline" in texts(log) and "Weights: compact (preferences)" in texts(log)
    settings.music_source, settings.length_mode = "FILE", "RANGE"
    log = _draw(gen_panel, draw_weight_set=gen_panel.draw_weight_set)
    assert {("prop", "music_file"), ("prop", "range_start"), ("prop", "range_length")} <= _named(log)
    gen_prefs.weights_path = ""                                    # the compact set bundled with Choreo
    log = _draw(gen_panel, draw_weight_set=gen_panel.draw_weight_set)
    assert "Weights: compact (bundled)" in texts(log)
    settings.genre = "Ballet"                                      # not trained: marked, with the way out
    log = _draw(gen_panel, draw_weight_set=gen_panel.draw_weight_set)
    assert "Ballet is not a trained genre" in texts(log) and ("prop", "allow_untrained_genre") in _named(log)
    items = [i[0] for i in sys.modules[MODULE].addon.properties.genre_items(settings, bpy.context)]
    assert items[:4] == ["Popular", "Latin", "Modern", "Folk"] and set(items[4:]) == {"Ballet", "Classic"}
    settings.genre = "Popular"
    settings.weights_override = str(weight_set.parent)          # a folder without config.json
    assert "no config.json" in texts(_draw(gen_panel, draw_weight_set=gen_panel.draw_weight_set))
    job = bpy.context.window_manager.choreo_job
    job.running, job.title, job.stage, job.progress = True, "Generate", "generate", 0.5
    try:
        log = _draw(gen_panel, draw_weight_set=gen_panel.draw_weight_set)
        assert ("operator", "choreo.cancel_job") in log and ("operator", "choreo.generate") not in log
        assert "Generate: generate" in texts(log)
        assert ("operator", "choreo.cancel_job") not in _draw(panels.CHOREO_PT_main)   # one bar, not two
    finally:
        job.running, job.title, job.stage, job.progress = False, "", "", 0.0
    log = _draw(panels.CHOREO_PT_generate_advanced)
    assert {("prop", p) for p in ("temperature", "top_k", "top_p", "window_mode", "weights_override")} <= _named(log)
    prefs_cls = ext.addon.preferences.ChoreoPreferences
    fields = {name: getattr(gen_prefs, name) for name in ("weights_path", "library_path", "smplx_model_path", "device",
                                                          "precision")}
    log = _draw(prefs_cls, bl_rna=gen_prefs.bl_rna, **fields)
    assert ("prop", "weights_path") in log and "bundled with Choreo" in texts(log)


# ------------------------------------------------------------------------------------------------- Library

LIBRARY_CLIPS = {"Salsa one": ("Latin", "Salsa", 420, 0), "Pop two": ("Popular", "HipHop", 450, 1),
                 "Pop three": ("Popular", "K-pop", 400, 2), "Ballet four": ("Ballet", None, 410, 3)}
LIBRARY_SCALARS = ("library_genre", "library_text", "library_index", "library_shown", "library_status",
                   "library_results_index", "library_results_info", "library_new_name", "library_new_genre",
                   "library_new_subgenre", "library_new_licence")
LIBRARY_COLLECTIONS = ("library_clips", "library_pins", "library_results")


@pytest.fixture(scope="module")
def seed_library(tmp_path_factory):
    """A library made by the core: four smooth synthetic dances (>= 400 frames at 30 fps) in three genres."""
    from core_models.library import Library
    from motion_fixture import make_dance

    path = tmp_path_factory.mktemp("library") / "lib"
    lib = Library.create(path)
    for name, (genre, subgenre, frames, seed) in LIBRARY_CLIPS.items():
        lib.add(name, genre, subgenre, joints=make_dance(frames, seed=seed)[3], source="synthetic", licence="CC0-1.0")
    return path


@pytest.fixture(scope="module")
def retrieval_weight_set(tmp_path_factory):
    """A tiny random compact-family weight set with a RetrievalNet."""
    from generation_fixture import write_tiny_compact_weight_set

    return write_tiny_compact_weight_set(tmp_path_factory.mktemp("weights_rag") / "compact_rag", retrieval=True)


def _clear_library_state(settings):
    for prop in LIBRARY_COLLECTIONS:
        getattr(settings, prop).clear()
    for prop in LIBRARY_SCALARS:
        settings.property_unset(prop)


@pytest.fixture
def library(scene, seed_library, tmp_path):
    """A fresh copy of the library, chosen in the preferences (which lists it in the scene)."""
    import shutil

    path = tmp_path / "lib"
    shutil.copytree(seed_library, path)
    prefs = bpy.context.preferences.addons[MODULE].preferences
    _clear_library_state(scene.choreo)
    prefs.use_starter_library = False                  # these tests look at the user's own library alone
    prefs.library_path = str(path)
    yield path
    prefs.library_path = ""
    prefs.use_starter_library = True
    _clear_library_state(scene.choreo)


@pytest.fixture
def rag_prefs(ext, retrieval_weight_set):
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.weights_path, prefs.device = str(retrieval_weight_set), "cpu"
    yield prefs
    prefs.weights_path, prefs.device = "", "auto"


def _listed(settings):
    return [item.name for item in settings.library_clips]


def _select(settings, name):
    settings.library_index = _listed(settings).index(name)


def _on_disk(path):
    """What a library folder holds: its index and its clip files (contents included)."""
    return (path / "library.json").read_bytes(), {f.name: f.read_bytes() for f in (path / "clips").iterdir()}


def test_library_section_lists_and_filters_clips(scene, library, tmp_path):
    settings = scene.choreo
    assert _listed(settings) == ["Ballet four", "Pop three", "Pop two", "Salsa one"]    # listed on choosing it
    settings.library_clips.clear()
    assert bpy.ops.choreo.library_refresh() == {"FINISHED"}
    assert _listed(settings) == ["Ballet four", "Pop three", "Pop two", "Salsa one"]
    assert "4 clips" in settings.last_report and settings.library_shown == str(library)
    pop = settings.library_clips["Pop two"]
    # 450 frames of joints give 449 frames of features (velocities need two frames)
    assert (pop.genre, pop.subgenre, pop.frames, pop.licence) == ("Popular", "HipHop", 449, "CC0-1.0")
    assert pop.duration == pytest.approx(449 / 30)
    _select(settings, "Pop two")
    settings.library_genre = "Popular"                 # the list follows the filters
    assert _listed(settings) == ["Pop three", "Pop two"] and settings.library_clips[settings.library_index].name == "Pop two"
    settings.library_text = "thr"
    assert _listed(settings) == ["Pop three"]
    settings.library_genre, settings.library_text = "Latin", ""
    assert _listed(settings) == ["Salsa one"]
    settings.library_genre = "Folk"
    assert _listed(settings) == []
    settings.library_genre = "ALL"
    assert len(settings.library_clips) == 4

    # the section draws every state: the list, its buttons, pins
    panels = sys.modules[MODULE].addon.panels
    log = _draw(panels.CHOREO_PT_library)
    assert ("template_list", ("CHOREO_UL_library_clips", "", settings, "library_clips", settings, "library_index"),
            {"rows": 4}) in log
    assert {("operator", f"choreo.library_{op}") for op in ("refresh", "preview", "pin", "remove")} <= _named(log)
    assert {("prop", "library_genre"), ("prop", "library_text")} <= _named(log)
    row = []
    sys.modules[MODULE].addon.panels.CHOREO_UL_library_clips.draw_item(
        None, bpy.context, _FakeLayout(row), settings, settings.library_clips["Pop two"], 0, settings, "library_index")
    assert [kw["text"] for kind, _, kw in row if kind == "label"] == ["Pop two", "Popular / HipHop", "15.0 s", "CC0-1.0"]

    # a folder that is not a library: the panel says so and offers to create one there
    prefs = bpy.context.preferences.addons[MODULE].preferences
    empty = tmp_path / "new_library"
    prefs.library_path = str(empty)
    assert _listed(settings) == []
    with pytest.raises(RuntimeError, match="not found"):
        bpy.ops.choreo.library_refresh()
    log = _draw(panels.CHOREO_PT_library)
    assert ("operator", "choreo.library_create") in log and ("operator", "choreo.library_preview") not in log
    assert bpy.ops.choreo.library_create() == {"FINISHED"}
    assert (empty / "library.json").is_file() and settings.library_shown == str(empty) and _listed(settings) == []
    with pytest.raises(RuntimeError, match="already holds a library"):
        bpy.ops.choreo.library_create()
    # a damaged index: the panel shows the problem with a Repair button, which rebuilds it from the clip files
    prefs.library_path = str(library)
    (library / "library.json").write_text("{ half written")
    with pytest.raises(RuntimeError, match="damaged"):
        bpy.ops.choreo.library_refresh()
    assert ("operator", "choreo.library_repair") in _draw(panels.CHOREO_PT_library)
    assert bpy.ops.choreo.library_repair() == {"FINISHED"}
    assert _listed(settings) == ["Ballet four", "Pop three", "Pop two", "Salsa one"] and not settings.library_status


def test_preview_plays_a_clip_on_a_new_keyed_dancer(scene, library):
    from core_models.library import Library

    settings = scene.choreo
    scene.render.fps = 24                              # the 30 fps clip is resampled to the scene
    settings.start_frame = 5
    _select(settings, "Pop two")
    before = set(bpy.data.objects)
    assert bpy.ops.choreo.library_preview() == {"FINISHED"}
    dancer = _new_dancer(before)
    assert dancer.name == "Preview Pop two" and dancer.choreo.is_dancer and dancer["choreo_library_clip"] == "Pop two"
    assert dancer.animation_data.action.name == "Preview Pop two"
    frames = _key_frames(dancer)
    assert np.array_equal(frames, np.arange(5, 5 + 359))       # 449 frames at 30 fps = 359 at 24 fps
    assert scene.frame_end == 5 + 359 - 1
    clip = Library(library).joints("Pop two")
    assert np.abs(_world_body_joints(dancer, 5) - clip[0]).max() < 2e-3     # the clip's own pose
    assert np.abs(_world_body_joints(dancer, 5 + 200) - clip[250]).max() < 2e-3
    assert "Previewing 'Pop two'" in settings.last_report

    # by name, and bad input writes nothing
    assert bpy.ops.choreo.library_preview(clip="Salsa one") == {"FINISHED"}
    assert "Preview Salsa one" in bpy.data.objects
    state = _scene_state(scene)
    with pytest.raises(RuntimeError, match="no clip named 'Nope'"):
        bpy.ops.choreo.library_preview(clip="Nope")
    settings.library_genre = "Folk"                    # nothing listed, nothing selected
    with pytest.raises(RuntimeError, match="No clip selected"):
        bpy.ops.choreo.library_preview()
    assert _scene_state(scene) == state


def test_add_selected_action_grows_the_library_on_disk(scene, library, tmp_path):
    from core_models.library import Library

    settings = scene.choreo
    assert bpy.ops.choreo.library_preview(clip="Pop two") == {"FINISHED"}    # the active dancer
    settings.library_new_name, settings.library_new_genre = "My pop", "Popular"
    settings.library_new_subgenre, settings.library_new_licence = "House", "CC-BY-4.0"
    before_index, before_clips = _on_disk(library)
    assert bpy.ops.choreo.library_add_action() == {"FINISHED"}
    fresh = Library(library)                           # what another process sees
    info = fresh.info("My pop")
    assert (info.genre, info.subgenre, info.licence, info.frames) == ("Popular", "House", "CC-BY-4.0", 449 - 1)
    assert "Preview Pop two" in info.source
    assert [c["name"] for c in json.loads((library / "library.json").read_text())["clips"]] == \
        ["Ballet four", "My pop", "Pop three", "Pop two", "Salsa one"]
    index, clips = _on_disk(library)
    assert set(clips) - set(before_clips) == {Path(info.file).name}
    assert all(clips[name] == data for name, data in before_clips.items())          # the others untouched
    # the keys read back (and FK) give the clip's motion again
    assert np.abs(fresh.joints("My pop") - fresh.joints("Pop two")[:448]).max() < 5e-3
    assert "My pop" in _listed(settings) and settings.library_clips[settings.library_index].name == "My pop"
    assert "Added 'My pop'" in settings.last_report

    # errors leave the library as it was
    state = _on_disk(library)
    bpy.ops.choreo.add_dancer()                                                  # a dancer without an action
    dancer_without_action = bpy.context.active_object
    short = _write_synthetic_bvh(tmp_path / "short.bvh", frames=300)            # 10 s: shorter than a window
    cases = [
        (lambda: bpy.ops.choreo.library_add_action(), "has no action"),
        (lambda: (bpy.ops.choreo.load_motion(filepath=str(short)), bpy.ops.choreo.library_add_action(clip_name="Short")),
         "10.0 s long; a library clip must cover one reference window of 12.8 s"),
        (lambda: _activate("Preview Pop two") and bpy.ops.choreo.library_add_action(), "already in the library"),
        (lambda: bpy.ops.choreo.library_add_action(clip_name="New", genre="Polka"), "unknown genre 'Polka'"),
        (lambda: bpy.ops.choreo.library_add_action(clip_name="New", genre="Latin", subgenre="Waltz"),
         "unknown sub-genre 'Waltz'"),
        (lambda: bpy.ops.choreo.library_add_action(clip_name="bad/name"), "is not allowed"),
    ]
    bpy.context.view_layer.objects.active = dancer_without_action
    for call, message in cases:
        with pytest.raises(RuntimeError, match=message):
            call()
        assert message.split(";")[0] in settings.last_report
        assert _on_disk(library) == state
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.library_path = str(tmp_path / "nowhere")
    with pytest.raises(RuntimeError, match="Library folder not found"):
        bpy.ops.choreo.library_add_action(clip_name="Another")


def _activate(name):
    bpy.context.view_layer.objects.active = bpy.data.objects[name]
    return True


def test_add_an_imported_rigs_action_through_its_bone_map(scene, library, tmp_path):
    from core_models.library import Library

    bvh = _write_synthetic_bvh(tmp_path / "cmu_rig.bvh", frames=400, names=CMU_NAMES)
    assert bpy.ops.choreo.import_mocap(filepath=str(bvh)) == {"FINISHED"}
    rig = bpy.context.active_object
    assert not rig.choreo.is_dancer
    assert bpy.ops.choreo.library_add_action(clip_name="CMU rig", genre="Latin", subgenre="Rumba",
                                             licence="own work") == {"FINISHED"}
    fresh = Library(library)
    info = fresh.info("CMU rig")
    assert (info.genre, info.subgenre, info.licence, info.frames) == ("Latin", "Rumba", "own work", 399)
    # as if the rig's canonical joints (30 fps) had been added by the core directly
    from core_models.features import features_to_joints, joints_to_features

    expected = features_to_joints(joints_to_features(load_body_clip(bvh).joints))
    assert np.abs(fresh.joints("CMU rig") - expected).max() < 2e-3


def _generation_references(obj):
    info = obj.animation_data.action["choreo_generation"]
    return info["reference_mode"], [list(window) for window in info["references"]]


def test_pinning_changes_the_references_generate_uses(scene, library, rag_prefs, drum_track):
    ext = sys.modules[MODULE]
    settings = scene.choreo
    settings.music_source, settings.music_file, settings.genre = "FILE", str(drum_track), "Popular"
    summary = lambda: ext.addon.scene.library.reference_summary(bpy.context)
    assert summary() == "Automatic references from your library"
    before = set(bpy.data.objects)
    assert bpy.ops.choreo.generate() == {"FINISHED"}
    auto = _new_dancer(before)
    mode, refs = _generation_references(auto)
    assert mode == "auto" and len(refs) >= 1
    assert {r.split("@")[0] for window in refs for r in window} == {"Pop two", "Pop three"}   # the genre's clips
    assert "References (auto)" in settings.last_report

    _select(settings, "Ballet four")
    assert bpy.ops.choreo.library_pin() == {"FINISHED"}
    assert bpy.ops.choreo.library_pin(clip="Salsa one") == {"FINISHED"}
    assert [p.name for p in settings.library_pins] == ["Ballet four", "Salsa one"]
    assert summary() == "Using 2 pinned references"
    gen_log = _draw(ext.addon.panels.CHOREO_PT_generate, draw_weight_set=ext.addon.panels.CHOREO_PT_generate.draw_weight_set)
    assert "Using 2 pinned references" in [kw.get("text") for kind, _, kw in (e for e in gen_log if len(e) == 3)]
    lib_log = _draw(ext.addon.panels.CHOREO_PT_library)
    assert lib_log.count(("operator", "choreo.library_unpin")) == 2
    with pytest.raises(RuntimeError, match="already pinned"):
        bpy.ops.choreo.library_pin(clip="Salsa one")
    with pytest.raises(RuntimeError, match="not in the library"):
        bpy.ops.choreo.library_pin(clip="Nope")
    assert bpy.ops.choreo.library_unpin(clip="Salsa one") == {"FINISHED"}
    assert summary() == "Using 1 pinned reference"
    before = set(bpy.data.objects)
    assert bpy.ops.choreo.generate() == {"FINISHED"}
    pinned = _new_dancer(before)
    mode, pinned_refs = _generation_references(pinned)
    assert mode == "pinned" and len(pinned_refs) == len(refs)
    assert all(r.startswith("Ballet four@") for window in pinned_refs for r in window)
    assert pinned_refs != refs and "References (pinned): Ballet four" in settings.last_report
    assert str(library) in pinned.animation_data.action["choreo_generation"]["library"]

    # a pinned clip that left the library, or pins without a library: a clear error, nothing added
    settings.library_pins.add().name = "Gone"
    state = _scene_state(scene)
    with pytest.raises(RuntimeError, match="pinned clip.*'Gone'.*not in your library"):
        bpy.ops.choreo.generate()
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.library_path = ""
    with pytest.raises(RuntimeError, match="no reference library"):
        bpy.ops.choreo.generate()
    assert _scene_state(scene) == state
    prefs.library_path = str(library)
    # removing a clip (after the confirmation, which background mode skips) deletes it on disk and unpins it
    _select(settings, "Ballet four")
    assert bpy.ops.choreo.library_remove("INVOKE_DEFAULT") == {"FINISHED"}
    from core_models.library import Library

    assert "Ballet four" not in Library(library) and "Ballet four" not in _listed(settings)
    assert [p.name for p in settings.library_pins] == ["Gone"]
    assert bpy.ops.choreo.library_unpin(clip="Gone") == {"FINISHED"}
    assert summary() == "Automatic references from your library"


def test_retrieve_for_this_music_lists_scored_references_per_window(scene, library, rag_prefs, weight_set,
                                                                      tmp_path, monkeypatch):
    from generation_fixture import write_drum_track

    ext = sys.modules[MODULE]
    settings = scene.choreo
    music = write_drum_track(tmp_path / "long.wav", 14.0)       # 420 frames: two 12.8 s windows, 6.4 s apart
    settings.music_source, settings.music_file, settings.genre = "FILE", str(music), "Popular"
    assert bpy.ops.choreo.library_retrieve() == {"FINISHED"}
    results = settings.library_results
    top_k = ext.addon.scene.library.references_per_window()
    assert {r.window for r in results} == {0, 1}
    for window in (0, 1):
        rows = [r for r in results if r.window == window]
        scores = [r.score for r in rows]
        assert len(rows) == min(top_k, 4)                  # Pop two and Pop three have two windows each
        assert scores == sorted(scores, reverse=True) and all(-1.0 <= s <= 1.0 for s in scores)
        assert {r.name for r in rows} == {"Pop two", "Pop three"}
        assert all(r.music_s == pytest.approx(6.4 * window) for r in rows)
        assert all(0 <= r.start_s <= settings.library_clips[r.name].duration - 12.8 + 1e-6 for r in rows)
    assert "long.wav" in settings.library_results_info and "2 windows" in settings.library_results_info
    log = _draw(ext.addon.panels.CHOREO_PT_library_retrieve)
    assert ("operator", "choreo.library_retrieve") in log and any(e[0] == "template_list" for e in log)
    row = []
    ext.addon.panels.CHOREO_UL_library_results.draw_item(None, bpy.context, _FakeLayout(row), settings, results[0],
                                                          0, settings, "library_results_index")
    assert ("operator", "choreo.library_pin") in row
    assert f"{results[0].score:.3f}" in [kw.get("text") for kind, _, kw in (e for e in row if len(e) == 3)]

    # the interactive path: retrieval in a worker thread, the list filled from the poll
    jobs = ext.addon.jobs
    threaded = jobs.run_job
    monkeypatch.setattr(jobs, "run_job", lambda title, work, apply: threaded(title, work, apply, synchronous=False))
    first = [(r.window, r.name, r.start_s, r.score) for r in results]
    results.clear()
    assert bpy.ops.choreo.library_retrieve() == {"FINISHED"} and jobs.is_running()
    jobs._current.thread.join(60)
    assert jobs._poll() is None and bpy.context.window_manager.choreo_job.error == ""
    assert [(r.window, r.name, r.start_s, r.score) for r in results] == first      # the same ranking again
    monkeypatch.undo()

    # what retrieval cannot do is said before anything runs
    settings.genre = "Folk"
    with pytest.raises(RuntimeError, match="no Folk clips"):
        bpy.ops.choreo.library_retrieve()
    settings.genre = "Popular"
    rag_prefs.weights_path = str(weight_set)                 # a weight set without a RetrievalNet
    with pytest.raises(RuntimeError, match="has no RetrievalNet"):
        bpy.ops.choreo.library_retrieve()
    settings.music_file = str(tmp_path / "nope.wav")
    with pytest.raises(RuntimeError, match="nope.wav"):
        bpy.ops.choreo.library_retrieve()
    assert len(results) == 2 * min(top_k, 4)               # the last results are kept


def test_add_form_sub_genres_follow_the_genre(scene, library):
    from core_models.library import TAXONOMY

    settings = scene.choreo
    items = lambda: [i[0] for i in sys.modules[MODULE].addon.properties._subgenre_items(settings, bpy.context)]
    settings.library_new_genre = "Latin"
    assert items() == ["NONE", *TAXONOMY["Latin"]]
    settings.library_new_subgenre = "Samba"
    assert settings.library_new_subgenre == "Samba"
    settings.library_new_genre = "Folk"                   # another genre: back to none
    assert settings.library_new_subgenre == "NONE" and items() == ["NONE", *TAXONOMY["Folk"]]
    log = _draw(sys.modules[MODULE].addon.panels.CHOREO_PT_library_add)
    assert {("prop", p) for p in ("library_new_name", "library_new_genre", "library_new_subgenre",
                                  "library_new_licence")} | {("operator", "choreo.library_add_action")} <= _named(log)


# --- Foot Fix --------------------------------------------------------------------------------------------
LEG_BONES = {"lThigh", "lShin", "lFoot", "rThigh", "rShin", "rFoot"}


def _skated_cmu_bvh(path, frames=150, fps=30.0, seed=7, drop=(), lift=0.0):
    """A clean figure (planted feet, moving arms and spine) with synthetic skating, on a CMU-named rig in
    centimetres; ``lift`` raises the body (m, per frame) and ``drop`` leaves joints out of the rig."""
    from motion_fixture import CMU, rig_bvh, standing_clip

    from core_models.skating import SkatingParams, add_skating

    clean = standing_clip(frames)
    clean[..., 1] += lift
    skated, _ = add_skating(clean, SkatingParams(seed=seed))
    return rig_bvh(path, skated, fps=fps, scale=100.0, names=CMU, drop=drop)


def _curves_of(action):
    """{(data path, index): keyframe co (N, 2)} of every F-curve of a (slotted or legacy) action."""
    if hasattr(action, "layers") and len(action.layers):
        curves = [fc for layer in action.layers for strip in layer.strips for bag in strip.channelbags
                  for fc in bag.fcurves]
    else:
        curves = list(action.fcurves)
    return {(fc.data_path, fc.array_index): _co(fc).copy() for fc in curves}


def _rig_fsr(rig, scene, floor=None):
    """Foot skating ratio of the rig's current action, evaluated in the scene; heights above ``floor`` (m)
    when given (a fix is scored before and after against one floor), else the metric's frame-0 rule."""
    from core_models import metrics
    from core_models.motion import resample_linear

    rig_reader = sys.modules[MODULE].addon.scene.rig
    joints = rig_reader.rig_body_joints(*rig_reader.rig_positions(rig, scene))
    fps = scene.render.fps / scene.render.fps_base
    if fps != 30:
        joints = resample_linear(joints, fps, 30.0)
    if floor is None:
        return metrics.foot_skating_ratio(joints)["mean"]
    return metrics.foot_skating_ratio(joints - np.array([0.0, floor, 0.0]), normalize=False)["mean"]


@pytest.mark.parametrize("method", ["IK_LOCK", "FRDM"])
def test_fix_feet_on_an_imported_cmu_rig_writes_a_new_action(scene, tmp_path, method):
    """Blender's BVH importer, a CMU-named rig: a new action, the original bit-identical, the upper body's
    F-curves identical, less foot skating, contact markers and a report."""
    bvh = _skated_cmu_bvh(tmp_path / "skated_cmu.bvh")
    assert bpy.ops.choreo.import_mocap(filepath=str(bvh)) == {"FINISHED"}
    rig = bpy.context.active_object
    original = rig.animation_data.action
    before_curves = _curves_of(original)
    rig.choreo.foot_method = method
    assert bpy.ops.choreo.fix_feet() == {"FINISHED"}, scene.choreo.last_report
    fixed = rig.animation_data.action
    report = json.loads(fixed["choreo_foot_fix"])
    floor = report["floor_height_m"]
    assert fixed != original and fixed.name == f"{original.name} feet fixed"
    assert original.name in bpy.data.actions and original.use_fake_user
    original_now = _curves_of(original)
    assert original_now.keys() == before_curves.keys()
    assert all(np.array_equal(before_curves[k], original_now[k]) for k in before_curves)   # untouched, bit for bit
    after_curves = _curves_of(fixed)
    changed = {k for k in after_curves if k not in before_curves or not np.array_equal(after_curves[k], before_curves[k])}
    allowed = {('pose.bones["hip"].location', i) for i in range(3)} | {
        (f'pose.bones["{b}"].rotation_euler', i) for b in LEG_BONES for i in range(3)}
    assert changed and changed <= allowed, sorted(changed - allowed)
    assert any(k[0].endswith("location") for k in changed) or method == "FRDM"
    assert any("Shin" in k[0] for k in changed)
    fsr_after = _rig_fsr(rig, scene, floor)
    rig.animation_data.action = original
    fsr_before = _rig_fsr(rig, scene, floor)
    rig.animation_data.action = fixed
    assert fsr_after < 0.5 * fsr_before, (fsr_before, fsr_after)
    assert report["fsr_before"]["mean"] == pytest.approx(fsr_before, abs=0.01)
    assert report["method"] == method.lower() and report["source_action"] == original.name
    assert report["upper_body_change_m"] == 0.0
    assert abs(report["fsr_after_on_rig"]["mean"] - fsr_after) < 0.02
    markers = [m for m in scene.timeline_markers if m.name.startswith("Choreo ")]
    runs = sum(len(v) for v in report["contact_intervals"].values())
    assert runs > 0 and len(markers) == 2 * runs
    assert "Fixed feet of" in scene.choreo.last_report and "FSR" in scene.choreo.last_report
    # the panel shows the report for the fixed action
    log = _draw(sys.modules[MODULE].addon.panels.CHOREO_PT_foot_fix)
    assert ("operator", "choreo.fix_feet") in _named(log)


def test_fix_feet_at_60_fps_from_a_120_fps_clip_in_centimetres(scene, tmp_path):
    scene.render.fps = 60
    bvh = _skated_cmu_bvh(tmp_path / "fast.bvh", frames=120, fps=120.0, seed=3)
    assert bpy.ops.choreo.import_mocap(filepath=str(bvh)) == {"FINISHED"}
    rig = bpy.context.active_object
    rig.choreo.foot_method = "IK_LOCK"
    assert bpy.ops.choreo.fix_feet() == {"FINISHED"}, scene.choreo.last_report
    report = json.loads(rig.animation_data.action["choreo_foot_fix"])
    after = _rig_fsr(rig, scene, report["floor_height_m"])
    assert after < 0.5 * report["fsr_before"]["mean"] and abs(after - report["fsr_after_on_rig"]["mean"]) < 0.02


def test_contact_overrides_from_the_panel_reach_the_fix(scene, tmp_path):
    bvh = _skated_cmu_bvh(tmp_path / "override.bvh", frames=90)
    assert bpy.ops.choreo.import_mocap(filepath=str(bvh)) == {"FINISHED"}
    rig = bpy.context.active_object
    scene.frame_set(1)
    assert bpy.ops.choreo.contact_override_add(foot="BOTH", contact="NEVER") == {"FINISHED"}
    item = rig.choreo.contact_overrides[0]
    item.frame_start, item.frame_end = 1, 90
    rig.choreo.foot_method = "IK_LOCK"
    assert bpy.ops.choreo.fix_feet() == {"FINISHED"}
    report = json.loads(rig.animation_data.action["choreo_foot_fix"])
    assert report["contact_frames"] == {"left": 0, "right": 0}
    assert bpy.ops.choreo.contact_override_remove() == {"FINISHED"} and not len(rig.choreo.contact_overrides)
    # an edit in the Bone Map panel is what every rig reader uses (Fix Feet, Convert, Add to Library)
    rig_reader = sys.modules[MODULE].addon.scene.rig
    assert rig_reader.rig_positions(rig, scene)[3].source_for["left_collar"] == "lCollar"
    next(i for i in rig.choreo.bone_map if i.canonical == "left_collar").bone = ""
    assert "left_collar" not in rig_reader.rig_positions(rig, scene)[3].source_for
    assert bpy.ops.choreo.remap_bones() == {"FINISHED"}
    assert rig_reader.stored_mapping(rig).source_for["left_collar"] == "lCollar"


def test_fix_feet_bad_input_reports_and_keeps_the_original(scene, tmp_path):
    # no action
    bpy.ops.object.armature_add()
    bare = bpy.context.active_object
    with pytest.raises(RuntimeError, match="has no action to fix"):
        bpy.ops.choreo.fix_feet()
    bpy.data.objects.remove(bare)
    # one frame
    bvh = _skated_cmu_bvh(tmp_path / "one.bvh", frames=1)
    assert bpy.ops.choreo.import_mocap(filepath=str(bvh)) == {"FINISHED"}
    rig = bpy.context.active_object
    action = rig.animation_data.action
    with pytest.raises(RuntimeError, match="single frame of animation: there is no foot skating"):
        bpy.ops.choreo.fix_feet()
    assert rig.animation_data.action == action and len(bpy.data.actions) == 1
    # a rig without toe bones: the ankles are planted, and the report says so
    bvh = _skated_cmu_bvh(tmp_path / "no_toes.bvh", frames=90, seed=4, drop=(10, 11))
    assert bpy.ops.choreo.import_mocap(filepath=str(bvh)) == {"FINISHED"}
    rig = bpy.context.active_object
    assert "lToe" not in rig.data.bones
    rig.choreo.foot_method = "IK_LOCK"
    assert bpy.ops.choreo.fix_feet() == {"FINISHED"}, scene.choreo.last_report
    report = json.loads(rig.animation_data.action["choreo_foot_fix"])
    assert report["has_toes"] is False and "toe" in " ".join(report["notes"])
    assert _rig_fsr(rig, scene, report["floor_height_m"]) < report["fsr_before"]["mean"]
    # a jump sequence: airborne most of the time; said in the report, the airborne frames left alone
    flight = np.linspace(0, 1, 70)
    height = np.concatenate([np.zeros(10), 4 * 0.6 * flight * (1 - flight), np.zeros(10)])
    bvh = _skated_cmu_bvh(tmp_path / "jump.bvh", frames=90, lift=height[:, None])
    assert bpy.ops.choreo.import_mocap(filepath=str(bvh)) == {"FINISHED"}
    rig = bpy.context.active_object
    rig.choreo.foot_method = "IK_LOCK"
    assert bpy.ops.choreo.fix_feet() == {"FINISHED"}
    assert "touch the floor in only" in scene.choreo.last_report


def test_import_mocap_checks_a_damaged_bvh_with_the_core_reader_first(scene, tmp_path):
    """A truncated BVH is named with its line by the core's reader; Blender's importer never sees it."""
    bvh = _write_synthetic_bvh(tmp_path / "whole.bvh", frames=40, names=CMU_NAMES)
    text = bvh.read_text()
    cut = text.rfind("e", 0, int(len(text) * 0.7))                  # mid-number, as in '-6.48686e'
    cut = cut if cut > 0 else int(len(text) * 0.7)
    (tmp_path / "cut.bvh").write_text(text[:cut])
    before = (set(bpy.data.objects), set(bpy.data.actions), set(bpy.data.armatures))
    with pytest.raises(RuntimeError, match=r"BVH '.*cut\.bvh', line \d+: .*Nothing was imported"):
        bpy.ops.choreo.import_mocap(filepath=str(tmp_path / "cut.bvh"))
    assert "ValueError" not in scene.choreo.last_report and "line" in scene.choreo.last_report
    assert (set(bpy.data.objects), set(bpy.data.actions), set(bpy.data.armatures)) == before
    assert bpy.ops.choreo.import_mocap(filepath=str(bvh)) == {"FINISHED"}          # the whole file still imports


def test_an_nla_only_action_is_named_and_a_constrained_rig_gets_a_note(scene, tmp_path):
    bvh = _write_synthetic_bvh(tmp_path / "nla.bvh", frames=60, names=CMU_NAMES)
    assert bpy.ops.choreo.import_mocap(filepath=str(bvh)) == {"FINISHED"}
    rig = bpy.context.active_object
    ad = rig.animation_data
    action = ad.action
    strip = ad.nla_tracks.new().strips.new("Dance strip", int(action.frame_range[0]), action)
    ad.action = None
    before = set(bpy.data.objects)
    for op in (bpy.ops.choreo.convert_to_dancer, bpy.ops.choreo.library_add_action):
        with pytest.raises(RuntimeError, match=rf"'{rig.name}' has no active action to .*: the action is in NLA strip "
                                               rf"'{strip.name}' \(track '.*', action '{action.name}'\)"):
            op()
        assert "NLA strip 'Dance strip'" in scene.choreo.last_report
    assert set(bpy.data.objects) == before
    ad.nla_tracks.remove(ad.nla_tracks[0])
    ad.action = action
    limit = rig.pose.bones["lShin"].constraints.new("LIMIT_ROTATION")
    limit.use_limit_x = True
    assert bpy.ops.choreo.convert_to_dancer() == {"FINISHED"}
    assert (f"note: '{rig.name}' has 1 active constraint(s) (limit rotation on lShin); its motion was read with "
            "them applied") in scene.choreo.last_report
    limit.mute = True                                            # muted: no note
    _activate(rig.name)
    assert bpy.ops.choreo.convert_to_dancer() == {"FINISHED"} and "constraint" not in scene.choreo.last_report


def test_contact_markers_are_the_source_of_truth_for_fix_feet(scene, tmp_path):
    """Detect Contacts writes plant/lift markers; a moved plant marker changes what the next Fix Feet plants,
    a deleted pair removes that contact."""
    bvh = _skated_cmu_bvh(tmp_path / "markers.bvh")
    assert bpy.ops.choreo.import_mocap(filepath=str(bvh)) == {"FINISHED"}
    rig = bpy.context.active_object
    rig.choreo.foot_method = "IK_LOCK"
    assert bpy.ops.choreo.detect_contacts() == {"FINISHED"}, scene.choreo.last_report
    prefix = f"Choreo {rig.name} "
    plants = sorted((m for m in scene.timeline_markers if m.name == prefix + "L plant"), key=lambda m: m.frame)
    lifts = sorted((m for m in scene.timeline_markers if m.name == prefix + "L lift"), key=lambda m: m.frame)
    assert plants and len(plants) == len(lifts)
    first = int(rig.animation_data.action.frame_range[0])
    fps = scene.render.fps / scene.render.fps_base
    # move the first left plant 20 frames later (the foot lands later)
    span = lifts[0].frame - plants[0].frame
    assert span > 25, span
    plants[0].frame += 20
    moved = plants[0].frame              # the fix rewrites the markers: the Python marker object goes stale
    assert bpy.ops.choreo.fix_feet() == {"FINISHED"}, scene.choreo.last_report
    report = json.loads(rig.animation_data.action["choreo_foot_fix"])
    assert report["contacts_source"] == "given" and "plant/lift marker" in " ".join(report["notes"])
    left = report["contact_intervals"]["left"]
    assert left[0][0] == int(round((moved - first) * 30.0 / fps))
    # the markers now say what was planted (rewritten from the fix), the moved one kept its place
    again = sorted(m.frame for m in scene.timeline_markers if m.name == prefix + "L plant")
    assert again[0] == moved
    # the frames between the old and the new plant are no longer planted: with the markers as detected, the
    # fix plants them
    rig.animation_data.action = bpy.data.actions[report["source_action"]]
    assert bpy.ops.choreo.detect_contacts() == {"FINISHED"}
    assert bpy.ops.choreo.fix_feet() == {"FINISHED"}
    detected = json.loads(rig.animation_data.action["choreo_foot_fix"])["contact_intervals"]["left"]
    assert detected[0][0] < left[0][0]
    # delete the first left pair: that contact is gone from the next fix
    rig.animation_data.action = bpy.data.actions[report["source_action"]]
    for kind in ("plant", "lift"):
        scene.timeline_markers.remove(min((m for m in scene.timeline_markers if m.name == prefix + "L " + kind),
                                          key=lambda m: m.frame))
    assert bpy.ops.choreo.fix_feet() == {"FINISHED"}
    gone = json.loads(rig.animation_data.action["choreo_foot_fix"])["contact_intervals"]["left"]
    assert len(gone) == len(detected) - 1



def test_disable_and_remove_leaves_nothing_behind(ext):
    repos = bpy.context.preferences.extensions.repos
    index = next(i for i, r in enumerate(repos) if r.module == "user_default")
    assert bpy.ops.extensions.package_uninstall(repo_index=index, pkg_id="choreo") == {"FINISHED"}
    assert MODULE not in bpy.context.preferences.addons
    leftovers = [name for name in dir(bpy.types) if name.startswith(("CHOREO_", "Choreo"))]
    assert leftovers == []
    assert not hasattr(bpy.types.Object, "choreo") and not hasattr(bpy.types.Scene, "choreo")
    assert not hasattr(bpy.types.WindowManager, "choreo_job")
    for name in dir(bpy.app.handlers):
        handlers = getattr(bpy.app.handlers, name)
        if isinstance(handlers, list):
            assert not [h for h in handlers if "choreo" in getattr(h, "__module__", "")], name
    jobs = ext.addon.jobs
    assert not bpy.app.timers.is_registered(jobs._poll)
