# SPDX-License-Identifier: GPL-3.0-or-later
"""The motion's beats survive the foot fix: :func:`keep_beats` fades a fix out where it would move them.

A dance's kinematic beats are the local minima of its smoothed mean joint speed (:func:`metrics.motion_beats`,
what the Beat Align Score is computed from). Pinning a sliding foot or shifting the root changes the joints'
speed, and a minimum a frame off moves a beat off the music. Re-timing the motion would move every other
frame too, so instead the fix is weakened locally: around each beat that the fixed motion has moved (or
lost, or gained) the fix's weight halves, and the legs are solved again for the weaker fix, until the
fixed motion has exactly the input's beats. Far from such beats the fix stays whole.

This suits motion whose timing is the point (a generated dance, a take). On a capture whose feet slide and
jitter, the kinetic minima are partly the artefact's own, and removing the artefact must move them: keeping
them there would keep most of the slide (measured: a skated clip's FSR hardly falls), so captures are fixed
with ``beats="free"``.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from ..metrics import MOTION_BEAT_SMOOTHING, motion_beats
from ..skeleton import LEG_JOINTS
from .ik_lock import solve_legs

# frames either side of a moved beat where one round halves the fix, round by round: a minimum of the speed
# curve is mostly decided by the frames next to it, but the smoothing (sigma 5) reaches about 3 sigma
BEAT_WINDOWS = (1, 2, 2, 3, 3, 4, 5, 6, 8, 10, 12, 15, 15)
LAST_RESORT_REACH = int(4 * MOTION_BEAT_SMOOTHING) + 1     # the smoothing's whole support (truncated at 4 sigma)
# rounds before giving up on the fix (each last-resort round blanks the fix around every beat still off, so a
# beat once blanked stays put; the cap only guards against the unforeseen)
MAX_ROUNDS = len(BEAT_WINDOWS) + 64


def blend_fix(joints_in: np.ndarray, fixed: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """The fix ``fixed`` of ``joints_in`` (both (T, 22, 3)) applied with per-frame ``weight`` (T,) in 0..1, on
    rigid legs. The root takes the weighted fix of its velocity (a weight dip never pulls the root back and
    forth, it only shifts less), the legs the weighted fix of their pose relative to the root, solved again by
    two-bone IK. Where the weight is 0 every joint moves exactly as in the input."""
    w = np.clip(np.asarray(weight, np.float64), 0.0, 1.0)
    if (w >= 1).all():
        return fixed.copy()
    root_change = fixed[:, 0] - joints_in[:, 0]
    step = np.diff(root_change, axis=0) * (0.5 * (w[1:] + w[:-1]))[:, None]
    root = joints_in[:, 0] + np.concatenate([root_change[:1] * w[0], root_change[:1] * w[0] + np.cumsum(step, axis=0)])
    rel_in = joints_in - joints_in[:, :1]
    rel_fix = fixed - fixed[:, :1]
    targets = root[:, None] + rel_in + w[:, None, None] * (rel_fix - rel_in)
    sides = ("left", "right")
    pole = {s: targets[:, LEG_JOINTS[s][1]] for s in sides}
    ankle = {s: targets[:, LEG_JOINTS[s][2]] for s in sides}
    toe = {s: targets[:, LEG_JOINTS[s][3]] for s in sides}
    partial = (w > 0) & (w < 1)
    out = solve_legs(joints_in, root, pole, ankle, toe, np.repeat(partial[:, None], 2, axis=1))
    whole = w >= 1                        # frames of the full fix keep its legs exactly (moved with the root)
    out[whole] = root[whole, None] + rel_fix[whole]
    return out


def keep_beats(joints_in: np.ndarray, fixed: np.ndarray) -> tuple[np.ndarray, int]:
    """``fixed`` (a foot fix of ``joints_in``), weakened around the beats it moved so that the result has
    exactly the input's motion beats; returns it and the number of beats that needed it.

    Each round halves the fix's weight near every beat still off (the input's beats the result lacks and the
    result's beats the input lacks), first on a few frames between them, widening round by round to the
    speed smoothing's reach; a beat still off after that gets no fix over the smoothing's whole support (a
    new beat can come off there as others are settled, so this repeats until none is off)."""
    want = set(motion_beats(joints_in).tolist())
    weight = np.ones(len(joints_in))
    out = fixed
    touched: set[int] = set()
    for round_ in range(MAX_ROUNDS):
        moved = sorted(want.symmetric_difference(motion_beats(out).tolist()))
        if not moved:
            break
        touched.update(moved)
        reach = BEAT_WINDOWS[round_] if round_ < len(BEAT_WINDOWS) else LAST_RESORT_REACH
        near = np.zeros(len(joints_in), bool)
        for b in moved:
            near[max(0, b - reach):b + reach + 2] = True
        if round_ < len(BEAT_WINDOWS):
            weight = np.where(near, 0.5 * weight, weight)
            weight = np.minimum(weight, gaussian_filter1d(weight, 1.0, mode="nearest"))   # no step in the fix
        else:
            weight[near] = 0.0
        out = blend_fix(joints_in, fixed, weight)
    else:                                  # never seen; the input itself has the input's beats
        out = joints_in.copy()
    return out, len(touched & want)


__all__ = ["BEAT_WINDOWS", "blend_fix", "keep_beats"]
