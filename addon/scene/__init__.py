# SPDX-License-Identifier: GPL-3.0-or-later
"""The add-on's lower layer: what the operators share, and no operators.

    settings    the preferences: folders, hints for the panels, the Runtime (device, dtype, backend)
    library     the reference library as the scene sees it (opened, mirrored into the panel's list)
    timeline    scene fps, sound strips, the span of music a dance is made for
    rig         a rig's active action, its bone map and its pose read on every frame
    dancer      the SMPL-X dancer armature (built, keyed with a motion, removed)
    keyframes   core Motion <-> Blender actions and F-curves
    space       core axes (Y up) <-> Blender axes (Z up)
    report      how an operator ends: a failure shown in the UI, or its work started as a job

Modules here import each other downwards only (settings and space at the bottom), ``..jobs`` and the core.
"""
