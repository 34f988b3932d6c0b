# SPDX-License-Identifier: GPL-3.0-or-later
"""``make demo``: a dance generated end to end in the installed extension, saved and rendered headless.

    python addon/demo.py OUT_DIR [--music FILE] [--seconds S] [--genre G]

Run from a checkout, this file builds the extension with Blender's own builder, installs it into a
temporary Blender user folder (as a user would from the zip) and then runs :func:`run_demo` from the
installed copy: music (synthesised in code unless given), Generate with the compact weight set shipped
inside the extension, Fix Feet, metrics, ``demo.blend`` (dancer + sound strip), a preview video of the
dance (Workbench, rendered headless) and ``demo_report.json``.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

DEMO_BPM = 118.0


def _synth_music(path: Path, seconds: float) -> None:
    """Drums and bass at 118 bpm with a short break every 8 bars (so the dance has phrases)."""
    import numpy as np
    import soundfile

    from ..core_models.audio import synth_accompaniment

    period = 30.0 * 60.0 / DEMO_BPM
    beats = np.arange(8.0, seconds * 30.0, period)
    beats = beats[(np.arange(beats.size) % 32) < 30]                 # a two-beat break each phrase
    soundfile.write(path, synth_accompaniment(beats, int(seconds * 30), sr=44100, seed=7), 44100)


def _generation_record() -> dict:
    """What Generate recorded on the demo's action (references, notes, fk error, stage), as JSON."""
    import bpy

    for action in bpy.data.actions:
        record = action.get("choreo_generation")
        if record is not None:
            return json.loads(json.dumps(record.to_dict(), default=str))
    return {}


def _facing(joints):
    """The dancer's mean facing (unit vector, Blender space) and mean pelvis position over a core-space dance."""
    import numpy as np

    from .scene.space import to_blender

    across = joints[:, 1] - joints[:, 2]                       # right hip -> left hip (core: left is +X)
    forward = np.cross(across, np.array([0.0, 1.0, 0.0]))      # core: faces +Z when left is +X
    forward[:, 1] = 0.0
    forward /= np.maximum(np.linalg.norm(forward, axis=-1, keepdims=True), 1e-9)
    mean = forward.mean(axis=0)
    mean = mean / max(float(np.linalg.norm(mean)), 1e-9) if np.linalg.norm(mean) > 1e-3 else np.array([0, 0, 1.0])
    return to_blender(mean), to_blender(joints[:, 0].mean(axis=0))


def _stage(scene, obj, joints) -> None:
    """A floor, and a camera in front of the dancer and to its side (a front three-quarter view of where it
    faces on average) far enough to frame the whole body anywhere on the stage."""
    import math

    import bpy

    facing, centre = _facing(joints)
    bpy.ops.mesh.primitive_plane_add(size=60.0, location=(float(centre[0]), float(centre[1]), 0.0))
    bpy.context.active_object.name = "demo_floor"
    angle = math.radians(40.0)                         # 40 degrees to the dancer's left of straight ahead
    cx = facing[0] * math.cos(angle) - facing[1] * math.sin(angle)
    cy = facing[0] * math.sin(angle) + facing[1] * math.cos(angle)
    bpy.ops.object.camera_add(location=(float(centre[0] + 6.0 * cx), float(centre[1] + 6.0 * cy), 1.4))
    cam = bpy.context.active_object
    cam.data.lens = 45.0
    track = cam.constraints.new("TRACK_TO")           # the pelvis stays in the middle of the frame
    track.target, track.subtarget = obj, "pelvis"
    track.track_axis, track.up_axis = "TRACK_NEGATIVE_Z", "UP_Y"
    scene.camera = cam
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.shading.light = "STUDIO"
    scene.display.shading.color_type = "MATERIAL"
    scene.display.shading.show_shadows = True
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 480, 360, 100


def _encode_video(frames_dir: Path, fps: float, music: Path, out: Path) -> str:
    """PNG frames + the music -> H.264 MP4 with the bundled ffmpeg of imageio-ffmpeg (when installed)."""
    import subprocess

    try:
        import imageio_ffmpeg
    except ImportError:
        return "imageio-ffmpeg is not installed: the PNG frames are the preview"
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-framerate", f"{fps:g}",
           "-i", str(frames_dir / "frame_%04d.png"), "-i", str(music), "-shortest", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", "-c:a", "aac", str(out)]
    subprocess.run(cmd, check=True)
    return ""


def run_demo(out_dir, music: str | None = None, seconds: float = 16.0, genre: str = "Popular") -> dict:
    """Inside Blender with the extension enabled: generate, fix feet, save, render, report."""
    import bpy

    from ..core_models import metrics
    from ..core_models.audio import load_audio, music_beat_frames
    from .scene.dancer import armature_skeleton
    from .scene.keyframes import read_motion
    from .scene.settings import get_preferences

    t0 = time.perf_counter()
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    music_path = Path(music).resolve() if music else out / "demo_music.wav"
    if not music:
        _synth_music(music_path, seconds)
    prefs = get_preferences(bpy.context)
    # What a fresh install uses: the bundled compact weight set and the starter library inside the extension.
    prefs.weights_path, prefs.library_path = "", ""
    prefs.device = "cpu"
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    settings = scene.choreo
    settings.music_source, settings.music_file, settings.genre = "FILE", str(music_path), genre
    settings.start_frame = 1
    timings = {}
    t = time.perf_counter()
    if bpy.ops.choreo.generate() != {"FINISHED"}:
        raise RuntimeError(f"Generate failed: {settings.last_report}")
    timings["generate_s"] = time.perf_counter() - t
    generate_report = settings.last_report
    dancer = bpy.context.active_object
    skeleton = armature_skeleton(dancer)
    before = read_motion(dancer, skeleton, scene=scene).joints()[:, :22]
    t = time.perf_counter()
    dancer.choreo.foot_method = "FRDM"          # the bundled FRDM weights (IK lock if they are missing)
    if bpy.ops.choreo.fix_feet() != {"FINISHED"}:
        raise RuntimeError(f"Fix Feet failed: {settings.last_report}")
    fix_report = settings.last_report
    timings["fix_feet_s"] = time.perf_counter() - t
    after = read_motion(dancer, skeleton, scene=scene).joints()[:, :22]
    fix = json.loads(dancer.animation_data.action["choreo_foot_fix"])

    samples, sr = load_audio(music_path)
    beats = music_beat_frames(samples, sr)
    report = {
        "music": str(music_path), "seconds": round(len(samples) / sr, 2), "frames": int(after.shape[0]),
        "genre": genre, "beat_align_score": round(metrics.beat_align_score(after, beats), 4),
        "beat_align_score_before_fix": round(metrics.beat_align_score(before, beats), 4),
        # both against the floor the fix found (the frame-0 rule would move the ground with the fix)
        "fsr_before_fix": round(fix["fsr_before"]["mean"], 4), "fsr": round(fix["fsr_after_on_rig"]["mean"], 4),
        "jitter_before_fix": round(float(metrics.jitter(before)), 3), "jitter": round(float(metrics.jitter(after)), 3),
        "foot_fix_method": fix["method"], "floor_height_m": fix["floor_height_m"],
        "generate_report": generate_report, "fix_feet_report": fix_report,
        "library": "starter library shipped with the extension",
        "generation": _generation_record(),
    }

    _stage(scene, dancer, after)                # the dancer's mannequin body is what renders
    blend = out / "demo.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend), copy=True)
    t = time.perf_counter()
    frames_dir = out / "frames"
    frames_dir.mkdir(exist_ok=True)
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = str(frames_dir / "frame_")
    scene.frame_start, scene.frame_end = 1, int(after.shape[0])
    bpy.ops.render.render(animation=True)
    # Blender numbers frames from frame_start with 4 digits: frame_0001.png ...
    note = _encode_video(frames_dir, 30.0, music_path, out / "demo_preview.mp4")
    timings["render_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    report.update(blend=str(blend), video=str(out / "demo_preview.mp4") if not note else str(frames_dir),
                  timings={k: round(v, 2) for k, v in timings.items()})
    if note:
        report["note"] = note
    (out / "demo_report.json").write_text(json.dumps(report, indent=2))
    return report


def render_genre_stills(out_dir, music: str | None = None, seconds: float = 16.0, per_genre: int = 6) -> dict:
    """One dance per trained genre of the bundled weight set, each rendered at ``per_genre`` evenly spaced
    frames (``OUT/genres/<genre>_<frame>.png``): what an animator sees of every genre."""
    import bpy

    from .scene.dancer import armature_skeleton
    from .scene.keyframes import read_motion
    from .scene.settings import get_preferences, trained_genres, weight_set_folder

    out = Path(out_dir).resolve() / "genres"
    out.mkdir(parents=True, exist_ok=True)
    music_path = Path(music).resolve() if music else out / "genre_music.wav"
    if not music:
        _synth_music(music_path, seconds)
    prefs = get_preferences(bpy.context)
    prefs.weights_path, prefs.library_path, prefs.device = "", "", "cpu"
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    settings = scene.choreo
    settings.music_source, settings.music_file, settings.start_frame = "FILE", str(music_path), 1
    shown = []
    stills = {}
    for genre in trained_genres(weight_set_folder(bpy.context)[0]):
        for obj in shown:
            obj.hide_render = True
        settings.genre = genre
        if bpy.ops.choreo.generate() != {"FINISHED"}:
            raise RuntimeError(f"Generate failed for {genre}: {settings.last_report}")
        dancer = bpy.context.active_object
        shown = [dancer] + list(dancer.children)          # its mannequin body
        for obj in [o for o in scene.objects if o.name.startswith("demo_floor") or o.type == "CAMERA"]:
            bpy.data.objects.remove(obj)
        _stage(scene, dancer, read_motion(dancer, armature_skeleton(dancer), scene=scene).joints()[:, :22])
        frames = int(dancer.animation_data.action["choreo_frames"])
        picks = [int(round(1 + k * (frames - 1) / (per_genre - 1))) for k in range(per_genre)]
        stills[genre] = []
        for frame in picks:
            scene.frame_set(frame)
            scene.render.filepath = str(out / f"{genre}_{frame:04d}.png")
            bpy.ops.render.render(write_still=True)
            stills[genre].append(scene.render.filepath)
    return stills


def _bootstrap(argv) -> int:
    """From a checkout: build + install the extension into a temporary Blender home, run the demo there."""
    import argparse
    import importlib
    import tempfile

    ap = argparse.ArgumentParser(prog="python addon/demo.py", description="Choreo end-to-end demo")
    ap.add_argument("out", nargs="?", default="demo_output")
    ap.add_argument("--music", default=None, help="music file (default: synthesised drums and bass)")
    ap.add_argument("--seconds", type=float, default=16.0, help="length of the synthesised music")
    ap.add_argument("--genre", default="Popular")
    ap.add_argument("--genre-stills", action="store_true",
                    help="instead: one dance per trained genre, 6 rendered frames each (OUT/genres)")
    args = ap.parse_args(argv)
    home = tempfile.mkdtemp(prefix="choreo-demo-blender-")
    os.environ["BLENDER_USER_RESOURCES"] = home
    os.environ["XDG_CACHE_HOME"] = os.path.join(home, "cache")
    import bpy
    from bl_pkg import bl_extension_cli

    repo = Path(__file__).resolve().parents[1]
    # The installed copy lives in a temporary Blender folder: tell it where the checkout's shared data is.
    if (repo.parent / "shared" / "data").is_dir():
        os.environ.setdefault("CHOREO_DATA_DIR", str(repo.parent / "shared" / "data"))
    dist = Path(home) / "dist"
    dist.mkdir(parents=True)
    if bl_extension_cli.cli_extension_handler(["build", "--source-dir", str(repo), "--output-dir", str(dist)]):
        print("error: building the extension failed", file=sys.stderr)
        return 2
    bpy.ops.wm.read_factory_settings(use_empty=True)
    zip_path = next(dist.glob("choreo-*.zip"))
    if bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default",
                                                enable_on_install=True) != {"FINISHED"}:
        print("error: installing the extension failed", file=sys.stderr)
        return 2
    demo = importlib.import_module("bl_ext.user_default.choreo.addon.demo")
    if args.genre_stills:
        print(json.dumps(demo.render_genre_stills(args.out, args.music, args.seconds), indent=2))
        return 0
    report = demo.run_demo(args.out, args.music, args.seconds, args.genre)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(_bootstrap(sys.argv[1:]))
