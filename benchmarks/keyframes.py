# SPDX-License-Identifier: GPL-3.0-or-later
"""Keyframe writer/reader speed in the real bpy module; prints JSON.

Goal (issue 3): 55 bones x 9,000 frames written in <= 0.5 s, read back in <= 1 s. Baselines measured in the
same run: per-key ``keyframe_points.insert(..., options={'FAST'})`` for writing and frame-by-frame scene
evaluation for reading (both on fewer frames: they scale at least linearly).
"""
import json
import os
import sys
import tempfile
import time
from pathlib import Path

home = tempfile.mkdtemp(prefix="choreo-bench-")
os.environ["BLENDER_USER_RESOURCES"] = home
os.environ["XDG_CACHE_HOME"] = os.path.join(home, "cache")
sys.path.insert(0, str(Path(__file__).resolve().parents[1].parent))

import bpy  # noqa: E402
import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _install():
    from bl_pkg import bl_extension_cli

    dist = Path(home) / "dist"
    dist.mkdir()
    bl_extension_cli.cli_extension_handler(["build", "--source-dir", str(REPO), "--output-dir", str(dist)])
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.extensions.package_install_files(filepath=str(next(dist.glob("*.zip"))), repo="user_default",
                                             enable_on_install=True)
    return sys.modules["bl_ext.user_default.choreo"]


def _motion(ext, frames):
    import importlib

    skel = importlib.import_module(ext.__name__ + ".core_models.skeleton").default_skeleton()
    rng = np.random.default_rng(0)
    t = np.arange(frames)[:, None, None] / 30.0
    aa = 0.4 * np.sin(t * rng.uniform(0.5, 3, (1, 55, 3)) + rng.uniform(0, 6, (1, 55, 3)))
    rot = importlib.import_module(ext.__name__ + ".core_models.rotations").axis_angle_to_quat(aa)
    root = np.stack([np.sin(t[:, 0, 0]), np.full(frames, 0.95), 0.1 * t[:, 0, 0]], -1)
    return importlib.import_module(ext.__name__ + ".core_models.motion").Motion(rot, root, skel, 30.0)


def _best(fn, repeats=3):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    ext = _install()
    scene = bpy.context.scene
    scene.render.fps = 30
    import importlib

    kf = importlib.import_module(ext.__name__ + ".addon.scene.keyframes")
    armature = importlib.import_module(ext.__name__ + ".addon.scene.dancer")
    obj = armature.build_armature(bpy.context)
    skel = armature.armature_skeleton(obj)
    results = {}
    for frames in (900, 9000):
        motion = _motion(ext, frames)
        results[f"write_{frames}_s"] = _best(lambda: kf.write_motion(obj, motion, scene))
        results[f"read_fcurves_{frames}_s"] = _best(lambda: kf.read_motion(obj, skel))
    # baseline writer: one insert call per key (what keyframe_insert-style add-ons do, in its fastest form)
    motion = _motion(ext, 900)
    names, pose, loc = kf.pose_channels(obj, motion)

    def insert_per_key():
        action = bpy.data.actions.new("baseline")
        _, new_fcurve = kf._new_fcurve_factory(action, obj)
        for j, name in enumerate(names):
            for c in range(4):
                fc = new_fcurve(kf._rot_path(name), c, name)
                for f in range(motion.num_frames):
                    fc.keyframe_points.insert(f + 1, pose[f, j, c], options={"FAST"})
                fc.update()

    results["baseline_insert_per_key_900_s"] = _best(insert_per_key, repeats=1)
    kf.write_motion(obj, motion, scene)
    results["baseline_read_evaluated_900_s"] = _best(lambda: kf.read_motion(obj, skel, evaluated=True), repeats=1)
    results["write_speedup_vs_insert_900"] = results["baseline_insert_per_key_900_s"] / results["write_900_s"]
    results["read_speedup_vs_evaluated_900"] = results["baseline_read_evaluated_900_s"] / results["read_fcurves_900_s"]
    results["goal_write_9000_le_0.5s"] = results["write_9000_s"] <= 0.5
    results["goal_read_9000_le_1s"] = results["read_fcurves_9000_s"] <= 1.0
    results["blender"] = bpy.app.version_string
    out = json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in results.items()}, indent=2)
    print(out)
    target = REPO / "benchmarks" / "results"
    target.mkdir(exist_ok=True)
    (target / "keyframes.json").write_text(out)


if __name__ == "__main__":
    main()
