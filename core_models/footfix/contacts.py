# SPDX-License-Identifier: GPL-3.0-or-later
"""Foot contacts of a clip and how its planted feet slide: what the foot fix plants, and all it removes.

Choices the paper (InfiniteDance, Sec. 3.1 and 5.1) leaves open, documented:
* Contacts per joint (ankle, toe) from height and velocity. v_th = 0.001 is read as a squared displacement
  in m^2 per frame^2 at 30 fps (the convention of the 264-d features' own contact flags): a joint moving
  less than 3.2 cm/frame (0.95 m/s) may be in contact. Heights are measured above a floor estimated from the
  clip (:func:`estimate_floor`); a rig whose feet joints sit higher than the paper's thresholds gets
  thresholds of its own low level + 3 cm. Each contact has a "planted" weight that fades at touch-down and
  lift-off, so a heel or toe lifting off is released rather than dragged.
* Only sliding planted feet are repaired (:func:`measure_slides`): a foot's slide is the velocity of its
  least-moving point (rolling and spinning are not slides). The root is shifted by the integrated slide of
  the planted feet only, so the travel between plants stays the performer's. A clip whose feet do not slide
  comes back unchanged ("already clean").
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
from scipy.ndimage import distance_transform_edt, gaussian_filter1d

from ..motion import MOTION_FPS
from ..skeleton import LEFT_FOOT_JOINTS, RIGHT_FOOT_JOINTS
from .errors import FootFixError
from .representation import FOOT_JOINTS

H_TOE = 0.05            # m above the floor (paper Sec. 5.1)
H_ANKLE = 0.08          # m
V_TH = 0.001            # squared displacement, m^2/frame^2 at 30 fps (see module docstring)
# Repairing, contacts are found on motion whose planted feet slide: at the paper's V_TH the sliding
# contacts go undetected and stay unfixed. 0.002 (4.5 cm/frame) left the least skating on the held-out clips
# (benchmarks/fix_feet.py: Bandai FSR 11.8 % -> 10.8 %, CMU 19.8 % -> 17.1 %); training labels keep V_TH.
V_TH_REPAIR = 0.002
HEIGHT_MARGIN = 0.03    # m above a joint's own floor level that still counts as low (rig-adaptive)
FLOOR_PERCENTILE = 5.0
BLEND_FRAMES = 6        # fade in/out of foot corrections around contacts (blended transitions)
MIN_CONTACT_FRAMES = 3  # shorter contact runs are noise
MAX_GAP_FRAMES = 2      # shorter gaps inside a contact are noise
PLANT_TOLERANCE = 0.005  # m above an interval's planted height that still counts as fully planted
PLANT_RISE = 0.02       # m further up the joint counts as lifting off (its lock fades out)


@dataclass
class ContactOverride:
    """Force contact (``contact=True``) or never contact (False) for ``foot`` ('left', 'right' or 'both') on
    frames ``start`` .. ``end - 1`` (core frames at 30 fps)."""
    foot: str
    start: int
    end: int
    contact: bool

    @classmethod
    def parse(cls, item) -> "ContactOverride":
        if isinstance(item, ContactOverride):
            o = item
        elif isinstance(item, dict):
            try:
                o = cls(str(item["foot"]), int(item["start"]), int(item["end"]), bool(item["contact"]))
            except KeyError as exc:
                raise FootFixError(f"contact override {item!r} lacks {exc}; give foot, start, end and contact") from None
        else:
            try:
                foot, start, end, contact = item
            except (TypeError, ValueError):
                raise FootFixError(f"contact override {item!r}: use (foot, start, end, contact) or a dict") from None
            o = cls(str(foot), int(start), int(end), bool(contact))
        if o.foot not in ("left", "right", "both"):
            raise FootFixError(f"contact override foot must be 'left', 'right' or 'both', got '{o.foot}'")
        if o.end <= o.start or o.start < 0:
            raise FootFixError(f"contact override frames {o.start}..{o.end}: need 0 <= start < end")
        return o


@dataclass
class ContactInfo:
    contacts: np.ndarray          # (T, 2) bool per foot [left, right]: either of its joints in contact
    joint_contacts: np.ndarray    # (T, 4) bool per joint [left ankle, left toe, right ankle, right toe]
    floor: float                  # m, world height of the floor
    levels: np.ndarray            # (4,) planted height of each of those joints above the floor
    weights: np.ndarray           # (T, 4) how firmly each joint is planted, 0..1 (0 outside contacts)
    notes: list[str] = field(default_factory=list)


def mask_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    d = np.diff(m.astype(np.int8))
    return list(zip(np.nonzero(d == 1)[0].tolist(), np.nonzero(d == -1)[0].tolist()))


def contact_intervals(contacts: np.ndarray) -> dict:
    """Per-foot [start, end) frame intervals of (T, 2) contacts [left, right]: {"left": [[s, e], ...], ...}."""
    return {s: [list(r) for r in mask_runs(contacts[:, i])] for i, s in enumerate(("left", "right"))}


def clean_contacts(mask: np.ndarray, max_gap: int = MAX_GAP_FRAMES, min_len: int = MIN_CONTACT_FRAMES) -> np.ndarray:
    """Fill gaps of up to ``max_gap`` frames inside a contact, then drop contacts shorter than ``min_len``."""
    out = np.asarray(mask, bool).copy()
    spans = mask_runs(out)
    for (s0, e0), (s1, _) in zip(spans[:-1], spans[1:]):
        if s1 - e0 <= max_gap:
            out[e0:s1] = True
    for s, e in mask_runs(out):
        if e - s < min_len:
            out[s:e] = False
    return out


def estimate_floor(joints: np.ndarray, fps: float = MOTION_FPS) -> float:
    """World height of the floor, in the metrics' convention (a planted toe joint is at height 0): a low
    percentile (10th) of the toe heights over the frames where they are low and slow. Unlike the frame-0 toe
    rule it does not depend on one frame; unlike the lowest toe it ignores a few penetrating frames."""
    toes = joints[:, [LEFT_FOOT_JOINTS[1], RIGHT_FOOT_JOINTS[1]], 1]
    first = float(np.percentile(toes.min(axis=1), FLOOR_PERCENTILE))
    if len(joints) < 2:
        return first
    disp = np.linalg.norm(np.diff(joints[:, [LEFT_FOOT_JOINTS[1], RIGHT_FOOT_JOINTS[1]]], axis=0), axis=-1)
    disp = np.concatenate([disp, disp[-1:]])
    planted = (toes - first <= H_TOE) & (disp < math.sqrt(V_TH) * MOTION_FPS / fps)
    return float(np.percentile(toes[planted], 10)) if planted.sum() >= 3 else first


CONTACT_JOINTS = (LEFT_FOOT_JOINTS[0], LEFT_FOOT_JOINTS[1], RIGHT_FOOT_JOINTS[0], RIGHT_FOOT_JOINTS[1])


def detect_contacts(joints: np.ndarray, fps: float = MOTION_FPS, overrides: Iterable = (),
                    has_toes: bool = True, toe_height: float = H_TOE, ankle_height: float = H_ANKLE, v_th: float = V_TH,
                    foot_contacts: np.ndarray | None = None) -> ContactInfo:
    """Contacts from height and velocity, per joint (ankle, toe) and per foot, cleaned, overrides applied.

    A joint is in contact when it is below its height threshold above the floor (toe ``toe_height``, ankle
    ``ankle_height``, each raised to the joint's own low level + 3 cm for rigs whose joints sit higher) and
    moves less than sqrt(v_th) m per frame at 30 fps. A foot is in contact when either joint is (the heel
    strikes first, the toe leaves last). ``has_toes=False`` (a rig whose toes were synthesised) judges by
    the ankle alone. Overrides set both joints of a foot. ``foot_contacts`` (T, 2) bool, when given, decides
    which frames each foot is in contact (edited contacts): inside them the detected ankle/toe split is kept
    (both joints where neither was detected), outside them nothing is in contact; overrides still apply.
    """
    joints = np.asarray(joints, np.float64)
    t_len = joints.shape[0]
    notes = []
    floor = estimate_floor(joints, fps)
    speed_limit = math.sqrt(v_th) * MOTION_FPS / fps          # m per frame at this rate
    if t_len > 1:
        disp = np.linalg.norm(np.diff(joints, axis=0), axis=-1)
        disp = np.concatenate([disp, disp[-1:]], axis=0)
    else:
        disp = np.zeros(joints.shape[:2])
    jc = np.zeros((t_len, 4), bool)
    heights = joints[:, CONTACT_JOINTS, 1] - floor
    base = np.percentile(heights, FLOOR_PERCENTILE, axis=0)
    base = np.minimum(base, base[[2, 3, 0, 1]])        # a property of the rig: a foot held up is not "high-set"
    for k, j in enumerate(CONTACT_JOINTS):
        limit = max(toe_height if k % 2 else ankle_height, base[k] + HEIGHT_MARGIN)
        raw = (heights[:, k] <= limit) & (disp[:, j] < speed_limit)
        jc[:, k] = clean_contacts(raw) if t_len >= MIN_CONTACT_FRAMES else raw
    if foot_contacts is not None:
        given = np.asarray(foot_contacts, bool)
        for f in range(2):
            cols = slice(2 * f, 2 * f + 2)
            jc[:, cols] &= given[:, f, None]
            jc[given[:, f] & ~jc[:, cols].any(-1), cols] = True
    if not has_toes:
        jc[:, 1], jc[:, 3] = jc[:, 0], jc[:, 2]
        notes.append("the rig has no toe bones: contacts are judged by the ankles alone and the foot direction "
                     "is kept as it is")
    for item in overrides or ():
        o = ContactOverride.parse(item)
        if o.start >= t_len:
            notes.append(f"contact override {o.foot} {o.start}..{o.end} starts after the last frame ({t_len - 1}); "
                         "ignored")
            continue
        cols = [0, 1, 2, 3] if o.foot == "both" else ([0, 1] if o.foot == "left" else [2, 3])
        jc[o.start:min(o.end, t_len), cols] = o.contact
    # planted height of each joint: the median over its contact frames (robust to float and penetration)
    levels = np.array([np.median(heights[jc[:, k], k]) if jc[:, k].any() else base[k] for k in range(4)])
    weights = np.zeros((t_len, 4))
    for k in range(4):
        for s, e in mask_runs(jc[:, k]):
            weights[s:e, k] = plant_weight(heights[s:e, k])
    for item in overrides or ():                       # forced contacts are planted fully
        o = ContactOverride.parse(item)
        cols = [0, 1, 2, 3] if o.foot == "both" else ([0, 1] if o.foot == "left" else [2, 3])
        if o.contact:
            weights[o.start:min(o.end, t_len), cols] = 1.0
    return ContactInfo(jc[:, 0::2] | jc[:, 1::2], jc, floor, levels, weights, notes)


def plant_weight(heights: np.ndarray) -> np.ndarray:
    """How firmly a joint is planted on each frame of one contact interval: 1 from the first to the last
    frame near the interval's own low height; before and after (touch-down, lift-off) fading to 0 as the
    joint is higher by PLANT_RISE, so a heel or toe lifting off is released, not dragged."""
    low = np.percentile(heights, 10)
    w = np.clip(1.0 - (heights - low - PLANT_TOLERANCE) / PLANT_RISE, 0.0, 1.0)
    core = np.nonzero(w >= 0.5)[0]
    if core.size:
        w[core[0]:core[-1] + 1] = 1.0
    return w




# --- slides of planted feet (what the fix removes, and all it removes) -----------------------------------
# A planted foot may roll (heel to toe) and spin about any point between heel and toes; it slides only when
# no point of it stays put. The slide of a foot on a frame is therefore the horizontal velocity of its
# least-moving point on the heel..toe line (:func:`pivot_velocity`), measured on lightly smoothed positions
# (marker noise is not a slide). Numbers chosen on the shared clean mocap (Bandai, CMU salsa, CMU dance):
SLIDE_SMOOTH = 2.0          # frames: Gaussian smoothing of the foot positions before velocities are taken
SLIDE_MAX_SPEED = 0.008     # m/frame at 30 fps (0.24 m/s): a low foot moving faster steps or glides on purpose
SLIDE_MIN_SPEED = 0.0025    # m/frame (7.5 cm/s): a slower local slide is the performer's weight shift or noise
DRIFT_MAX_SPEED = 0.004     # m/frame (0.12 m/s): a capture drifts slowly; both feet moving alike faster glide, shuffle or hop
SLIDE_WINDOW = 25           # frames each side: the slide of a frame is the median over its neighbourhood
SLIDE_TOLERANCE = 0.02      # m: a contact whose still point wanders less than this does not slide
DRIFT_ALIKE = 0.25          # both feet slide alike: their slides differ by at most this share of their mean
MIN_DRIFT_EVIDENCE = 12     # frames of both feet sliding alike within the window before the body counts as drifting
                            # (at 3, two independent slides of a capture read as a drift: 16.9 cm off the path)


@dataclass
class SlideInfo:
    """Slides of the planted feet of one clip (see :func:`measure_slides`).

    velocity: (T-1, 2, 2) horizontal (x, z) velocity of each foot's still point [left, right], m/frame;
    planted: (T-1, 2) frames where that foot is planted (in contact, still point slower than the step speed);
    drift: (T-1, 2) the common slide of the planted feet (windowed median, zero below the noise speed and
    where no foot is planted); root_shift: (T, 3) the root move that cancels it (x, z; y stays 0);
    sliding: (T, 2) bool, the contact intervals whose still point wanders more than SLIDE_TOLERANCE;
    intervals: per foot, [start, end, wander in m] of each contact interval."""
    velocity: np.ndarray
    planted: np.ndarray
    drift: np.ndarray
    root_shift: np.ndarray
    sliding: np.ndarray
    intervals: dict

    @property
    def slides(self) -> bool:
        return bool(self.sliding.any())


def pivot_velocity(ankle_v: np.ndarray, toe_v: np.ndarray, heel: float = -0.3, tip: float = 1.3) -> np.ndarray:
    """(..., 2) horizontal velocity of the least-moving point p(s) = ankle + s (toe - ankle), s in
    [heel, tip] (a little behind the ankle to a little past the toe joint), from the ankle's and toe's
    velocities (..., 2): a rigid foot rolling or spinning about a point of it has a still point there."""
    d = toe_v - ankle_v
    s = np.clip(-(ankle_v * d).sum(-1) / np.maximum((d * d).sum(-1), 1e-12), heel, tip)
    return ankle_v + s[..., None] * d


def measure_slides(joints: np.ndarray, info: ContactInfo, fps: float = MOTION_FPS,
                   has_toes: bool = True, drift_max_speed: float = DRIFT_MAX_SPEED,
                   drift_evidence: int = MIN_DRIFT_EVIDENCE) -> SlideInfo:
    """How the planted feet of ``joints`` (T, 22, 3) slide, with the contacts of ``info``.

    The drift (the whole body sliding) is the median common slide of the frames within SLIDE_WINDOW frames
    where both feet are planted and slide alike (at least ``drift_evidence`` of them), kept only where it is
    faster than SLIDE_MIN_SPEED and only on frames where a foot is planted; its integral, negated, is the
    root shift. A foot sliding on its own is that foot's slide: its leg is repaired, the root keeps the
    performer's path (on skated held-out clips this keeps the hips within a few cm of the clean original). A foot is planted when it is in contact
    and its still point is slower than a step (SLIDE_MAX_SPEED), or when both feet are in contact and slide
    alike up to ``drift_max_speed`` (the whole body drifting). So the root moves only by
    the integrated slide of the planted feet, and between plants (airborne frames, steps) it keeps the
    performer's path exactly. A contact interval slides when its still point, integrated over the planted
    frames, wanders more than SLIDE_TOLERANCE from where it was planted."""
    joints = np.asarray(joints, np.float64)
    t_len = joints.shape[0]
    scale = MOTION_FPS / fps
    if t_len < 2:
        return SlideInfo(np.zeros((0, 2, 2)), np.zeros((0, 2), bool), np.zeros((0, 2)), np.zeros((t_len, 3)),
                         np.zeros((t_len, 2), bool), {"left": [], "right": []})
    pos = gaussian_filter1d(joints[:, [j for pair in FOOT_JOINTS for j in pair]][..., [0, 2]], SLIDE_SMOOTH,
                            axis=0, mode="nearest")
    vel = np.diff(pos, axis=0) * scale                                      # (T-1, 4, 2), m/frame at 30 fps
    velocity = np.zeros((t_len - 1, 2, 2))
    planted = np.zeros((t_len - 1, 2), bool)
    for f in range(2):
        velocity[:, f] = pivot_velocity(vel[:, 2 * f], vel[:, 2 * f + 1]) if has_toes else vel[:, 2 * f]
        contact = info.joint_contacts[:-1, 2 * f:2 * f + 2].any(-1) & info.joint_contacts[1:, 2 * f:2 * f + 2].any(-1)
        planted[:, f] = contact & (np.linalg.norm(velocity[:, f], axis=-1) < SLIDE_MAX_SPEED)
    # both feet in contact and sliding alike faster than a step: the whole body drifts (a step moves one foot)
    contact = info.joint_contacts[:-1].reshape(-1, 2, 2).any(-1) & info.joint_contacts[1:].reshape(-1, 2, 2).any(-1)
    speed = np.linalg.norm(velocity.mean(1), axis=-1)
    alike = np.linalg.norm(velocity[:, 0] - velocity[:, 1], axis=-1) <= DRIFT_ALIKE * speed
    common = contact.all(-1) & alike & (speed < drift_max_speed)
    planted |= common[:, None]
    # the body drifts only where both planted feet say so: one planted foot sliding alone may be that foot's
    # own slide (its leg is repaired, the root stays) as much as a drift, so it only counts as drift when
    # the both-feet evidence around it agrees
    drift = np.zeros((t_len - 1, 2))
    for i in np.nonzero(planted.any(-1))[0]:
        a, b = max(0, i - SLIDE_WINDOW), min(t_len - 1, i + SLIDE_WINDOW + 1)
        if common[a:b].sum() < drift_evidence:
            continue
        m = np.median(velocity[a:b][common[a:b]].mean(1), axis=0)
        if np.linalg.norm(m) > SLIDE_MIN_SPEED:
            drift[i] = m
    root_shift = np.zeros((t_len, 3))
    root_shift[1:, [0, 2]] = -np.cumsum(drift / scale, axis=0)
    sliding = np.zeros((t_len, 2), bool)
    intervals = {"left": [], "right": []}
    for f, side in enumerate(("left", "right")):
        for s, e in mask_runs(info.contacts[:, f]):
            steps = np.where(planted[s:e - 1, f, None], velocity[s:e - 1, f], 0.0) / scale
            wander = float(np.linalg.norm(np.cumsum(steps, axis=0), axis=-1).max()) if e - s > 1 else 0.0
            intervals[side].append([int(s), int(e), round(wander, 5)])
            if wander > SLIDE_TOLERANCE:
                sliding[s:e, f] = True
    return SlideInfo(velocity, planted, drift, root_shift, sliding, intervals)




# --- corrections around contacts (both methods and the sampler's guidance) ---------------------------
def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def fade_fill(values: np.ndarray, defined: np.ndarray, blend: int = BLEND_FRAMES) -> np.ndarray:
    """Corrections (T, ...) defined on ``defined`` frames, extended to the others: interpolated between the
    nearest defined frames and faded to zero over ``blend`` frames away from them (smoothstep)."""
    values = np.asarray(values, np.float64)
    defined = np.asarray(defined, bool)
    out = np.zeros_like(values)
    if not defined.any():
        return out
    idx = np.nonzero(defined)[0]
    frames = np.arange(values.shape[0])
    flat = values.reshape(values.shape[0], -1)
    interp = np.stack([np.interp(frames, idx, flat[idx, k]) for k in range(flat.shape[1])], axis=-1)
    dist = distance_transform_edt(~defined) if (~defined).any() else np.zeros(values.shape[0])
    weight = _smoothstep(1.0 - dist / max(blend, 1)) if blend > 0 else (dist == 0).astype(float)
    out = (interp * weight[:, None]).reshape(values.shape)
    out[defined] = values[defined]
    return out
