# SPDX-License-Identifier: GPL-3.0-or-later
"""The reference library as the scene sees it: opening the libraries the preferences name, the Library
section's clip list (a mirror of the library in the scene, refreshed after every change, so drawing never
reads the disk) and which references Generate will use.

Preferences and scene properties refresh the mirror from their update callbacks, which is why it lives
down here and not with the Library operators.
"""
from __future__ import annotations

from .settings import library_folder, library_hint, use_starter_library

CLIP_PROP = "choreo_library_clip"          # on a preview dancer: the clip it plays


def open_library(context=None):
    """What the Library section browses and Generate retrieves from: the preferences' library (when one is
    set) and the starter library shipped with Choreo, as one read-only stack; ValueError (LibraryError) when
    the preferences name a folder that is not a usable library."""
    from ...core_models.starter_library import open_libraries

    folder = library_folder(context)
    if folder:
        problem = library_hint(folder)
        if problem:
            raise ValueError(problem)
    return open_libraries(folder or None, with_shipped=use_starter_library(context))


def open_user_library(context=None):
    """The user's own library (where clips are added and removed); ValueError saying what is wrong."""
    from ...core_models.library import Library

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


def selected_clip(context, name: str = "") -> str:
    """``name`` when given, else the clip selected in the Library list; ValueError when there is none."""
    if name:
        return name
    settings = context.scene.choreo
    if not 0 <= settings.library_index < len(settings.library_clips):
        raise ValueError("No clip selected: choose one in the Library list (press Refresh if it is empty)")
    return settings.library_clips[settings.library_index].name


def references_per_window() -> int:
    """How many references Generate retrieves per music window (the core's default, so both agree)."""
    import inspect

    from ...core_models.library import Library

    return inspect.signature(Library.reference_provider).parameters["top_k"].default


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
