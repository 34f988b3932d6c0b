# SPDX-License-Identifier: GPL-3.0-or-later
"""Generate: music in, a new SMPL-X dancer keyed with the core's dance out.

References come from the Library section: the pinned clips when there are any, else retrieved automatically
from the library named in the preferences, else none; each generated action records those used per window.
Everything is checked on the main thread before the job starts (music, weight set, library, SMPL-X model file);
the core's ``generate`` runs in the job's worker; the scene is only touched once it has succeeded, in
one step that removes what it added if anything fails.
"""
from __future__ import annotations

import bpy

from . import jobs
from .scene.dancer import dancer_skeleton, dancer_with_motion, remove_dancer
from .scene.report import GENERATE_JOB, fail
from .scene.retarget import (apply_result, bone_map_overrides, mapping_problem, retarget_onto, rig_rest_clip,
                             selected_rig)
from .scene.references import reference_plan
from .scene.settings import runtime, smplx_model_file, weight_set_folder
from .scene.takes import store_take
from .scene.timeline import music_span, scene_fps, strip_for_span


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


def _apply_on_rig(scene, rig_name: str, retargeted, result, span, name: str) -> None:
    """Generate onto the selected rig: the retargeted dance as a new action on it, the music on the timeline."""
    text = apply_result(rig_name, scene.name, retargeted, span.frame, name)
    action = bpy.data.objects[rig_name].animation_data.action
    action["choreo_generation"] = {"genre": result.genre, "seed": int(result.seed), "music": span.path,
                                   "music_start_s": float(result.start_s), "music_end_s": float(result.end_s),
                                   "weight_set": result.weight_set, "device": result.device,
                                   "notes": [str(n) for n in result.notes]}
    if not span.strip:
        strip, added = strip_for_span(scene, span, span.frame + int(action["choreo_frames"]) - 1)
        text += f" Music {'added as' if added else 'in'} strip '{strip.name}'."
    scene.choreo.last_report = text


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
            library, references, ref_mode, ref_note = reference_plan(context)
        except (ValueError, OSError) as exc:
            return fail(self, context, str(exc))
        skeleton = None
        if smplx_model_file(context):
            try:
                skeleton = dancer_skeleton(context)
            except (ValueError, OSError) as exc:
                return fail(self, context, f"SMPL-X model file problem: {exc}")
        rig_target = None                         # "Dancer: selected rig": the dance goes onto the user's rig
        if settings.dancer_target == "SELECTED_RIG":
            try:
                rig = selected_rig(context, "receive the generated dance")
            except ValueError as exc:
                return fail(self, context, str(exc))
            problem = mapping_problem(rig, "Nothing was generated.")
            if problem:
                return fail(self, context, problem)
            rig_target = (rig.name, rig_rest_clip(rig), bone_map_overrides(rig))
        run_on = runtime(context)
        options = dict(seed=settings.seed, temperature=settings.temperature, top_k=settings.top_k,
                       top_p=settings.top_p, window_mode=settings.window_mode, device=run_on.device,
                       dtype=run_on.dtype, backend=run_on.backend, allow_untrained_genre=settings.allow_untrained_genre)
        genre = settings.genre
        scene_name = scene.name
        library_path = library.describe() if library is not None else ""
        from ..core_models.generation import sampling_with
        sampling_dict = sampling_with(temperature=options["temperature"], top_k=options["top_k"],
                                      top_p=options["top_p"]).to_dict()

        def work(progress, cancel):
            from ..core_models.io.motion_file import body_motion_from_joints
            from ..core_models.generation import Job, Runtime, Span, generate, sampling_with

            result = generate(span.path, genre, folder, span=Span(span.start_s, span.end_s),
                              sampling=sampling_with(temperature=options["temperature"], top_k=options["top_k"],
                                                     top_p=options["top_p"]),
                              seed=options["seed"], references=references, library=library,
                              runtime=Runtime(options["device"], options["dtype"], options["backend"]),
                              job=Job(progress, cancel), window_mode=options["window_mode"],
                              allow_untrained_genre=options["allow_untrained_genre"])
            motion = result.motion
            if skeleton is not None:             # the user's SMPL-X body: solve the dance's joints on it
                progress("fitting your SMPL-X body", 0, 1)
                motion = body_motion_from_joints(result.joints, result.fps, skeleton=skeleton, source="choreollama")
            if rig_target is not None:
                progress("retargeting onto your rig", 0, 1)
                return result, motion, retarget_onto(result.motion, rig_target[1], rig_target[2])
            return result, motion, None

        def apply(out):
            result, motion, retargeted = out
            target = bpy.data.scenes.get(scene_name)      # looked up again: never hold bpy data across a job
            if target is None:
                raise ValueError(f"scene '{scene_name}' was removed while generating; nothing was added")
            name = f"Choreo {result.genre} seed{result.seed}"
            if retargeted is not None:
                _apply_on_rig(target, rig_target[0], retargeted, result, span, name)
                return
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
                # the take: what the Takes section's edits need to go on from this dance (its tokens included)
                store_take(obj, action, span_s=(result.start_s, result.end_s), genre=result.genre,
                           seed=result.seed, edits=[], tokens=result.tokens, start_frame=span.frame,
                           frames_30=result.motion.num_frames,
                           params={"weight_set": folder, "music": span.path, "window_mode": result.window_mode,
                                   "sampling": sampling_dict, "reference_mode": ref_mode,
                                   "references": _clip_names(result.references)})
                strip_note = f", in sync with '{span.strip}'" if span.strip else ""
                if not span.strip:
                    strip, added = strip_for_span(target, span, last)
                    strip_note = f", music {'added as' if added else 'in'} strip '{strip.name}'"
            except Exception:
                remove_dancer(obj, action)
                raise
            if target.frame_end < last:
                target.frame_end = last
            if target.frame_start > span.frame:
                target.frame_start = span.frame
            report = _summary(result, frames, scene_fps(target), obj, action, strip_note)
            used = _clip_names(result.references)
            if ref_mode != "none" and used:
                report += f" References ({ref_mode}): {', '.join(used[:6])}{', ...' if len(used) > 6 else ''}."
            if ref_note:
                report += f" Note: {ref_note}."
            target.choreo.last_report = report

        try:
            state = jobs.run_job(GENERATE_JOB, work, apply)
        except Exception as exc:
            return fail(self, context, jobs.failure_message(exc, "Generation"))
        if state == "FINISHED":
            self.report({"INFO"}, settings.last_report)
        else:
            self.report({"INFO"}, f"Generating a {genre} dance; progress and Cancel are in the Choreo tab")
        return {"FINISHED"}


classes = (CHOREO_OT_generate,)

register, unregister = bpy.utils.register_classes_factory(classes)
