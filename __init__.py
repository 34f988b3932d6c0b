# SPDX-License-Identifier: GPL-3.0-or-later
"""Choreo Blender extension entry point."""
from .addon import register, unregister  # noqa: F401
