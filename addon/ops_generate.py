# SPDX-License-Identifier: GPL-3.0-or-later
"""Generate: music in, a new SMPL-X dancer keyed with the core's dance out.

References come from the Library section: the pinned clips when there are any, else retrieved automatically
from the library named in the preferences, else none; each generated action records those used per window.
Everything is checked on the main thread before the job starts (music, weight set, library, SMPL-X model file);
the core's ``generate`` runs in the job's worker; the scene is only touched once it has succeeded, in
one step that removes what it added if anything fails.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import bpy

from . import jobs
from .operators import _dancer_skeleton, _fail, add_sound_strip, dancer_with_motion, remove_dancer, sound_strips
from .preferences import bundled_weight_set, get_preferences, library_folder, trained_genres, use_starter_library

TITLE = "Generate"
NO_WEIGHT_SET = ("No weight set: choose a weight-set folder (with config.json) in Preferences > Add-ons > Choreo, "
                 "or a folder for this scene under Generate > Advanced")


@dataclass(frozen=True)
class MusicSpan:
    """What to dance to and where the dance goes on the timeline."""
    path: str                 # absolute audio file
    start_s: float            # seconds into the file where the dance starts
    end_s: float | None       # seconds into the file where it ends (None: the end of the file)
    frame: int                # scene frame of ``start_s``: the dance's first key
    strip: str = ""           # the timeline strip the music comes from; '' for a file
    file_zero_frame: int = 0  # file music: the frame where the file's first sample plays
    trim: bool = False        # file music: show only the danced part of the new strip


def _scene_fps(scene) -> float:
    return scene.render.fps / scene.render.fps_base


def _abs_file(path: str, library=None) -> str:
    return os.path.normpath(os.path.abspath(bpy.path.abspath(path, library=library)))


def music_span(scene) -> MusicSpan:
    """The music span from the scene's Generate settings; ValueError with a user-facing message."""
    settings = scene.choreo
    fps = _scene_fps(scene)
    ranged = settings.length_mode == "RANGE"
    offset = int(round(settings.range_start * fps)) if ranged else 0    # whole frames keep audio in sync
    if settings.music_source == "FILE":
        if not settings.music_file.strip():
            raise ValueError("No music file chosen: pick one under Generate > Music file, or set Music to "
                             "Timeline to use the scene's sound strip")
        path = _abs_file(settings.music_file)
        if not os.path.isfile(path):
            raise ValueError(f"Music file not found: '{path}'")
        start = settings.start_frame
        if not ranged:
            return MusicSpan(path, 0.0, None, start, file_zero_frame=start)
        start_s = offset / fps
        return MusicSpan(path, start_s, start_s + settings.range_length, start, file_zero_frame=start - offset,
                         trim=True)

    sounds = sound_strips(scene)
    if not sounds:
        raise ValueError("The scene has no sound strip: use 'Add Music' first, or set Music to File")
    strip = sounds[0]
    sound = strip.sound
    if sound is None:
        raise ValueError(f"Sound strip '{strip.name}' has no sound data")
    path = _abs_file(sound.filepath, sound.library)
    if not os.path.isfile(path):
        if sound.packed_file is not None:
            raise ValueError(f"The music of '{strip.name}' is packed into the .blend file: unpack it (File > "
                             "External Data > Unpack Resources) so Choreo can read it")
        raise ValueError(f"Music file of sound strip '{strip.name}' not found: '{path}'")
    # Audio time at a scene frame f: (f - frame_start + content offset) / fps + sound offset.
    visible_start_s = ((strip.frame_final_start - strip.frame_start + getattr(strip, "animation_offset_start", 0.0))
                       / fps + getattr(strip, "sound_offset", 0.0))
    visible_s = strip.frame_final_duration / fps
    if offset >= strip.frame_final_duration:
        raise ValueError(f"The range starts at {offset / fps:.2f} s, but sound strip '{strip.name}' plays only "
                         f"{visible_s:.2f} s")
    frame = strip.frame_final_start + offset
    start_s = visible_start_s + offset / fps
    end_s = visible_start_s + visible_s
    if start_s < 0:                      # the strip starts before its sound: begin where the sound does
        skip = math.ceil(-start_s * fps - 1e-9)
        frame += skip
        start_s = max(start_s + skip / fps, 0.0)
    if ranged:
        end_s = min(end_s, start_s + settings.range_length)
    return MusicSpan(path, start_s, end_s, frame, strip=strip.name)


def weight_set_folder(context) -> tuple[str, str]:
    """(absolute folder, where it is set) of the weight set Generate uses; ValueError when none is set."""
    override = context.scene.choreo.weights_override.strip()
    if override:
        return _abs_file(override), "this scene"
    prefs = get_preferences(context)
    path = prefs.weights_path.strip() if prefs is not None else ""
    if not path:
        bundled = bundled_weight_set()
        if not bundled:
            raise ValueError(NO_WEIGHT_SET)
        return bundled, "bundled"
    return _abs_file(path), "preferences"


def reference_summary(context) -> str:
    """One line for the panel: which references Generate will use (cheap: opens nothing)."""
    pins = len(context.scene.choreo.library_pins)
    if pins:
        return f"Using {pins} pinned reference{'s' if pins != 1 else ''}"
    mine, starter = bool(library_folder(context)), use_starter_library(context)
    if mine and starter:
        return "Automatic references from your library and the starter library"
    if mine or starter:
        return f"Automatic references from {'your library' if mine else 'the starter library'}"
    return "No reference library: generating without references"


def reference_plan(context, genre: str):
    """What Generate hands the core: ``(library, references, mode, note)``.

    The libraries are the preferences' own (when set) and the starter library shipped with Choreo, seen as
    one. Pinned clips (the Library section's pins, best first) are passed by name; without pins the
    references are retrieved ("auto"); with no library at all, none. ValueError (LibraryError) with a
    user-facing message when the user's library cannot be opened or a pinned clip is in neither.
    """
    from ..core_models.starter_library import open_libraries

    pins = [p.name for p in context.scene.choreo.library_pins]
    folder = library_folder(context)
    library = open_libraries(folder or None, with_shipped=use_starter_library(context))
    if not library.libraries:
        if pins:
            raise ValueError(f"{len(pins)} pinned reference(s) but no reference library: choose the library "
                             "folder in Preferences > Add-ons > Choreo, or unpin them in the Library section")
        return None, "auto", "none", "; ".join(library.notes)    # the core notes that there was no library
    if pins:
        missing = [p for p in pins if p not in library]
        if missing:
            raise ValueError(f"pinned clip(s) {', '.join(repr(m) for m in missing)} are not in "
                             f"{library.describe()}: unpin them in the Library section")
        return library, pins, "pinned", ""
    return library, "auto", "auto", ""          # an empty genre: the core generates without and notes it


def _reference_label(ref: dict) -> str:
    """'clip@start_frame (score)' for the action's record (ID properties hold strings, not dicts)."""
    score = "" if ref.get("score") is None else f" ({ref['score']:.3f})"
    return f"{ref['name']}@{ref['start']}{score}"


def _clip_names(per_window) -> list[str]:
    """Clip names in order of first use from the core's per-window references."""
    names = []
    for window in per_window:
        for ref in window["references"]:
            if ref["name"] not in names:
                names.append(ref["name"])
    return names


def _device_and_dtype(context) -> tuple[str, str | None, str]:
    """Device, precision and model backend ("auto", "torch", "onnx") from the preferences."""
    prefs = get_preferences(context)
    if prefs is None:
        return "auto", None, "auto"
    return prefs.device, None if prefs.precision == "auto" else prefs.precision, getattr(prefs, "backend", "auto")


def _file_strip(scene, span: MusicSpan, last_frame: int):
    """The strip that plays file music in sync with the dance: one already in place, else a new one.

    Returns (strip, added).
    """
    for strip in sound_strips(scene):
        sound = strip.sound
        if sound is None or _abs_file(sound.filepath, sound.library) != span.path:
            continue
        aligned = (abs(strip.frame_start - span.file_zero_frame) < 0.5 and not getattr(strip, "sound_offset", 0.0)
                   and not getattr(strip, "animation_offset_start", 0.0))
        if aligned and strip.frame_final_start <= span.frame and strip.frame_final_end > last_frame:
            return strip, False
    strip = add_sound_strip(scene, span.path, span.file_zero_frame)
    if span.trim:
        strip.frame_final_start = span.frame
        strip.frame_final_end = max(strip.frame_final_start + 1, min(strip.frame_final_end, last_frame + 1))
    return strip, True


def _summary(result, frames: int, fps: float, obj, action, strip_note: str) -> str:
    t = result.timings
    parts = [f"Generated {frames} frames at {fps:g} fps ({result.end_s - result.start_s:.1f} s of music from "
             f"{result.start_s:.1f} s, {result.genre}, seed {result.seed}) as '{action.name}' on {obj.name}"
             f"{strip_note}.",
             f"Took {t.get('total_s', 0.0):.1f} s (weights {t.get('load_s', 0.0):.1f}, music "
             f"{t.get('music_features_s', 0.0):.1f}, sampling {t.get('generate_s', 0.0):.1f}, decode + IK "
             f"{t.get('decode_s', 0.0) + t.get('ik_s', 0.0):.1f}) on {result.device} {result.dtype}."]
    if result.notes:
        parts.append("Notes: " + "; ".join(str(n) for n in result.notes) + ".")
    return " ".join(parts)


class CHOREO_OT_generate(bpy.types.Operator):
    """Generate a dance to the music with the weight set, as a new SMPL-X dancer with its own action"""
    bl_idname = "choreo.generate"
    bl_label = "Generate Dance"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return jobs.poll_idle(cls)

    def execute(self, context):
        from ..core_models.weights import read_config

        scene = context.scene
        settings = scene.choreo
        try:
            span = music_span(scene)
            folder, _ = weight_set_folder(context)
            read_config(folder)                  # a clear message now, not after the job has started
            library, references, ref_mode, ref_note = reference_plan(context, settings.genre)
        except (ValueError, OSError) as exc:
            return _fail(self, context, str(exc))
        prefs = get_preferences(context)
        skeleton = None
        if prefs is not None and prefs.smplx_model_path:
            try:
                skeleton = _dancer_skeleton(context)
            except (ValueError, OSError) as exc:
                return _fail(self, context, f"SMPL-X model file problem: {exc}")
        device, dtype, backend = _device_and_dtype(context)
        options = dict(seed=settings.seed, temperature=settings.temperature, top_k=settings.top_k,
                       top_p=settings.top_p, window_mode=settings.window_mode, device=device, dtype=dtype,
                       backend=backend, allow_untrained_genre=settings.allow_untrained_genre)
        genre = settings.genre
        scene_name = scene.name
        library_path = library.describe() if library is not None else ""

        def work(progress, cancel):
            from ..core_models.io.motion_file import body_motion_from_joints
            from ..core_models.pipeline import generate

            result = generate(span.path, genre, weights=folder, start_s=span.start_s, end_s=span.end_s,
                              references=references, library=library, progress=progress, cancel=cancel,
                              **options)
            motion = result.motion
            if skeleton is not None:             # the user's SMPL-X body: solve the dance's joints on it
                progress("fitting your SMPL-X body", 0, 1)
                motion = body_motion_from_joints(result.joints, result.fps, skeleton=skeleton, source="choreollama")
            return result, motion

        def apply(out):
            result, motion = out
            target = bpy.data.scenes.get(scene_name)      # looked up again: never hold bpy data across a job
            if target is None:
                raise ValueError(f"scene '{scene_name}' was removed while generating; nothing was added")
            name = f"Choreo {result.genre} seed{result.seed}"
            obj, action = dancer_with_motion(bpy.context, motion, target, span.frame, name=name, action_name=name,
                                             skeleton=skeleton, skin=skeleton is not None)
            try:
                frames = int(action["choreo_frames"])
                last = span.frame + frames - 1
                obj.choreo.source_file = span.path
                action["choreo_generation"] = {
                    "genre": result.genre, "seed": int(result.seed), "music": span.path,
                    "music_start_s": float(result.start_s), "music_end_s": float(result.end_s),
                    "temperature": float(options["temperature"]), "top_k": int(options["top_k"]),
                    "top_p": float(options["top_p"]), "window_mode": result.window_mode,
                    "weight_set": result.weight_set, "device": result.device, "dtype": result.dtype,
                    "reference_mode": ref_mode, "library": library_path,
                    "references": [[_reference_label(r) for r in w["references"]] for w in result.references],
                    "fk_error_m": float(result.fk_error_m),
                    "stage": {k: float(v) for k, v in result.stage.items()},
                    "notes": [str(n) for n in result.notes]}
                strip_note = f", in sync with '{span.strip}'" if span.strip else ""
                if not span.strip:
                    strip, added = _file_strip(target, span, last)
                    strip_note = f", music {'added as' if added else 'in'} strip '{strip.name}'"
            except Exception:
                remove_dancer(obj, action)
                raise
            if target.frame_end < last:
                target.frame_end = last
            if target.frame_start > span.frame:
                target.frame_start = span.frame
            report = _summary(result, frames, _scene_fps(target), obj, action, strip_note)
            used = _clip_names(result.references)
            if ref_mode != "none" and used:
                report += f" References ({ref_mode}): {', '.join(used[:6])}{', ...' if len(used) > 6 else ''}."
            if ref_note:
                report += f" Note: {ref_note}."
            target.choreo.last_report = report

        try:
            state = jobs.run_job(TITLE, work, apply)
        except Exception as exc:
            return _fail(self, context, jobs.failure_message(exc, "Generation"))
        if state == "FINISHED":
            self.report({"INFO"}, settings.last_report)
        else:
            self.report({"INFO"}, f"Generating a {genre} dance; progress and Cancel are in the Choreo tab")
        return {"FINISHED"}


classes = (CHOREO_OT_generate,)

register, unregister = bpy.utils.register_classes_factory(classes)
