# SPDX-License-Identifier: GPL-3.0-or-later
"""The foot fix as an edit of a take: the take's body is repaired (:func:`..footfix.fix_feet`; a generated
dance keeps its beat frames) and written back onto the take's own skeleton by the one rig solver
(:func:`..rig.solver.solve_fix`): the root's position and the legs' rotations change, every other rotation
stays the take's exactly. A new take with the fix in its history; the take given is not changed."""
from __future__ import annotations

import numpy as np

from ..rig.solver import LEG_CHAINS, RigPose, solve_fix
from ..rotations import matrix_to_quat, quat_fix_continuity, quat_to_matrix
from .take import Take


def fix_take_feet(take: Take, **fix_options) -> tuple[Take, dict]:
    """(new take, the foot fix's report). ``fix_options`` go to :func:`..footfix.fix_feet` (method, weights,
    strength, contacts, ...); the beats are kept unless ``beats`` says otherwise."""
    from ..footfix import fix_feet

    before = take.joints()
    result = fix_feet(before, **{"beats": "keep", **fix_options, "fps": take.fps})
    report = dict(result.report, notes=list(result.notes))
    edit = {"edit": "fix_feet", "method": report.get("method"), "unchanged": bool(report.get("unchanged"))}
    if report.get("unchanged"):
        return take.with_motion(take.rotations.copy(), take.root.copy(), edit), report
    names = list(take.skeleton.names)
    legs = {side: tuple(names.index(c) for c in chain) for side, chain in LEG_CHAINS.items()}
    root_bone = names.index("pelvis")
    pose = RigPose.from_local(take.skeleton.parents, take.skeleton.offsets, quat_to_matrix(take.rotations),
                              take.root, take.fps)
    edits = solve_fix(pose, legs, root_bone, before, result.joints, motion_fps=take.fps)
    rotations, root = take.rotations.copy(), take.root.copy()
    root[edits.root_frames] += edits.root_delta[edits.root_frames]
    for j, local in edits.rotations.items():
        frames = edits.rotation_frames[j]
        rotations[frames, j] = matrix_to_quat(local[frames])
        rotations[:, j] = quat_fix_continuity(rotations[:, j])      # no sign flip against the frames kept
    report["notes"] += edits.notes
    return take.with_motion(rotations, root, edit), report
