# SPDX-License-Identifier: GPL-3.0-or-later
"""Foot Fix: repair foot skating on the selected rig (any naming: imported mocap or an SMPL-X dancer).

The rig's bones map to the canonical body (by name when imported, editable in the panel). On the main
thread the rig is evaluated once per frame of its action; the core's ``fix_feet`` repairs the canonical
body in the job's worker; the repair comes back as a move of the root bone and new hip, knee and ankle
rotations (two-bone IK with the original knee as pole, the foot turned only as far as the toe needs), solved
on the rig's own bones by the core's rig solver (:func:`core_models.rig.solve_fix`, the one the BVH writer
uses too; :func:`solved_channel_edits` only turns its edits into channels). The result is a NEW
action: a copy of the original whose root location and leg rotation F-curves are rewritten on the frames the
fix changed; every other F-curve is the original's, bit for bit. The original action is kept (with a fake
user) and never modified. Contacts become timeline markers ("Choreo <rig> L plant" / "... L lift"), and those
markers are the source of truth for the next Fix Feet on that rig (the foot-lock habit of Rokoko /
MotionBuilder): move, add or delete one and the fix plants what they say; "Detect Contacts" rebuilds them
from the motion. The before/after report is stored on the new action and shown in the panel.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

import bpy
import numpy as np

from ..core_models.motion import MOTION_FPS
from . import jobs
from .scene.keyframes import LINEAR, SLOTTED_ACTIONS, action_fcurves, ensure_fcurve
from .scene.report import FIX_FEET_JOB, fail
from .scene.rig import (FOOT_FIX_REPORT_KEY, RigPose, constraint_note, read_rig_pose, rig_action, stored_mapping,
                        world_core)
from .scene.settings import frdm_weights_folder, runtime
from .scene.timeline import scene_fps

MARKER_PREFIX = "Choreo "         # contact markers of the last foot fix; replaced by the next one
_ROTATION_PATHS = {"QUATERNION": ("rotation_quaternion", 4), "AXIS_ANGLE": ("rotation_axis_angle", 4)}


def _moved_bone(mapping, names, parents, has_location) -> int:
    """The bone whose location carries the root: the pelvis bone (or the hips' common parent), or the
    nearest ancestor of it that is animated with a location."""
    index = {n: i for i, n in enumerate(names)}
    start = index.get(mapping.source_for.get("pelvis", ""))
    if start is None or "pelvis" in mapping.synthesised:
        hips = [index[mapping.source_for[c]] for c in ("left_hip", "right_hip") if c in mapping.source_for]
        chain = []
        j = hips[0] if hips else -1
        while j >= 0:
            chain.append(j)
            j = parents[j]
        j = hips[1] if len(hips) > 1 else -1
        while j >= 0 and j not in chain:
            j = parents[j]
        start = j if j >= 0 else (chain[-1] if chain else 0)
    j = start
    while j >= 0:
        if names[j] in has_location:
            return j
        j = parents[j]
    return start


@dataclass
class FixPlan:
    """What the main thread hands the worker."""
    pose: RigPose
    mapping: object
    legs: dict
    moved: int
    rotation_modes: dict
    fps: float
    first_frame: int
    overrides: list
    options: dict
    notes: list
    marker_runs: dict | None = None    # side -> [(plant frame, lift frame)] in scene frames, from the markers


def plan_fix(context, obj) -> FixPlan:
    """Check the rig and read its animation (main thread); ValueError with a user-facing message."""
    from ..core_models.rig import leg_bones

    ad = obj.animation_data
    if ad is None or (ad.action is None and not len(ad.nla_tracks)):
        raise ValueError(f"'{obj.name}' has no action to fix: import mocap onto it or select an animated rig")
    action = rig_action(obj, "fix")                 # names the NLA strip when the action sits only there
    mapping = stored_mapping(obj)
    names = [b.name for b in obj.data.bones]
    legs, notes = leg_bones(names, [False] * len(names), mapping)
    if constraint_note(obj):
        notes = list(notes) + [constraint_note(obj)]
    if not legs:
        raise ValueError(f"'{obj.name}': no leg has hip, knee and ankle bones mapped; map them in Foot Fix > "
                         "Bone Map (the canonical left/right_hip, _knee and _ankle)")
    fcurves = action_fcurves(action, obj)
    has_location = {fc.data_path.split('"')[1] for fc in fcurves if fc.data_path.endswith(".location")
                    and fc.data_path.startswith("pose.bones[")}
    parents = [names.index(b.parent.name) if b.parent else -1 for b in obj.data.bones]
    moved = _moved_bone(mapping, names, parents, has_location)
    if obj.data.bones[names[moved]].use_connect:
        raise ValueError(f"'{obj.name}': the root bone '{names[moved]}' is connected to its parent, so it cannot "
                         "move; disconnect it or map the pelvis to a free bone")
    lo, hi = (int(round(v)) for v in action.frame_range)
    frames = np.arange(lo, hi + 1)
    leg_set = sorted({b for bones in legs.values() for b in bones[:3]})
    modes = {names[b]: obj.pose.bones[names[b]].rotation_mode for b in leg_set}
    props = [(names[moved], "location", 3)] + [
        (names[b], *_ROTATION_PATHS.get(modes[names[b]], ("rotation_euler", 3))) for b in leg_set]
    pose = read_rig_pose(obj, context.scene, frames, props)
    settings = obj.choreo
    fps = scene_fps(context.scene)
    overrides = []
    for o in settings.contact_overrides:
        if o.frame_end < o.frame_start:
            raise ValueError(f"contact override '{o.name}': its end frame {o.frame_end} is before its start "
                             f"frame {o.frame_start}")
        start = max(0, int(np.floor((o.frame_start - lo) * MOTION_FPS / fps)))
        end = max(start + 1, int(np.ceil((o.frame_end + 1 - lo) * MOTION_FPS / fps)))
        for foot in (("left", "right") if o.foot == "BOTH" else (o.foot.lower(),)):
            overrides.append((foot, start, end, o.contact == "FORCE"))
    method = "frdm" if settings.foot_method == "FRDM" else "ik_lock"
    weights = None
    if method == "frdm":
        folder, _ = frdm_weights_folder(context)
        if folder and not os.path.isfile(os.path.join(folder, "config.json")):
            raise ValueError(f"FRDM weights folder '{folder}' has no config.json: fix the path in Preferences > "
                             "Add-ons > Choreo, or choose the IK Lock method")
        weights = folder or None
    runs = marker_runs(context.scene, obj.name)
    if runs is not None:
        notes = notes + [f"contacts from the {sum(len(r) for r in runs.values())} plant/lift marker pairs of "
                         f"'{obj.name}' (Detect Contacts rebuilds them)"]
    run_on = runtime(context)
    # a Choreo dancer's motion was made to its music: the fix keeps its beats; imported mocap's slides and
    # jitter make kinetic minima of their own, which the repair may move
    options = dict(method=method, mode=settings.foot_mode.lower(), strength=settings.foot_strength,
                   beats="keep" if settings.is_dancer else "free",
                   weights=weights, device=run_on.device, backend=run_on.backend,
                   steps=settings.foot_steps, has_toes=all(t in mapping.source_for for t in ("left_foot", "right_foot")))
    return FixPlan(pose, mapping, legs, moved, modes, fps, lo, overrides, options, notes, runs)


def _marker_name(obj_name: str, side: str, kind: str) -> str:
    return f"{MARKER_PREFIX}{obj_name} {side[0].upper()} {kind}"


def marker_runs(scene, obj_name: str) -> dict | None:
    """The rig's contact intervals from its timeline markers: side -> [(plant frame, lift frame)], scene
    frames, a lift ending the plant before it (a plant without a lift lasts to the end, a lift without a plant
    starts at the first frame: None). None when the rig has no contact markers."""
    pattern = re.compile(rf"^{re.escape(MARKER_PREFIX + obj_name)} ([LR]) (plant|lift)$")
    found = {"left": [], "right": []}
    for m in scene.timeline_markers:
        hit = pattern.match(m.name)
        if hit:
            found["left" if hit.group(1) == "L" else "right"].append((m.frame, hit.group(2)))
    if not any(found.values()):
        return None
    runs = {}
    for side, marks in found.items():
        out, start = [], None
        for frame, kind in sorted(marks, key=lambda x: (x[0], x[1] == "plant")):
            if kind == "plant":
                if start is None:
                    start = frame
            else:
                out.append((start, frame))
                start = None
        if start is not None:
            out.append((start, None))
        runs[side] = out
    return runs


def runs_to_contacts(runs: dict, frames: int, first_frame: int, fps: float) -> np.ndarray:
    """(frames, 2) per-foot contacts at the core's motion fps from marker intervals in scene frames (end = the
    lift frame)."""
    contacts = np.zeros((frames, 2), bool)
    for i, side in enumerate(("left", "right")):
        for start, end in runs.get(side, []):
            s = 0 if start is None else int(round((start - first_frame) * MOTION_FPS / fps))
            e = frames if end is None else int(round((end - first_frame) * MOTION_FPS / fps))
            contacts[max(0, s):max(0, min(frames, e)), i] = True
    return contacts


@dataclass
class FixResult:
    result: object                     # core FootFixResult (at the core's motion fps)
    changed: dict                      # (bone, property) -> (values (F, n), frames changed (F,) bool)
    unit_scale: float


def _at_motion_fps(joints: np.ndarray, fps: float) -> np.ndarray:
    """Joints sampled at the scene's ``fps`` resampled to the core's motion fps (unchanged when they agree)."""
    from ..core_models.motion import resample_linear

    return resample_linear(joints, fps, MOTION_FPS) if abs(fps - MOTION_FPS) > 1e-6 else joints


def _rig_body(pose: RigPose, mapping) -> tuple[np.ndarray, float]:
    """The rig's canonical body joints in metres (core axes, scene fps) and the rig's unit in metres."""
    from ..core_models.io.retarget import canonical_joints, detect_unit_scale

    body = canonical_joints(world_core(pose), pose.names, mapping)
    scale = float(detect_unit_scale(body))
    return body * scale, scale


def compute_fix(plan: FixPlan, progress, cancel) -> FixResult:
    """Worker thread: the core's foot fix on the canonical body, solved back onto the rig's bones."""
    from ..core_models.footfix import fix_feet
    from ..core_models.runtime.backends import load_frdm

    joints, scale = _rig_body(plan.pose, plan.mapping)
    at_motion_fps = _at_motion_fps(joints, plan.fps)
    contacts = (None if plan.marker_runs is None else
                runs_to_contacts(plan.marker_runs, len(at_motion_fps), plan.first_frame, plan.fps))
    result = fix_feet(at_motion_fps, overrides=plan.overrides, progress=progress, cancel=cancel, fps=MOTION_FPS,
                      contacts=contacts, load_weights=load_frdm, **plan.options)
    changed, notes = solved_channel_edits(plan, at_motion_fps, result.joints, scale)
    result.notes.extend(n for n in notes if n not in result.notes)
    return FixResult(result, changed, scale)


def solved_channel_edits(plan: FixPlan, before: np.ndarray, after: np.ndarray, scale: float) -> tuple[dict, list]:
    """The foot fix written back onto the rig's own bones by the core's rig solver (``core_models.rig``):
    ``(changed, notes)``, ``changed`` as in :class:`FixResult` (rotations as matrices relative to each bone's
    rest, turned into the bones' channels on the main thread). ``before``/``after``: the canonical body
    (F, 22, 3) in metres, core axes, at the core's motion fps; ``scale``: the rig's unit in metres. Pure
    numpy, any thread."""
    from ..core_models.rig import RigPose as SolverRig, solve_fix

    pose = plan.pose
    rig = SolverRig(pose.parents, pose.matrices[..., :3, :3], pose.heads, plan.fps, rest=pose.rest[:, :3, :3],
                    up_axis="Z", unit_scale=scale, world_to_rig=np.linalg.inv(pose.world[:3, :3]))
    edits = solve_fix(rig, plan.legs, plan.moved, before, after)
    root = pose.names[edits.root_bone]
    changed = {(root, "location"): (pose.channels[(root, "location")] + edits.root_delta, edits.root_frames)}
    for j, rotations in edits.rotations.items():
        bone = pose.names[j]
        prop = _ROTATION_PATHS.get(plan.rotation_modes[bone], ("rotation_euler",))[0]
        changed[(bone, prop)] = (rotations, edits.rotation_frames[j])
    return changed, list(edits.notes)


def _channel_values(mode: str, matrices: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Rotation matrices (F, 3, 3) as the bone's rotation channels, each closest to the original value."""
    from mathutils import Euler, Matrix, Quaternion

    out = np.zeros((len(matrices), previous.shape[1]))
    for i, (m, prev) in enumerate(zip(matrices, previous)):
        mat = Matrix(m.tolist())
        if mode == "QUATERNION":
            q = mat.to_quaternion()
            q.make_compatible(Quaternion(prev))
            out[i] = tuple(q)
        elif mode == "AXIS_ANGLE":
            q = mat.to_quaternion()
            axis, angle = q.to_axis_angle()
            out[i] = (angle, *axis)
        else:
            out[i] = tuple(mat.to_euler(mode, Euler(prev, mode)))
    return out


def _write_channel(action, obj, bone: str, prop: str, frames: np.ndarray, values: np.ndarray,
                   original: np.ndarray, changed: np.ndarray) -> None:
    """Key ``values`` (F, n) on the changed frames of ``pose.bones[bone].prop`` in ``action``.

    A curve with a key on each changed frame is edited in place; otherwise it is rebuilt with a linear key
    on every frame of the range, unchanged frames keeping their ``original`` (evaluated) values."""
    path = f'pose.bones["{bone}"].{prop}'
    wanted = frames[changed].astype(np.int64)
    for index in range(values.shape[1]):
        fc = ensure_fcurve(action, obj, path, index, bone)
        points = fc.keyframe_points
        co = np.zeros(len(points) * 2)
        points.foreach_get("co", co)
        co = co.reshape(-1, 2)
        key_of = {int(round(f)): k for k, f in enumerate(co[:, 0]) if abs(f - round(f)) < 1e-6}
        if all(int(f) in key_of for f in wanted):
            co[[key_of[int(f)] for f in wanted], 1] = values[changed, index]
            points.foreach_set("co", co.ravel())
            if points[0].interpolation == "BEZIER":
                fc.update()                      # auto handles follow the new values
            continue
        full = original[:, index].copy()
        full[changed] = values[changed, index]
        points.clear()
        points.add(len(frames))
        points.foreach_set("co", np.stack([frames, full], -1).astype(np.float32).ravel())
        points.foreach_set("interpolation", np.full(len(frames), LINEAR, np.int32))
        fc.update()


def _summary(report: dict, rig_fsr: float | None, action_name: str, obj_name: str, fps: float) -> str:
    fb, fa = report.get("fsr_before"), report.get("fsr_after")
    parts = [f"Fixed feet of {obj_name} ({report['method'].replace('_', ' ')}, {report['mode']}) as '{action_name}'."]
    if fb and fa:
        parts.append(f"FSR {100 * fb['mean']:.1f} % -> {100 * fa['mean']:.1f} %"
                     + (f" (on the rig {100 * rig_fsr:.1f} %)" if rig_fsr is not None else "") + ",")
    if report.get("jitter_before") is not None:
        parts.append(f"jitter {report['jitter_before']:.1f} -> {report['jitter_after']:.1f} m/s^3,")
    parts.append(f"largest root move {100 * report['max_root_displacement_m']:.1f} cm, foot "
                 f"{100 * report['max_foot_displacement_m']:.1f} cm.")
    if report.get("notes"):
        parts.append("Notes: " + "; ".join(report["notes"]) + ".")
    return " ".join(parts)


def _contact_markers(scene, obj_name: str, intervals: dict, first_frame: int, fps: float) -> int:
    """Replace the rig's contact markers with ``intervals`` (core frames): '<rig> <L/R> plant' and
    '<rig> <L/R> lift' per contact; other rigs' markers stay."""
    mine = re.compile(rf"^{re.escape(MARKER_PREFIX + obj_name)} [LR] (plant|lift)$")
    for marker in [m for m in scene.timeline_markers if mine.match(m.name)]:
        scene.timeline_markers.remove(marker)
    count = 0
    for side, runs in intervals.items():
        for start, end in runs:
            scene.timeline_markers.new(_marker_name(obj_name, side, "plant"),
                                       frame=first_frame + int(round(start * fps / MOTION_FPS)))
            scene.timeline_markers.new(_marker_name(obj_name, side, "lift"),
                                       frame=first_frame + int(round(end * fps / MOTION_FPS)))
            count += 2
    return count


def apply_fix(obj_name: str, scene_name: str, plan: FixPlan, fix: FixResult) -> str:
    """Main thread: the new action on the rig, markers and report; nothing is left behind on failure."""
    from ..core_models.footfix import clip_metrics
    from ..core_models.io.retarget import canonical_joints

    obj, scene = bpy.data.objects.get(obj_name), bpy.data.scenes.get(scene_name)
    if obj is None or scene is None:
        raise ValueError(f"'{obj_name}' or its scene was removed while fixing; nothing was changed")
    ad = obj.animation_data
    original = ad.action if ad is not None else None
    if original is None:
        raise ValueError(f"'{obj_name}' lost its action while fixing; nothing was changed")
    original_slot = ad.action_slot if SLOTTED_ACTIONS else None
    report = dict(fix.result.report)
    action = original.copy()
    action.name = f"{original.name} feet fixed"
    try:
        if SLOTTED_ACTIONS:
            ad.action = action
            ad.action_slot = action.slots.get(original_slot.identifier) if original_slot else None
        else:
            ad.action = action
        frames = plan.pose.frames.astype(np.float64)
        for (bone, prop), (values, changed) in fix.changed.items():
            if not changed.any():
                continue
            if values.ndim == 3:             # rotation matrices -> the bone's own rotation channels
                values = _channel_values(plan.rotation_modes[bone], values, plan.pose.channels[(bone, prop)])
            _write_channel(action, obj, bone, prop, frames, values, plan.pose.channels[(bone, prop)], changed)
        # the repaired rig, evaluated: what the animator gets
        after = read_rig_pose(obj, scene, plan.pose.frames)
        body = _at_motion_fps(canonical_joints(world_core(after), after.names, plan.mapping) * fix.unit_scale,
                              plan.fps)
        rig = clip_metrics(body, report.get("floor_height_m"))
        report["fsr_after_on_rig"] = rig["fsr"]
        report["jitter_after_on_rig"] = rig["jitter"]
        report["source_action"] = original.name
        report["scene_fps"] = plan.fps
        report["first_frame"] = plan.first_frame
        report["notes"] = list(dict.fromkeys(list(report.get("notes", [])) + plan.notes))
        action[FOOT_FIX_REPORT_KEY] = json.dumps(report)
        action["choreo_source_action"] = original.name
    except Exception:
        ad.action = original
        if SLOTTED_ACTIONS and original_slot is not None:
            ad.action_slot = original_slot
        bpy.data.actions.remove(action)
        raise
    original.use_fake_user = True        # kept in the file although no object uses it any more
    _contact_markers(scene, obj_name, report["contact_intervals"], plan.first_frame, plan.fps)
    rig_fsr = (report["fsr_after_on_rig"] or {}).get("mean")
    summary = _summary(report, rig_fsr, action.name, obj_name, plan.fps)
    scene.choreo.last_report = summary
    return summary


class CHOREO_OT_fix_feet(bpy.types.Operator):
    """Repair foot skating on the selected rig: a new action with the root and legs corrected; the original
    action and the upper body stay exactly as they were"""
    bl_idname = "choreo.fix_feet"
    bl_label = "Fix Feet"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        if not jobs.poll_idle(cls):
            return False
        obj = context.active_object
        if obj is None or obj.type != "ARMATURE":
            cls.poll_message_set("Select an armature (imported mocap or a Choreo dancer)")
            return False
        return True

    def execute(self, context):
        obj = context.active_object
        try:
            plan = plan_fix(context, obj)
        except (ValueError, OSError) as exc:
            return fail(self, context, str(exc))
        if len(plan.pose.frames) < 2:
            return fail(self, context, f"'{obj.name}' has a single frame of animation: there is no foot skating "
                                       "to fix; nothing was changed")
        obj_name, scene_name = obj.name, context.scene.name

        def work(progress, cancel):
            return compute_fix(plan, progress, cancel)

        def apply(fix):
            apply_fix(obj_name, scene_name, plan, fix)

        try:
            state = jobs.run_job(FIX_FEET_JOB, work, apply)
        except Exception as exc:
            return fail(self, context, jobs.failure_message(exc, FIX_FEET_JOB))
        if state == "FINISHED":
            self.report({"INFO"}, context.scene.choreo.last_report)
        return {"FINISHED"}


class CHOREO_OT_detect_contacts(bpy.types.Operator):
    """Detect the selected rig's foot contacts from its motion and rebuild its contact markers (plant/lift);
    move, add or delete markers afterwards and Fix Feet follows them"""
    bl_idname = "choreo.detect_contacts"
    bl_label = "Detect Contacts"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        return jobs.poll_idle(cls) and obj is not None and obj.type == "ARMATURE"

    def execute(self, context):
        from ..core_models.footfix import FootFixError, V_TH_REPAIR, contact_intervals, detect_contacts

        obj = context.active_object
        try:
            plan = plan_fix(context, obj)
            at_motion_fps = _at_motion_fps(_rig_body(plan.pose, plan.mapping)[0], plan.fps)
            info = detect_contacts(at_motion_fps, MOTION_FPS, plan.overrides, plan.options["has_toes"],
                                   v_th=V_TH_REPAIR)
        except (ValueError, OSError, FootFixError) as exc:
            return fail(self, context, str(exc))
        count = _contact_markers(context.scene, obj.name, contact_intervals(info.contacts), plan.first_frame, plan.fps)
        context.scene.choreo.last_report = (f"{obj.name}: {count // 2} contacts detected as plant/lift markers; "
                                            "edit them and run Fix Feet")
        self.report({"INFO"}, context.scene.choreo.last_report)
        return {"FINISHED"}


class CHOREO_OT_contact_override_add(bpy.types.Operator):
    """Add a contact override for the selected rig, starting at the current frame"""
    bl_idname = "choreo.contact_override_add"
    bl_label = "Add Contact Override"
    bl_options = {"REGISTER", "UNDO"}

    foot: bpy.props.EnumProperty(name="Foot", items=(("LEFT", "Left", ""), ("RIGHT", "Right", ""),
                                                     ("BOTH", "Both", "")), default="LEFT")
    contact: bpy.props.EnumProperty(name="Contact", items=(
        ("FORCE", "Force contact", "Plant the foot on these frames"),
        ("NEVER", "Never contact", "Never plant the foot on these frames (a slide or a spin)")), default="FORCE")

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        return obj is not None and obj.type == "ARMATURE"

    def execute(self, context):
        settings = context.active_object.choreo
        item = settings.contact_overrides.add()
        frame = context.scene.frame_current
        item.foot, item.contact = self.foot, self.contact
        item.frame_start, item.frame_end = frame, frame + 10
        item.name = f"{self.foot.title()} {'force' if self.contact == 'FORCE' else 'never'} {frame}"
        settings.contact_override_index = len(settings.contact_overrides) - 1
        return {"FINISHED"}


class CHOREO_OT_contact_override_remove(bpy.types.Operator):
    """Remove the selected contact override"""
    bl_idname = "choreo.contact_override_remove"
    bl_label = "Remove Contact Override"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        return obj is not None and obj.type == "ARMATURE" and len(obj.choreo.contact_overrides) > 0

    def execute(self, context):
        settings = context.active_object.choreo
        settings.contact_overrides.remove(min(settings.contact_override_index, len(settings.contact_overrides) - 1))
        settings.contact_override_index = max(0, settings.contact_override_index - 1)
        return {"FINISHED"}


classes = (CHOREO_OT_fix_feet, CHOREO_OT_detect_contacts, CHOREO_OT_contact_override_add,
           CHOREO_OT_contact_override_remove)

register, unregister = bpy.utils.register_classes_factory(classes)
