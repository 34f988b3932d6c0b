# SPDX-License-Identifier: GPL-3.0-or-later
"""Blender side of Choreo: everything that imports bpy lives in this package.

Model and motion maths live in ``..core_models``; modules here import it lazily inside operators so the
add-on registers (and shows what is missing) even before its Python dependencies are installed.
"""
from . import foot_fix, generate, jobs, library, operators, panels, preferences, properties

_modules = (preferences, properties, operators, generate, foot_fix, library, panels)


def register():
    for module in _modules:
        module.register()


def unregister():
    jobs.shutdown()
    for module in reversed(_modules):
        module.unregister()
