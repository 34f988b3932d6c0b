# SPDX-License-Identifier: GPL-3.0-or-later
"""Joining a replaced range into a take: rotation-space blends at its two ends and the seam measures.

A range [start, end) of new motion replaces the take's frames there. The first and last ``margin`` frames of
the range are blended (local joint rotations by slerp, the root linearly, smoothstep weights), so the take's
frames outside the range stay exactly as they were and the motion has no step at either end.
"""
from __future__ import annotations

import numpy as np

from ..rotations import (axis_angle_to_quat, quat_conjugate, quat_fix_continuity, quat_mul, quat_slerp,
                         quat_to_axis_angle)


DEFAULT_MARGIN_S = 0.5
MAX_MARGIN_S = 0.5
MAX_SLOPE_RAD = 0.2            # per frame: a velocity correction beyond it would be a new motion, not a blend
SEAM_REACH_S = 0.2             # a seam may move this far from its bar line to a calmer frame of the take


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def margin_frames(range_frames: int, fps: float, margin_s: float = DEFAULT_MARGIN_S) -> int:
    """Blend frames at each end: ``margin_s`` (at most 0.5 s), and never more than a third of the range."""
    return int(max(1, min(round(min(margin_s, MAX_MARGIN_S) * fps), range_frames // 3)))


def blend_weights(length: int, margin: int, blend_start: bool = True, blend_end: bool = True) -> np.ndarray:
    """(length,) weight of the new motion: rising over the first ``margin`` frames, falling over the last."""
    w = np.ones(length)
    ramp = smoothstep((np.arange(margin) + 1.0) / (margin + 1.0))
    if blend_start:
        w[:margin] = np.minimum(w[:margin], ramp)
    if blend_end:
        w[length - margin:] = np.minimum(w[length - margin:], ramp[::-1])
    return w


def _offset(target: np.ndarray, source: np.ndarray) -> np.ndarray:
    """(J, 4) per-joint rotations taking ``source`` to ``target`` (target = offset * source), shortest turn."""
    d = quat_mul(target, quat_conjugate(source))
    return d * np.where(d[..., :1] < 0, -1.0, 1.0)


def carry_offset(target: np.ndarray, source: np.ndarray, rotations: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """(n, J, 4) ``rotations`` carrying, by ``weight`` per frame (0: none, 1: all), the per-joint offset that
    turns the pose ``source`` (J, 4) into ``target`` (J, 4)."""
    offset = _offset(target, source)
    identity = np.zeros_like(offset)
    identity[:, 0] = 1.0
    shape = (weight.size,) + offset.shape
    fading = quat_slerp(np.broadcast_to(identity, shape), np.broadcast_to(offset, shape), weight[:, None])
    return quat_mul(fading, rotations)


def hermite_fades(margin: int) -> tuple[np.ndarray, np.ndarray]:
    """(pose, slope) weights over ``margin`` frames going away from a seam (frame 0 is the seam frame).

    The quintic Hermite basis of a minimum-jerk correction: ``pose`` is 1 at the seam and ``slope`` (in frames)
    has slope 1 there; both end with zero value, velocity and acceleration at the margin, and have no
    acceleration at the seam, so a correction built from them adds no kink at either end."""
    u = np.arange(margin, dtype=np.float64) / margin
    pose = 1.0 - u ** 3 * (10.0 - 15.0 * u + 6.0 * u * u)
    slope = margin * (u - 6.0 * u ** 3 + 8.0 * u ** 4 - 3.0 * u ** 5)
    return pose, slope


def _nearest_turn(vectors: np.ndarray, near: np.ndarray) -> np.ndarray:
    """(J, 3) rotation vectors, each replaced by its equivalent (angle - 2 pi about the same axis) when that is
    nearer ``near``: offsets close to half a turn (a joint twisted the other way round) would otherwise make
    a difference of almost a full turn out of two nearly equal rotations."""
    angle = np.linalg.norm(vectors, axis=-1, keepdims=True)
    other = vectors - 2.0 * np.pi * vectors / np.maximum(angle, 1e-12)
    closer = np.linalg.norm(other - near, axis=-1) < np.linalg.norm(vectors - near, axis=-1)
    return np.where(closer[:, None], other, vectors)


def _extrapolated(rot: np.ndarray, edge: int, inner: int) -> np.ndarray:
    """(J, 4) the pose one frame beyond ``rot[edge]``, continuing the step from ``rot[inner]`` (left-multiplied)."""
    step = quat_mul(rot[edge], quat_conjugate(rot[inner]))
    return quat_mul(step, rot[edge])


def _seam_blend(rot: np.ndarray, pos: np.ndarray, seam_rot, seam_pos, across_rot, across_pos, margin: int):
    """``rot``/``pos`` (frames ordered away from the seam, the seam frame first) corrected so that the seam
    frame is the take's (``seam_*``) and the step to the take's frame across the seam (``across_*``) is the
    take's own, the correction fading out over ``margin`` frames.

    A fixed offset faded out fixes the pose only: the candidate's different velocity at the seam stays as a
    kink, a jerk spike right at the seam. The correction here (in each joint's rotation-vector space and in
    metres) also matches the velocity, with minimum-jerk fades (:func:`hermite_fades`)."""
    pose_w, slope_w = hermite_fades(margin)
    pose_rv = quat_to_axis_angle(_offset(seam_rot, rot[0]))
    pose_m = seam_pos - pos[0]
    if rot.shape[0] > 1:
        across_rv = quat_to_axis_angle(_offset(across_rot, _extrapolated(rot, 0, 1)))
        across_m = across_pos - (2.0 * pos[0] - pos[1])
    else:
        across_rv, across_m = pose_rv, pose_m
    # per frame away from the seam: the offset across it is the pose offset minus one frame of slope
    slope_rv, slope_m = pose_rv - _nearest_turn(across_rv, pose_rv), pose_m - across_m
    size = np.linalg.norm(slope_rv, axis=-1, keepdims=True)
    slope_rv *= np.minimum(1.0, MAX_SLOPE_RAD / np.maximum(size, 1e-12))
    vectors = pose_w[:, None, None] * pose_rv + slope_w[:, None, None] * slope_rv
    rot[:margin] = quat_mul(axis_angle_to_quat(vectors), rot[:margin])
    pos[:margin] += pose_w[:, None] * pose_m + slope_w[:, None] * slope_m


def splice(rotations: np.ndarray, root: np.ndarray, new_rotations: np.ndarray, new_root: np.ndarray,
           start: int, margin: int, blend_start: bool = True, blend_end: bool = True):
    """Copies of (rotations, root) with frames [start, start + len(new)) replaced by the new motion.

    At each end inside the range the new motion carries a correction that fades over ``margin`` frames
    (:func:`_seam_blend`): at the start it makes the first frame the take's and the step into it the take's
    step, at the end the same for the last frame and the step out of it. One correction per seam (rather than
    a cross-fade of two moving poses) keeps the seam as smooth as the motions themselves. An end at the take's
    first or last frame needs no blend."""
    n = new_rotations.shape[0]
    end = start + n
    out_rot, out_root = rotations.copy(), root.copy()
    rot = quat_fix_continuity(np.array(new_rotations, np.float64))
    pos = np.array(new_root, np.float64)
    if blend_start and start > 0:
        _seam_blend(rot, pos, rotations[start], root[start], rotations[start - 1], root[start - 1], margin)
    if blend_end and end < rotations.shape[0]:
        back_rot, back_pos = rot[::-1].copy(), pos[::-1].copy()        # frames ordered away from the end seam
        _seam_blend(back_rot, back_pos, rotations[end - 1], root[end - 1], rotations[end], root[end], margin)
        rot, pos = back_rot[::-1], back_pos[::-1]
    if start > 0:           # keys without sign flips against the frame before the range
        rot[:, np.sum(rot[0] * rotations[start - 1], axis=-1) < 0] *= -1.0
    out_rot[start:end] = rot
    out_root[start:end] = pos
    return out_rot, out_root


def frame_jerk(joints: np.ndarray, fps: float) -> np.ndarray:
    """(T,) jerk per frame (m/s^3, mean over the joints; frames at the ends padded with their neighbours)."""
    j = np.linalg.norm(np.diff(joints, 3, axis=0), axis=-1).mean(axis=-1) * fps ** 3
    return np.concatenate([[j[0]], j, [j[-1]] * 2]) if j.size else np.zeros(joints.shape[0])


def frame_speed(joints: np.ndarray, fps: float) -> np.ndarray:
    """(T,) mean joint speed per frame (m/s; the last frame repeats the one before)."""
    v = np.linalg.norm(np.diff(joints, axis=0), axis=-1).mean(axis=-1) * fps
    return np.concatenate([v, v[-1:]]) if v.size else np.zeros(joints.shape[0])


def calm_seam(speed: np.ndarray, frame: int, reach: int, lo: int, hi: int) -> int:
    """The frame within ``reach`` of ``frame`` (and inside [lo, hi]) where the take moves most calmly: the
    lowest peak of its per-frame ``speed`` over the frame and two on either side, ties to the nearest.

    A seam in the middle of one of the take's fastest moves (a spin, a flip) cannot match its speed: the
    blend then stops it abruptly, a jerk spike. A few frames away the same seam is smooth."""
    best, best_cost = int(frame), (np.inf, 0)
    for f in range(max(lo, frame - reach), min(hi, frame + reach) + 1):
        peak = float(speed[max(0, f - 2):f + 3].max())
        cost = (peak * (1.0 + 0.02 * abs(f - frame)), abs(f - frame))
        if cost < best_cost:
            best, best_cost = f, cost
    return best


def seam_report(before: np.ndarray, after: np.ndarray, seams: list[int], margin: int, fps: float,
                reference: float | None = None) -> dict:
    """The largest jerk around each seam frame of ``after`` against the 99th-percentile jerk of ``before``
    (or ``reference``, that percentile computed once for a whole take when ``after`` is a part of it)."""
    reference = float(np.percentile(frame_jerk(before, fps), 99)) if reference is None else float(reference)
    jerk = frame_jerk(after, fps)
    worst = []
    for s in seams:
        lo, hi = max(0, s - margin - 3), min(jerk.size, s + margin + 3)
        worst.append(float(jerk[lo:hi].max()) if hi > lo else 0.0)
    top = max(worst) if worst else 0.0
    return {"seam_frames": [int(s) for s in seams], "seam_jerk_max": top, "take_jerk_p99": reference,
            "seam_jerk_ratio": top / max(reference, 1e-9), "margin_frames": int(margin)}


def wrap_angle(a):
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi


def close_gap(root_rotations: np.ndarray, root: np.ndarray, next_rotation: np.ndarray, next_position: np.ndarray):
    """A segment's root bent so that it runs into the frame that follows it (the take's ``next_*``): the yaw and
    horizontal gap between the segment's natural next frame and that frame are spread evenly over the segment
    (turning its steps little by little), so the end blend has no turn or slide left to do."""
    from .frames import facing_yaw, rotate_about_y, turn_root

    n = root.shape[0]
    yaw_end = facing_yaw(root_rotations[-1:])[0]
    turn = float(wrap_angle(facing_yaw(next_rotation[None])[0] - yaw_end))
    phi = turn * np.arange(1, n + 1) / n
    steps = np.diff(root, axis=0)
    steps = rotate_about_y(phi[1:, None][:, 0], steps)
    bent = np.concatenate([root[:1], root[:1] + np.cumsum(steps, axis=0)])
    rotations = turn_root(root_rotations, phi[:, None][:, 0])
    natural_next = bent[-1] + (bent[-1] - bent[-2] if n > 1 else 0.0)
    gap = (np.asarray(next_position) - natural_next) * np.array([1.0, 0.0, 1.0])
    bent = bent + (np.arange(1, n + 1) / n)[:, None] * gap
    return rotations, bent, {"end_turn_deg": float(np.degrees(turn)), "end_gap_m": float(np.linalg.norm(gap))}
