# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared fixtures for core tests: synthetic motion made in code, and a few real mocap files when present."""
from pathlib import Path

import numpy as np
import pytest

from core_models.data import mocap_sample
from core_models.kinematics import forward_kinematics
from core_models.rotations import axis_angle_to_quat
from core_models.skeleton import default_skeleton


def make_dance(frames: int = 300, seed: int = 0, spin: float = 1.3, joints: int = 22):
    """A smooth random motion on the default skeleton: (rotations, root, skeleton, joints)."""
    skel = default_skeleton(body_only=joints == 22)
    rng = np.random.default_rng(seed)
    t = np.linspace(0, frames / 30.0, frames)[:, None, None]
    aa = 0.5 * np.sin(t * rng.uniform(0.5, 3, size=(1, skel.num_joints, 3)) + rng.uniform(0, 6, size=(1, skel.num_joints, 3)))
    aa[:, 0] = 0.0
    aa[:, 0, 1] = t[:, 0, 0] * spin
    rot = axis_angle_to_quat(aa)
    root = np.stack([np.sin(t[:, 0, 0]), np.full(frames, skel.offsets[0, 1]), 0.1 * t[:, 0, 0]], axis=-1)
    return rot, root, skel, forward_kinematics(rot, root, skel)


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
