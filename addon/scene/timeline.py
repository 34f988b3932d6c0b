# SPDX-License-Identifier: GPL-3.0-or-later
"""The scene's time: its frame rate, its sound strips and the span of music a dance is made for."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import bpy

from .settings import absolute_path


def scene_fps(scene) -> float:
    """The scene's frame rate (``fps_base`` included: 30/1.001 is 29.97)."""
    return scene.render.fps / scene.render.fps_base


def add_sound_strip(scene, path: str, frame_start: int):
    editor = scene.sequence_editor or scene.sequence_editor_create()
    strips = editor.strips if hasattr(editor, "strips") else editor.sequences   # 4.4+ / before
    used = {s.channel for s in strips}
    channel = next(c for c in range(1, 129) if c not in used)
    return strips.new_sound(Path(path).stem[:60], path, channel, frame_start)


def sound_strips(scene) -> list:
    """The scene's sound strips (meta strips included), unmuted first, then in timeline order."""
    editor = scene.sequence_editor
    strips = [] if editor is None else (editor.strips_all if hasattr(editor, "strips_all") else editor.sequences_all)
    return sorted((s for s in strips if s.type == "SOUND"), key=lambda s: (s.mute, s.frame_final_start))


def scene_music(scene):
    """(samples, sample_rate, strip) of the first sound strip on the timeline, decoded by the core."""
    from ...core_models.audio import load_audio

    sounds = sound_strips(scene)
    if not sounds:
        raise ValueError("The scene has no sound strip: use 'Add Music' first")
    strip = sounds[0]
    samples, sr = load_audio(bpy.path.abspath(strip.sound.filepath))
    return samples, sr, strip


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


def music_span(scene) -> MusicSpan:
    """The music span from the scene's Generate settings; ValueError with a user-facing message."""
    settings = scene.choreo
    fps = scene_fps(scene)
    ranged = settings.length_mode == "RANGE"
    offset = int(round(settings.range_start * fps)) if ranged else 0    # whole frames keep audio in sync
    if settings.music_source == "FILE":
        if not settings.music_file.strip():
            raise ValueError("No music file chosen: pick one under Generate > Music file, or set Music to "
                             "Timeline to use the scene's sound strip")
        path = absolute_path(settings.music_file)
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
    path = absolute_path(sound.filepath, sound.library)
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


def strip_for_span(scene, span: MusicSpan, last_frame: int):
    """The strip that plays file music in sync with the dance: one already in place, else a new one.

    Returns (strip, added).
    """
    for strip in sound_strips(scene):
        sound = strip.sound
        if sound is None or absolute_path(sound.filepath, sound.library) != span.path:
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
