# SPDX-License-Identifier: GPL-3.0-or-later
"""Is a loaded clip the right way up? Upside down, lying, or Z-up read as Y-up, from the skeleton.

Core space is Y up. Two cues decide, both from the body alone (no file metadata is trusted):
* the body axis, feet -> head: in the rest pose (the source skeleton's offsets from the pelvis to the head,
  when the clip comes from a file) and on every frame of the motion (the head above the feet);
* gravity of the motion: the feet stay near one plane (the floor) while the body travels, so the axis along
  which the lowest foot joint varies least is the up axis.
A clip whose body axis points down on most frames is upside down; one whose body axis lies in the floor
plane on most frames is lying. When the lying axis is +Z (core), a Z-up source was read as Y-up (core Z is
the source's Z): the fix is to load it with ``up_axis='Z'`` (CLI ``--up z``); -Z means the opposite
(a Y-up file read with ``--up z``). A few upside-down or lying frames (a handstand, floor work) only warn.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..skeleton import JOINT_INDEX, LEFT_FOOT_JOINTS, RIGHT_FOOT_JOINTS

REFUSE_SHARE = 0.8      # share of frames upside down / lying above which the clip is refused
WARN_SHARE = 0.3        # ... above which the user is warned (floor work, a handstand?)
UPRIGHT_COS = 0.5       # body axis within 60 degrees of +Y counts as upright, of -Y as upside down
_AXES = {0: "X", 1: "Y", 2: "Z"}


@dataclass
class Orientation:
    """verdict: 'ok', 'warn' or 'refuse'; up: the up axis the body suggests in core axes ('+Y', '+Z', ...);
    shares of frames upright / upside down / lying; message: what is wrong and how to fix it (empty when ok)."""
    verdict: str
    up: str
    upright: float
    upside_down: float
    lying: float
    message: str = ""
    cues: dict = field(default_factory=dict)


def _axis_name(v: np.ndarray) -> str:
    k = int(np.argmax(np.abs(v)))
    return ("+" if v[k] >= 0 else "-") + _AXES[k]


def rest_body_axis(skeleton, mapping) -> np.ndarray | None:
    """Pelvis -> head direction of a source skeleton's rest pose (offsets along the head's chain), core axes;
    None when the mapping lacks the pelvis or head bones."""
    names = list(skeleton.names)
    index = {n: i for i, n in enumerate(names)}
    head, pelvis = mapping.source_for.get("head"), mapping.source_for.get("pelvis")
    if head not in index or pelvis not in index:
        return None
    j, total = index[head], np.zeros(3)
    while j >= 0 and j != index[pelvis]:
        total = total + np.asarray(skeleton.offsets[j], np.float64)
        j = skeleton.parents[j]
    if j < 0 or np.linalg.norm(total) < 1e-9:
        return None
    return total / np.linalg.norm(total)


def gravity_axis(joints: np.ndarray) -> str | None:
    """The axis along which the lowest foot joint moves least relative to the body's travel (the floor
    normal), or None when the clip does not travel enough to tell."""
    feet = joints[:, [LEFT_FOOT_JOINTS[0], LEFT_FOOT_JOINTS[1], RIGHT_FOOT_JOINTS[0], RIGHT_FOOT_JOINTS[1]]]
    spread = np.array([np.percentile(feet[..., k].min(-1), 95) - np.percentile(feet[..., k].min(-1), 5)
                       for k in range(3)])
    if np.sort(spread)[-1] < 0.3:              # hardly travels: a floor plane cannot be told from a still body
        return None
    return _AXES[int(np.argmin(spread))]


def check_orientation(joints, rest_axis: np.ndarray | None = None) -> Orientation:
    """Orientation of canonical joints (T, 22, 3) in core axes; ``rest_axis`` (3,): the rest pose's pelvis ->
    head direction (:func:`rest_body_axis`) when known."""
    joints = np.asarray(joints, np.float64)
    feet = joints[:, [LEFT_FOOT_JOINTS[0], RIGHT_FOOT_JOINTS[0]]].mean(1)
    axis = joints[:, JOINT_INDEX["head"]] - feet
    axis = axis / np.maximum(np.linalg.norm(axis, axis=-1, keepdims=True), 1e-9)
    up_cos = axis[:, 1]
    upright = float(np.mean(up_cos > UPRIGHT_COS))
    down = float(np.mean(up_cos < -UPRIGHT_COS))
    lying_mask = np.abs(up_cos) <= UPRIGHT_COS
    lying = float(np.mean(lying_mask))
    mean_axis = axis.mean(0)
    up = _axis_name(rest_axis) if rest_axis is not None else _axis_name(mean_axis)
    gravity = gravity_axis(joints)
    cues = {"motion_up": _axis_name(mean_axis), "rest_up": None if rest_axis is None else _axis_name(rest_axis),
            "gravity_axis": gravity}
    rest_wrong = rest_axis is not None and abs(rest_axis[1]) < UPRIGHT_COS
    result = Orientation("ok", up, upright, down, lying, "", cues)

    def hint(direction: str) -> str:
        if direction == "+Z":
            return ("it looks like a Z-up file read as Y-up: load it with up_axis='Z' (CLI: --up z), or rotate "
                    "it -90 degrees about X on import")
        if direction == "-Z":
            return ("it looks like a Y-up file read as Z-up: load it with up_axis='Y' (CLI: --up y), or rotate "
                    "it 90 degrees about X on import")
        return f"its up axis is {direction}: rotate it on import so that the head is above the feet along +Y"

    if down >= REFUSE_SHARE:
        result.verdict = "refuse"
        result.message = (f"the clip is upside down: the head is below the feet on {100 * down:.0f} % of the "
                          "frames; rotate it 180 degrees on import (or flip the up axis), then fix the feet")
    elif lying >= REFUSE_SHARE or (rest_wrong and lying >= WARN_SHARE):
        direction = _axis_name(np.where(lying_mask[:, None], axis, 0.0).mean(0))
        result.verdict = "refuse"
        result.message = (f"the figure lies in the floor plane on {100 * lying:.0f} % of the frames (body axis "
                          f"{direction}{', also in the rest pose' if rest_wrong else ''}"
                          f"{f', the feet keep level along {gravity}' if gravity and gravity != 'Y' else ''}): "
                          + hint(direction))
    elif down >= WARN_SHARE or lying >= WARN_SHARE:
        result.verdict = "warn"
        result.message = (f"the figure is upside down on {100 * down:.0f} % and lying on {100 * lying:.0f} % of "
                          "the frames (floor work or a handstand?); those frames have no planted feet. If the whole "
                          "clip looks wrong in the viewport, " + hint(direction=_axis_name(mean_axis)))
    return result


__all__ = ["Orientation", "check_orientation", "gravity_axis", "rest_body_axis"]
