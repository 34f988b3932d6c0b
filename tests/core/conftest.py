# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared fixtures for core tests: synthetic motion made in code, and a few real mocap files when present."""
from pathlib import Path

import pytest

from core_models.data import mocap_sample
from motion_fixture import make_dance  # noqa: F401  (core tests import it from here)


@pytest.fixture
def dance():
    return make_dance()


# --- real data: CHOREO_MOCAP_DIR, else the cache of a full extraction, else a few members of the archives ---
MOCAP_SAMPLES = {
    "bandai": [f"dataset/Bandai-Namco-Research-Motiondataset-1/data/{n}" for n in
               ("dataset-1_bye_feminine_001.bvh", "dataset-1_walk-left_tired_001.bvh", "dataset-1_bye_active_001.bvh")],
    "cmu": [f"cmu_salsa/{n}" for n in ("61_11_scaled.bvh", "61_07_scaled.bvh")],
}


@pytest.fixture(scope="session")
def mocap(tmp_path_factory):
    """dict kind -> list of sample BVH paths, or kind -> skip reason (str)."""
    return {kind: mocap_sample(kind, rel, tmp_path_factory.mktemp(f"mocap_{kind}"))
            for kind, rel in MOCAP_SAMPLES.items()}


def need_mocap(mocap, kind) -> list[Path]:
    """The sample files of ``kind``, or skip the test saying why they are absent."""
    if isinstance(mocap[kind], str):
        pytest.skip(mocap[kind])
    return mocap[kind]
