# SPDX-License-Identifier: GPL-3.0-or-later
"""Keeping a generated dancer on stage and on the floor (core_models.stage) and the travel metric."""
import numpy as np
import pytest

from core_models.features import features_to_joints, joints_to_features
from core_models.metrics import root_travel
from core_models.skeleton import default_skeleton
from core_models.kinematics import forward_kinematics
from core_models.rotations import quat_identity
from core_models.stage import STAGE_LIMIT_M, ground_feet, keep_on_stage

FEET = [7, 10, 8, 11]


def _standing(frames: int) -> np.ndarray:
    """The default skeleton in its rest pose, feet on y = 0, for ``frames`` frames."""
    skel = default_skeleton(body_only=True)
    rest = forward_kinematics(quat_identity((1, 22)), np.zeros((1, 3)), skel)[0]
    rest[:, 1] -= rest[FEET, 1].min()
    return np.repeat(rest[None], frames, axis=0)


def test_a_dancer_walking_away_for_twelve_minutes_stays_on_stage():
    frames = 12 * 60 * 30
    joints = _standing(frames)
    t = np.arange(frames) / 30.0
    joints[..., 0] += (1.2 * t)[:, None]                           # 1.2 m/s straight ahead: 864 m in all
    joints[..., 2] += (0.3 * np.sin(2 * np.pi * t / 2.0))[:, None]  # a sway every 2 s
    before = root_travel(joints)
    kept, shift = keep_on_stage(joints)
    after = root_travel(kept)
    assert before["max_distance_m"] > 800
    assert after["max_distance_m"] <= STAGE_LIMIT_M + 0.31          # the limit plus the sway itself
    assert after["travel_m_per_min"] < 0.2 * before["travel_m_per_min"]
    # the body moves rigidly: poses (joints relative to the root) are untouched, heights too
    np.testing.assert_allclose(kept - kept[:, :1], joints - joints[:, :1], atol=1e-9)
    np.testing.assert_allclose(kept[..., 1], joints[..., 1], atol=1e-12)
    # the sway (faster than the drift time scale) survives
    sway = kept[:, 0, 2] - np.convolve(kept[:, 0, 2], np.ones(61) / 61, mode="same")
    assert np.ptp(sway[1000:-1000]) > 0.4


def test_a_dance_that_stays_near_its_spot_is_not_moved():
    frames = 60 * 30
    joints = _standing(frames)
    t = np.arange(frames) / 30.0
    joints[..., 0] += (0.8 * np.sin(2 * np.pi * t / 7.0))[:, None]
    joints[..., 2] += (0.5 * np.cos(2 * np.pi * t / 5.0) - 0.5)[:, None]
    kept, shift = keep_on_stage(joints)
    assert np.abs(shift).max() < 1e-12
    np.testing.assert_array_equal(kept, joints)


def test_feet_below_the_floor_are_lifted_and_a_grounded_dance_is_left_alone():
    frames = 300
    joints = _standing(frames)
    grounded, lift = ground_feet(joints)
    np.testing.assert_allclose(grounded, joints, atol=1e-12)
    sinking = joints.copy()
    dip = 0.15 * np.exp(-0.5 * ((np.arange(frames) - 150) / 10.0) ** 2)   # sinks 15 cm mid-clip
    sinking[..., 1] -= dip[:, None]
    fixed, lift = ground_feet(sinking)
    assert fixed[:, FEET, 1].min() >= -1e-9
    assert lift.max() == pytest.approx(0.15, abs=0.01)
    assert np.abs(np.diff(lift)).max() < 0.02                           # lifted smoothly, not per frame jumps
    floating = joints.copy()
    floating[..., 1] += 0.3                                             # hovering 30 cm: set down on the floor
    landed, _ = ground_feet(floating)
    assert landed[:, FEET, 1].min() == pytest.approx(0.0, abs=1e-9)


def test_root_travel_of_a_straight_walk():
    joints = _standing(30 * 60 + 1)
    joints[..., 2] += np.linspace(0, 60.0, joints.shape[0])[:, None]    # 60 m in one minute
    r = root_travel(joints)
    assert r["max_distance_m"] == pytest.approx(60.0)
    assert r["travel_m_per_min"] == pytest.approx(60.0, rel=0.02)
    with pytest.raises(ValueError):
        root_travel(joints[:1])


def test_features_round_trip_keeps_stage_functions_usable():
    joints = _standing(120)
    joints[..., 0] += np.linspace(0, 1, 120)[:, None]
    back = features_to_joints(joints_to_features(joints))
    kept, _ = keep_on_stage(back)
    assert np.isfinite(kept).all() and kept.shape == back.shape
