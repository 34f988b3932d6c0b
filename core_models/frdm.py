# SPDX-License-Identifier: GPL-3.0-or-later
"""FRDM foot restoration: contact detection, the analytic ``ik_lock`` fix, and the foot restoration diffusion
model (InfiniteDance paper, Sec. 3.1 and App. B; our own implementation: no official code exists).

Representation (paper): per frame, root yaw velocity, root xz velocity, root height and, for the 22 body
joints, local velocity, local position and 6-D rotation = the 264-d features of :mod:`features` without the
accumulated yaw (dim 1, re-derived from the yaw velocity) and the contact flags: 259 dims, layout
``[height, yaw vel, vx, vz | RIC joints 1..21 (63) | 6-D rotations joints 1..21 (126) | velocities 0..21 (66)]``.
Features are computed on the clip's own proportions (no "uniform skeleton" retargeting), so the repaired
joints map back onto the user's rig.

Only the root, knee, ankle and foot (toe) channels are ever denoised (:data:`LOWER_CHANNELS`); every other
channel comes from the input (:func:`merge`). Sampling follows the paper's Algorithm 2 with few steps:
start from noise x_T; at every step merge, predict x0, then guide it: geometric guidance while t >= t_th
(root, leg positions and rotations blended towards the input with w_t = t/T), foot-contact guidance below
(planted ankles/toes: velocities scaled by w_t, positions re-integrated from them), and re-noise the guided
x0 to the next step. The repaired root and leg joints are then put on the
rig by two-bone IK (:func:`solve_legs`), as for ``ik_lock``.

Choices the paper leaves open, documented:
* Contacts per joint (ankle, toe) from height and velocity. v_th = 0.001 is read as a squared displacement
  in m^2 per frame^2 at 30 fps (the convention of the 264-d features' own contact flags): a joint moving
  less than 3.2 cm/frame (0.95 m/s) may be in contact. Heights are measured above a floor estimated from the
  clip (:func:`estimate_floor`); a rig whose feet joints sit higher than the paper's thresholds gets
  thresholds of its own low level + 3 cm. Each contact has a "planted" weight that fades at touch-down and
  lift-off, so a heel or toe lifting off is released rather than dragged.
* Only sliding planted feet are repaired (:func:`measure_slides`): a foot's slide is the velocity of its
  least-moving point (rolling and spinning are not slides). In "auto" mode the root is shifted by the
  integrated slide of the planted feet only, so the travel between plants stays the performer's; the model's
  leg repair is faded in around sliding contacts only, and the root is never the model's. A clip whose feet
  do not slide comes back unchanged ("already clean").
* Sampler defaults (:class:`SamplerConfig`), chosen on held-out clips with our small CPU-trained model
  (``benchmarks/fix_feet.py`` also scores Algorithm 2 to the letter): 10 evenly spaced steps, t_th = 0.2 T
  (geometric guidance for the first 8), re-noising with the noise the model saw ("ddim"; the paper re-uses
  the initial noise x_T, which leaves a small model's residual noise in the result), the root velocities
  guided in the foot-contact steps too (left to the model, a small model's root wanders), the guidance
  target low-passed by 1.5 frames (the input's geometry, not its jitter) and the result by 1 frame.
* Position guidance integrates planted-joint velocities within each contact interval, puts planted joints
  on their planted height, and fades the offsets in and out over a few frames, so no foot jumps.
* The facing (root yaw) and the pelvis orientation are kept from the input, so the upper body keeps its
  pose relative to the root exactly; only the root position and the legs change.
* The denoiser runs on overlapping windows of its training length; predictions are cross-faded.
"""
from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass, field, asdict
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from scipy.ndimage import distance_transform_edt, gaussian_filter1d

from .features import FEATURE_DIM, _facing_quat, features_to_joints, joints_to_features
from .kinematics import two_bone_end, two_bone_ik
from .progress import ProgressFn, check_cancel, no_progress
from .rotations import quat_conjugate, quat_rotate
from .skeleton import LEFT_FOOT_JOINTS, LEG_JOINTS, NUM_BODY_JOINTS, RIGHT_FOOT_JOINTS, T2M_RAW_OFFSETS

try:                                    # ik_lock and contacts work without torch (e.g. an ONNX-only install)
    import torch
    from torch import nn
    _Module = nn.Module
except ImportError:                     # pragma: no cover - torch is a dependency of the full install
    torch = None
    nn = None
    _Module = object

FPS = 30.0
H_TOE = 0.05            # m above the floor (paper Sec. 5.1)
H_ANKLE = 0.08          # m
V_TH = 0.001            # squared displacement, m^2/frame^2 at 30 fps (see module docstring)
# Repairing, contacts are found on motion whose planted feet slide: at the paper's V_TH the sliding
# contacts go undetected and stay unfixed. 0.002 (4.5 cm/frame) left the least skating on the held-out clips
# (benchmarks/fix_feet.py: Bandai FSR 11.8 % -> 10.8 %, CMU 19.8 % -> 17.1 %); training labels keep V_TH.
V_TH_REPAIR = 0.002
EPSILON = 0.1           # epsilon-insensitive consistency loss (paper Sec. 5.1), in normalised units
HEIGHT_MARGIN = 0.03    # m above a joint's own floor level that still counts as low (rig-adaptive)
FLOOR_PERCENTILE = 5.0
BLEND_FRAMES = 6        # fade in/out of foot corrections around contacts (blended transitions)
MIN_CONTACT_FRAMES = 3  # shorter contact runs are noise
MAX_GAP_FRAMES = 2      # shorter gaps inside a contact are noise
PLANT_TOLERANCE = 0.005  # m above an interval's planted height that still counts as fully planted
PLANT_RISE = 0.02       # m further up the joint counts as lifting off (its lock fades out)
POLE_PUSH = 0.1         # m the knee pole is moved forward of the knee
METHODS = ("frdm", "ik_lock")
MODES = ("auto", "grounding")
FAMILY = "frdm"
FORMAT = 1

# --- the 259-d representation ------------------------------------------------------------------------
FRDM_DIM = 259
FEATURE_INDEX = np.r_[0, 2, 3, 4, 5:260]        # 264-d -> 259-d
ROOT_CHANNELS = np.arange(4)                    # height, yaw velocity, vx, vz
LOWER_JOINTS = (4, 5, 7, 8, 10, 11)             # knees, ankles, feet (toes)
FOOT_JOINTS = (LEFT_FOOT_JOINTS, RIGHT_FOOT_JOINTS)   # ((ankle, toe) left, (ankle, toe) right)


def ric_channels(j: int) -> np.ndarray:
    return 4 + 3 * (j - 1) + np.arange(3)


def rot_channels(j: int) -> np.ndarray:
    return 67 + 6 * (j - 1) + np.arange(6)


def vel_channels(j: int) -> np.ndarray:
    return 193 + 3 * j + np.arange(3)


LOWER_POS = np.concatenate([ric_channels(j) for j in LOWER_JOINTS])
LOWER_ROT = np.concatenate([rot_channels(j) for j in LOWER_JOINTS])
LOWER_VEL = np.concatenate([vel_channels(j) for j in LOWER_JOINTS])
LOWER_CHANNELS = np.sort(np.concatenate([ROOT_CHANNELS, LOWER_POS, LOWER_ROT, LOWER_VEL]))
UPPER_CHANNELS = np.setdiff1d(np.arange(FRDM_DIM), LOWER_CHANNELS)
UPPER_BODY = tuple(j for j in range(NUM_BODY_JOINTS) if j not in LOWER_JOINTS and j != 0)


class FootFixError(ValueError):
    """Input the foot fix cannot work on; the message says what to change."""


@dataclass
class Canonical:
    """The rigid transform of :func:`features.canonicalize`: canonical = R (world - origin)."""
    face: np.ndarray          # (4,) yaw quaternion
    origin: np.ndarray        # (3,) x0, floor, z0

    def to_world(self, p: np.ndarray) -> np.ndarray:
        q = np.broadcast_to(quat_conjugate(self.face), p.shape[:-1] + (4,))
        return quat_rotate(q, p) + self.origin


def motion_features(joints: np.ndarray) -> tuple[np.ndarray, Canonical]:
    """(T, 22, 3) world joints -> (T, 259) FRDM features (last frame repeated so no frame is lost) and the
    canonical transform that maps recovered joints back to the world."""
    joints = np.asarray(joints, np.float64)
    padded = np.concatenate([joints, joints[-1:]], axis=0)
    feats = joints_to_features(padded, target_skeleton=None)
    origin = np.array([joints[0, 0, 0], joints[..., 1].min(), joints[0, 0, 2]])
    face = _facing_quat(joints[0], ik_quirk=False, smooth_sigma=None)
    return feats[:, FEATURE_INDEX], Canonical(face, origin)


def to_264(x259: np.ndarray) -> np.ndarray:
    out = np.zeros((x259.shape[0], FEATURE_DIM))
    out[:, FEATURE_INDEX] = x259
    out[:, 1] = np.concatenate([[0.0], np.cumsum(x259[:-1, 1])])
    return out


def features_to_world(x259: np.ndarray, canonical: Canonical) -> np.ndarray:
    return canonical.to_world(features_to_joints(to_264(x259)))


def merge(x_input, x_denoised):
    """The merge step: root/knee/ankle/foot channels from ``x_denoised``, every other channel from the input.

    Works on numpy arrays and torch tensors of shape (..., 259); the upper-body channels of the result are
    the input's values themselves (copied, never recomputed)."""
    if torch is not None and isinstance(x_input, torch.Tensor):
        out = x_input.clone()
        idx = torch.as_tensor(LOWER_CHANNELS, device=x_input.device)
        out[..., idx] = x_denoised[..., idx].to(out.dtype)
        return out
    out = np.array(x_input, copy=True)
    out[..., LOWER_CHANNELS] = np.asarray(x_denoised)[..., LOWER_CHANNELS]
    return out


# --- contacts --------------------------------------------------------------------------------------------
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


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    d = np.diff(m.astype(np.int8))
    return list(zip(np.nonzero(d == 1)[0].tolist(), np.nonzero(d == -1)[0].tolist()))


def contact_intervals(contacts: np.ndarray) -> dict:
    """Per-foot [start, end) frame intervals of (T, 2) contacts [left, right]: {"left": [[s, e], ...], ...}."""
    return {s: [list(r) for r in _runs(contacts[:, i])] for i, s in enumerate(("left", "right"))}


def clean_contacts(mask: np.ndarray, max_gap: int = MAX_GAP_FRAMES, min_len: int = MIN_CONTACT_FRAMES) -> np.ndarray:
    """Fill gaps of up to ``max_gap`` frames inside a contact, then drop contacts shorter than ``min_len``."""
    out = np.asarray(mask, bool).copy()
    runs = _runs(out)
    for (s0, e0), (s1, _) in zip(runs[:-1], runs[1:]):
        if s1 - e0 <= max_gap:
            out[e0:s1] = True
    for s, e in _runs(out):
        if e - s < min_len:
            out[s:e] = False
    return out


def estimate_floor(joints: np.ndarray, fps: float = FPS) -> float:
    """World height of the floor, in the metrics' convention (a planted toe joint is at height 0): a low
    percentile (10th) of the toe heights over the frames where they are low and slow. Unlike the frame-0 toe
    rule it does not depend on one frame; unlike the lowest toe it ignores a few penetrating frames."""
    toes = joints[:, [LEFT_FOOT_JOINTS[1], RIGHT_FOOT_JOINTS[1]], 1]
    first = float(np.percentile(toes.min(axis=1), FLOOR_PERCENTILE))
    if len(joints) < 2:
        return first
    disp = np.linalg.norm(np.diff(joints[:, [LEFT_FOOT_JOINTS[1], RIGHT_FOOT_JOINTS[1]]], axis=0), axis=-1)
    disp = np.concatenate([disp, disp[-1:]])
    planted = (toes - first <= H_TOE) & (disp < math.sqrt(V_TH) * FPS / fps)
    return float(np.percentile(toes[planted], 10)) if planted.sum() >= 3 else first


CONTACT_JOINTS = (LEFT_FOOT_JOINTS[0], LEFT_FOOT_JOINTS[1], RIGHT_FOOT_JOINTS[0], RIGHT_FOOT_JOINTS[1])


def detect_contacts(joints: np.ndarray, fps: float = FPS, overrides: Iterable = (), has_toes: bool = True,
                    toe_height: float = H_TOE, ankle_height: float = H_ANKLE, v_th: float = V_TH,
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
    speed_limit = math.sqrt(v_th) * FPS / fps          # m per frame at this rate
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
        for s, e in _runs(jc[:, k]):
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
DRIFT_MAX_SPEED = 0.024    # m/frame: both feet sliding alike up to this speed is the whole body drifting
SLIDE_WINDOW = 25           # frames each side: the slide of a frame is the median over its neighbourhood
REACH_SHIFT = 0.015         # m: the most the root moves to bring a pinned foot within the leg's reach
SETTLE_PASSES = 2           # IK-lock passes on a result that still slides (so a second fix is the identity)
SLIDE_TOLERANCE = 0.02      # m: a contact whose still point wanders less than this does not slide


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


def measure_slides(joints: np.ndarray, info: ContactInfo, fps: float = FPS, has_toes: bool = True) -> SlideInfo:
    """How the planted feet of ``joints`` (T, 22, 3) slide, with the contacts of ``info``.

    The drift (the planted feet sliding the same way over a stretch) is the median slide of the planted
    frames within SLIDE_WINDOW frames, kept only where it is faster than SLIDE_MIN_SPEED and only on frames
    where a foot is planted; its integral, negated, is the root shift. A foot is planted when it is in contact
    and its still point is slower than a step (SLIDE_MAX_SPEED), or when both feet are in contact and slide
    alike up to DRIFT_MAX_SPEED (the whole body drifting). So the root moves only by
    the integrated slide of the planted feet, and between plants (airborne frames, steps) it keeps the
    performer's path exactly. A contact interval slides when its still point, integrated over the planted
    frames, wanders more than SLIDE_TOLERANCE from where it was planted."""
    joints = np.asarray(joints, np.float64)
    t_len = joints.shape[0]
    scale = FPS / fps
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
    alike = np.linalg.norm(velocity[:, 0] - velocity[:, 1], axis=-1) <= 0.25 * speed
    planted |= (contact.all(-1) & alike & (speed < DRIFT_MAX_SPEED))[:, None]
    drift = np.zeros((t_len - 1, 2))
    for i in np.nonzero(planted.any(-1))[0]:
        a, b = max(0, i - SLIDE_WINDOW), min(t_len - 1, i + SLIDE_WINDOW + 1)
        m = np.median(velocity[a:b][planted[a:b]], axis=0)
        if np.linalg.norm(m) > SLIDE_MIN_SPEED:
            drift[i] = m
    root_shift = np.zeros((t_len, 3))
    root_shift[1:, [0, 2]] = -np.cumsum(drift / scale, axis=0)
    sliding = np.zeros((t_len, 2), bool)
    intervals = {"left": [], "right": []}
    for f, side in enumerate(("left", "right")):
        for s, e in _runs(info.contacts[:, f]):
            steps = np.where(planted[s:e - 1, f, None], velocity[s:e - 1, f], 0.0) / scale
            wander = float(np.linalg.norm(np.cumsum(steps, axis=0), axis=-1).max()) if e - s > 1 else 0.0
            intervals[side].append([int(s), int(e), round(wander, 5)])
            if wander > SLIDE_TOLERANCE:
                sliding[s:e, f] = True
    return SlideInfo(velocity, planted, drift, root_shift, sliding, intervals)


# --- helpers shared by both methods ----------------------------------------------------------------------
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


def _bone_lengths(joints, a, b):
    """One length per bone (the median over the clip): a rig's bones are rigid, and per-frame lengths of
    noisy joints would shake a nearly straight knee by centimetres."""
    return np.full(joints.shape[0], np.median(np.linalg.norm(joints[:, a] - joints[:, b], axis=-1)))


def solve_legs(joints_in: np.ndarray, root_new: np.ndarray, knee_pole: dict, ankle_target: dict,
               toe_target: dict | None, changed: np.ndarray | None = None) -> np.ndarray:
    """Rig-consistent legs: hips follow the new root (pelvis orientation kept), knees from two-bone IK with
    ``knee_pole`` as pole, ankles at (or towards, if out of reach) ``ankle_target``, toes on the foot's own
    length towards ``toe_target`` (the input's foot direction when None). Upper-body joints keep their
    offsets from the root. ``changed`` (T,) restricts the legs' IK to those frames (the others keep the input
    legs, moved with the root)."""
    joints_in = np.asarray(joints_in, np.float64)
    rel = joints_in - joints_in[:, :1]
    out = root_new[:, None] + rel
    # knees bend forward: a pole pushed ahead of the knee keeps a nearly straight leg from flipping its bend
    # plane frame to frame (a bent knee's own offset from the hip-ankle line still dominates)
    forward = np.cross(out[:, LEG_JOINTS["left"][0]] - out[:, LEG_JOINTS["right"][0]], [0.0, 1.0, 0.0])
    forward /= np.maximum(np.linalg.norm(forward, axis=-1, keepdims=True), 1e-12)
    for side_i, side in enumerate(("left", "right")):
        hip, knee, ankle, toe = LEG_JOINTS[side]
        l1, l2 = _bone_lengths(joints_in, knee, hip), _bone_lengths(joints_in, ankle, knee)
        lf = _bone_lengths(joints_in, toe, ankle)
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
        sel = np.ones(len(out), bool) if changed is None else np.asarray(changed[:, side_i], bool)
        out[sel, knee], out[sel, ankle], out[sel, toe] = k_new[sel], a_new[sel], t_new[sel]
    return out


# --- the analytic baseline: contact locking with two-bone IK ---------------------------------------------
def ik_lock(joints: np.ndarray, info: ContactInfo, mode: str = "auto", strength: float = 1.0,
            has_toes: bool = True, blend: int = BLEND_FRAMES, reach: float = 0.995,
            slides: SlideInfo | None = None, reach_shift: float = REACH_SHIFT) -> tuple[np.ndarray, dict]:
    """Contact-based foot locking (in the spirit of Kovar et al. 2002).

    Only contacts that slide (``slides.sliding``, :func:`measure_slides`) are touched. auto: the root is
    shifted by the integrated slide of the planted feet (``slides.root_shift``; the travel between plants is
    the performer's); then each joint's sliding contact interval pins it (ankle and toe separately, so a
    foot still rolls from heel to toe) horizontally at its median position over the interval and vertically
    at its planted height; grounding: only vertically (spins and slides stay, the root keeps its path).
    Touch-down and lift-off are pinned by their planted weight; swing frames where a foot joint sinks below
    the floor are lifted; corrections fade in/out over ``blend`` frames. The root also moves where a target
    is out of the leg's reach (:func:`reach_correction`); knees come from two-bone IK with the original knee
    as pole (:func:`solve_legs`); the upper body keeps its pose relative to the root. Returns the joints and
    the corrections.
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
        for s, e in _runs(c):
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
    changed = active | (np.abs(root_corr + drift).max(-1) > 0)[:, None]
    knee_pole = {s: joints[:, LEG_JOINTS[s][1]] + root_corr for s in ("left", "right")}
    toe_t = {s: joints[:, LEG_JOINTS[s][3]] + corr[LEG_JOINTS[s][3]] for s in ("left", "right")} if has_toes else None
    out = solve_legs(joints_in, root_new, knee_pole, ankle_t, toe_t, changed)
    return out, {"root_correction": root_corr + drift, "corrections": corr}


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
            full = (_bone_lengths(joints_in, knee, hip) + _bone_lengths(joints_in, ankle, knee)) * reach
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


# --- the denoiser ----------------------------------------------------------------------------------------
@dataclass
class FRDMConfig:
    """Sizes of the FRDM denoiser and its diffusion (the weight set's config.json stores these)."""
    d_model: int = 128
    layers: int = 4
    heads: int = 4
    ff: int = 256
    window: int = 120            # frames per denoising window (training crop length)
    dropout: float = 0.1
    diffusion_steps: int = 1000  # T of the training schedule (cosine)
    dim: int = FRDM_DIM
    skip: bool = True            # x0 = sqrt(abar) x_t + sqrt(1 - abar) F(x_t, t) (see FRDMDenoiser)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FRDMConfig":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        known.setdefault("skip", False)          # sets written before the skip connection predict x0 directly
        return cls(**known)


def _sinusoid(positions, dim: int):
    """Sinusoidal embeddings (..., dim) of integer positions or timesteps (torch)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=positions.device) / half)
    ang = positions.float()[..., None] * freqs
    return torch.cat([torch.sin(ang), torch.cos(ang)], dim=-1)


def _alpha_bar_t(t, steps: int):
    """alpha_bar of the cosine schedule at integer steps t (torch), as :func:`cosine_alpha_bar`."""
    s = 0.008
    f = torch.cos((t.float() / steps + s) / (1 + s) * math.pi / 2) ** 2 / math.cos(s / (1 + s) * math.pi / 2) ** 2
    return f.clamp(1e-6, 1.0)


class FRDMDenoiser(_Module):
    """Temporal transformer: merged noisy motion (B, W, 259) and diffusion step t (B,) -> predicted clean
    motion (B, W, 259). The step is embedded (sinusoid + MLP) and added before every layer.

    With ``cfg.skip`` the network's output F is mixed with its noisy input as
    x0 = sqrt(abar_t) x_t + sqrt(1 - abar_t) F: the best linear guess of x0 for unit-variance data, so at low
    noise the model starts from its input and learns only the correction (the preconditioning idea of Karras
    et al. 2022, for the variance-preserving schedule). Without it a small model trained briefly ignores
    x_t and returns the conditional mean at every step."""

    def __init__(self, cfg: FRDMConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.inp = nn.Linear(cfg.dim, d)
        self.time = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.time_proj = nn.ModuleList([nn.Linear(d, d) for _ in range(cfg.layers)])
        self.layers = nn.ModuleList([
            nn.TransformerEncoderLayer(d, cfg.heads, cfg.ff, cfg.dropout, activation="gelu", batch_first=True,
                                       norm_first=True) for _ in range(cfg.layers)])
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, cfg.dim)

    def forward(self, x, t):
        w = x.shape[1]
        pos = _sinusoid(torch.arange(w, device=x.device), self.cfg.d_model)
        temb = self.time(_sinusoid(t, self.cfg.d_model))
        h = self.inp(x) + pos[None]
        for proj, layer in zip(self.time_proj, self.layers):
            h = layer(h + proj(temb)[:, None])
        out = self.out(self.norm(h))
        if self.cfg.skip:
            ab = _alpha_bar_t(t, self.cfg.diffusion_steps).to(x.dtype)[:, None, None]
            out = ab.sqrt() * x + (1.0 - ab).sqrt() * out
        return out


def cosine_alpha_bar(steps: int) -> np.ndarray:
    """Cumulative signal fractions alpha_bar_0..T of the cosine schedule (alpha_bar_0 = 1)."""
    s = 0.008
    t = np.arange(steps + 1) / steps
    f = np.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    return np.clip(f / f[0], 1e-6, 1.0)


# --- training losses -------------------------------------------------------------------------------------
def _roty_apply(angle, v):
    """Rotate (..., 3) vectors about +Y by ``angle`` (...,) radians (torch)."""
    c, s = torch.cos(angle), torch.sin(angle)
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    return torch.stack([c * x + s * z, y, -s * x + c * z], dim=-1)


def _sixd_to_matrix_t(d6):
    from .rotations import sixd_to_matrix
    return sixd_to_matrix(d6)


_LEG_CHAINS = ((1, 4, 7, 10), (2, 5, 8, 11))      # hip, knee, ankle, toe


def frdm_losses(model, x0, yaw, contacts, mean, std, generator=None, epsilon: float = EPSILON,
                weights: dict | None = None, mask=None) -> dict:
    """Training losses for one batch of clean windows.

    x0: (B, W, 259) normalised clean motion; yaw: (B, W) accumulated root yaw a_t (half-angle, dim 1 of
    the 264-d features), needed to bring positions and rotations into one frame; contacts: (B, W, 4) float
    ankle/toe contacts of the clean motion (columns as :data:`CONTACT_JOINTS`; planted weights work too);
    mean, std: (259,) statistics; mask: (B, W) 1 for real frames, 0 for padding. Only the root/knee/ankle/foot channels
    are noised (the merge) and scored: reconstruction (MSE), the contact-weighted foot velocity loss (the
    velocity channels and the velocity implied by root + positions, both pushed to zero on contact frames),
    and the epsilon-insensitive consistency between the positions and the FK of the rotations.
    """
    w = {"recon": 1.0, "foot_vel": 1.0, "consistency": 1.0, **(weights or {})}
    cfg = model.cfg
    b = x0.shape[0]
    abar = torch.as_tensor(cosine_alpha_bar(cfg.diffusion_steps), dtype=x0.dtype, device=x0.device)
    t = torch.randint(1, cfg.diffusion_steps + 1, (b,), generator=generator, device="cpu").to(x0.device)
    noise = torch.randn(x0.shape, generator=generator, device="cpu").to(x0.device, x0.dtype)
    ab = abar[t][:, None, None]
    x_t = merge(x0, ab.sqrt() * x0 + (1 - ab).sqrt() * noise)
    pred = model(x_t, t)
    low = torch.as_tensor(LOWER_CHANNELS, device=x0.device)
    mask = torch.ones(x0.shape[:2], dtype=x0.dtype, device=x0.device) if mask is None else mask.to(x0.dtype)
    frames = mask.sum().clamp_min(1.0)
    recon = (((pred[..., low] - x0[..., low]) ** 2).mean(-1) * mask).sum() / frames

    den = pred * std + mean                                   # metres, radians, 6-D
    den0 = x0 * std + mean
    angle = 2.0 * yaw                                         # facing rotation angle about +Y
    # contact-weighted foot velocity: the velocity channels, and root step + position change
    cw = contacts.to(x0.dtype) * mask[..., None]
    vel_scale = std[torch.as_tensor(np.concatenate([vel_channels(j) for j in (7, 8, 10, 11)]))].mean()
    fv = x0.new_zeros(())
    # root step t -> t+1 is stored in the facing frame of frame t+1 (as in features.joints_to_features)
    step = _roty_apply(-angle[:, 1:], torch.stack([den[:, :-1, 2], torch.zeros_like(den[:, :-1, 2]),
                                                      den[:, :-1, 3]], dim=-1))
    for k, j in enumerate(CONTACT_JOINTS):
        c = cw[..., k]
        v = den[..., torch.as_tensor(vel_channels(j))]
        fv = fv + ((v / vel_scale) ** 2).sum(-1).mul(c).sum() / c.sum().clamp_min(1.0)
        p = _roty_apply(-angle, den[..., torch.as_tensor(ric_channels(j))])    # world minus root xz
        dp = p[:, 1:] - p[:, :-1] + step                      # world displacement t -> t+1
        fv = fv + ((dp / vel_scale) ** 2).sum(-1).mul(c[:, :-1]).sum() / c[:, :-1].sum().clamp_min(1.0)
    # consistency: bone vectors of the positions vs FK of the 6-D rotations, in the facing frame
    cons = x0.new_zeros(())
    r4 = 2.0 * angle                                          # the features' chains start from r * r
    pos_std = std[torch.as_tensor(LOWER_POS)].reshape(-1, 3).mean(0)
    raw = torch.as_tensor(T2M_RAW_OFFSETS, dtype=x0.dtype, device=x0.device)
    for chain in _LEG_CHAINS:
        m = _sixd_to_matrix_t(merge(den0, den)[..., torch.as_tensor(rot_channels(chain[0]))])   # hip: input
        for parent, child in zip(chain[:-1], chain[1:]):
            m = m @ _sixd_to_matrix_t(den[..., torch.as_tensor(rot_channels(child))])
            bone_pred = den[..., torch.as_tensor(ric_channels(child))] - \
                (den0 if parent == chain[0] else den)[..., torch.as_tensor(ric_channels(parent))]
            bone0 = den0[..., torch.as_tensor(ric_channels(child))] - den0[..., torch.as_tensor(ric_channels(parent))]
            length = bone0.norm(dim=-1).mean(dim=1, keepdim=True)        # the clip's bone length
            fk = _roty_apply(r4, (m @ raw[child])) * length[..., None]
            resid = ((fk - bone_pred) / pos_std).abs()
            cons = cons + (torch.relu(resid - epsilon).mean(-1) * mask).sum() / frames
    total = w["recon"] * recon + w["foot_vel"] * 0.05 * fv + w["consistency"] * cons
    return {"loss": total, "recon": recon.detach(), "foot_vel": fv.detach(), "consistency": cons.detach()}


# --- weight sets -----------------------------------------------------------------------------------------
WEIGHT_FILES = {"model": "frdm.safetensors", "stats": "stats.safetensors"}
LICENCE = "CC BY-NC 4.0 (follows from the Bandai Namco data)"


@dataclass
class FRDMWeights:
    model: object
    cfg: FRDMConfig
    mean: np.ndarray
    std: np.ndarray
    config: dict
    folder: Path | None
    device: object = None


def save_weight_set(dest, model, mean: np.ndarray, std: np.ndarray, meta: dict | None = None) -> Path:
    """Write an FRDM weight set atomically: frdm.safetensors, stats.safetensors (mean/std of the 259-d
    features), config.json (sizes, training data, licence, ...) and manifest.json (sha256 of each file)."""
    from safetensors.torch import save_file

    from .weights import _atomic_folder, _commit_folder, _weights_fetch

    wf = _weights_fetch()
    dest = Path(dest)
    tmp = _atomic_folder(dest)
    try:
        state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
        save_file(state, tmp / WEIGHT_FILES["model"])
        save_file({"mean": torch.tensor(np.asarray(mean, np.float32)), "std": torch.tensor(np.asarray(std, np.float32))},
                  tmp / WEIGHT_FILES["stats"])
        config = {"family": FAMILY, "format": FORMAT, "model": model.cfg.to_dict(), "files": WEIGHT_FILES,
                  "fps": FPS, "feature_dim": FRDM_DIM, "licence": LICENCE, "source": "choreo"}
        config.update(meta or {})
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        for name in list(WEIGHT_FILES.values()) + ["config.json"]:
            wf.record_file(tmp, name, config.get("source", "choreo"))
        manifest = wf.read_manifest(tmp)
        manifest["licence"] = config["licence"]
        wf.write_manifest(tmp, manifest)
        _commit_folder(tmp, dest)
    except BaseException:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def load_weight_set(folder, device="auto", verify: bool = True) -> FRDMWeights:
    """Load an FRDM weight set strictly (every key and shape must match its config)."""
    from safetensors.torch import load_file

    from .weights import WeightSetError, resolve_device, verify_weights

    folder = Path(folder)
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise FootFixError(f"'{folder}' is not an FRDM weight set (no config.json); train one with "
                           "python -m core_models.train.frdm, or use method='ik_lock'")
    try:
        config = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as exc:
        raise FootFixError(f"{cfg_path} is not valid JSON ({exc})") from exc
    if config.get("family") != FAMILY:
        raise FootFixError(f"'{folder}' holds a '{config.get('family')}' weight set, not FRDM foot-fix weights")
    if verify:
        problems = verify_weights(folder)
        if problems:
            raise FootFixError(f"FRDM weight set '{folder}' failed verification: {'; '.join(problems[:3])}")
    cfg = FRDMConfig.from_dict(config["model"])
    try:
        dev = resolve_device(device)
    except WeightSetError as exc:
        raise FootFixError(str(exc)) from exc
    model = FRDMDenoiser(cfg)
    try:
        state = load_file(str(folder / WEIGHT_FILES["model"]))
        stats = load_file(str(folder / WEIGHT_FILES["stats"]))
    except Exception as exc:                 # safetensors has its own error types for damaged files
        raise FootFixError(f"FRDM weights in '{folder}' cannot be read ({exc})") from exc
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if expected != got:
        missing = sorted(set(expected) - set(got))[:3]
        extra = sorted(set(got) - set(expected))[:3]
        shape = [k for k in expected if k in got and expected[k] != got[k]][:3]
        raise FootFixError(f"FRDM weights in '{folder}' do not match their config (missing {missing}, unexpected "
                           f"{extra}, wrong shape {shape})")
    model.load_state_dict(state, strict=True)
    model.to(dev).eval()
    return FRDMWeights(model, cfg, stats["mean"].numpy().astype(np.float64), stats["std"].numpy().astype(np.float64),
                       config, folder, dev)


# --- sampling (paper Algorithm 2, few steps) -------------------------------------------------------------
# 30 steps: on the held-out clips FSR falls from 10 to 20 to 30 steps and levels off after (benchmarks/fix_feet.py);
# 1,024 frames still take about 1.5 s on one CPU thread.
DEFAULT_STEPS = 30

@dataclass
class SamplerConfig:
    steps: int = DEFAULT_STEPS      # denoising steps (timesteps spread evenly over T..1)
    t_th: float = 0.2               # t/T below which foot-contact guidance replaces geometric guidance
    seed: int = 0
    blend: int = BLEND_FRAMES
    root_always: bool = True        # keep pulling the root velocities to the (drift-corrected) input late too
    smooth: float = 0.0             # frames: Gaussian low-pass of the input before it guides (0: off; 1.5 left
                                    # more skating on the held-out clips: benchmarks/fix_feet.py)
    spacing: str = "linear"         # step spacing: linear or quadratic
    renoise: str = "ddim"           # "ddim": re-noise with the predicted noise; "initial": with x_T (Algorithm 2)
    out_smooth: float = 1.0         # frames: Gaussian low-pass of the repaired root and legs before the rig solve


def sampler_timesteps(total: int, steps: int, spacing: str = "linear") -> list[int]:
    """Descending diffusion steps T .. 1: evenly spaced ("linear"), or "quadratic" (more steps near the end)."""
    if steps < 1:
        raise FootFixError(f"the sampler needs at least one step, got {steps}")
    if spacing not in ("linear", "quadratic"):
        raise FootFixError(f"unknown step spacing '{spacing}'; use linear or quadratic")
    if steps == 1:
        return [int(total)]
    k = np.arange(steps - 1, -1, -1) / (steps - 1)
    ts = np.unique(np.round(1 + (total - 1) * (k if spacing == "linear" else k ** 2)).astype(int))[::-1]
    return [int(t) for t in ts]


def _window_plan(t_len: int, window: int) -> tuple[list[int], np.ndarray]:
    """Window starts covering ``t_len`` frames (3/4 window hop) and the cross-fade weight of a window frame."""
    if t_len <= window:
        return [0], np.ones(window)
    hop = max(1, (3 * window) // 4)
    starts = list(range(0, t_len - window + 1, hop))
    if starts[-1] != t_len - window:
        starts.append(t_len - window)
    ramp = max(1, (window - hop) // 2 + 1)
    k = np.arange(window)
    return starts, np.clip(np.minimum(k + 1, window - k) / ramp, 1e-3, 1.0)


def denoiser(model, device=None):
    """``denoise(x (B, W, 259) float32, t (B,) int64) -> x0`` (numpy) for a torch FRDMDenoiser or an object
    with such a ``denoise`` method (the ONNX Runtime one), so the sampler itself is backend-free."""
    if hasattr(model, "denoise"):
        return model.denoise
    dev = device or torch.device("cpu")

    def run(x, t):
        with torch.no_grad():
            return model(torch.as_tensor(x, device=dev), torch.as_tensor(t, device=dev)).float().cpu().numpy()
    return run


def predict_clean(model, x, t: int, window: int, device=None):
    """x0 prediction for a whole sequence x (T, 259) (normalised, merged; numpy), window by window in one
    batch. ``model``: a torch FRDMDenoiser or a ``denoise`` callable / object (see :func:`denoiser`)."""
    is_module = nn is not None and isinstance(model, nn.Module)
    denoise = denoiser(model, device) if is_module or hasattr(model, "denoise") else model
    x = np.asarray(x, np.float32)
    t_len = x.shape[0]
    if t_len < window:
        x = np.concatenate([x, np.repeat(x[-1:], window - t_len, axis=0)], axis=0)
    starts, wts = _window_plan(x.shape[0], window)
    batch = np.stack([x[s:s + window] for s in starts])
    pred = np.asarray(denoise(batch, np.full(len(starts), t, np.int64)), np.float32)
    out = np.zeros_like(x)
    norm = np.zeros((x.shape[0], 1), np.float32)
    w = np.asarray(wts, np.float32)[:, None]
    for i, s in enumerate(starts):
        out[s:s + window] += pred[i] * w
        norm[s:s + window] += w
    return (out / norm)[:t_len]


def _yaw_angle(x_den: np.ndarray) -> np.ndarray:
    """Facing rotation angle (about +Y) of each frame from the yaw velocities (2 x accumulated half-angle)."""
    return 2.0 * np.concatenate([[0.0], np.cumsum(x_den[:-1, 1])])


def _roty(angle: np.ndarray, v: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([c * v[..., 0] + s * v[..., 2], v[..., 1], -s * v[..., 0] + c * v[..., 2]], axis=-1)


def _root_world(x_den: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Root positions (canonical frame) from root velocities and height, as features_to_joints does."""
    step = np.zeros((x_den.shape[0], 3))
    step[1:, 0], step[1:, 2] = x_den[:-1, 2], x_den[:-1, 3]
    root = np.cumsum(_roty(-angle, step), axis=0)
    root[:, 1] = x_den[:, 0]
    return root


def contact_guidance(x_den: np.ndarray, angle: np.ndarray, weights: np.ndarray, w: float, mode: str = "auto",
                     blend: int = BLEND_FRAMES, levels: np.ndarray | None = None) -> np.ndarray:
    """Foot-contact guidance on a de-normalised prediction (T, 259).

    ``weights`` (T, 4): how firmly each ankle/toe of :data:`CONTACT_JOINTS` is planted. The planted joints'
    world velocities are scaled by ``w`` and their positions re-integrated from them inside each contact
    interval (offsets faded in/out around it); their velocity channels are set from the guided positions.
    With ``levels`` (4,) (planted heights in the features' frame) planted joints are also put on the floor by
    1 - w. 'grounding' guides the vertical component only.
    """
    g = x_den.copy()
    flat = np.array([1.0, 0.0, 1.0])
    root = _root_world(g, angle)
    feet = np.stack([root * flat + _roty(-angle, g[:, ric_channels(j)]) for j in CONTACT_JOINTS], axis=1)
    axes = np.array([1.0, 1.0, 1.0]) if mode == "auto" else np.array([0.0, 1.0, 0.0])
    for k, j in enumerate(CONTACT_JOINTS):
        p_w = np.asarray(weights[:, k], np.float64)
        b = p_w > 0
        if not b.any():
            continue
        v_world = np.zeros_like(feet[:, k])
        v_world[:-1] = np.diff(feet[:, k], axis=0)
        v_world *= 1.0 - axes * (p_w[:, None] * (1.0 - w))
        p_pred = feet[:, k]
        offset = np.zeros_like(p_pred)
        for s, e in _runs(b):
            path = p_pred[s] + np.concatenate([np.zeros((1, 3)), np.cumsum(v_world[s:e - 1], axis=0)])
            offset[s:e] = (path - p_pred[s:e]) * axes
        if levels is not None:                          # on the floor, not just still
            offset[:, 1] += (levels[k] - (p_pred[:, 1] + offset[:, 1])) * p_w * (1.0 - w)
        p = p_pred + fade_fill(offset, b, blend)
        g[:, ric_channels(j)] = _roty(angle, p - root * flat)
        vel = _roty(angle[:-1], np.diff(p, axis=0))    # velocity channels agree with the guided positions
        g[:-1, vel_channels(j)] = vel
    return g


def sample(weights: FRDMWeights, x_in: np.ndarray, contacts: np.ndarray, cfg: SamplerConfig | None = None,
           mode: str = "auto", progress: ProgressFn = no_progress, cancel: threading.Event | None = None,
           levels: np.ndarray | None = None) -> np.ndarray:
    """Algorithm 2: de-normalised input features (T, 259) -> restored features (T, 259) (upper body merged
    from the input). ``contacts`` (T, 4): planted weights (or bool contacts) of the ankles/toes of
    :data:`CONTACT_JOINTS`; ``levels`` (4,): their planted heights in the features' frame. The geometric
    guidance also pulls the root velocities towards the input (the root path is geometry too; left free it
    wanders). Deterministic for a seed."""
    cfg = cfg or SamplerConfig()
    mcfg = weights.cfg
    denoise = denoiser(weights.model, weights.device)
    mean, std = weights.mean, weights.std
    x_in_n = ((x_in - mean) / std).astype(np.float32)
    angle = _yaw_angle(x_in)
    # numpy noise, so every backend (torch, ONNX Runtime) starts from the same x_T for a seed
    x_T = np.random.default_rng(int(cfg.seed)).standard_normal(x_in_n.shape).astype(np.float32)
    abar = cosine_alpha_bar(mcfg.diffusion_steps)
    ts = sampler_timesteps(mcfg.diffusion_steps, cfg.steps, cfg.spacing)
    if cfg.renoise not in ("initial", "ddim"):
        raise FootFixError(f"unknown re-noising '{cfg.renoise}'; use initial or ddim")
    t_th = cfg.t_th * mcfg.diffusion_steps
    x_t = x_T
    guided = x_in
    geo = np.concatenate([ROOT_CHANNELS, LOWER_POS, LOWER_ROT])
    contacts = np.asarray(contacts, np.float64)
    # the guidance target is the input's geometry, not its frame-to-frame noise (which the model would
    # otherwise copy back at the low-noise steps)
    target = x_in.copy()
    if cfg.smooth > 0 and len(x_in) > 1:
        target[:, geo] = gaussian_filter1d(x_in[:, geo], cfg.smooth, axis=0, mode="nearest")
    for k, t in enumerate(ts):
        check_cancel(cancel)
        merged = merge(x_in_n, x_t)
        x0_n = predict_clean(denoise, merged, t, mcfg.window)
        x0 = x0_n.astype(np.float64) * std + mean
        w = t / mcfg.diffusion_steps
        guided = x0.copy()
        if t >= t_th:                            # geometric guidance: stay near the input
            guided[:, geo] = (1.0 - w) * target[:, geo] + w * x0[:, geo]
        else:                                    # foot-contact guidance: plant the feet
            if cfg.root_always:
                x0[:, ROOT_CHANNELS] = (1.0 - w) * target[:, ROOT_CHANNELS] + w * x0[:, ROOT_CHANNELS]
            guided = contact_guidance(x0, angle, contacts, w, mode, cfg.blend, levels)
        t_prev = ts[k + 1] if k + 1 < len(ts) else 0
        g_n = ((guided - mean) / std).astype(np.float32)
        noise = x_T
        if cfg.renoise == "ddim":           # the noise the model sees in x_t, as deterministic DDIM re-uses it
            noise = (merged - math.sqrt(abar[t]) * x0_n) / math.sqrt(max(1.0 - abar[t], 1e-8))
        x_t = (math.sqrt(abar[t_prev]) * g_n + math.sqrt(1.0 - abar[t_prev]) * noise).astype(np.float32)
        progress("frdm", k + 1, len(ts))
    return merge(x_in, guided)


# --- the public entry point ------------------------------------------------------------------------------
@dataclass
class FootFixResult:
    """What :func:`fix_feet` returns (numpy only).

    joints: (T, 22, 3) repaired body joints (metres, Y up, 30 fps, the input's world frame);
    contacts: (T, 2) bool per-frame contacts [left, right] used for the fix; root_offset: (T, 3) new minus
    old root position; report: the before/after numbers (see :func:`fix_feet`); notes: messages for the user.
    """
    joints: np.ndarray
    contacts: np.ndarray
    root_offset: np.ndarray
    method: str
    report: dict
    notes: list[str] = field(default_factory=list)


def _as_joints(joints_or_clip, fps):
    """(joints, fps, has_toes, notes) from a BodyClip or a (T, 22, 3) array, with clear errors."""
    from .io.retarget import estimate_height

    notes = []
    has_toes = True
    if hasattr(joints_or_clip, "joints") and hasattr(joints_or_clip, "mapping"):
        clip = joints_or_clip
        joints, fps = np.asarray(clip.joints, np.float64), float(clip.fps)
        missing = [f for f in ("left_foot", "right_foot") if f not in clip.mapping.source_for]
        if missing:
            has_toes = False
        if abs(clip.source_fps - clip.fps) > 1e-6:
            notes.append(f"the clip was resampled from {clip.source_fps:g} to {clip.fps:g} fps when it was loaded; "
                         "the fix is computed at that rate")
        if clip.unit not in ("m",):
            notes.append(f"the clip's unit was '{clip.unit}' (x{clip.unit_scale:g} to metres); it was converted when "
                         "loaded")
    else:
        try:
            joints = np.asarray(joints_or_clip, np.float64)
        except (TypeError, ValueError) as exc:
            raise FootFixError(f"joints cannot be read as a numeric array ({exc})") from exc
    if joints.ndim != 3 or joints.shape[1] < NUM_BODY_JOINTS or joints.shape[2] != 3:
        raise FootFixError(f"expected body joints of shape (T, 22, 3) in SMPL body order; got {joints.shape}")
    if joints.shape[1] > NUM_BODY_JOINTS:
        joints = joints[:, :NUM_BODY_JOINTS]
    if joints.shape[0] < 1:
        raise FootFixError("the clip has no frames")
    if not np.isfinite(joints).all():
        bad = np.unique(np.nonzero(~np.isfinite(joints))[0])
        raise FootFixError(f"joint positions contain NaN or inf in {bad.size} frame(s), first at frame {bad[0]}")
    fps = FPS if fps is None else float(fps)
    if abs(fps - FPS) > 1e-6:
        raise FootFixError(f"joints at {fps:g} fps: the foot fix works at 30 fps. Load files with "
                           "core_models.io.load_body_clip (it resamples) or resample with "
                           "core_models.motion.resample_linear first")
    height = float(estimate_height(joints[0]))
    if not 0.5 <= height <= 3.0:
        unit = "centimetres" if 50 <= height <= 300 else "millimetres" if height > 300 else "an unknown unit"
        raise FootFixError(f"the figure is about {height:.3g} units tall, so the joints look like {unit}, not metres. "
                           "Convert to metres, or load the file with load_body_clip(path, unit='auto')")
    return joints, fps, has_toes, notes


def clip_metrics(joints: np.ndarray, floor: float | None = None) -> dict:
    """FSR, jitter and floor penetration of one clip. Heights are measured above ``floor`` (default: the
    metrics' frame-0 toe rule); a fix is scored before and after against the same floor, because the
    frame-0 rule moves the ground whenever a fix moves frame 0's feet."""
    from . import metrics

    t_len = joints.shape[0]
    normalize = floor is None
    if floor is not None:
        joints = joints - np.array([0.0, floor, 0.0])
    out = {"fsr": None, "jitter": None, "penetration": None}
    if t_len >= 2:
        out["fsr"] = {k: round(v, 5) for k, v in metrics.foot_skating_ratio(joints, normalize=normalize).items()}
    if t_len >= 4:
        out["jitter"] = round(metrics.jitter(joints), 4)
    out["penetration"] = {k: round(v, 5) for k, v in metrics.floor_penetration(joints, normalize=normalize).items()}
    return out


def upper_body_change(before: np.ndarray, after: np.ndarray) -> float:
    """Largest change (m) of any joint other than the root, knees, ankles and toes, relative to the root."""
    keep = list(UPPER_BODY)
    rel_b = before[:, keep] - before[:, :1]
    rel_a = after[:, keep] - after[:, :1]
    return float(np.abs(rel_a - rel_b).max()) if before.size else 0.0


def _orientation(joints_or_clip, joints: np.ndarray):
    """:func:`io.orientation.check_orientation` with the rest pose of a BodyClip's source skeleton."""
    from .io.orientation import check_orientation, rest_body_axis

    rest = None
    if hasattr(joints_or_clip, "source_skeleton") and hasattr(joints_or_clip, "mapping"):
        rest = rest_body_axis(joints_or_clip.source_skeleton, joints_or_clip.mapping)
    return check_orientation(joints, rest)


def fix_feet(joints_or_clip, method: str = "frdm", mode: str = "auto", overrides: Sequence | None = None,
             strength: float = 1.0, weights=None, device: str = "auto", progress: ProgressFn | None = None,
             cancel: threading.Event | None = None, fps: float | None = None, steps: int = DEFAULT_STEPS, seed: int = 0,
             sampler: SamplerConfig | None = None, has_toes: bool | None = None,
             backend: str = "auto", contacts: np.ndarray | None = None,
             orientation: str = "check") -> FootFixResult:
    """Repair foot skating on one clip; the upper body keeps its pose relative to the root exactly.

    joints_or_clip: a :class:`io.BodyClip` (from ``load_body_clip``; toes synthesised for the rig are
    detected) or joints (T, 22, 3) in metres, Y up, 30 fps. method: "frdm" (needs ``weights``: a weight-set
    folder or loaded :class:`FRDMWeights`; without them the fix falls back to "ik_lock" and says so) or
    "ik_lock". mode: "auto" (plant the feet) or "grounding" (keep the feet on the floor but let them spin and
    slide). overrides: per-foot frame intervals forcing contact on or off (:class:`ContactOverride`, dicts or
    (foot, start, end, contact) tuples). strength: 0 (unchanged) .. 1 (full repair). steps/seed/sampler: the
    FRDM sampler. progress(stage, done, total) and the ``cancel`` event are checked between steps.
    backend: "auto", "torch" or "onnx" for FRDM (see ``onnx_backend.load_frdm_for_backend``; the report's
    "backend" names the provider used, its notes any fallback).
    has_toes: whether the toe joints are real (default: a BodyClip's mapping says; arrays: True); False plants
    the ankles only (toes made up from the ankles would plant the wrong point).
    contacts: (T, 2) bool per-foot contacts [left, right] to use instead of detecting them (e.g. the contact
    markers an animator edited); the ankle/toe split inside them is still detected. orientation: "check"
    refuses an upside-down, lying or Z-up-read-as-Y-up clip (:func:`io.orientation.check_orientation`) and
    notes a partly inverted one; "ignore" skips the check.

    Only planted feet that slide are changed (:func:`measure_slides`): the root moves by the integrated slide
    of the planted feet only, so the travel between plants stays the performer's; contacts that do not slide
    keep their frames. A clip whose feet do not slide is returned unchanged, with an "already clean" note, so a
    second pass is the identity. A fix that would raise FSR is not applied (the clip is returned unchanged,
    with a note).

    The report holds FSR (mean/left/right), jitter and floor penetration before and after, the largest root
    and foot displacement, the upper-body change, contact frames and intervals, the floor height, timings
    and notes.
    """
    progress = progress or no_progress
    start = time.perf_counter()
    if method not in METHODS:
        raise FootFixError(f"unknown method '{method}'; use one of {', '.join(METHODS)}")
    if mode not in MODES:
        raise FootFixError(f"unknown mode '{mode}'; use one of {', '.join(MODES)}")
    if not (np.isfinite(strength) and 0.0 <= strength <= 1.0):
        raise FootFixError(f"strength must be between 0 and 1, got {strength}")
    joints, fps, clip_has_toes, notes = _as_joints(joints_or_clip, fps)
    has_toes = clip_has_toes if has_toes is None else bool(has_toes)
    t_len = joints.shape[0]
    overrides = [ContactOverride.parse(o) for o in (overrides or ())]
    if orientation not in ("check", "ignore"):
        raise FootFixError(f"orientation must be 'check' or 'ignore', got '{orientation}'")
    orient = None
    if orientation == "check" and t_len > 1:
        orient = _orientation(joints_or_clip, joints)
        if orient.verdict == "refuse":
            raise FootFixError(f"{orient.message}. Nothing was changed")
        if orient.verdict == "warn":
            notes.append(orient.message)
    if contacts is not None:
        contacts = np.asarray(contacts, bool)
        if contacts.shape != (t_len, 2):
            raise FootFixError(f"contacts must be (frames, 2) per-foot flags [left, right] for {t_len} frames; got "
                               f"{contacts.shape}")
    used = method
    if method == "frdm" and weights is None:
        used = "ik_lock"
        notes.append("no FRDM weights were given: fixed with the analytic IK lock instead")
    report = {"requested_method": method, "method": used, "mode": mode, "strength": float(strength),
              "frames": int(t_len), "fps": fps}

    def finish(out, contacts, floor, timings):
        before, after = clip_metrics(joints, floor), clip_metrics(out, floor)
        root_off = out[:, 0] - joints[:, 0]
        foot = [j for pair in FOOT_JOINTS for j in pair]
        report.update({
            "fsr_before": before["fsr"], "fsr_after": after["fsr"],
            "jitter_before": before["jitter"], "jitter_after": after["jitter"],
            "penetration_before": before["penetration"], "penetration_after": after["penetration"],
            "max_root_displacement_m": round(float(np.linalg.norm(root_off, axis=-1).max()), 6),
            "max_foot_displacement_m": round(float(np.linalg.norm(out[:, foot] - joints[:, foot], axis=-1).max()), 6),
            "upper_body_change_m": round(upper_body_change(joints, out), 9),
            "contact_frames": {"left": int(contacts[:, 0].sum()), "right": int(contacts[:, 1].sum())},
            "contact_intervals": contact_intervals(contacts),
            "floor_height_m": None if floor is None else round(float(floor), 5),
            "has_toes": has_toes, "notes": notes,
            "orientation": None if orient is None else {"verdict": orient.verdict, "up": orient.up,
                                                        "upside_down": round(orient.upside_down, 4),
                                                        "lying": round(orient.lying, 4)},
            "timings_s": {k: round(v, 4) for k, v in {**timings, "total": time.perf_counter() - start}.items()},
        })
        return FootFixResult(out, contacts, root_off, used, report, notes)

    if t_len == 1:
        notes.append("a single frame has no motion, so there is no foot skating to fix; returned unchanged")
        return finish(joints.copy(), np.zeros((1, 2), bool), None, {})
    if float(np.abs(joints - joints[:1]).max()) < 1e-4:
        notes.append("the clip is a static pose (nothing moves by more than 0.1 mm): no foot skating to fix; "
                     "returned unchanged")
        info = detect_contacts(joints, fps, overrides, has_toes, v_th=V_TH_REPAIR, foot_contacts=contacts)
        return finish(joints.copy(), info.contacts, info.floor, {})

    check_cancel(cancel)
    progress("contacts", 0, 1)
    t0 = time.perf_counter()
    info = detect_contacts(joints, fps, overrides, has_toes, v_th=V_TH_REPAIR, foot_contacts=contacts)
    notes.extend(info.notes)
    slides = measure_slides(joints, info, fps, has_toes)
    report["contacts_source"] = "given" if contacts is not None else "detected"
    report["slides"] = {"sliding_frames": {s: int(slides.sliding[:, i].sum()) for i, s in enumerate(("left", "right"))},
                        "root_shift_m": round(float(np.linalg.norm(slides.root_shift, axis=-1).max()), 5),
                        "largest_wander_m": round(max([w for side in slides.intervals.values() for *_, w in side],
                                                      default=0.0), 5)}
    progress("contacts", 1, 1)
    timings = {"contacts": time.perf_counter() - t0}
    share = float(info.contacts.any(axis=1).mean())
    if share < 0.3:
        notes.append(f"the feet touch the floor in only {100 * share:.0f} % of the frames (a jump or an airborne "
                     "sequence?): only those frames are planted, the airborne frames are left as they are")
    if not info.contacts.any():
        notes.append("no foot contact was found; nothing was planted (use contact overrides to force contacts)")
    if not slides.slides:
        if info.contacts.any():
            notes.append(f"already clean: no planted foot slides by more than {100 * SLIDE_TOLERANCE:.0f} cm; "
                         "returned unchanged")
        report["unchanged"] = True
        return finish(joints.copy(), info.contacts, info.floor, timings)

    def checked(out, contacts_used, floor, timings):
        """The fix, settled, unless it would raise FSR (then the input, unchanged, with a note). Settling: while
        the result still has sliding contacts (found afresh on it), the IK lock runs on it again (twice at
        most), so that fixing the result again changes (nearly) nothing."""
        for _ in range(SETTLE_PASSES):
            again = detect_contacts(out, fps, overrides, has_toes, v_th=V_TH_REPAIR, foot_contacts=contacts)
            more = measure_slides(out, again, fps, has_toes)
            if not more.slides:
                break
            # the root stays where the fix put it (the settling moves the legs only)
            out, _ = ik_lock(out, again, mode, strength, has_toes, slides=more, reach_shift=0.0)
        before, after = clip_metrics(joints, floor)["fsr"], clip_metrics(out, floor)["fsr"]
        if before is not None and after is not None and after["mean"] > before["mean"] + 1e-9:
            notes.append(f"the {used.replace('_', ' ')} fix would have raised FSR ({100 * before['mean']:.1f} % -> "
                         f"{100 * after['mean']:.1f} %); returned unchanged (edit the contacts or try the other "
                         "method)")
            report["unchanged"] = True
            return finish(joints.copy(), contacts_used, floor, timings)
        report["unchanged"] = False
        return finish(out, contacts_used, floor, timings)

    if used == "ik_lock":
        t0 = time.perf_counter()
        out, _ = ik_lock(joints, info, mode, strength, has_toes, slides=slides)
        timings["ik_lock"] = time.perf_counter() - t0
        check_cancel(cancel)
        progress("legs", 1, 1)
        return checked(out, info.contacts, info.floor, timings)

    t0 = time.perf_counter()
    if isinstance(weights, FRDMWeights):
        w = weights
    else:
        from .onnx_backend import load_frdm_for_backend
        w, load_notes = load_frdm_for_backend(weights, backend, device)
        notes.extend(load_notes)
    report["weights"] = str(w.folder) if w.folder else None
    report["backend"] = w.device if isinstance(w.device, str) else f"torch {w.device}"
    timings["load_weights"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    # the slide of the planted feet comes out of the root first (the same shift as ik_lock's): the geometric
    # guidance then pulls the root towards a path the feet can stand on, and the travel between plants stays
    drift = slides.root_shift if mode == "auto" else np.zeros((t_len, 3))
    x_in, canon = motion_features(joints + drift[:, None])
    timings["features"] = time.perf_counter() - t0
    cfg = sampler or SamplerConfig(steps=steps, seed=seed)
    report["sampler"] = asdict(cfg)
    t0 = time.perf_counter()
    levels = info.floor + info.levels - canon.origin[1]     # planted heights in the features' frame
    planted = info.weights * np.repeat(slides.sliding, 2, axis=1)       # only sliding contacts are planted
    x_out = sample(w, x_in, planted, cfg, mode, progress, cancel, levels)
    timings["sampling"] = time.perf_counter() - t0
    check_cancel(cancel)
    t0 = time.perf_counter()
    x_out[:, 1] = x_in[:, 1]                    # the facing stays the input's (so does the upper body)
    pred = features_to_world(x_out, canon)
    if cfg.out_smooth > 0 and t_len > 1:
        pred = gaussian_filter1d(pred, cfg.out_smooth, axis=0, mode="nearest")
    s = float(strength)
    # the root follows the slide-cancelling shift only (the model's own root would move the performance);
    # the legs take the model's repair relative to the root, faded in around the sliding contacts only
    shifted = joints + s * drift[:, None]
    root_new = shifted[:, 0]
    near = np.stack([fade_fill(np.ones(t_len), slides.sliding[:, i], BLEND_FRAMES) for i in range(2)], axis=-1)
    pole, ankle_t, toe_t = {}, {}, {}
    for side_i, side in enumerate(("left", "right")):
        _, knee, ankle, toe = LEG_JOINTS[side]
        k = s * near[:, side_i, None]
        for target, j in ((pole, knee), (ankle_t, ankle), (toe_t, toe)):
            repaired = root_new + (pred[:, j] - pred[:, 0])
            target[side] = shifted[:, j] + k * (repaired - shifted[:, j])
    active = near > 0
    moved = np.max([np.linalg.norm(ankle_t[s] - shifted[:, LEG_JOINTS[s][2]], axis=-1) for s in ("left", "right")], axis=0)
    root_new = root_new + reach_correction(joints, root_new, ankle_t, active, reach=0.99,
                                           limit=np.minimum(moved, REACH_SHIFT))
    changed = active | (np.abs(root_new - joints[:, 0]).max(-1) > 0)[:, None]
    out = solve_legs(joints, root_new, pole, ankle_t, toe_t if has_toes else None, changed)
    timings["legs"] = time.perf_counter() - t0
    progress("legs", 1, 1)
    return checked(out, info.contacts, info.floor, timings)
