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
    sc.choreo.start_frame = 1
    sc.choreo.last_report = ""
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
    return ext.addon.space.to_core(heads)


def _fcurves(obj):
    ext = sys.modules[MODULE]
    return ext.addon.keyframes._action_fcurves(obj.animation_data.action, obj)


def test_zip_is_built_by_blender_and_holds_only_the_extension(built_zip):
    names = zipfile.ZipFile(built_zip).namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names
    assert "core_models/kinematics.py" in names and "addon/keyframes.py" in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", ".")) or n in ("Makefile", "pyproject.toml")]


def test_enabled_and_every_class_registered(ext):
    assert MODULE in bpy.context.preferences.addons
    for cls_name in ("CHOREO_PT_main", "CHOREO_PT_generate", "CHOREO_PT_foot_fix", "CHOREO_PT_library",
                     "CHOREO_OT_add_dancer", "CHOREO_OT_load_motion", "CHOREO_OT_import_mocap",
                     "CHOREO_OT_convert_to_dancer", "CHOREO_OT_add_sound", "CHOREO_OT_cancel_job"):
        assert hasattr(bpy.types, cls_name), cls_name
    for op in ("add_dancer", "load_motion", "import_mocap", "convert_to_dancer", "add_sound", "cancel_job"):
        assert hasattr(bpy.ops.choreo, op)
    prefs = bpy.context.preferences.addons[MODULE].preferences
    assert prefs.device == "auto" and prefs.smplx_model_path == ""
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
    expected = sys.modules[MODULE].addon.space.to_blender(rest - [0, rest[:, 1].min(), 0])
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
    # original scene untouched otherwise: one armature, one action
    assert len(bpy.data.objects) == 1 and len(bpy.data.actions) == 1

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
    skel = ext.addon.armature.armature_skeleton(obj)
    motion = ext.addon.keyframes.read_motion(obj, skel)
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
    skel = ext.addon.armature.armature_skeleton(obj)
    fast = ext.addon.keyframes.read_motion(obj, skel)
    evaluated = ext.addon.keyframes.read_motion(obj, skel, evaluated=True)
    assert np.abs(fast.joints() - evaluated.joints()).max() < 1e-5
    clip = load_body_clip(bvh)
    assert np.abs(fast.joints()[:, :22] - clip.joints).max() < 1e-4
    # a constraint is only seen by the evaluated path
    con = obj.pose.bones["left_elbow"].constraints.new("LIMIT_ROTATION")
    con.use_limit_x = con.use_limit_y = con.use_limit_z = True
    con.owner_space = "LOCAL"
    constrained = ext.addon.keyframes.read_motion(obj, skel, evaluated=True)
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


def _write_synthetic_bvh(path, frames, names=None):
    """A stepping figure on the default skeleton written as BVH; ``names`` renames the bones."""
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
    clip = bvh_from_rotations(list(names or BODY_JOINT_NAMES), list(skel.parents), skel.offsets,
                              axis_angle_to_quat(aa), root, 1.0 / 30.0)
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
    samples, sr, strip = sys.modules[MODULE].addon.operators.scene_music(scene)
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
        "unmappable_rig": (lambda: bpy.ops.choreo.import_mocap(
            filepath=str(_write_synthetic_bvh(tmp_path / "odd.bvh", 20, names=[f"bone{i}" for i in range(22)]))),
            "left_knee"),
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
