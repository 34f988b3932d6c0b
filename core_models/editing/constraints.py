# SPDX-License-Identifier: GPL-3.0-or-later
"""Constraints an animator puts on a take: a key pose at a frame, a path for the root to follow.

* :func:`hold_key_pose` -- the take passes through a pose at a frame: each joint carries the rotation offset
  that turns its own pose into the key's, full at the key frame and fading out smoothly within ``window_s``
  on both sides (a local warp; the rest of the take is untouched). The key keeps the take's facing there.
* :func:`follow_path` -- the root's slow path (seconds long) is replaced by a curve, walked at the take's own
  pace; the quick part of the root's motion (steps, sways) stays, limited to stay near the curve; the feet
  are then re-planted with the IK foot fix on the take's own contacts, so they do not slide along the warp.
"""
from __future__ import annotations

import numpy as np

from ..stage import slow_path
from .frames import dancer_frame_joints, facing_yaw, turn_root
from .seams import carry_offset, smoothstep
from .take import BODY_JOINTS, EditError, Take

KEY_WINDOW_S = 0.6
KEY_STIFFNESS_M = 0.01         # a key's rotation offsets cost 1 cm per radian: reach the pose, do not twist
PATH_SWAY_LIMIT_M = 0.06       # the root's quick motion kept within this distance of the curve
PATH_TOLERANCE_M = 0.14        # ... and the re-planted root within this one
REPLANT_STRENGTHS = (1.0, 0.75, 0.5, 0.35, 0.25, 0.15)
PATH_SMOOTH_S = 1.0            # time scale separating the root's slow path from steps and sways
PATH_DRIFT_MAX_SPEED = 0.024   # m/frame: the warp moves the whole body on purpose, planted feet and all, so
                               # the foot fix takes their common slide as drift up to this speed (0.72 m/s)
PATH_DRIFT_EVIDENCE = 3        # frames of both feet sliding alike: enough where the warp is known to move them


def key_error(take: Take, frame: int, key_joints: np.ndarray, key_yaw: float) -> float:
    """Largest distance (m) between the take's pose at ``frame`` and the key's (pelvis-relative, facing +Z)."""
    joints = take.joints()[frame:frame + 1]
    ours = dancer_frame_joints(joints, facing_yaw(take.rotations[frame:frame + 1, 0]))[0]
    theirs = dancer_frame_joints(key_joints[None, :BODY_JOINTS], np.array([key_yaw]))[0]
    return float(np.linalg.norm(ours - theirs, axis=-1).max())


def reach_pose(skeleton, rotations: np.ndarray, target: np.ndarray, stiffness: float = KEY_STIFFNESS_M) -> np.ndarray:
    """(J, 4) ``rotations`` of one pose adjusted so its joints, pelvis-relative and facing +Z, come as close
    as the skeleton's bones allow to ``target`` ((J, 3), the same frame): least squares over a rotation
    offset per joint, each offset costing ``stiffness`` metres per radian so the pose changes no more than
    it must (a bone longer than the target's bends its joint instead of overshooting)."""
    from scipy.optimize import least_squares

    from ..kinematics import forward_kinematics
    from ..rotations import axis_angle_to_quat, quat_mul

    base = np.asarray(rotations, np.float64)
    count = base.shape[0]
    origin = np.zeros(3)

    def pose(delta: np.ndarray) -> np.ndarray:
        return quat_mul(base, axis_angle_to_quat(delta.reshape(count, 3)))

    def residual(delta: np.ndarray) -> np.ndarray:
        q = pose(delta)
        joints = forward_kinematics(q[None], origin[None], skeleton)
        ours = dancer_frame_joints(joints, facing_yaw(q[None, 0]))[0]
        return np.concatenate([(ours - target).ravel(), stiffness * delta])

    fit = least_squares(residual, np.zeros(count * 3), method="lm", max_nfev=4000)
    return pose(fit.x)


def key_from_joints(take: Take, joints: np.ndarray, frame: int, at: int, yaw: float | None = None) -> np.ndarray:
    """(J, 4) key rotations on the take's skeleton for the pose at ``frame`` of a clip given as joints
    ((T, 22, 3), e.g. a library clip or a take with another body): solved by IK on a few frames around it
    (one frame alone gives the solver no motion to keep its twists steady), then reached for joint by joint
    (:func:`reach_pose`: the clip's bones are not the take's); the joints the clip lacks (hands, face) keep
    the take's pose at take frame ``at``. ``yaw``: the clip's facing at ``frame`` when it is known (a take's
    root rotation), so the key faces as :func:`key_error` measures it; else the facing IK finds."""
    from ..io.motion_file import body_motion_from_joints
    from ..kinematics import project_to_skeleton

    joints = np.asarray(joints, np.float64)
    if not 0 <= frame < joints.shape[0]:
        raise EditError(f"frame {frame} is outside the clip (frames 0-{joints.shape[0] - 1}): choose a frame of it")
    lo, hi = max(0, frame - 2), min(joints.shape[0], frame + 3)
    skeleton = take.skeleton.subset(BODY_JOINTS)
    body = body_motion_from_joints(project_to_skeleton(joints[lo:hi, :BODY_JOINTS], skeleton), take.fps,
                                   skeleton=skeleton)
    key = take.rotations[min(max(at, 0), take.num_frames - 1)].copy()
    facing = facing_yaw(body.rotations[frame - lo:frame - lo + 1, 0]) if yaw is None else np.array([yaw])
    target = dancer_frame_joints(joints[frame:frame + 1, :BODY_JOINTS], facing)[0]
    key[:BODY_JOINTS] = reach_pose(skeleton, body.rotations[frame - lo], target)
    return key


def chain_lengths(skeleton) -> np.ndarray:
    """(J,) the length of bone from the pelvis to each joint along the hierarchy (m)."""
    bones = np.linalg.norm(skeleton.offsets, axis=-1)
    reach = np.zeros(skeleton.num_joints)
    for j, p in enumerate(skeleton.parents):
        if p >= 0:
            reach[j] = reach[p] + bones[j]
    return reach


def key_for_body(take: Take, other: Take, frame: int, at: int) -> tuple[np.ndarray, float]:
    """The key rotations for take frame ``at`` from ``other``'s pose at ``frame``, and the largest difference
    in reach (:func:`chain_lengths`, m) between the two bodies. The same body takes the rotations as they are; another body
    (takes generated apart fit their own skeletons) gets the pose reached joint by joint on the take's bones
    (:func:`key_from_joints`), its hands and face as ``other`` holds them. What stays of the key error is
    then about the bodies' difference: legs 3 cm shorter cannot put the ankle where the longer legs had it
    when they were straight."""
    if tuple(take.skeleton.names) != tuple(other.skeleton.names):
        raise EditError("the key's take has other joints than this one (a different skeleton layout): key from "
                        "a take that Choreo generated, or from a library clip")
    ours, theirs = take.skeleton.subset(BODY_JOINTS), other.skeleton.subset(BODY_JOINTS)
    difference = float(np.abs(chain_lengths(ours) - chain_lengths(theirs)).max())
    if np.array_equal(take.skeleton.offsets, other.skeleton.offsets):
        return other.rotations[frame].copy(), difference
    key = key_from_joints(take, other.joints(), frame, at, yaw=float(facing_yaw(other.rotations[frame:frame + 1, 0])[0]))
    key[BODY_JOINTS:] = other.rotations[frame, BODY_JOINTS:]
    return key, difference


def hold_key_pose(take: Take, frame: int, key_rotations: np.ndarray, window_s: float = KEY_WINDOW_S,
                  source: str = "") -> tuple[Take, dict]:
    """A new take that holds the pose ``key_rotations`` ((J, 4) local rotations, root included) at ``frame``.

    ``source`` is recorded in the take's history (e.g. "other.npz:120")."""
    if not 0 <= frame < take.num_frames:
        raise EditError(f"the key frame {frame} is outside the take (frames 0-{take.num_frames - 1}); "
                        "choose a frame the take covers")
    key = np.array(key_rotations, np.float64)
    if key.shape != (take.skeleton.num_joints, 4):
        raise EditError(f"a key pose has {take.skeleton.num_joints} joint rotations; got {key.shape}")
    # the key's tilt and pose, turned to face the way the take faces at that frame
    key[0] = turn_root(key[None, 0], facing_yaw(take.rotations[frame:frame + 1, 0]) - facing_yaw(key[None, 0]))[0]
    half = max(1, int(round(window_s * take.fps)))
    lo, hi = max(0, frame - half), min(take.num_frames, frame + half + 1)
    distance = np.abs(np.arange(lo, hi) - frame) / (half + 1.0)
    weight = smoothstep(1.0 - distance)
    rotations = take.rotations.copy()
    rotations[lo:hi] = carry_offset(key, take.rotations[frame], rotations[lo:hi], weight)
    edit = {"edit": "key_pose", "frame": int(frame), "window_s": float(window_s), "source": source}
    new = take.with_motion(rotations, take.root, edit)
    return new, {"key_frame": int(frame), "window_frames": [int(lo), int(hi)]}


def _polyline(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) points without repeats and their cumulative arc length."""
    keep = np.concatenate([[True], np.linalg.norm(np.diff(points, axis=0), axis=-1) > 1e-6])
    pts = points[keep]
    length = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=-1))])
    return pts, length


def _along(pts: np.ndarray, length: np.ndarray, s: np.ndarray) -> np.ndarray:
    return np.stack([np.interp(s, length, pts[:, 0]), np.interp(s, length, pts[:, 1])], axis=-1)


def distance_to_polyline(p: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """(T,) distance of (T, 2) points to the polyline (N, 2)."""
    a, b = pts[:-1], pts[1:]
    ab = b - a
    t = np.clip(np.einsum("tnk,nk->tn", p[:, None] - a[None], ab) / np.maximum((ab * ab).sum(-1), 1e-12), 0, 1)
    closest = a[None] + t[..., None] * ab[None]
    return np.linalg.norm(p[:, None] - closest, axis=-1).min(axis=1)


def replant_feet(joints: np.ndarray, original: np.ndarray, path: np.ndarray, fps: float, fsr_limit: float):
    """The IK foot fix of path-warped ``joints`` on the original take's contacts, as strong as it can be while
    the root stays within PATH_TOLERANCE_M of the path and FSR at most ``fsr_limit``: (joints, strength), or
    None when no strength does better than leaving the feet as warped."""
    from ..footfix import detect_contacts, fix_feet
    from ..metrics import foot_skating_ratio

    contacts = detect_contacts(original, fps).contacts
    best = None
    for strength in REPLANT_STRENGTHS:
        fixed = fix_feet(joints, method="ik_lock", contacts=contacts, fps=fps, orientation="ignore",
                         strength=strength, drift_max_speed=PATH_DRIFT_MAX_SPEED,
                         drift_evidence=PATH_DRIFT_EVIDENCE)
        if fixed.report.get("unchanged"):
            continue
        off_path = distance_to_polyline(fixed.joints[:, 0, [0, 2]], path).max()
        fsr = foot_skating_ratio(fixed.joints, fps)["mean"]
        if off_path <= PATH_TOLERANCE_M and fsr <= fsr_limit and (best is None or fsr < best[2]):
            best = (fixed.joints, strength, fsr)
    return None if best is None else best[:2]


def follow_path(take: Take, points, stage: tuple | None = None, replant: bool = True) -> tuple[Take, dict]:
    """A new take whose root follows the curve through ``points`` ((N, 3) metres, Y up, or (N, 2) ground x, z).

    ``stage``: optional ((x_min, z_min), (x_max, z_max)) rectangle the root must stay in."""
    from ..io.motion_file import body_motion_from_joints
    from ..metrics import foot_skating_ratio

    pts = np.asarray(points, np.float64)
    if pts.ndim != 2 or pts.shape[0] == 0 or pts.shape[1] not in (2, 3):
        raise EditError("the path has no points: give a curve with at least two points ([[x, y, z], ...] in "
                        "metres, Y up)")
    pts = pts[:, [0, 2]] if pts.shape[1] == 3 else pts
    if not np.isfinite(pts).all():
        raise EditError("the path has points that are not numbers")
    pts, length = _polyline(pts)
    if pts.shape[0] < 2:
        raise EditError("the path has fewer than two distinct points; draw a curve with some length")
    if stage is not None:
        lo, hi = np.asarray(stage[0], float), np.asarray(stage[1], float)
        if not (hi > lo).all():
            raise EditError("the stage rectangle must have its minimum corner below its maximum corner")
        if (pts < lo).any() or (pts > hi).any():
            raise EditError("the path leaves the stage rectangle; move the curve inside the stage or widen it")
    ground = take.root[:, [0, 2]]
    slow = slow_path(ground, PATH_SMOOTH_S * take.fps)
    sway = ground - slow
    scale = min(1.0, PATH_SWAY_LIMIT_M / max(float(np.linalg.norm(sway, axis=-1).max()), 1e-9))
    travelled = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(slow, axis=0), axis=-1))])
    pace = travelled / travelled[-1] if travelled[-1] > 1e-6 else np.linspace(0.0, 1.0, take.num_frames)
    target = _along(pts, length, pace * length[-1]) + scale * sway
    if stage is not None:
        target = np.clip(target, lo, hi)
    root = take.root.copy()
    root[:, 0], root[:, 2] = target[:, 0], target[:, 1]
    moved = take.with_motion(take.rotations, root, {})
    joints_before = take.joints()
    joints = moved.joints()
    report = {"path_length_m": float(length[-1]), "sway_scale": float(scale),
              "fsr_before": foot_skating_ratio(joints_before, take.fps)["mean"]}
    rotations = moved.rotations
    if replant:
        fixed = replant_feet(joints, joints_before, pts, take.fps, report["fsr_before"])
        if fixed is not None:
            body = body_motion_from_joints(fixed[0], take.fps, skeleton=take.skeleton.subset(BODY_JOINTS))
            rotations = take.rotations.copy()
            rotations[:, :BODY_JOINTS] = body.rotations
            root = body.root_translation
            report["replant_strength"] = fixed[1]
        else:
            report["replant_strength"] = 0.0
    new = take.with_motion(rotations, root, {"edit": "path", "points": pts.tolist(),
                                             "stage": None if stage is None else [list(lo), list(hi)]})
    after = new.joints()
    report.update({
        "root_to_path_max_m": float(distance_to_polyline(after[:, 0, [0, 2]], pts).max()),
        "fsr_after": foot_skating_ratio(after, take.fps)["mean"]})
    return new, report

