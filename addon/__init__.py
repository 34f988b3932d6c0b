# SPDX-License-Identifier: GPL-3.0-or-later
"""Blender side of Choreo: everything that imports bpy lives in this package."""

_modules = []


def register():
    for module in _modules:
        module.register()


def unregister():
    for module in reversed(_modules):
        module.unregister()
