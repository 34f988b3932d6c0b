# SPDX-License-Identifier: GPL-3.0-or-later
"""Motion <-> Blender actions in one pass (``keyframe_points.add`` + ``foreach_set``).

Writing always creates a NEW action (slotted on Blender 4.4+, ``action.fcurves`` before). Pose-bone
rotations are the core's local rotations conjugated by each bone's rest orientation:
``pose = rest^-1 * local * rest``; the pelvis location is the root translation in the bone's rest frame.
"""
from __future__ import annotations

import bpy
import numpy as np

from ...core_models.motion import Motion
from ...core_models.rotations import quat_fix_continuity
from .space import BLENDER_TO_CORE, to_core
from .timeline import scene_fps

SLOTTED_ACTIONS = bpy.app.version >= (4, 4, 0)
LINEAR = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value   # foreach_set value


def bone_rest_matrices(obj, names) -> np.ndarray:
    """Each bone's rest axes expressed in core coordinates, (J, 3, 3).

    With M = BLENDER_TO_CORE @ bone_rest_matrix, a core local rotation L becomes the pose rotation
    M^T L M (for quaternions: w unchanged, vector part M^T v), and a core offset d the location M^T d.
    """
    mats = np.array([np.array(obj.data.bones[n].matrix_local.to_3x3()) for n in names])
    return BLENDER_TO_CORE @ mats


def _rot_path(name: str) -> str:
    return f'pose.bones["{name}"].rotation_quaternion'


def _loc_path(name: str) -> str:
    return f'pose.bones["{name}"].location'


def _new_fcurve_factory(action, obj):
    """A function ``(data_path, index, group) -> FCurve`` for this Blender version."""
    if SLOTTED_ACTIONS:
        slot = action.slots.new(id_type="OBJECT", name=obj.name)
        layer = action.layers.new("Layer")
        strip = layer.strips.new(type="KEYFRAME")
        bag = strip.channelbag(slot, ensure=True)
        if bpy.app.version >= (5, 0, 0):
            return slot, (lambda path, index, group: bag.fcurves.new(path, index=index, group_name=group))
        groups = {}

        def new_fcurve(path, index, group):      # 4.4/4.5: fcurves.new has no group argument yet
            fc = bag.fcurves.new(path, index=index)
            if group not in groups:
                groups[group] = bag.groups.new(group)
            fc.group = groups[group]
            return fc
        return slot, new_fcurve
    return None, (lambda path, index, group: action.fcurves.new(path, index=index, action_group=group))


def action_fcurves(action, obj):
    """All F-curves of the action for this object (slot-aware)."""
    if SLOTTED_ACTIONS:
        from bpy_extras import anim_utils

        ad = obj.animation_data
        if ad is None or ad.action_slot is None:
            return []
        bag = anim_utils.action_get_channelbag_for_slot(action, ad.action_slot)
        return list(bag.fcurves) if bag is not None else []
    return list(action.fcurves)


def ensure_fcurve(action, obj, path: str, index: int, group: str):
    """The F-curve ``path[index]`` of the object's slot in ``action`` (slot-aware), created when missing."""
    if not SLOTTED_ACTIONS:
        return action.fcurves.find(path, index=index) or action.fcurves.new(path, index=index, action_group=group)
    from bpy_extras import anim_utils

    slot = obj.animation_data.action_slot
    bag = anim_utils.action_get_channelbag_for_slot(action, slot)
    if bag is None:
        layer = action.layers[0] if len(action.layers) else action.layers.new("Layer")
        strip = layer.strips[0] if len(layer.strips) else layer.strips.new(type="KEYFRAME")
        bag = strip.channelbag(slot, ensure=True)
    fc = bag.fcurves.find(path, index=index)
    if fc is not None:
        return fc
    if bpy.app.version >= (5, 0, 0):
        return bag.fcurves.new(path, index=index, group_name=group)
    fc = bag.fcurves.new(path, index=index)
    fc.group = next((g for g in bag.groups if g.name == group), None) or bag.groups.new(group)
    return fc


def pose_channels(obj, motion: Motion) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Bone names, pose quaternions (T, J, 4) and pelvis location (T, 3) for ``motion`` on ``obj``."""
    names = list(motion.skeleton.names)
    missing = [n for n in names if n not in obj.data.bones]
    if missing:
        raise ValueError(f"armature '{obj.name}' lacks bones {missing[:6]}{'...' if len(missing) > 6 else ''}")
    rest = bone_rest_matrices(obj, names)                           # (J, 3, 3)
    pose = quat_fix_continuity(motion.rotations, axis=0)
    # Conjugating by a fixed rotation keeps w and rotates the vector part: one einsum for all keys.
    pose[..., 1:] = np.einsum("jki,tjk->tji", rest, pose[..., 1:])
    delta = motion.root_translation - to_core(np.array(obj.data.bones[names[0]].head_local))
    loc = delta @ rest[0]                                           # rest^T @ delta, per frame
    return names, pose, loc


def write_motion(obj, motion: Motion, scene, start_frame: int = 1, action_name: str | None = None):
    """Key ``motion`` onto ``obj`` as a new action at the scene's fps; returns the action.

    Nothing in the scene changes if this raises before the action is assigned.
    """
    target_fps = scene_fps(scene)
    if abs(target_fps - motion.fps) > 1e-6:
        motion = motion.resampled(target_fps)
    names, pose, loc = pose_channels(obj, motion)
    frames = start_frame + np.arange(motion.num_frames, dtype=np.float64)
    action = bpy.data.actions.new(action_name or f"{obj.name}_choreo")
    try:
        slot, new_fcurve = _new_fcurve_factory(action, obj)
        co = np.empty((motion.num_frames, 2), dtype=np.float32)   # F-curves store float32; matching
        # dtypes let foreach_set copy the buffer directly instead of converting item by item
        co[:, 0] = frames
        linear = np.full(motion.num_frames, LINEAR, dtype=np.int32)

        def put(path, index, group, values):
            fc = new_fcurve(path, index, group)
            fc.keyframe_points.add(motion.num_frames)
            co[:, 1] = values
            fc.keyframe_points.foreach_set("co", co.ravel())
            # Linear keys on every frame need no handles, so fc.update() (most of the cost) is skipped,
            # as Blender's own BVH importer does.
            fc.keyframe_points.foreach_set("interpolation", linear)

        for j, name in enumerate(names):
            for c in range(4):
                put(_rot_path(name), c, name, pose[:, j, c])
        for c in range(3):
            put(_loc_path(names[0]), c, names[0], loc[:, c])
    except Exception:
        bpy.data.actions.remove(action)
        raise
    action.use_fake_user = True
    action["choreo_fps"] = float(target_fps)
    action["choreo_frames"] = int(motion.num_frames)
    for name in names:
        obj.pose.bones[name].rotation_mode = "QUATERNION"
    ad = obj.animation_data_create()
    ad.action = action
    if SLOTTED_ACTIONS:
        ad.action_slot = slot
    return action


def read_motion(obj, skeleton, frame_start: int | None = None, frame_end: int | None = None,
                scene=None, evaluated: bool = False) -> Motion:
    """Read the armature's animation back into a core ``Motion`` (armature space, scene fps).

    The fast path reads the F-curves directly; ``evaluated=True`` evaluates the scene frame by frame,
    which also captures constraints, drivers and NLA.
    """
    scene = scene or bpy.context.scene
    names = list(skeleton.names)
    ad = obj.animation_data
    if ad is None or ad.action is None:
        raise ValueError(f"'{obj.name}' has no action to read")
    action = ad.action
    if frame_start is None or frame_end is None:
        lo, hi = action.frame_range
        frame_start = int(round(lo)) if frame_start is None else frame_start
        frame_end = int(round(hi)) if frame_end is None else frame_end
    frames = np.arange(frame_start, frame_end + 1)
    rest = bone_rest_matrices(obj, names)
    if evaluated:
        pose, loc = _evaluate_pose(obj, names, frames, scene)
    else:
        pose, loc = _fcurve_pose(obj, action, names, frames)
    local = pose.copy()
    local[..., 1:] = np.einsum("jik,tjk->tji", rest, pose[..., 1:])
    root = to_core(np.array(obj.data.bones[names[0]].head_local)) + loc @ rest[0].T
    return Motion(local, root, skeleton, scene_fps(scene), meta={"source": f"blender:{obj.name}:{action.name}"})


def _fcurve_pose(obj, action, names, frames):
    curves = {(fc.data_path, fc.array_index): fc for fc in action_fcurves(action, obj)}
    n = len(frames)
    pose = np.zeros((n, len(names), 4))
    pose[..., 0] = 1.0
    loc = np.zeros((n, 3))

    def sample(fc):
        count = len(fc.keyframe_points)
        co = np.empty(count * 2)
        fc.keyframe_points.foreach_get("co", co)
        co = co.reshape(-1, 2)
        if count == n and np.array_equal(co[:, 0], frames):       # keys on every frame: no evaluation
            return co[:, 1]
        return np.array([fc.evaluate(float(f)) for f in frames])

    for j, name in enumerate(names):
        for c in range(4):
            fc = curves.get((_rot_path(name), c))
            if fc is not None:
                pose[:, j, c] = sample(fc)
    for c in range(3):
        fc = curves.get((_loc_path(names[0]), c))
        if fc is not None:
            loc[:, c] = sample(fc)
    return pose, loc


def _evaluate_pose(obj, names, frames, scene):
    """Pose rotations relative to rest and root location, from the evaluated scene."""
    from ...core_models.rotations import matrix_to_quat

    current = scene.frame_current
    n = len(frames)
    pose = np.zeros((n, len(names), 4))
    loc = np.zeros((n, 3))
    rest_mats = {name: np.array(obj.data.bones[name].matrix_local.to_3x3()) for name in names}
    try:
        for i, f in enumerate(frames):
            scene.frame_set(int(f))
            glob = {}
            for j, name in enumerate(names):
                pb = obj.pose.bones[name]
                g = np.array(pb.matrix.to_3x3())                  # armature space, constraints included
                glob[name] = g
                parent = pb.parent
                if parent is None:
                    basis = rest_mats[name].T @ g
                    loc[i] = rest_mats[name].T @ (np.array(pb.head) - np.array(obj.data.bones[name].head_local))
                else:
                    # pose basis = (parent_rest^-1 rest)^-1 parent_posed^-1 posed, for rotations
                    pr = rest_mats[parent.name]
                    basis = (pr.T @ rest_mats[name]).T @ glob[parent.name].T @ g
                pose[i, j] = matrix_to_quat(basis)
    finally:
        scene.frame_set(current)
    return quat_fix_continuity(pose, axis=0), loc
