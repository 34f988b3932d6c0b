# SPDX-License-Identifier: GPL-3.0-or-later
"""Putting motion onto the user's own rig: the rig's rest pose as the core reads a target, its Bone Map with
every joint's candidates, and the core's retarget keyed onto the rig as a NEW action (the rig's own actions
are kept as they are).

The rig is read in its armature space turned to core axes (Y up): the motion is written relative to the
armature object, so moving or turning the object moves the dance with it, as animators expect. Each pose
bone keeps its rotation mode (quaternion, Euler of any order, axis-angle); the bone whose position channels
carry the body (the pelvis or the nearest bone above it that can move) gets location keys too.
"""
from __future__ import annotations

import os
import tempfile

import bpy
import numpy as np

from .keyframes import LINEAR, SLOTTED_ACTIONS, ensure_fcurve
from .mannequin import rest_skeleton
from .space import BLENDER_TO_CORE
from .timeline import scene_fps

RETARGET_REPORT_KEY = "choreo_retarget"          # action ID property: the report of the retarget that made it
_CANDIDATES_SHOWN = 3
UNSURE = 0.5            # a failed mapping's picks below this confidence are left for the user to choose


def selected_rig(context, purpose: str = "receive the dance"):
    """The active armature (ValueError in animator words when the selection is not one)."""
    obj = context.active_object
    if obj is None:
        raise ValueError(f"No rig selected: select your character's armature to {purpose}")
    if obj.type != "ARMATURE":
        raise ValueError(f"'{obj.name}' is a {obj.type.lower()}, not an armature: select your character's rig")
    return obj


def rig_rest_clip(obj):
    """The rig's rest pose as a one-frame BVH clip (core axes, the armature's unit), the retarget's target."""
    from ...core_models.rig.rigs import rest_pose_clip

    names, parents, offsets = rest_skeleton(obj)
    return rest_pose_clip(names, parents, offsets)


def bone_map_overrides(obj) -> dict:
    """The joints the user (or a preset) chose in the Bone Map panel: the rest is completed automatically."""
    return {item.canonical: item.bone for item in obj.choreo.bone_map if item.bone}


def _candidate_text(candidates) -> str:
    return ", ".join(f"{bone} ({score:.2f})" for bone, score in list(candidates)[:_CANDIDATES_SHOWN])


def show_bone_map(obj, mapping, error: str = "", min_confidence: float = 0.0) -> None:
    """Fill the Bone Map panel: all 22 joints, each with its chosen bone (or none), confidence and
    candidates, so even a rig that could not be mapped lists what to pick from. Picks below
    ``min_confidence`` are left for the user (listed among the candidates): a failed mapping's guesses are
    not kept as if the user had chosen them."""
    from ...core_models.io.bone_map import name_candidates
    from ...core_models.skeleton import BODY_JOINT_NAMES

    settings = obj.choreo
    settings.bone_map.clear()
    candidates = getattr(mapping, "candidates", {}) or {}
    if not any(candidates.values()):
        candidates = name_candidates([b.name for b in obj.data.bones])
    confidence = getattr(mapping, "confidence", {}) or {}
    chosen = getattr(mapping, "source_for", {}) or {}
    synthesised = getattr(mapping, "synthesised", {}) or {}
    for canonical in BODY_JOINT_NAMES:
        item = settings.bone_map.add()
        item.canonical = canonical
        bone = chosen.get(canonical, "")
        sure = confidence.get(canonical, 1.0) >= min_confidence
        item.bone = bone if bone in obj.data.bones and sure else ""
        item.note = synthesised.get(canonical, "")
        item.confidence = float(confidence.get(canonical, 1.0)) if item.bone else 0.0
        item.candidates = _candidate_text(candidates.get(canonical, ()))
    settings.rig_profile = getattr(mapping, "profile", "") or ""
    settings.unmapped_bones = ", ".join(getattr(mapping, "unmapped_source", ()) or ())
    settings.mapping_error = error


def map_rig(obj):
    """Map the rig's bones (the Bone Map's choices first, the rest automatically) and show the result in the
    Bone Map panel. Raises the core's UnmappableRigError (message in animator words) with the panel filled
    with every joint's candidates."""
    from ...core_models.io.retarget import UnmappableRigError, map_bones

    names, parents, offsets = rest_skeleton(obj)
    try:
        mapping = map_bones(names, parents, bone_map_overrides(obj) or None, source_offsets=offsets)
    except UnmappableRigError as exc:
        show_bone_map(obj, exc.mapping, error=str(exc), min_confidence=UNSURE)
        raise
    show_bone_map(obj, mapping)
    return mapping


def mapping_problem(obj, nothing_done: str = "Nothing was written.") -> str:
    """Map the rig (:func:`map_rig`): "" when its body was found, else what is missing and what to do, in
    animator words (the Bone Map panel then lists every joint's candidates)."""
    from ...core_models.io.retarget import UnmappableRigError

    try:
        map_rig(obj)
    except UnmappableRigError as exc:
        return (f"{obj.name}: {exc} The Bone Map panel lists every joint with its best candidates: pick the "
                f"missing bones there (or load a preset), then try again. {nothing_done}")
    except ValueError as exc:
        return f"{obj.name}: {exc}"
    return ""


def write_take_file(motion, folder: str) -> str:
    """A motion as a generated-take ``.npz`` (the arrays the core's retarget reads as a source)."""
    skel = motion.skeleton
    path = os.path.join(folder, "source_take.npz")
    np.savez(path, rotations=np.asarray(motion.rotations, np.float64),
             root_translation=np.asarray(motion.root_translation, np.float64),
             offsets=np.asarray(skel.offsets, np.float64), parents=np.asarray(skel.parents, np.int64),
             joint_names=np.asarray(skel.names), fps=np.asarray([float(motion.fps)]))
    return path


def retarget_onto(source, target_clip, overrides: dict):
    """Any thread: the core's retarget of ``source`` (a motion file path, or a core Motion) onto the rig."""
    from ...core_models.rig.retarget import retarget

    with tempfile.TemporaryDirectory(prefix="choreo-retarget-") as folder:
        if not isinstance(source, (str, os.PathLike)):
            source = write_take_file(source, folder)
        return retarget(source, target_clip, mapping_target=overrides or None)


def _rest_frames(obj, names) -> np.ndarray:
    """Each bone's rest axes in core coordinates (J, 3, 3): core local rotations L become the pose
    rotation M^T L M, core offsets d the location M^T d (see :mod:`.keyframes`)."""
    return BLENDER_TO_CORE @ np.array([np.array(obj.data.bones[n].matrix_local.to_3x3()) for n in names])


def _rotation_values(mode: str, basis: np.ndarray) -> tuple[str, np.ndarray]:
    """Pose-bone rotation matrices (F, 3, 3) as the bone's own channels: (property, (F, n) values), continuous
    from frame to frame (no flips in the F-curves)."""
    from mathutils import Euler, Matrix

    from ...core_models.rotations import matrix_to_quat, quat_fix_continuity

    if mode == "QUATERNION":
        return "rotation_quaternion", quat_fix_continuity(matrix_to_quat(basis), axis=0)
    if mode == "AXIS_ANGLE":
        out = np.empty((len(basis), 4))
        for i, m in enumerate(basis):
            axis, angle = Matrix(m.tolist()).to_quaternion().to_axis_angle()
            out[i] = (angle, *axis)
        return "rotation_axis_angle", out
    out = np.empty((len(basis), 3))
    previous = Euler((0.0, 0.0, 0.0), mode)
    for i, m in enumerate(basis):
        previous = Matrix(m.tolist()).to_euler(mode, previous)
        out[i] = tuple(previous)
    return "rotation_euler", out


def rig_channels(obj, result, fps: float) -> dict:
    """The retarget's clip as the rig's pose channels at ``fps``: {(bone, property): (F, n) values}."""
    from ...core_models.motion import resample_linear, resample_quaternions
    from ...core_models.rotations import matrix_to_quat, quat_to_matrix

    clip = result.clip
    names = list(clip.names)
    local = clip.local_rotation_matrices()                          # (F, J, 3, 3), core axes
    translations = clip.local_translations()                        # (F, J, 3)
    if abs(clip.fps - fps) > 1e-6:
        local = quat_to_matrix(resample_quaternions(matrix_to_quat(local), clip.fps, fps))
        translations = resample_linear(translations, clip.fps, fps)
    rest = _rest_frames(obj, names)
    carrier = names.index(result.report["target"]["root_bone"])    # the bone that carries the body
    channels = {}
    for j, name in enumerate(names):
        pose_bone = obj.pose.bones[name]
        basis = np.einsum("ki,fkl,lj->fij", rest[j], local[:, j], rest[j])     # M^T L M per frame
        prop, values = _rotation_values(pose_bone.rotation_mode, basis)
        channels[(name, prop)] = values
        if j == carrier:
            delta = translations[:, j] - clip.offsets[j]
            channels[(name, "location")] = delta @ rest[j]                      # M^T d per frame
    return channels


def key_new_action(obj, channels: dict, start_frame: int, action_name: str):
    """Key ``channels`` on ``obj`` as a NEW action (one linear key per frame) and make it the rig's active
    action; the previous action is kept (fake user) and never edited. Nothing changes if this raises."""
    ad = obj.animation_data_create()
    previous = ad.action
    previous_slot = ad.action_slot if SLOTTED_ACTIONS else None
    action = bpy.data.actions.new(action_name)
    try:
        if SLOTTED_ACTIONS:
            slot = action.slots.new(id_type="OBJECT", name=obj.name)
            ad.action = action
            ad.action_slot = slot
        else:
            ad.action = action
        for (bone, prop), values in channels.items():
            count = len(values)
            co = np.empty((count, 2), np.float32)
            co[:, 0] = start_frame + np.arange(count)
            for index in range(values.shape[1]):
                fc = ensure_fcurve(action, obj, f'pose.bones["{bone}"].{prop}', index, bone)
                fc.keyframe_points.add(count)
                co[:, 1] = values[:, index]
                fc.keyframe_points.foreach_set("co", co.ravel())
                fc.keyframe_points.foreach_set("interpolation", np.full(count, LINEAR, np.int32))
                fc.update()
    except Exception:
        ad.action = previous
        if SLOTTED_ACTIONS and previous_slot is not None:
            ad.action_slot = previous_slot
        bpy.data.actions.remove(action)
        raise
    if previous is not None:
        previous.use_fake_user = True          # kept in the file although the rig now plays the new one
    action.use_fake_user = True
    return action


def report_text(result, obj_name: str, action_name: str, frames: int) -> str:
    """The retarget's report in animator words (the panel's last result)."""
    figures = result.report.get("figures", {})
    target = result.report.get("target", {})
    parts = [f"Applied {frames} frames to {obj_name} as '{action_name}' ({target.get('profile', '?')} bones, "
             f"bone directions within {figures.get('bone_direction_deg', float('nan')):.1f} degrees of the source "
             f"on average; feet slide on {100 * figures.get('slide_target', 0.0):.0f}% of the source's contact "
             f"frames, the source's on {100 * figures.get('slide_source', 0.0):.0f}%)."]
    kept = target.get("kept_at_rest") or []
    if kept:
        parts.append(f"{len(kept)} bone(s) without a body joint kept their rest pose.")
    if result.notes:
        parts.append("Notes: " + "; ".join(str(n) for n in result.notes[:4]) + ".")
    return " ".join(parts)


def apply_result(obj_name: str, scene_name: str, result, start_frame: int, action_name: str) -> str:
    """Main thread: key a retarget result on the rig as a new action and store its report; returns the report."""
    import json

    obj, scene = bpy.data.objects.get(obj_name), bpy.data.scenes.get(scene_name)
    if obj is None or scene is None:
        raise ValueError(f"'{obj_name}' or its scene was removed while retargeting; nothing was changed")
    channels = rig_channels(obj, result, scene_fps(scene))
    action = key_new_action(obj, channels, start_frame, action_name)
    frames = len(next(iter(channels.values())))
    action[RETARGET_REPORT_KEY] = json.dumps(result.report, default=str)
    action["choreo_fps"] = float(scene_fps(scene))
    action["choreo_frames"] = int(frames)
    last = start_frame + frames - 1
    if scene.frame_end < last:
        scene.frame_end = last
    text = report_text(result, obj.name, action.name, frames)
    scene.choreo.last_report = text
    return text
