# SPDX-License-Identifier: GPL-3.0-or-later
"""The foot fix's entry point: :func:`fix_feet` on one clip, its :class:`FootFixResult`, the clip metrics.

Only planted feet that slide are changed. In "auto" mode the root is shifted by the integrated slide of the
planted feet; "frdm" then lets the denoiser repair the legs (faded in around sliding contacts only, the root
never the model's), "ik_lock" pins them analytically; both put the result on rigid legs by two-bone IK
(:func:`ik_lock.solve_legs`). The facing (root yaw) and the pelvis orientation are kept from the input, so
the upper body keeps its pose relative to the root exactly.
"""
from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np
from scipy.ndimage import gaussian_filter1d

from ..motion import MOTION_FPS
from ..progress import ProgressFn, check_cancel, no_progress
from ..skeleton import LEG_JOINTS, NUM_BODY_JOINTS
from .contacts import (BLEND_FRAMES, DRIFT_MAX_SPEED, MIN_DRIFT_EVIDENCE, SLIDE_TOLERANCE, V_TH_REPAIR,
                       ContactOverride, contact_intervals, detect_contacts, fade_fill, measure_slides)
from .beats import keep_beats
from .errors import FootFixError
from .ik_lock import REACH_SHIFT, ik_lock, reach_correction, root_moved, solve_legs
from .jitter import remove_leg_noise
from .model import FRDMWeights, load_frdm_weights
from .representation import FOOT_JOINTS, UPPER_BODY, features_to_world, motion_features
from .sampler import DEFAULT_STEPS, SamplerConfig, sample

METHODS = ("frdm", "ik_lock")
MODES = ("auto", "grounding")
BEATS = ("auto", "keep", "free")
SETTLE_PASSES = 2           # IK-lock passes on a result that still slides (so a second fix is the identity)

# (folder, backend, device) -> (loaded weights, notes): how fix_feet loads weights given as a folder
WeightLoader = Callable[[object, str, object], "tuple[FRDMWeights, list[str]]"]


def load_on_torch(folder, backend: str = "auto", device="auto") -> tuple[FRDMWeights, list[str]]:
    """The loader fix_feet uses when it is given none: the torch weight set (the foot fix never imports a
    backend; the ONNX one, and the torch-or-ONNX choice, come from the runtime as ``load_weights``)."""
    if backend not in ("auto", "torch"):
        raise FootFixError(f"the foot fix loads weights on torch by itself; for the '{backend}' backend pass "
                           "load_weights (core_models.runtime.backends) or weights already loaded")
    return load_frdm_weights(folder, device), []


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
    from ..io.retarget import estimate_height

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
    fps = MOTION_FPS if fps is None else float(fps)
    if abs(fps - MOTION_FPS) > 1e-6:
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
    from .. import metrics

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


def first_frame_floor(joints: np.ndarray) -> float:
    """The floor height by the metrics' frame-0 toe rule (:func:`..metrics.normalize_ground`)."""
    from .. import metrics

    return float(joints[0, 0, 1] - metrics.normalize_ground(joints[:1])[0, 0, 1])


def fsr_before_after(before: np.ndarray, after: np.ndarray, floor: float | None):
    """FSR of two versions of a clip, both measured above the same ``floor``."""
    return clip_metrics(before, floor)["fsr"], clip_metrics(after, floor)["fsr"]


def upper_body_change(before: np.ndarray, after: np.ndarray) -> float:
    """Largest change (m) of any joint other than the root, knees, ankles and toes, relative to the root."""
    keep = list(UPPER_BODY)
    rel_b = before[:, keep] - before[:, :1]
    rel_a = after[:, keep] - after[:, :1]
    return float(np.abs(rel_a - rel_b).max()) if before.size else 0.0


def _orientation(joints_or_clip, joints: np.ndarray):
    """:func:`io.orientation.check_orientation` with the rest pose of a BodyClip's source skeleton."""
    from ..io.orientation import check_orientation, rest_body_axis

    rest = None
    if hasattr(joints_or_clip, "source_skeleton") and hasattr(joints_or_clip, "mapping"):
        rest = rest_body_axis(joints_or_clip.source_skeleton, joints_or_clip.mapping)
    return check_orientation(joints, rest)


def fix_feet(joints_or_clip, method: str = "frdm", mode: str = "auto", overrides: Sequence | None = None,
             strength: float = 1.0, weights=None, device: str = "auto", progress: ProgressFn | None = None,
             cancel: threading.Event | None = None, fps: float | None = None, steps: int = DEFAULT_STEPS, seed: int = 0,
             sampler: SamplerConfig | None = None, has_toes: bool | None = None,
             backend: str = "auto", contacts: np.ndarray | None = None,
             orientation: str = "check", load_weights: WeightLoader | None = None,
             beats: str = "auto", drift_max_speed: float = DRIFT_MAX_SPEED,
             drift_evidence: int = MIN_DRIFT_EVIDENCE) -> FootFixResult:
    """Repair foot skating on one clip; the upper body keeps its pose relative to the root exactly.

    joints_or_clip: a :class:`io.BodyClip` (from ``load_body_clip``; toes synthesised for the rig are
    detected) or joints (T, 22, 3) in metres, Y up, 30 fps. method: "frdm" (needs ``weights``: a weight-set
    folder or loaded :class:`FRDMWeights`; without them the fix falls back to "ik_lock" and says so) or
    "ik_lock". mode: "auto" (plant the feet) or "grounding" (keep the feet on the floor but let them spin and
    slide). overrides: per-foot frame intervals forcing contact on or off (:class:`ContactOverride`, dicts or
    (foot, start, end, contact) tuples). strength: 0 (unchanged) .. 1 (full repair). steps/seed/sampler: the
    FRDM sampler. progress(stage, done, total) and the ``cancel`` event are checked between steps.
    weights given as a folder are loaded by ``load_weights(folder, backend, device) -> (FRDMWeights, notes)``
    (the runtime's backend choice: "auto", "torch" or "onnx"; the report's "backend" names the provider used,
    its notes any fallback); without a loader, :func:`load_on_torch`.
    has_toes: whether the toe joints are real (default: a BodyClip's mapping says; arrays: True); False plants
    the ankles only (toes made up from the ankles would plant the wrong point).
    contacts: (T, 2) bool per-foot contacts [left, right] to use instead of detecting them (e.g. the contact
    markers an animator edited); the ankle/toe split inside them is still detected. orientation: "check"
    refuses an upside-down, lying or Z-up-read-as-Y-up clip (:func:`io.orientation.check_orientation`) and
    notes a partly inverted one; "ignore" skips the check.
    beats: "keep" fades the fix out around any kinetic beat (minimum of the joints' mean speed) it would move,
    so the result has exactly the input's beats and the Beat Align Score does not change (a generated dance,
    a take: :func:`beats.keep_beats`); "free" lets the repair move them (a capture, whose slides and jitter
    make minima of their own); "auto": "free" for a loaded capture (a BodyClip), "keep" for joints.
    drift_max_speed: both planted feet moving alike up to this speed (m per frame at 30 fps) are the whole body
    drifting, and the root is shifted back by it (default 0.12 m/s: a capture drifts slowly, a faster glide
    is performed); an edit that moves the whole body on purpose (a path warp) passes more.
    drift_evidence: frames (within 25 of a frame) where both planted feet slide alike before the body counts
    as drifting there (default 12; a path warp, whose drift is certain, passes fewer).

    Legs whose bone lengths shake from frame to frame (joints from video or solved markers; a rig's bones
    are rigid) are low-passed first and put back on rigid bones (:func:`jitter.remove_leg_noise`; the root
    and the upper body stay): such a shake on a low foot reads as skating where nothing slides.
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
    if beats not in BEATS:
        raise FootFixError(f"beats must be one of {', '.join(BEATS)}, got '{beats}'")
    keep_motion_beats = beats == "keep" or (beats == "auto" and not hasattr(joints_or_clip, "mapping"))
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
              "beats": "keep" if keep_motion_beats else "free",
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
        report["unchanged"] = True
        return finish(joints.copy(), np.zeros((1, 2), bool), None, {})
    if float(np.abs(joints - joints[:1]).max()) < 1e-4:
        notes.append("the clip is a static pose (nothing moves by more than 0.1 mm): no foot skating to fix; "
                     "returned unchanged")
        info = detect_contacts(joints, fps, overrides, has_toes, v_th=V_TH_REPAIR, foot_contacts=contacts)
        report["unchanged"] = True
        return finish(joints.copy(), info.contacts, info.floor, {})

    check_cancel(cancel)
    progress("contacts", 0, 1)
    t0 = time.perf_counter()
    # marker noise first (it shows as skating where nothing slides); ``source`` is what the fix works on,
    # ``joints`` stays the input every result is judged against
    source, noise = remove_leg_noise(joints, has_toes, fps=fps, strength=strength)
    denoised = source is not joints
    report["leg_noise_mm"] = {s: round(1000 * float(n), 2) for s, n in zip(("left", "right"), noise)}
    if denoised:
        notes.append(f"removed the frame-to-frame shake of the legs (bone lengths scattered by up to "
                     f"{1000 * noise.max():.1f} mm: joints from video or solved markers, not a rig)")
    info = detect_contacts(source, fps, overrides, has_toes, v_th=V_TH_REPAIR, foot_contacts=contacts)
    notes.extend(info.notes)
    slides = measure_slides(source, info, fps, has_toes, drift_max_speed, drift_evidence)
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
    if not slides.slides and not denoised:
        if info.contacts.any():
            notes.append(f"already clean: no planted foot slides by more than {100 * SLIDE_TOLERANCE:.0f} cm; "
                         "returned unchanged")
        report["unchanged"] = True
        return finish(joints.copy(), info.contacts, info.floor, timings)

    def checked(out, contacts_used, floor, timings, repaired=True):
        """The fix, settled, unless it would raise FSR (then the input, unchanged, with a note). Settling: while
        the result still has sliding contacts (found afresh on it), the IK lock runs on it again (twice at
        most), so that fixing the result again changes (nearly) nothing."""
        for _ in range(SETTLE_PASSES if repaired else 0):
            again = detect_contacts(out, fps, overrides, has_toes, v_th=V_TH_REPAIR, foot_contacts=contacts)
            more = measure_slides(out, again, fps, has_toes, drift_max_speed, drift_evidence)
            if not more.slides:
                break
            # the root stays where the fix put it (the settling moves the legs only)
            out, _ = ik_lock(out, again, mode, strength, has_toes, slides=more, reach_shift=0.0, own_feet=joints)
        if keep_motion_beats:
            out, report["beats_protected"] = keep_beats(joints, out)
        # FSR judged on the detected floor and on the input's frame-0 floor (the metrics' own rule): a floor
        # that is not level (much CMU capture) may tell them apart, and the fix must raise neither
        raised = [(b, a) for b, a in (fsr_before_after(joints, out, f) for f in (floor, first_frame_floor(joints)))
                  if b is not None and a is not None and a["mean"] > b["mean"] + 1e-9]
        if raised and denoised and repaired:
            # the slide repair raised FSR: the shake removal alone may still help
            notes.append(f"the {used.replace('_', ' ')} slide repair would have raised FSR; only the shake was removed")
            return checked(source, contacts_used, floor, timings, repaired=False)
        if raised:
            before, after = raised[0]
            notes.append(f"the {used.replace('_', ' ')} fix would have raised FSR ({100 * before['mean']:.1f} % -> "
                         f"{100 * after['mean']:.1f} %); returned unchanged (edit the contacts or try the other "
                         "method)")
            report["unchanged"] = True
            return finish(joints.copy(), contacts_used, floor, timings)
        report["unchanged"] = False
        return finish(out, contacts_used, floor, timings)

    if not slides.slides:                       # only the shake was there to remove
        notes.append(f"no planted foot slides by more than {100 * SLIDE_TOLERANCE:.0f} cm once the shake is removed")
        return checked(source, info.contacts, info.floor, timings, repaired=False)
    if used == "ik_lock":
        t0 = time.perf_counter()
        out, _ = ik_lock(source, info, mode, strength, has_toes, slides=slides, own_feet=joints)
        timings["ik_lock"] = time.perf_counter() - t0
        check_cancel(cancel)
        progress("legs", 1, 1)
        return checked(out, info.contacts, info.floor, timings)

    t0 = time.perf_counter()
    if isinstance(weights, FRDMWeights):
        w = weights
    else:
        w, load_notes = (load_weights or load_on_torch)(weights, backend, device)
        notes.extend(load_notes)
    report["weights"] = str(w.folder) if w.folder else None
    report["backend"] = w.device if isinstance(w.device, str) else f"torch {w.device}"
    timings["load_weights"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    # the slide of the planted feet comes out of the root first (the same shift as ik_lock's): the geometric
    # guidance then pulls the root towards a path the feet can stand on, and the travel between plants stays
    drift = slides.root_shift if mode == "auto" else np.zeros((t_len, 3))
    x_in, canon = motion_features(source + drift[:, None])
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
    shifted = source + s * drift[:, None]
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
    root_new = root_new + reach_correction(source, root_new, ankle_t, active, reach=0.99,
                                           limit=np.minimum(moved, REACH_SHIFT))
    changed = active | root_moved(root_new - joints[:, 0])[:, None]
    out = solve_legs(source, root_new, pole, ankle_t, toe_t if has_toes else None, changed, own_feet=joints)
    timings["legs"] = time.perf_counter() - t0
    progress("legs", 1, 1)
    return checked(out, info.contacts, info.floor, timings)

