# SPDX-License-Identifier: GPL-3.0-or-later
"""The Takes section's operators: switch, duplicate and delete a dancer's takes, and the edits that make a new
take from the one playing (regenerate a range, hold the current pose, follow a curve, repeat a phrase).

Every edit reads the playing take (:func:`.scene.takes.read_take`), hands it to the core's ``editing`` and keys
the result as a NEW action; the take it came from is never changed. Bad input is reported and writes nothing.
Regenerate runs as a background job like Generate (synchronously in background mode); the other edits take
well under a second and run at once.
"""
from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, PointerProperty, StringProperty

from .scene.dancer import active_dancer, armature_skeleton
from .scene.references import reference_plan
from .scene.report import fail, start_job
from .scene.settings import runtime, weight_set_folder
from .scene.takes import (action_pose_rotations, current_pose_rotations, current_take, dancer_takes, key_take,
                          read_take, scene_frame, take_frame, take_grid, take_info, take_seconds, use_take)
from .scene.timeline import scene_fps

REGENERATE_JOB = "Regenerate"


class _OnATake:
    """A Takes-list button: the operator acts on the named take of the active dancer ('' = the one playing)."""
    bl_options = {"REGISTER", "UNDO"}

    action: StringProperty(name="Take", description="The take's action ('' = the one playing)")

    def execute(self, context):
        try:
            obj = active_dancer(context)
            action = bpy.data.actions.get(self.action) if self.action else current_take(obj)[0]
            if action is None or action not in dancer_takes(obj):
                raise ValueError(f"'{self.action}' is not a take of '{obj.name}'")
        except ValueError as exc:
            return fail(self, context, str(exc))
        return self.act(context, obj, action)


class CHOREO_OT_take_use(_OnATake, bpy.types.Operator):
    """Play this take on the dancer (its action is assigned; the other takes stay in the file)"""
    bl_idname = "choreo.take_use"
    bl_label = "Use Take"

    def act(self, context, obj, action):
        use_take(obj, action)
        context.scene.choreo.last_report = f"'{obj.name}' plays take '{action.name}'"
        return {"FINISHED"}


class CHOREO_OT_take_duplicate(_OnATake, bpy.types.Operator):
    """Copy this take (keys and parameters) as a new take of the dancer, and play the copy"""
    bl_idname = "choreo.take_duplicate"
    bl_label = "Duplicate Take"

    def act(self, context, obj, action):
        copy = action.copy()          # ID properties (the take's parameters and tokens) come along
        copy.use_fake_user = True
        use_take(obj, copy)
        context.scene.choreo.last_report = f"Duplicated '{action.name}' as '{copy.name}'"
        return {"FINISHED"}


class CHOREO_OT_take_delete(_OnATake, bpy.types.Operator):
    """Delete this take; the dancer switches to another take first when it plays this one"""
    bl_idname = "choreo.take_delete"
    bl_label = "Delete Take"

    def act(self, context, obj, action):
        playing = obj.animation_data is not None and obj.animation_data.action == action
        if playing:
            others = [a for a in dancer_takes(obj) if a != action]
            if not others:
                return fail(self, context, f"'{action.name}' is the only take of '{obj.name}': generate or "
                                           "duplicate another before deleting it")
            use_take(obj, others[-1])
        name = action.name
        bpy.data.actions.remove(action)
        switched = f"; '{obj.name}' now plays '{obj.animation_data.action.name}'" if playing else ""
        context.scene.choreo.last_report = f"Deleted take '{name}'{switched}"
        return {"FINISHED"}


def _new_take_name(action, what: str) -> str:
    base = action.name.split(" | ")[0]
    return f"{base} | {what}"[:60]


class CHOREO_OT_take_regenerate(bpy.types.Operator):
    """Regenerate a range of the playing take (the preview range, or two frames), snapped to the music's bars
    or beats, as a new take; everything outside the range and its short blends stays as it is"""
    bl_idname = "choreo.take_regenerate"
    bl_label = "Regenerate Range"
    bl_options = {"REGISTER", "UNDO"}

    use_preview_range: BoolProperty(name="Preview Range", default=True,
                                    description="Regenerate the timeline's preview range when it is on")
    frame_start: IntProperty(name="Start", description="First scene frame to regenerate (without a preview range)")
    frame_end: IntProperty(name="End", description="Last scene frame to regenerate (without a preview range)")
    seed: IntProperty(name="Seed", default=-1, min=-1,
                      description="Sampling seed; -1: the take's seed plus the number of its edits plus one")

    def execute(self, context):
        from .jobs import poll_idle

        scene = context.scene
        if not poll_idle(type(self)):
            return fail(self, context, "another Choreo job is running; wait for it or press Cancel")
        try:
            obj = active_dancer(context)
            action, info = current_take(obj)
            if self.use_preview_range and scene.use_preview_range:
                first, last = scene.frame_preview_start, scene.frame_preview_end
            elif self.use_preview_range and self.frame_start == self.frame_end == 0:
                raise ValueError("no range to regenerate: turn on the timeline's preview range (Ctrl P) or give "
                                 "the start and end frames")
            else:
                first, last = self.frame_start, self.frame_end
            if last <= first:
                raise ValueError(f"the range {first}-{last} is empty: its end must come after its start")
            take = read_take(obj, scene)
            music = info.get("params", {}).get("music", "")
            weights, _ = weight_set_folder(context)
            plan = reference_plan(context)        # the same libraries and pins Generate uses
        except (ValueError, OSError) as exc:
            return fail(self, context, str(exc))
        start_s, end_s = take_seconds(info, scene, first), take_seconds(info, scene, last + 1)
        span = info["span_s"]
        if start_s < span[0] - 1e-6 or end_s > span[1] + 1.0 / scene_fps(scene) + 1e-6:
            return fail(self, context, f"frames {first}-{last} ({start_s:.2f}-{end_s:.2f} s) are outside the music "
                                       f"of '{action.name}' (frames {info['start_frame']}-"
                                       f"{scene_frame(info, scene, take.num_frames - 1)}): choose a range inside it")
        end_s = min(end_s, span[1])
        seed = None if self.seed < 0 else self.seed
        if seed is None:
            seed = take.seed + len(take.edits) + 1   # each regenerate of a take's line samples anew
        run_on = runtime(context)
        obj_name, scene_name, source_name = obj.name, scene.name, action.name

        def work(progress, cancel):
            from ..core_models.editing.regenerate import regenerate_range

            progress("regenerating", 0, 1)
            return regenerate_range(take, music, start_s, end_s, weights, seed=seed, library=plan.library,
                                    references=plan.references, backend=run_on.backend, device=run_on.device,
                                    cancel=cancel)

        def apply(out):
            new, report = out
            target, dancer = bpy.data.scenes.get(scene_name), bpy.data.objects.get(obj_name)
            if target is None or dancer is None:
                raise ValueError("the dancer or its scene was removed while regenerating; nothing was added")
            lo, hi = (scene_frame(info, target, f) for f in report["range_frames"])
            made = key_take(dancer, new, target, int(info["start_frame"]),
                            _new_take_name(bpy.data.actions[source_name], f"regen {lo}-{hi - 1}"))
            made["choreo_edit_report"] = _json(report)
            ratio = report["seams"].get("seam_jerk_ratio", float("nan"))
            target.choreo.last_report = (
                f"Regenerated frames {lo}-{hi - 1} (snapped to {report['snapped_to']}, "
                f"{report['range_s'][0]:.2f}-{report['range_s'][1]:.2f} s) of '{source_name}' as '{made.name}'; "
                f"seam jerk {ratio:.2f}x the take's 99th percentile, seed {report['chosen_seed']}, "
                f"{report['timings']['total_s']:.1f} s (references: {plan.mode})")

        return start_job(self, context, REGENERATE_JOB, work, apply)


def _json(report: dict) -> str:
    import json

    return json.dumps(report, default=str)


class CHOREO_OT_take_key_pose(bpy.types.Operator):
    """Make a new take that passes through a pose at the current frame: the dancer's current pose (pose the
    dancer first), another take's pose at a frame, or a library clip's; it blends in and out over about half
    a second"""
    bl_idname = "choreo.take_key_pose"
    bl_label = "Key Pose"
    bl_options = {"REGISTER", "UNDO"}

    pose_from: EnumProperty(name="Pose From", default="CURRENT",
                            items=[("CURRENT", "Current Pose", "The dancer's pose as it stands now, keyed or not"),
                                   ("TAKE", "Another Take", "Another take of the dancer at a scene frame"),
                                   ("CLIP", "Library Clip", "A library clip at a frame (30 fps, from 0)")])
    source_take: StringProperty(name="Take", description="The take (action) to pick the pose from")
    clip: StringProperty(name="Clip", description="The library clip ('' = the one selected in the Library list)")
    source_frame: IntProperty(name="Frame", description="Scene frame of the other take, or clip frame (30 fps)")

    def invoke(self, context, event):
        return context.window_manager.invoke_props_dialog(self)

    def _key_rotations(self, context, obj, take, at: int):
        """(rotations, what the history records) of the pose to key from another take or a library clip."""
        from ..core_models.editing.constraints import key_from_joints

        if self.pose_from == "TAKE":
            other = bpy.data.actions.get(self.source_take)
            if other is None or other not in dancer_takes(obj):
                raise ValueError(f"'{self.source_take}' is not a take of '{obj.name}': pick one of its takes")
            other_info = take_info(other)
            last = scene_frame(other_info, context.scene, int(other_info["frames_30"]) - 1)
            if not int(other_info["start_frame"]) <= self.source_frame <= last:
                raise ValueError(f"frame {self.source_frame} is outside take '{other.name}' (frames "
                                 f"{other_info['start_frame']}-{last})")
            return action_pose_rotations(obj, other, self.source_frame), f"{other.name}@{self.source_frame}"
        from .scene.library import open_library, selected_clip

        name = selected_clip(context, self.clip)
        library = open_library(context)
        if name not in library:
            raise ValueError(f"clip '{name}' is not in {library.describe()}")
        return key_from_joints(take, library.joints(name), self.source_frame, at), f"clip {name}@{self.source_frame}"

    def execute(self, context):
        from ..core_models.editing import EditError
        from ..core_models.editing.constraints import hold_key_pose, key_error
        from ..core_models.editing.frames import mean_yaw
        from ..core_models.kinematics import forward_kinematics

        scene = context.scene
        try:
            obj = active_dancer(context)
            action, info = current_take(obj)
            # read the current pose before anything re-evaluates the action (that would drop an unkeyed pose)
            posed = current_pose_rotations(obj, armature_skeleton(obj)) if self.pose_from == "CURRENT" else None
            frame = take_frame(info, scene, scene.frame_current)
            take = read_take(obj, scene)
            if not 0 <= frame < take.num_frames:
                raise EditError(f"frame {scene.frame_current} is outside '{action.name}' (frames "
                                f"{info['start_frame']}-{scene_frame(info, scene, take.num_frames - 1)}): go to a "
                                "frame of the take and pose the dancer there")
            if posed is not None:
                key, source = posed, f"pose@{scene.frame_current}"
            else:
                key, source = self._key_rotations(context, obj, take, frame)
            new, _ = hold_key_pose(take, frame, key, source=source)
        except (ValueError, OSError) as exc:              # EditError is a ValueError
            return fail(self, context, str(exc))
        made = key_take(obj, new, scene, int(info["start_frame"]),
                        _new_take_name(action, f"key {scene.frame_current}"))
        # the error the issue asks for: the key's joints (on the dancer's skeleton) against the new take's there
        key_joints = forward_kinematics(key[None], take.root[frame:frame + 1], take.skeleton)[0]
        error = key_error(new, frame, key_joints, mean_yaw(key[None, 0]))
        scene.choreo.last_report = (f"Keyed {source} at frame {scene.frame_current} as take '{made.name}' "
                                    f"(joint error {100 * error:.1f} cm)")
        return {"FINISHED"}


def _curve_points(curve_obj, dancer, depsgraph):
    """The curve's evaluated points in the dancer's armature space, core axes (N, 3) metres."""
    import numpy as np

    from .scene.space import to_core

    evaluated = curve_obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        count = len(mesh.vertices)
        co = np.zeros(count * 3)
        mesh.vertices.foreach_get("co", co)
    finally:
        evaluated.to_mesh_clear()
    world = np.array(curve_obj.matrix_world) @ np.c_[co.reshape(-1, 3), np.ones(count)].T
    local = np.linalg.inv(np.array(dancer.matrix_world)) @ world
    return to_core(local[:3].T)


def _is_curve(self, obj) -> bool:
    return obj.type == "CURVE"


class CHOREO_OT_take_follow_curve(bpy.types.Operator):
    """Make a new take whose root follows a curve object (walked at the take's own pace, feet re-planted)"""
    bl_idname = "choreo.take_follow_curve"
    bl_label = "Follow Curve"
    bl_options = {"REGISTER", "UNDO"}

    curve: StringProperty(name="Curve", description="The curve object to follow ('' = the Takes section's curve)")

    def execute(self, context):
        from ..core_models.editing.constraints import follow_path

        scene = context.scene
        curve = bpy.data.objects.get(self.curve) if self.curve else scene.choreo_take_curve
        try:
            if curve is None or curve.type != "CURVE":
                raise ValueError("no curve to follow: pick a curve object in the Takes section")
            obj = active_dancer(context)
            action, _ = current_take(obj)
            info = take_info(action)
            points = _curve_points(curve, obj, context.evaluated_depsgraph_get())
            if len(points) < 2:
                raise ValueError(f"the curve '{curve.name}' has no points: draw a curve with some length")
            take = read_take(obj, scene)
            new, report = follow_path(take, points)
        except ValueError as exc:
            return fail(self, context, str(exc))
        made = key_take(obj, new, scene, int(info["start_frame"]), _new_take_name(action, f"path {curve.name}"))
        made["choreo_edit_report"] = _json(report)
        scene.choreo.last_report = (f"'{made.name}' follows '{curve.name}' ({report['path_length_m']:.2f} m): root "
                                    f"within {100 * report['root_to_path_max_m']:.0f} cm of it, foot skating "
                                    f"{100 * report['fsr_before']:.1f} % -> {100 * report['fsr_after']:.1f} %")
        return {"FINISHED"}


REPEAT_MARKER = "repeat "        # suggested repeats: timeline markers "repeat 12.0-15.7 s" at the copy's start


def _bar_frames(grid, bar_start: int, bar_end: int, bar_at: int) -> tuple[int, int, int]:
    """Take frames (30 fps) of bars A-B (1-based, B included) and of bar C's start; ValueError outside."""
    bars = [int(b) for b in grid.bars] + [int(grid.frames)]
    count = len(bars) - 1
    for name, bar in (("From", bar_start), ("To", bar_end), ("At", bar_at)):
        if not 1 <= bar <= count:
            raise ValueError(f"bar {bar} ({name}) is not in the music: it has bars 1-{count} ({grid.meter} beats "
                             "to the bar)")
    if bar_end < bar_start:
        raise ValueError(f"bars {bar_start}-{bar_end}: the last bar must not come before the first")
    return bars[bar_start - 1], bars[bar_end], bars[bar_at - 1]


def _repeat_as_take(op, context, obj, action, take, info, start: int, end: int, at: int, mirror: bool, what: str):
    """Key the copy of take frames [start, end) at ``at`` as a new take; the report says what was copied."""
    from ..core_models.editing.phrases import repeat_phrase

    scene = context.scene
    new, _ = repeat_phrase(take, start, end, at, mirror=mirror)
    made = key_take(obj, new, scene, int(info["start_frame"]), _new_take_name(action, what))
    lo, hi, to = (scene_frame(info, scene, f) for f in (start, end, at))
    scene.choreo.last_report = (f"{'Mirrored' if mirror else 'Copied'} {what.split(' ', 1)[1]} (frames {lo}-{hi - 1}) "
                                f"to frame {to} as '{made.name}'")
    return {"FINISHED"}


class CHOREO_OT_take_repeat(bpy.types.Operator):
    """Copy bars A-B of the playing take to bar C (frames when the music shows no meter), optionally mirrored
    left/right, seams blended, as a new take"""
    bl_idname = "choreo.take_repeat"
    bl_label = "Repeat Phrase"
    bl_options = {"REGISTER", "UNDO"}

    unit: EnumProperty(name="In", default="BARS",
                       items=[("BARS", "Bars", "Bars A-B to bar C (falls back to the frames without a meter)"),
                              ("FRAMES", "Frames", "Scene frames A-B to frame C")])
    bar_start: IntProperty(name="From Bar", default=1, min=1,
                           description="First bar of the phrase (1 = the take's first)")
    bar_end: IntProperty(name="To Bar", default=2, min=1, description="Last bar of the phrase (included)")
    bar_at: IntProperty(name="At Bar", default=3, min=1, description="Bar where the copy starts")
    frame_start: IntProperty(name="From", description="First scene frame of the phrase")
    frame_end: IntProperty(name="To", description="Last scene frame of the phrase")
    frame_at: IntProperty(name="At", description="Scene frame where the copy starts")
    mirror: BoolProperty(name="Mirror", description="Mirror the copy left/right in the dancer's own frame")

    def invoke(self, context, event):
        return context.window_manager.invoke_props_dialog(self)

    def execute(self, context):
        scene = context.scene
        try:
            obj = active_dancer(context)
            action, info = current_take(obj)
            take = read_take(obj, scene)
            grid = take_grid(info) if self.unit == "BARS" else None
            if grid is not None and grid.meter:
                start, end, at = _bar_frames(grid, self.bar_start, self.bar_end, self.bar_at)
                what = f"{'mirror' if self.mirror else 'repeat'} bars {self.bar_start}-{self.bar_end}@{self.bar_at}"
            else:
                if grid is not None and self.frame_start == self.frame_end == 0:
                    raise ValueError("the music shows no meter, so there are no bars to copy: give the phrase "
                                     "in frames (From, To, At)")
                start, end, at = (take_frame(info, scene, f) for f in (self.frame_start, self.frame_end + 1,
                                                                        self.frame_at))
                what = f"{'mirror' if self.mirror else 'repeat'} {self.frame_start}-{self.frame_end}@{self.frame_at}"
            return _repeat_as_take(self, context, obj, action, take, info, start, end, at, self.mirror, what)
        except ValueError as exc:
            return fail(self, context, str(exc))


def _repeat_markers(scene):
    return [m for m in scene.timeline_markers if m.name.startswith(REPEAT_MARKER)]


class CHOREO_OT_take_suggest_repeats(bpy.types.Operator):
    """Mark the phrases whose music comes back: a timeline marker at each place a phrase could be repeated,
    named after the phrase to copy there ("repeat 12.0-15.7 s"); select one and press Accept"""
    bl_idname = "choreo.take_suggest_repeats"
    bl_label = "Suggest Repeats"
    bl_options = {"REGISTER", "UNDO"}

    phrase_bars: IntProperty(name="Bars", default=2, min=1, max=16, description="Length of a phrase in bars")

    def execute(self, context):
        from ..core_models.editing.music_structure import suggest_repeats

        scene = context.scene
        try:
            obj = active_dancer(context)
            _, info = current_take(obj)
            grid = take_grid(info)
        except ValueError as exc:
            return fail(self, context, str(exc))
        suggestions = suggest_repeats(grid, phrase_bars=self.phrase_bars)
        if not suggestions:
            why = "the music shows no meter" if not grid.meter else "no phrase of the music clearly comes back"
            return fail(self, context, f"no repeats to suggest: {why}")
        for marker in _repeat_markers(scene):           # the last suggestions make way for the new ones
            scene.timeline_markers.remove(marker)
        song0 = float(info["span_s"][0])
        for s in suggestions:
            a, b = (song0 + t for t in s["from_s"])
            frame = scene_frame(info, scene, int(round(s["at_s"] * 30.0)))
            scene.timeline_markers.new(f"{REPEAT_MARKER}{a:.1f}-{b:.1f} s", frame=frame)
        scene.choreo.last_report = (f"Suggested {len(suggestions)} repeat(s) as timeline markers: select one and "
                                    "press Accept Suggested Repeat")
        return {"FINISHED"}


def _marker_phrase(marker) -> tuple[float, float]:
    """(start, end) seconds in the song from a suggestion marker's name; ValueError for any other marker."""
    try:
        text = marker.name[len(REPEAT_MARKER):].removesuffix(" s")
        a, b = (float(x) for x in text.split("-", 1))
    except ValueError as exc:
        raise ValueError(f"marker '{marker.name}' is not a suggested repeat (press Suggest Repeats)") from exc
    return a, b


class CHOREO_OT_take_accept_repeat(bpy.types.Operator):
    """Copy the phrase a selected suggestion marker names to the marker's frame, as a new take"""
    bl_idname = "choreo.take_accept_repeat"
    bl_label = "Accept Suggested Repeat"
    bl_options = {"REGISTER", "UNDO"}

    marker: StringProperty(name="Marker", description="The suggestion marker ('' = the selected one)")
    mirror: BoolProperty(name="Mirror", description="Mirror the copy left/right in the dancer's own frame")

    def execute(self, context):
        scene = context.scene
        try:
            markers = _repeat_markers(scene)
            chosen = [m for m in markers if (m.name == self.marker if self.marker else m.select)]
            if len(chosen) != 1:
                raise ValueError("select one suggested-repeat marker on the timeline (press Suggest Repeats to "
                                 f"make them); {len(chosen)} selected")
            marker = chosen[0]
            a, b = _marker_phrase(marker)
            obj = active_dancer(context)
            action, info = current_take(obj)
            take = read_take(obj, scene)
            song0 = float(info["span_s"][0])
            start, end = (int(round((t - song0) * 30.0)) for t in (a, b))
            at = take_frame(info, scene, marker.frame)
            what = f"{'mirror' if self.mirror else 'repeat'} {a:.1f}-{b:.1f} s@{marker.frame}"
            return _repeat_as_take(self, context, obj, action, take, info, start, end, at, self.mirror, what)
        except ValueError as exc:
            return fail(self, context, str(exc))


classes = (CHOREO_OT_take_use, CHOREO_OT_take_duplicate, CHOREO_OT_take_delete, CHOREO_OT_take_regenerate,
           CHOREO_OT_take_key_pose, CHOREO_OT_take_follow_curve, CHOREO_OT_take_repeat, CHOREO_OT_take_suggest_repeats,
           CHOREO_OT_take_accept_repeat)

_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register():
    _register_classes()
    bpy.types.Scene.choreo_take_curve = PointerProperty(
        name="Curve", type=bpy.types.Object, poll=_is_curve,
        description="The curve the dancer's root follows (Follow Curve)")


def unregister():
    del bpy.types.Scene.choreo_take_curve
    _unregister_classes()
