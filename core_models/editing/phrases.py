# SPDX-License-Identifier: GPL-3.0-or-later
"""Repeat a phrase of a take somewhere else in it, optionally mirrored left/right in the dancer's own frame.

The copy starts where the dancer stands at the target time and turned the way it faces there, so the seam
needs no jump; the horizontal gap between where the copy ends and where the take goes on is spread evenly
over the copy, and both ends are blended in rotation space (:mod:`.seams`).
"""
from __future__ import annotations

import numpy as np

from ..skeleton import mirror_index
from .frames import dancer_frame_joints, facing_yaw, mean_yaw, rotate_about_y, turn_root
from .seams import close_gap, margin_frames, seam_report, splice
from .take import BODY_JOINTS, EditError, Take

FACING_FRAMES = 8          # frames whose mean facing defines the phrase's direction


def mirror_quaternions(q: np.ndarray) -> np.ndarray:
    """Rotations reflected through the body's left/right (YZ) plane: (w, x, y, z) -> (w, x, -y, -z)."""
    out = np.array(q, np.float64, copy=True)
    out[..., 2:] *= -1.0
    return out


def mirror_pose(rotations: np.ndarray, names) -> np.ndarray:
    """Local rotations of the mirror-image pose: left and right joints swapped, each one reflected."""
    return mirror_quaternions(rotations[:, mirror_index(tuple(names))])


def mirror_joints(joints: np.ndarray, names) -> np.ndarray:
    """Joint positions mirrored through x = 0 with left and right swapped (for checking a mirrored copy)."""
    out = joints[:, mirror_index(tuple(names))].copy()
    out[..., 0] *= -1.0
    return out


def phrase_copy(take: Take, start: int, end: int, at: int, mirror: bool) -> tuple[np.ndarray, np.ndarray]:
    """Frames [start, end) of the take, placed to begin at frame ``at`` (rotations, root)."""
    rot = take.rotations[start:end].copy()
    root = take.root[start:end].copy()
    yaw_src = mean_yaw(rot[:FACING_FRAMES, 0])
    yaw_dst = mean_yaw(take.rotations[at:at + FACING_FRAMES, 0])
    # into the phrase's own frame: facing +Z, starting over the origin
    rel = rotate_about_y(-yaw_src, root - root[:1] * np.array([1.0, 0.0, 1.0]))
    rot[:, 0] = turn_root(rot[:, 0], -yaw_src)
    if mirror:
        rot = mirror_pose(rot, take.skeleton.names)
        rel[:, 0] *= -1.0
    rot[:, 0] = turn_root(rot[:, 0], yaw_dst)
    placed = rotate_about_y(yaw_dst, rel) + take.root[at] * np.array([1.0, 0.0, 1.0])
    return rot, placed


def repeat_phrase(take: Take, start: int, end: int, at: int, mirror: bool = False,
                  margin_s: float | None = None) -> tuple[Take, dict]:
    """A new take with frames [start, end) copied to begin at ``at`` (mirrored when asked); a report of the
    seams. The original take is not changed."""
    n = end - start
    if n < 2:
        raise EditError("the phrase to repeat is empty: its end must come after its start")
    if start < 0 or end > take.num_frames:
        raise EditError(f"the phrase {start}-{end} is outside the take (frames 0-{take.num_frames})")
    if at < 0 or at + n > take.num_frames:
        raise EditError(f"the copy at frame {at} needs {n} frames, but the take ends at frame {take.num_frames}: "
                        "choose an earlier target or a shorter phrase")
    if at < end and start < at + n:
        what = "a mirrored repeat" if mirror else "a repeat"
        raise EditError(f"{what} onto itself: the target frames {at}-{at + n} overlap the phrase {start}-{end}; "
                        "choose a target after the phrase ends or before it starts")
    rot, root = phrase_copy(take, start, end, at, mirror)
    closing = {"end_turn_deg": 0.0, "end_gap_m": 0.0}
    if at + n < take.num_frames:
        rot[:, 0], root, closing = close_gap(rot[:, 0], root, take.rotations[at + n, 0], take.root[at + n])
    margin = margin_frames(n, take.fps) if margin_s is None else margin_frames(n, take.fps, margin_s)
    new_rot, new_root = splice(take.rotations, take.root, rot, root, at, margin)
    edit = {"edit": "repeat", "from_frames": [int(start), int(end)], "at_frame": int(at), "mirror": bool(mirror)}
    new = take.with_motion(new_rot, new_root, edit)
    before, after = take.joints(), new.joints()
    report = {"range_frames": [int(at), int(at + n)], "source_frames": [int(start), int(end)],
              "mirror": bool(mirror), "margin_frames": int(margin),
              "copy_error_m": copy_error(take, new, before, after, start, at, n, margin, mirror), **closing,
              "seams": seam_report(before, after, [at, at + n], margin, take.fps)}
    return new, report


def copy_error(take: Take, new: Take, before: np.ndarray, after: np.ndarray, start: int, at: int, n: int,
               margin: int, mirror: bool) -> float:
    """Largest distance (m) between the copy in ``new`` (joints ``after``) and the phrase of ``take`` (joints
    ``before``) it copies, mirrored when it was, both pelvis-relative and facing +Z, away from the margins."""
    src = dancer_frame_joints(before[start:start + n], facing_yaw(take.rotations[start:start + n, 0]))
    if mirror:
        src = mirror_joints(src, take.skeleton.names[:BODY_JOINTS])
    copy = dancer_frame_joints(after[at:at + n], facing_yaw(new.rotations[at:at + n, 0]))
    inner = slice(margin, n - margin) if n > 2 * margin else slice(0, n)
    return float(np.linalg.norm(src - copy, axis=-1)[inner].max())
