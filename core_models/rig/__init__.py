# SPDX-License-Identifier: GPL-3.0-or-later
"""Rigs as arrays: putting canonical-body motion onto a rig's own channels (:mod:`core_models.rig.solver`).

The BVH writer (``io.rig_fix``) and the Blender add-on describe their rig as a :class:`RigPose` and apply the
:class:`RigEdits` that :func:`solve_fix` returns; a retarget onto another rig builds on the same solver.
"""
from .solver import LEG_CHAINS, RigEdits, RigPose, leg_bones, resample_to_frames, solve_fix

__all__ = ["LEG_CHAINS", "RigEdits", "RigPose", "leg_bones", "resample_to_frames", "solve_fix"]
