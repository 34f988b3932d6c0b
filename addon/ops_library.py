# SPDX-License-Identifier: GPL-3.0-or-later
"""The Library section's operators: create, refresh and repair the reference library, preview a clip on a new
dancer, pin references for Generate, remove a clip, add the selected action, see what the music retrieves.

The library on disk (clips, genres, derived data, retrieval) is the core's ``Library``; the scene's mirror of
it is :mod:`.scene.library`. Operators check everything first and fail through ``fail``; reading and writing
clips runs as a job.
"""
from __future__ import annotations

import os

import bpy
from bpy.props import StringProperty

from .scene.dancer import armature_skeleton, dancer_with_motion
from .scene.keyframes import read_motion
from .scene.library import (CLIP_PROP, open_library, open_user_library, references_per_window, refresh_clips,
                            refresh_quietly, selected_clip)
from .scene.report import fail, start_job
from .scene.rig import constraint_note, rig_action, rig_body_joints, rig_positions
from .scene.settings import library_folder, library_hint, runtime, weight_set_folder
from .scene.timeline import music_span, scene_fps

_CLIP = dict(name="Clip", description="Library clip (empty: the one selected in the list)", options={"SKIP_SAVE"})


class CHOREO_OT_library_create(bpy.types.Operator):
    """Start an empty reference library in the folder chosen in the preferences"""
    bl_idname = "choreo.library_create"
    bl_label = "Create Library Here"

    def execute(self, context):
        from ..core_models.library import Library

        folder = library_folder(context)
        if not folder:
            return fail(self, context, "No library folder: choose one under Reference library in Preferences > "
                                       "Add-ons > Choreo first")
        try:
            library = Library.create(folder)
        except (ValueError, OSError) as exc:
            return fail(self, context, str(exc))
        refresh_clips(context.scene, open_library(context))
        context.scene.choreo.last_report = f"Created an empty reference library in {folder}"
        return {"FINISHED"}


class CHOREO_OT_library_refresh(bpy.types.Operator):
    """Read the reference library again and list its clips (with the genre and text filters)"""
    bl_idname = "choreo.library_refresh"
    bl_label = "Refresh Library"

    def execute(self, context):
        settings = context.scene.choreo
        try:
            library = open_library(context)
        except (ValueError, OSError) as exc:
            settings.library_clips.clear()
            settings.library_shown, settings.library_status = library_folder(context), str(exc)
            return fail(self, context, str(exc))
        refresh_clips(context.scene, open_library(context))
        notes = f" ({'; '.join(library.notes)})" if library.notes else ""
        settings.last_report = (f"Library {os.path.basename(library.path) or library.path}: {len(library)} clips, "
                                f"{len(settings.library_clips)} listed{notes}")
        return {"FINISHED"}


class CHOREO_OT_library_repair(bpy.types.Operator):
    """Rebuild a damaged library index from its clip files and remove leftovers of an interrupted write"""
    bl_idname = "choreo.library_repair"
    bl_label = "Repair Library"

    def execute(self, context):
        from ..core_models.library import Library

        folder = library_folder(context)
        if not folder or not os.path.isdir(folder):
            return fail(self, context, library_hint(folder) or f"Library folder not found: {folder}")
        try:
            library, done = Library.repair_at(folder)
        except (ValueError, OSError) as exc:
            return fail(self, context, str(exc))
        refresh_clips(context.scene, open_library(context))
        context.scene.choreo.last_report = (f"Repaired the library ({len(library)} clips): "
                                            f"{'; '.join(done[:4]) or 'nothing needed fixing'}")
        return {"FINISHED"}


class CHOREO_OT_library_preview(bpy.types.Operator):
    """Play the selected library clip on a new SMPL-X dancer at the start frame"""
    bl_idname = "choreo.library_preview"
    bl_label = "Preview"
    bl_options = {"REGISTER", "UNDO"}

    clip: StringProperty(**_CLIP)

    def execute(self, context):
        from ..core_models.io.motion_file import body_motion_from_joints
        from ..core_models.motion import MOTION_FPS as FPS
        from ..core_models.progress import check_cancel

        try:
            library = open_library(context)
            name = selected_clip(context, self.clip)
            info = library.info(name)
        except (ValueError, OSError) as exc:
            return fail(self, context, str(exc))
        scene_name = context.scene.name
        start = context.scene.choreo.start_frame

        def work(progress, cancel):
            progress("reading clip", 0, 2)
            joints = library.joints(name)
            check_cancel(cancel)
            progress("solving IK", 1, 2)
            return body_motion_from_joints(joints, FPS, source=f"library:{name}")

        def apply(motion):
            scene = bpy.data.scenes.get(scene_name)      # looked up again: never hold bpy data across a job
            if scene is None:
                raise ValueError(f"scene '{scene_name}' was removed; nothing was added")
            label = f"Preview {name}"
            obj, action = dancer_with_motion(bpy.context, motion, scene, start, name=label, action_name=label)
            obj[CLIP_PROP] = name
            obj.choreo.source_file = str(library.owner(name).path / info.file)
            last = start + int(action["choreo_frames"]) - 1
            scene.frame_end = max(scene.frame_end, last)
            scene.frame_start = min(scene.frame_start, start)
            scene.choreo.last_report = (f"Previewing '{name}' ({info.genre}{' / ' + info.subgenre if info.subgenre else ''}"
                                        f", {info.duration:.1f} s) on {obj.name}, frames {start}-{last}")

        return start_job(self, context, "Preview clip", work, apply)


class CHOREO_OT_library_pin(bpy.types.Operator):
    """Pin the clip as a reference: Generate then uses the pinned clips instead of retrieving its own"""
    bl_idname = "choreo.library_pin"
    bl_label = "Pin"
    bl_options = {"REGISTER", "UNDO"}

    clip: StringProperty(**_CLIP)

    def execute(self, context):
        settings = context.scene.choreo
        try:
            name = selected_clip(context, self.clip)
            if name not in open_library(context):
                raise ValueError(f"'{name}' is not in the library (press Refresh)")
        except (ValueError, OSError) as exc:
            return fail(self, context, str(exc))
        if name in settings.library_pins:
            return fail(self, context, f"'{name}' is already pinned")
        settings.library_pins.add().name = name
        n = len(settings.library_pins)
        settings.last_report = f"Pinned '{name}': Generate uses {n} pinned reference{'s' if n != 1 else ''}"
        return {"FINISHED"}


class CHOREO_OT_library_unpin(bpy.types.Operator):
    """Unpin the reference; without pins Generate retrieves references from the library itself"""
    bl_idname = "choreo.library_unpin"
    bl_label = "Unpin"
    bl_options = {"REGISTER", "UNDO"}

    clip: StringProperty(name="Clip", description="Pinned clip to unpin", options={"SKIP_SAVE"})

    def execute(self, context):
        pins = context.scene.choreo.library_pins
        index = pins.find(self.clip)
        if index < 0:
            return fail(self, context, f"'{self.clip}' is not pinned")
        pins.remove(index)
        context.scene.choreo.last_report = (f"Unpinned '{self.clip}'; "
                                            + (f"{len(pins)} pinned left" if len(pins) else "references are automatic"))
        return {"FINISHED"}


class CHOREO_OT_library_remove(bpy.types.Operator):
    """Delete the selected clip from the library on disk (its pin goes too)"""
    bl_idname = "choreo.library_remove"
    bl_label = "Remove from Library"
    bl_options = {"REGISTER"}               # the files are gone: undo cannot bring them back

    clip: StringProperty(**_CLIP)

    def invoke(self, context, event):
        try:
            self.clip = selected_clip(context, self.clip)
        except ValueError as exc:
            return fail(self, context, str(exc))
        return context.window_manager.invoke_confirm(self, event, title="Remove from Library",
                                                     message=f"Delete '{self.clip}' from the library on disk?",
                                                     confirm_text="Delete", icon="WARNING")

    def execute(self, context):
        settings = context.scene.choreo
        try:
            library = open_library(context)
            name = selected_clip(context, self.clip)
            if name in library and library.is_shipped(name):
                raise ValueError(f"'{name}' is part of the starter library that ships with Choreo and cannot be "
                                 "removed; filter the list by genre or name to hide it")
            user = open_user_library(context)
            user.remove(name)
        except (ValueError, OSError) as exc:
            return fail(self, context, str(exc))
        if name in settings.library_pins:
            settings.library_pins.remove(settings.library_pins.find(name))
        refresh_clips(context.scene, open_library(context))
        settings.last_report = f"Removed '{name}' from your library ({len(user)} clips left)"
        return {"FINISHED"}


class CHOREO_OT_library_add_action(bpy.types.Operator):
    """Add the selected armature's action to the library (an SMPL-X dancer, or a rig mapped by Import Mocap),
    with the name, genre, sub-genre and licence of the Add form"""
    bl_idname = "choreo.library_add_action"
    bl_label = "Add Selected Action to Library"
    bl_options = {"REGISTER"}               # the library on disk grows: undo cannot shrink it

    # For scripts: each overrides the Add form when set.
    clip_name: StringProperty(name="Name", options={"SKIP_SAVE"})
    genre: StringProperty(name="Genre", options={"SKIP_SAVE"})
    subgenre: StringProperty(name="Sub-genre", options={"SKIP_SAVE"})
    licence: StringProperty(name="Licence", options={"SKIP_SAVE"})

    def execute(self, context):
        from ..core_models.library import resolve_genre
        from ..core_models.motion import MOTION_FPS as FPS
        from ..core_models.references import WINDOW
        from ..core_models.motion import resample_linear
        from ..core_models.progress import check_cancel
        from ..core_models.skeleton import NUM_BODY_JOINTS

        scene = context.scene
        form = scene.choreo
        obj = context.active_object
        if obj is None or obj.type != "ARMATURE":
            return fail(self, context, "Select the armature whose action to add: an SMPL-X dancer, or a rig "
                                       "imported with Import Mocap")
        try:
            action = rig_action(obj, "add to the library")
        except ValueError as exc:
            return fail(self, context, str(exc))
        note = constraint_note(obj)
        name = (self.clip_name or form.library_new_name or action.name).strip()
        subgenre = self.subgenre or ("" if form.library_new_subgenre in ("NONE", "") else form.library_new_subgenre)
        licence = (self.licence or form.library_new_licence).strip() or "unknown"
        fps = scene_fps(scene)
        try:
            library = open_user_library(context)
            genre, subgenre = resolve_genre(self.genre or form.library_new_genre, subgenre or None)
            if name in library:
                raise ValueError(f"A clip named '{name}' is already in the library: choose another name in the "
                                 "Add form")
            lo, hi = action.frame_range
            frames = int(round(hi)) - int(round(lo)) + 1
            if round(frames * FPS / fps) < WINDOW:
                raise ValueError(f"'{action.name}' is {frames / fps:.1f} s long; a library clip must cover one "
                                 f"reference window of {WINDOW / FPS:.1f} s")
            if obj.choreo.is_dancer:      # the keyframes read back, then FK on the dancer's own skeleton
                motion, rig = read_motion(obj, armature_skeleton(obj), scene=scene), None
            elif len(obj.choreo.bone_map):     # as Convert to Dancer reads a mapped rig
                motion, rig = None, rig_positions(obj, scene)
            else:
                raise ValueError(f"'{obj.name}' is neither an SMPL-X dancer nor a mapped rig: import it with "
                                 "Import Mocap first")
        except (ValueError, OSError) as exc:
            return fail(self, context, str(exc))
        source = f"blender:{os.path.basename(bpy.data.filepath) or 'unsaved'}:{obj.name}:{action.name}"
        scene_name = scene.name

        def work(progress, cancel):
            progress("reading motion", 0, 2)
            if motion is not None:
                joints = (motion if abs(fps - FPS) < 1e-6 else motion.resampled(FPS)).joints()[:, :NUM_BODY_JOINTS]
            else:
                joints = resample_linear(rig_body_joints(*rig), fps, FPS)
            check_cancel(cancel)
            progress("adding to the library", 1, 2)
            return library.add(name, genre, subgenre or None, joints=joints, source=source, licence=licence)

        def apply(info):
            target = bpy.data.scenes.get(scene_name)
            if target is not None:
                refresh_quietly(target)
                listed = [c.name for c in target.choreo.library_clips]
                if info.name in listed:
                    target.choreo.library_index = listed.index(info.name)
                target.choreo.last_report = (f"Added '{info.name}' ({info.genre}"
                                             f"{' / ' + info.subgenre if info.subgenre else ''}, "
                                             f"{info.duration:.1f} s, licence {info.licence}) to the library"
                                             + (f"; {note}" if note else ""))

        return start_job(self, context, "Add to library", work, apply)


class CHOREO_OT_library_retrieve(bpy.types.Operator):
    """Show the references Generate would retrieve for its music: the best library clips of its genre for
    each 12.8 s window of the music, with their scores"""
    bl_idname = "choreo.library_retrieve"
    bl_label = "Retrieve for This Music"

    def execute(self, context):
        from ..core_models.weights import read_config

        scene = context.scene
        genre = scene.choreo.genre
        try:
            library = open_library(context)
            span = music_span(scene)
            folder, _ = weight_set_folder(context)
            if not read_config(folder).get("retrieval"):
                raise ValueError(f"The weight set '{os.path.basename(folder)}' has no RetrievalNet, so it cannot "
                                 "retrieve references: pin references for Generate instead")
            pool = [c.name for c in library.clips(genre)]
            if not pool:
                raise ValueError(f"The library has no {genre} clips to retrieve from: add some, or choose another "
                                 "genre under Generate")
            top_k = references_per_window()
        except (ValueError, OSError) as exc:
            return fail(self, context, str(exc))
        run_on = runtime(context)
        scene_name = scene.name

        def work(progress, cancel):
            from ..core_models.audio import load_audio
            from ..core_models.generation import query_features
            from ..core_models.progress import check_cancel
            from ..core_models.runtime.backends import load_generator as load_for_backend

            progress("load weights", 0, 1)
            ws = load_for_backend(folder, run_on.backend, run_on.device, run_on.dtype)
            check_cancel(cancel)
            progress("music features", 0, 1)
            samples, sr = load_audio(span.path)
            cut = samples[int(round(span.start_s * sr)):None if span.end_s is None else int(round(span.end_s * sr))]
            query = query_features(ws, cut, sr)
            library.prepare(ws, pool, progress, cancel)      # embeddings of new clips, cached in the library
            check_cancel(cancel)
            progress("retrieval", 0, 1)
            return library.retrieve(ws, query, genre, top_k)

        def apply(matches):
            from ..core_models.motion import MOTION_FPS as FPS
            from ..core_models.references import STRIDE

            target = bpy.data.scenes.get(scene_name)
            if target is None:
                raise ValueError(f"scene '{scene_name}' was removed; nothing was shown")
            settings = target.choreo
            settings.library_results.clear()
            for window, row in enumerate(matches):
                for match in row:
                    item = settings.library_results.add()
                    item.name, item.window, item.score = match.name, window, match.score
                    item.music_s = span.start_s + window * STRIDE / FPS
                    item.start_s = match.start / FPS
            settings.library_results_index = 0
            where = f"'{span.strip}'" if span.strip else os.path.basename(span.path)
            settings.library_results_info = (f"{where} from {span.start_s:.1f} s, {genre}: {len(matches)} "
                                             f"window{'s' if len(matches) != 1 else ''}, top {top_k}")
            settings.last_report = f"Retrieved references for {settings.library_results_info}"

        return start_job(self, context, "Retrieve references", work, apply)


classes = (CHOREO_OT_library_create, CHOREO_OT_library_refresh, CHOREO_OT_library_repair, CHOREO_OT_library_preview,
           CHOREO_OT_library_pin, CHOREO_OT_library_unpin, CHOREO_OT_library_remove, CHOREO_OT_library_add_action,
           CHOREO_OT_library_retrieve)

register, unregister = bpy.utils.register_classes_factory(classes)
