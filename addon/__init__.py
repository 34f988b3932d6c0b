# SPDX-License-Identifier: GPL-3.0-or-later
"""Blender side of Choreo: everything that imports bpy lives in this package.

Layers, each importing only those below it:
  panels, preferences, properties          UI and stored settings
  ops_generate, ops_foot_fix, ops_library,  the operators, one module per panel section (they never import
  ops_motion, ops_takes, ops_rig            each other)
  scene/                                    what operators share: settings, rig, dancer, timeline, library,
                                            keyframes, space, report, takes (no operators)
  jobs                                      long work off the main thread, and its Cancel operator
  ..core_models                             model and motion maths (no bpy)

Model code in ``..core_models`` is imported lazily inside operators so the add-on registers (and shows what
is missing) even before its Python dependencies are installed; only numpy-only core modules (skeleton,
motion, rotations, progress) are imported when the add-on loads.
"""
from . import (jobs, ops_foot_fix, ops_generate, ops_library, ops_motion, ops_rig, ops_takes, panels, preferences,
               properties)

_modules = (preferences, properties, jobs, ops_motion, ops_rig, ops_generate, ops_takes, ops_foot_fix, ops_library,
            panels)


def register():
    for module in _modules:
        module.register()


def unregister():
    jobs.shutdown()
    for module in reversed(_modules):
        module.unregister()
