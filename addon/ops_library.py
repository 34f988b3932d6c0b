# SPDX-License-Identifier: GPL-3.0-or-later
"""The Library section: browse the reference library, preview a clip on a new dancer, see which references
the music retrieves, pin references for Generate, add the selected action to the library.

The library on disk (clips, genres, derived data, retrieval) is the core's ``Library``. The panel's clip
list is a mirror of it in the scene, refreshed after every change, so drawing never reads the disk.
Operators check everything first and fail through ``_fail``; reading and writing clips runs as a job.
"""
from __future__ import annotations

import os

import bpy
from bpy.props import StringProperty

from .generate import _device_and_dtype, _scene_fps, music_span, weight_set_folder
from .operators import _fail, _run, constraint_note, dancer_with_motion, rig_action, rig_body_joints, rig_positions
from .preferences import library_folder, library_hint, use_starter_library

CLIP_PROP = "choreo_library_clip"          # on a preview dancer: the clip it plays


def open_library(context=None):
    """What the Library section browses and Generate retrieves from: the preferences' library (when one is
    set) and the starter library shipped with Choreo, as one read-only stack; ValueError (LibraryError) when
    the preferences name a folder that is not a usable library."""
    from ..core_models.starter_library import open_libraries

    folder = library_folder(context)
    if folder:
        problem = library_hint(folder)
        if problem:
            raise ValueError(problem)
    return open_libraries(folder or None, with_shipped=use_starter_library(context))


def open_user_library(context=None):
    """The user's own library (where clips are added and removed); ValueError saying what is wrong."""
    from ..core_models.library import Library

    folder = library_folder(context)
    problem = library_hint(folder)
    if problem:
        raise ValueError(problem + " (clips you add go to your own library; the starter library is read-only)")
    return Library(folder)


def refresh_clips(scene, library) -> None:
    """Mirror the library's clips (as filtered in the panel) into the scene's list, keeping the selection."""
    settings = scene.choreo
    genre = None if settings.library_genre == "ALL" else settings.library_genre
    clips = library.clips(genre, text=settings.library_text.strip() or None)
    items = settings.library_clips
    selected = items[settings.library_index].name if 0 <= settings.library_index < len(items) else ""
    items.clear()
    for clip in clips:
        item = items.add()
        item.name = clip.name
        item.genre, item.subgenre = clip.genre, clip.subgenre
        item.frames, item.duration = clip.frames, clip.duration
        item.licence, item.source = clip.licence, clip.source
        item.shipped = library.is_shipped(clip.name)
    names = [c.name for c in clips]
    settings.library_index = names.index(selected) if selected in names else 0
    settings.library_shown = str(library.path or "")
    settings.library_status = ""


def refresh_quietly(scene) -> None:
    """Refresh the scene's clip list; a problem is shown in the panel instead of raised (update callbacks)."""
    if scene is None:
        return
    settings = scene.choreo
    try:
        refresh_clips(scene, open_library())
    except (ValueError, OSError, ImportError) as exc:
        settings.library_clips.clear()
        settings.library_shown = library_folder()
        settings.library_status = str(exc)


def _selected_clip(context, name: str = "") -> str:
    if name:
        return name
    settings = context.scene.choreo
    if not 0 <= settings.library_index < len(settings.library_clips):
        raise ValueError("No clip selected: choose one in the Library list (press Refresh if it is empty)")
    return settings.library_clips[settings.library_index].name


def references_per_window() -> int:
    """How many references Generate retrieves per music window (the core's default, so both agree)."""
    import inspect

    from ..core_models.library import Library

    return inspect.signature(Library.reference_provider).parameters["top_k"].default


_CLIP = dict(name="Clip", description="Library clip (empty: the one selected in the list)", options={"SKIP_SAVE"})


class CHOREO_OT_library_create(bpy.types.Operator):
    """Start an empty reference library in the folder chosen in the preferences"""
    bl_idname = "choreo.library_create"
    bl_label = "Create Library Here"

    def execute(self, context):
        from ..core_models.library import Library

        folder = library_folder(context)
        if not folder:
            return _fail(self, context, "No library folder: choose one under Reference library in Preferences > "
                                        "Add-ons > Choreo first")
        try:
            library = Library.create(folder)
        except (ValueError, OSError) as exc:
            return _fail(self, context, str(exc))
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
            return _fail(self, context, str(exc))
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
            return _fail(self, context, library_hint(folder) or f"Library folder not found: {folder}")
        try:
            library, done = Library.repair_at(folder)
        except (ValueError, OSError) as exc:
            return _fail(self, context, str(exc))
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
        from ..core_models.library import FPS
        from ..core_models.progress import check_cancel

        try:
            library = open_library(context)
            name = _selected_clip(context, self.clip)
            info = library.info(name)
        except (ValueError, OSError) as exc:
            return _fail(self, context, str(exc))
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

        return _run(self, context, "Preview clip", work, apply)


class CHOREO_OT_library_pin(bpy.types.Operator):
    """Pin the clip as a reference: Generate then uses the pinned clips instead of retrieving its own"""
    bl_idname = "choreo.library_pin"
    bl_label = "Pin"
    bl_options = {"REGISTER", "UNDO"}

    clip: StringProperty(**_CLIP)

    def execute(self, context):
        settings = context.scene.choreo
        try:
            name = _selected_clip(context, self.clip)
            if name not in open_library(context):
                raise ValueError(f"'{name}' is not in the library (press Refresh)")
        except (ValueError, OSError) as exc:
            return _fail(self, context, str(exc))
        if name in settings.library_pins:
            return _fail(self, context, f"'{name}' is already pinned")
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
            return _fail(self, context, f"'{self.clip}' is not pinned")
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
            self.clip = _selected_clip(context, self.clip)
        except ValueError as exc:
            return _fail(self, context, str(exc))
        return context.window_manager.invoke_confirm(self, event, title="Remove from Library",
                                                     message=f"Delete '{self.clip}' from the library on disk?",
                                                     confirm_text="Delete", icon="WARNING")

    def execute(self, context):
        settings = context.scene.choreo
        try:
            library = open_library(context)
            name = _selected_clip(context, self.clip)
            if name in library and library.is_shipped(name):
                raise ValueError(f"'{name}' is part of the starter library that ships with Choreo and cannot be "
                                 "removed; filter the list by genre or name to hide it")
            user = open_user_library(context)
            user.remove(name)
        except (ValueError, OSError) as exc:
            return _fail(self, context, str(exc))
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
        from ..core_models.library import FPS, WINDOW, resolve_genre
        from ..core_models.motion import resample_linear
        from ..core_models.progress import check_cancel
        from ..core_models.skeleton import NUM_BODY_JOINTS
        from .armature import armature_skeleton
        from .keyframes import read_motion

        scene = context.scene
        form = scene.choreo
        obj = context.active_object
        if obj is None or obj.type != "ARMATURE":
            return _fail(self, context, "Select the armature whose action to add: an SMPL-X dancer, or a rig "
                                        "imported with Import Mocap")
        try:
            action = rig_action(obj, "add to the library")
        except ValueError as exc:
            return _fail(self, context, str(exc))
        note = constraint_note(obj)
        name = (self.clip_name or form.library_new_name or action.name).strip()
        subgenre = self.subgenre or ("" if form.library_new_subgenre in ("NONE", "") else form.library_new_subgenre)
        licence = (self.licence or form.library_new_licence).strip() or "unknown"
        fps = _scene_fps(scene)
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
            return _fail(self, context, str(exc))
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

        return _run(self, context, "Add to library", work, apply)


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
            return _fail(self, context, str(exc))
        device, dtype, backend = _device_and_dtype(context)
        scene_name = scene.name

        def work(progress, cancel):
            from ..core_models.audio import load_audio
            from ..core_models.pipeline import query_features
            from ..core_models.progress import check_cancel
            from ..core_models.onnx_backend import load_for_backend

            progress("load weights", 0, 1)
            ws = load_for_backend(folder, backend, device, dtype)
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
            from ..core_models.library import FPS, STRIDE

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

        return _run(self, context, "Retrieve references", work, apply)


class CHOREO_UL_library_clips(bpy.types.UIList):
    """Library clips: name, genre / sub-genre, duration, licence."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0):
        pinned = item.name in context.scene.choreo.library_pins
        split = layout.split(factor=0.4)
        split.label(text=item.name, icon="PINNED" if pinned else ("LOCKED" if item.shipped else "ARMATURE_DATA"))
        split = split.split(factor=0.45)
        split.label(text=f"{item.genre} / {item.subgenre}" if item.subgenre else item.genre)
        split = split.split(factor=0.4)
        split.label(text=f"{item.duration:.1f} s")
        split.label(text=item.licence)


class CHOREO_UL_library_results(bpy.types.UIList):
    """Retrieved references: music window, clip and segment start, score; a button pins the clip."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0):
        split = layout.split(factor=0.25)
        split.label(text=f"{item.music_s:.1f} s")
        split = split.split(factor=0.7)
        split.label(text=f"{item.name} @ {item.start_s:.1f} s")
        row = split.row(align=True)
        row.label(text=f"{item.score:.3f}")
        row.operator("choreo.library_pin", text="", icon="PINNED", emboss=False).clip = item.name


classes = (CHOREO_OT_library_create, CHOREO_OT_library_refresh, CHOREO_OT_library_repair, CHOREO_OT_library_preview,
           CHOREO_OT_library_pin, CHOREO_OT_library_unpin, CHOREO_OT_library_remove, CHOREO_OT_library_add_action,
           CHOREO_OT_library_retrieve, CHOREO_UL_library_clips, CHOREO_UL_library_results)

register, unregister = bpy.utils.register_classes_factory(classes)
