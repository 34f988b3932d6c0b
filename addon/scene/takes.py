# SPDX-License-Identifier: GPL-3.0-or-later
"""Takes on the timeline: each generated or edited dance of a dancer is its own action.

The action's keys are the motion; its custom properties hold what the core's ``Take`` needs besides the
motion, so an edit can go on from any take after a save and reload:

* ``choreo_take``: JSON text of the music span, genre, seed, the parameters (sampling, weight set, music file,
  references summary), the edits since it was generated, the scene frame of its first key and its length at
  30 fps (the core's rate: the tokens count 30 fps frames whatever the scene's rate is);
* ``choreo_take_tokens``: the dance tokens as a flat list of ints (ID properties hold int lists, not arrays);
* ``choreo_take_owner``: the id of the dancer the take belongs to (the same property on the armature
  object), so renaming the dancer or the action keeps the takes listed.

Takes keep a fake user: a take that is not playing stays in the file.
"""
from __future__ import annotations

import json
import uuid

import numpy as np

from ...core_models.motion import MOTION_FPS, Motion
from .dancer import armature_skeleton
from .keyframes import bone_rest_matrices, read_motion, write_motion
from .timeline import scene_fps

TAKE_KEY = "choreo_take"
TOKENS_KEY = "choreo_take_tokens"
OWNER_KEY = "choreo_take_owner"


def dancer_id(obj) -> str:
    """The dancer's take owner id, given to it the first time one of its takes is stored."""
    if OWNER_KEY not in obj.keys():
        obj[OWNER_KEY] = uuid.uuid4().hex
    return str(obj[OWNER_KEY])


def store_take(obj, action, *, span_s, genre: str, seed: int, params: dict, edits: list, tokens,
               start_frame: int, frames_30: int) -> None:
    """Record a take's parameters and tokens on its action and make the action one of ``obj``'s takes."""
    info = {"span_s": [float(span_s[0]), float(span_s[1])], "genre": str(genre), "seed": int(seed),
            "params": params, "edits": list(edits), "start_frame": int(start_frame), "frames_30": int(frames_30)}
    # default=str: a parameter the core hands back as a path or a numpy scalar still records as text
    action[TAKE_KEY] = json.dumps(info, default=str)
    action[TOKENS_KEY] = [int(t) for t in np.asarray(tokens, np.int64).reshape(-1)]
    action[OWNER_KEY] = dancer_id(obj)
    action.use_fake_user = True


def take_info(action) -> dict | None:
    """The take parameters stored on an action, or None when it is not a take."""
    if action is None or TAKE_KEY not in action.keys():
        return None
    try:
        return json.loads(action[TAKE_KEY])
    except (TypeError, ValueError):
        return None


def dancer_takes(obj) -> list:
    """The actions that are takes of ``obj``, in name order."""
    if obj is None or OWNER_KEY not in obj.keys():
        return []
    import bpy

    owner = str(obj[OWNER_KEY])
    return sorted((a for a in bpy.data.actions if a.get(OWNER_KEY) == owner and TAKE_KEY in a.keys()),
                  key=lambda a: a.name)


def current_take(obj):
    """(action, info) of the take ``obj`` plays; ValueError saying why there is none."""
    ad = obj.animation_data
    action = ad.action if ad is not None else None
    if action is None:
        raise ValueError(f"'{obj.name}' plays no action: generate a dance first")
    info = take_info(action)
    if info is None or action.get(OWNER_KEY) != obj.get(OWNER_KEY):
        raise ValueError(f"'{action.name}' on '{obj.name}' is not a Choreo take (it was not made by Generate or "
                         "an edit): switch to a take in the Takes section or generate one")
    return action, info


def use_take(obj, action) -> None:
    """Make ``obj`` play ``action`` (and its slot: a take's action has one slot, made for this dancer)."""
    ad = obj.animation_data_create()
    ad.action = action
    if hasattr(ad, "action_slot") and len(getattr(action, "slots", ())):
        if ad.action_slot is None or ad.action_slot not in list(action.slots):
            ad.action_slot = action.slots[0]


def read_take(obj, scene):
    """The core ``Take`` of the take ``obj`` plays: its motion read from the action's keys, at 30 fps."""
    from ...core_models.editing import Take

    action, info = current_take(obj)
    skeleton = armature_skeleton(obj)
    start = int(info["start_frame"])
    keys = int(action.get("choreo_frames", 0)) or int(round(action.frame_range[1])) - start + 1
    motion = read_motion(obj, skeleton, start, start + keys - 1, scene=scene)
    if abs(motion.fps - MOTION_FPS) > 1e-6:
        motion = motion.resampled(MOTION_FPS)
    frames = int(info.get("frames_30") or motion.num_frames)
    pick = np.minimum(np.arange(frames), motion.num_frames - 1)     # resampling may differ by a frame
    tokens = np.asarray(action.get(TOKENS_KEY, []), np.int64)
    return Take(motion.rotations[pick], motion.root_translation[pick], skeleton, tokens, tuple(info["span_s"]),
                genre=info.get("genre", ""), seed=int(info.get("seed", 0)), fps=MOTION_FPS,
                params=dict(info.get("params", {})), edits=list(info.get("edits", [])))


def key_take(obj, take, scene, start_frame: int, name: str):
    """Key ``take`` onto ``obj`` as a NEW action (a new take, now playing) and record it; returns the action.

    Nothing is left behind when this raises."""
    motion = Motion(take.rotations, take.root, armature_skeleton(obj), take.fps)
    previous = obj.animation_data.action if obj.animation_data is not None else None
    action = write_motion(obj, motion, scene, start_frame=start_frame, action_name=name)
    try:
        store_take(obj, action, span_s=take.span_s, genre=take.genre, seed=take.seed, params=take.params,
                   edits=take.edits, tokens=take.tokens, start_frame=start_frame, frames_30=take.num_frames)
    except Exception:
        import bpy

        bpy.data.actions.remove(action)
        if previous is not None:
            use_take(obj, previous)
        raise
    return action


def take_seconds(info: dict, scene, frame: float) -> float:
    """Seconds in the song at a scene frame of the take."""
    return float(info["span_s"][0]) + (frame - int(info["start_frame"])) / scene_fps(scene)


def scene_frame(info: dict, scene, take_frame: int) -> int:
    """The scene frame of a take frame (30 fps)."""
    return int(info["start_frame"]) + int(round(take_frame * scene_fps(scene) / MOTION_FPS))


def take_frame(info: dict, scene, frame: int) -> int:
    """The take frame (30 fps) at a scene frame."""
    return int(round((frame - int(info["start_frame"])) * MOTION_FPS / scene_fps(scene)))


def current_pose_rotations(obj, skeleton) -> np.ndarray:
    """(J, 4) local rotations in the core's convention of the dancer's pose as it stands now (what the animator
    posed, keyed or not): pose bones' quaternions turned out of each bone's rest frame, as ``read_motion`` does."""
    names = list(skeleton.names)
    pose = np.array([tuple(obj.pose.bones[n].rotation_quaternion) for n in names], np.float64)
    pose /= np.linalg.norm(pose, axis=-1, keepdims=True)
    rest = bone_rest_matrices(obj, names)
    local = pose.copy()
    local[:, 1:] = np.einsum("jik,jk->ji", rest, pose[:, 1:])
    return local


def action_pose_rotations(obj, action, frame: int) -> np.ndarray:
    """(J, 4) local rotations (core convention) of ``action``'s keys at scene ``frame`` on ``obj``: another
    take's pose to key. The action is played only while it is read; ``obj`` plays its own take again after."""
    previous = obj.animation_data.action if obj.animation_data is not None else None
    use_take(obj, action)
    try:
        motion = read_motion(obj, armature_skeleton(obj), frame, frame)
    finally:
        if previous is not None:
            use_take(obj, previous)
    return motion.rotations[0]


def take_grid(info: dict):
    """The core's ``MusicGrid`` (beats, bars, features at 30 fps from the take's music start) of the song the
    take dances to; ValueError when its music file is gone."""
    from pathlib import Path

    from ...core_models.audio import load_audio
    from ...core_models.editing.music_structure import music_grid

    music = Path(info.get("params", {}).get("music", ""))
    if not music.is_file():
        raise ValueError(f"the take's music file '{music}' is not there: bars and suggested repeats need the song "
                         "the take was generated for")
    samples, sr = load_audio(str(music))
    stat = music.stat()
    return music_grid(samples, sr, float(info["span_s"][0]), float(info["span_s"][1]),
                      key=(str(music.resolve()), stat.st_size, stat.st_mtime_ns))
