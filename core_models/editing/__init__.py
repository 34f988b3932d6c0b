# SPDX-License-Identifier: GPL-3.0-or-later
"""Choreography as an editing loop on takes: regenerate a range, hold a key pose, follow a path, repeat and
mirror phrases. A take is a generated dance with what made it (:mod:`.take`); every edit returns a new take
and never changes the one it was given."""
from .take import EditError, Take, load_take, save_take, take_from_generation

__all__ = ["EditError", "Take", "load_take", "save_take", "take_from_generation"]
