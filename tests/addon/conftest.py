# SPDX-License-Identifier: GPL-3.0-or-later
"""Real Blender (the bpy wheel) with its user folders redirected to a temporary directory.

The environment must be set before bpy is imported, so it happens at collection time here.
"""
import os
import shutil
import tempfile

import pytest

BLENDER_HOME = tempfile.mkdtemp(prefix="choreo-blender-")
os.environ["BLENDER_USER_RESOURCES"] = BLENDER_HOME
os.environ["XDG_CACHE_HOME"] = os.path.join(BLENDER_HOME, "cache")

bpy = pytest.importorskip("bpy", reason="the bpy wheel is not installed (make test installs it)")


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(BLENDER_HOME, ignore_errors=True)
