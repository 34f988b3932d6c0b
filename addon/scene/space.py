# SPDX-License-Identifier: GPL-3.0-or-later
"""The one place where core space (Y up, body faces +Z) meets Blender space (Z up, body faces -Y)."""
from __future__ import annotations

import numpy as np

# Column vectors: blender = CORE_TO_BLENDER @ core, i.e. (x, y, z) -> (x, -z, y). A proper rotation
# (+90 degrees about X), so quaternions convert by rotating their vector part.
CORE_TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
BLENDER_TO_CORE = CORE_TO_BLENDER.T


def to_blender(points: np.ndarray) -> np.ndarray:
    """Positions or directions (..., 3) from core space to Blender space."""
    return np.asarray(points, dtype=np.float64) @ CORE_TO_BLENDER.T


def to_core(points: np.ndarray) -> np.ndarray:
    return np.asarray(points, dtype=np.float64) @ BLENDER_TO_CORE.T

