# SPDX-License-Identifier: GPL-3.0-or-later
"""A repaired body written back onto the original BVH rig: root translation and leg rotations only.

The BVH adapter of the rig solver (:func:`core_models.rig.solve_fix`): the clip's forward kinematics become a
:class:`~core_models.rig.RigPose`, and the solver's edits go into the root joint's position channels and the
hip, knee and ankle joints' rotation channels. Every other channel keeps its value bit for bit, and so do the
frames the fix does not change.
"""
from __future__ import annotations

import numpy as np

from ..rig import LEG_CHAINS, RigPose, leg_bones, solve_fix
from .bvh import BvhClip, matrix_to_bvh_euler


class RigFixError(ValueError):
    """The rig cannot take the repair directly (the caller writes the canonical body instead)."""


def apply_fix_to_bvh(clip: BvhClip, body, fixed_joints: np.ndarray) -> tuple[BvhClip, list[str]]:
    """A copy of ``clip`` whose root translation and leg rotations reproduce ``fixed_joints``.

    clip: the BVH as read; body: its :class:`BodyClip` (mapping, unit scale, up axis, rates); fixed_joints:
    (T, 22, 3) repaired canonical joints at ``body.fps``. Returns the new clip and notes. Raises
    :class:`RigFixError` when the rig's root has no position channels.
    """
    fixed_joints = np.asarray(fixed_joints, np.float64)
    if fixed_joints.shape != body.joints.shape:
        raise RigFixError(f"fixed joints {fixed_joints.shape} do not match the clip's body {body.joints.shape}")
    root = [j for j, p in enumerate(clip.parents) if p < 0][0]
    axis_col = {c[0]: clip.channel_columns(root).start + k for k, c in enumerate(clip.channels[root])
                if c.endswith("position")}
    if len(axis_col) != 3:
        raise RigFixError(f"the rig's root '{clip.names[root]}' has no X/Y/Z position channels to move")
    legs, notes = leg_bones(clip.names, clip.is_end_site, body.mapping)
    for side, bones in list(legs.items()):
        if any(len(clip.rotation_order(b)) != 3 or len(set(clip.rotation_order(b))) != 3 for b in bones[:3]):
            notes.append(f"{side} leg: a leg bone has no full XYZ rotation channels; its rotations are kept")
            del legs[side]
    glob_r, glob_p = clip.global_transforms()
    rig = RigPose(clip.parents, glob_r, glob_p, body.source_fps, up_axis=body.up_axis,
                  unit_scale=body.unit_scale, local_rotations=clip.local_rotation_matrices())
    edits = solve_fix(rig, legs, root, body.joints, fixed_joints, motion_fps=body.fps)
    out = clip.copy()
    moved = edits.root_frames
    for a, axis in enumerate("XYZ"):
        out.motion[moved, axis_col[axis]] = clip.motion[moved, axis_col[axis]] + edits.root_delta[moved, a]
    for j, local in edits.rotations.items():
        sel = edits.rotation_frames[j]
        cols = [clip.channel_columns(j).start + k for k, c in enumerate(clip.channels[j]) if c.endswith("rotation")]
        old = clip.motion[:, cols]
        new = matrix_to_bvh_euler(local, clip.rotation_order(j))
        new = old + (new - old + 180.0) % 360.0 - 180.0          # closest to the original curves
        out.motion[np.ix_(sel, cols)] = new[sel]
    return out, notes + edits.notes


def upper_body_channels_identical(original: BvhClip, fixed: BvhClip, body) -> bool:
    """True when every channel of every bone outside the legs (and the root's rotation) is bit-identical."""
    legs = set()
    index = {n: i for i, n in enumerate(original.names)}
    for side_bones in LEG_CHAINS.values():
        for c in side_bones[:3]:
            name = body.mapping.source_for.get(c)
            if name in index:
                legs.add(index[name])
    for j in range(original.num_joints):
        cols = original.channel_columns(j)
        ch = original.channels[j]
        keep = [cols.start + k for k, c in enumerate(ch)
                if not (j in legs and c.endswith("rotation")) and not (original.parents[j] < 0 and c.endswith("position"))]
        if keep and not np.array_equal(original.motion[:, keep], fixed.motion[:, keep]):
            return False
    return True


__all__ = ["RigFixError", "apply_fix_to_bvh", "upper_body_channels_identical"]
