# SPDX-License-Identifier: GPL-3.0-or-later
"""The analytic foot fix ``ik_lock`` and the leg solve both methods share.

:func:`ik_lock` pins the sliding contacts (in the spirit of Kovar et al. 2002); :func:`solve_legs` puts a
repaired root and repaired knee/ankle/toe targets on rigid legs by two-bone IK (the FRDM path uses it too);
:func:`reach_correction` moves the root where a target is out of the leg's reach.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from ..kinematics import two_bone_end, two_bone_ik
from ..skeleton import LEG_JOINTS
from .contacts import BLEND_FRAMES, CONTACT_JOINTS, ContactInfo, SlideInfo, fade_fill, mask_runs, measure_slides
from .representation import FOOT_JOINTS

POLE_PUSH = 0.1         # m the knee pole is moved forward of the knee
REACH_SHIFT = 0.015     # m: the most the root moves to bring a pinned foot within the leg's reach
MAX_FOOT_TURN_DEG = 30.0  # the most a repair turns a foot about the vertical from the performer's own heading
UNMOVED_M = 1e-6        # a root shift below this is float noise (a smoothing tail): the legs keep their rotations


def bone_lengths(joints, a, b):
    """One length per bone (the median over the clip): a rig's bones are rigid, and per-frame lengths of
    noisy joints would shake a nearly straight knee by centimetres."""
    return np.full(joints.shape[0], np.median(np.linalg.norm(joints[:, a] - joints[:, b], axis=-1)))


def limit_foot_turn(ankle: np.ndarray, toe: np.ndarray, own: np.ndarray, max_deg: float = MAX_FOOT_TURN_DEG):
    """Toes (T, 3) turned back so the foot's heading (about the vertical) is at most ``max_deg`` from its own
    (``own``: the input's ankle-to-toe vectors): a pinned toe the ankle is not pinned with (heel up) would
    otherwise swing the whole foot about the ankle, a spin the performer never made."""
    new = toe - ankle
    a = np.arctan2(own[:, 0], own[:, 2])
    b = np.arctan2(new[:, 0], new[:, 2])
    turn = (b - a + np.pi) % (2 * np.pi) - np.pi
    flat = np.linalg.norm(new[:, [0, 2]], axis=-1)
    limit = np.radians(max_deg)
    over = (np.abs(turn) > limit) & (flat > 1e-6) & (np.linalg.norm(own[:, [0, 2]], axis=-1) > 1e-6)
    if not over.any():
        return toe
    heading = a[over] + np.sign(turn[over]) * limit
    out = np.array(toe, np.float64, copy=True)
    out[over, 0] = ankle[over, 0] + flat[over] * np.sin(heading)
    out[over, 2] = ankle[over, 2] + flat[over] * np.cos(heading)
    return out


def solve_legs(joints_in: np.ndarray, root_new: np.ndarray, knee_pole: dict, ankle_target: dict,
               toe_target: dict | None, changed: np.ndarray | None = None,
               own_feet: np.ndarray | None = None) -> np.ndarray:
    """Rig-consistent legs: hips follow the new root (pelvis orientation kept), knees from two-bone IK with
    ``knee_pole`` as pole, ankles at (or towards, if out of reach) ``ankle_target``, toes on the foot's own
    length towards ``toe_target`` (the input's foot direction when None). Upper-body joints keep their
    offsets from the root. ``changed`` (T,) restricts the legs' IK to those frames (the others keep the input
    legs, moved with the root). ``own_feet``: the joints whose feet point the performer's own way (default
    ``joints_in``; a second pass on a fix gives the original), which no foot turns far from
    (:func:`limit_foot_turn`)."""
    joints_in = np.asarray(joints_in, np.float64)
    rel = joints_in - joints_in[:, :1]
    out = root_new[:, None] + rel
    # knees bend forward: a pole pushed ahead of the knee keeps a nearly straight leg from flipping its bend
    # plane frame to frame (a bent knee's own offset from the hip-ankle line still dominates)
    forward = np.cross(out[:, LEG_JOINTS["left"][0]] - out[:, LEG_JOINTS["right"][0]], [0.0, 1.0, 0.0])
    forward /= np.maximum(np.linalg.norm(forward, axis=-1, keepdims=True), 1e-12)
    for side_i, side in enumerate(("left", "right")):
        hip, knee, ankle, toe = LEG_JOINTS[side]
        l1, l2 = bone_lengths(joints_in, knee, hip), bone_lengths(joints_in, ankle, knee)
        lf = bone_lengths(joints_in, toe, ankle)
        h = out[:, hip]
        k_new = two_bone_ik(h, knee_pole[side] + POLE_PUSH * forward, ankle_target[side], l1, l2)
        a_new = two_bone_end(h, ankle_target[side], l1, l2)
        if toe_target is None or toe_target.get(side) is None:
            direction = joints_in[:, toe] - joints_in[:, ankle]
            direction = direction / np.maximum(np.linalg.norm(direction, axis=-1, keepdims=True), 1e-12)
            t_new = a_new + lf[:, None] * direction
        else:
            # the toe at the target's height (contacts are about heights) and in the target's horizontal
            # direction, on the foot's own length; a target out of the foot's vertical reach gets the direction
            to = toe_target[side] - a_new
            dy = to[:, 1]
            flat = np.linalg.norm(to[:, [0, 2]], axis=-1)
            horiz = np.sqrt(np.maximum(lf ** 2 - dy ** 2, 0.0))
            ok = (np.abs(dy) < lf * 0.999) & (flat > 1e-6)
            t_new = a_new + lf[:, None] * to / np.maximum(np.linalg.norm(to, axis=-1, keepdims=True), 1e-12)
            t_ok = a_new.copy()
            t_ok[:, [0, 2]] += to[:, [0, 2]] / np.maximum(flat, 1e-12)[:, None] * horiz[:, None]
            t_ok[:, 1] += dy
            t_new[ok] = t_ok[ok]
            own = joints_in if own_feet is None else own_feet
            t_new = limit_foot_turn(a_new, t_new, own[:, toe] - own[:, ankle])
        sel = np.ones(len(out), bool) if changed is None else np.asarray(changed[:, side_i], bool)
        out[sel, knee], out[sel, ankle], out[sel, toe] = k_new[sel], a_new[sel], t_new[sel]
    return out




def ik_lock(joints: np.ndarray, info: ContactInfo, mode: str = "auto", strength: float = 1.0,
            has_toes: bool = True, blend: int = BLEND_FRAMES, reach: float = 0.995,
            slides: SlideInfo | None = None, reach_shift: float = REACH_SHIFT,
            own_feet: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """Contact-based foot locking (in the spirit of Kovar et al. 2002).

    Only contacts that slide (``slides.sliding``, :func:`measure_slides`) are touched. auto: the root is
    shifted by the integrated slide of the planted feet (``slides.root_shift``; the travel between plants is
    the performer's); then each joint's sliding contact interval pins it (ankle and toe separately, so a
    foot still rolls from heel to toe) horizontally at its median position over the interval and vertically
    at its planted height; grounding: only vertically (spins and slides stay, the root keeps its path).
    Touch-down and lift-off are pinned by their planted weight; swing frames where a foot joint sinks below
    the floor are lifted; corrections fade in/out over ``blend`` frames. The root also moves where a target
    is out of the leg's reach (:func:`reach_correction`); knees come from two-bone IK with the original knee
    as pole (:func:`solve_legs`; no foot turns more than MAX_FOOT_TURN_DEG from its heading in ``own_feet``,
    default the input); the upper body keeps its pose relative to the root. Returns the joints and the
    corrections.
    """
    joints_in = np.asarray(joints, np.float64)
    t_len = joints_in.shape[0]
    slides = measure_slides(joints_in, info, has_toes=has_toes) if slides is None else slides
    drift = slides.root_shift * strength if mode == "auto" else np.zeros((t_len, 3))
    joints = joints_in + drift[:, None]
    corr = {}
    for k, j in enumerate(CONTACT_JOINTS):
        if not has_toes and k % 2:
            corr[j] = np.zeros((t_len, 3))
            continue
        c = info.joint_contacts[:, k] & slides.sliding[:, k // 2]
        level = info.floor + info.levels[k]
        want = np.zeros((t_len, 3))
        for s, e in mask_runs(c):
            p = info.weights[s:e, k]
            planted = p >= 0.5 if (p >= 0.5).any() else np.ones(e - s, bool)
            # vertical: firmly planted frames sit exactly on the planted level; touch-down and lift-off keep
            # their shape, shifted by the interval's offset (float and penetration go either way)
            offset = level - np.median(joints[s:e, j, 1][planted])
            want[s:e, 1] = (level - joints[s:e, j, 1]) * p + offset * (1.0 - p)
            if mode == "auto":
                centre = np.median(joints[s:e, j][planted][:, [0, 2]], axis=0)
                want[s:e, 0] = (centre[0] - joints[s:e, j, 0]) * p
                want[s:e, 2] = (centre[1] - joints[s:e, j, 2]) * p
        sink = (~info.joint_contacts[:, k]) & (joints[:, j, 1] < level - 0.005)   # swing frames below the floor
        want[sink, 1] = level - joints[sink, j, 1]
        corr[j] = fade_fill(want, c | sink, blend) * strength
    active = np.zeros((t_len, 2), bool)
    for side_i, (ankle, toe) in enumerate(FOOT_JOINTS):
        active[:, side_i] = (np.abs(corr[ankle]).max(-1) + np.abs(corr[toe]).max(-1)) > 0

    ankle_t = {s: joints[:, LEG_JOINTS[s][2]] + corr[LEG_JOINTS[s][2]] for s in ("left", "right")}
    moved = np.max([np.linalg.norm(corr[LEG_JOINTS[s][2]], axis=-1) for s in ("left", "right")], axis=0)
    root_corr = reach_correction(joints_in, joints[:, 0], ankle_t, active, reach, limit=np.minimum(moved, reach_shift))
    root_new = joints[:, 0] + root_corr
    changed = active | root_moved(root_corr + drift)[:, None]
    knee_pole = {s: joints[:, LEG_JOINTS[s][1]] + root_corr for s in ("left", "right")}
    toe_t = {s: joints[:, LEG_JOINTS[s][3]] + corr[LEG_JOINTS[s][3]] for s in ("left", "right")} if has_toes else None
    out = solve_legs(joints_in, root_new, knee_pole, ankle_t, toe_t, changed, own_feet)
    return out, {"root_correction": root_corr + drift, "corrections": corr}


def root_moved(shift: np.ndarray) -> np.ndarray:
    """(T,) frames whose root shift (T, 3) is more than :data:`UNMOVED_M`: only their legs are solved again
    (solving a leg anew from its positions loses its twist, so a frame moved by 1e-17 m must not count; which
    frames those are would differ between CPUs)."""
    return np.abs(shift).max(-1) > UNMOVED_M


def reach_correction(joints_in: np.ndarray, root: np.ndarray, ankle_target: dict, active: np.ndarray | None = None,
                     reach: float = 0.995, limit: np.ndarray | None = None) -> np.ndarray:
    """Root offset (T, 3) that brings out-of-reach ankle targets within ``reach`` of the full leg length: the
    root moves towards each such target by the missing length (smoothed over a few frames, three passes),
    so the knees never lock straight (where two-bone IK turns every millimetre into a knee swing)."""
    t_len = joints_in.shape[0]
    rel = joints_in - joints_in[:, :1]
    active = np.ones((t_len, 2), bool) if active is None else active
    corr = np.zeros((t_len, 3))
    for _ in range(3):
        need = np.zeros((t_len, 3))
        for side_i, side in enumerate(("left", "right")):
            hip, knee, ankle, _ = LEG_JOINTS[side]
            full = (bone_lengths(joints_in, knee, hip) + bone_lengths(joints_in, ankle, knee)) * reach
            to_target = ankle_target[side] - (root + corr + rel[:, hip])
            dist = np.linalg.norm(to_target, axis=-1)
            excess = np.where(active[:, side_i], np.maximum(dist - full, 0.0), 0.0)
            need += to_target / np.maximum(dist, 1e-9)[:, None] * excess[:, None]
        if not np.abs(need).max() > 1e-6:
            break
        corr += gaussian_filter1d(need, 2.0, axis=0, mode="nearest") * 1.2
    if limit is not None:                   # never further than the feet were moved (nor than ``limit``)
        norm = np.linalg.norm(corr, axis=-1)
        corr *= (np.minimum(norm, limit) / np.maximum(norm, 1e-12))[:, None]
    return corr


