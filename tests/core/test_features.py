# SPDX-License-Identifier: GPL-3.0-or-later
import numpy as np
import pytest

from conftest import make_dance
from core_models import features as F
from core_models.rotations import quat_rotate, axis_angle_to_quat
from core_models.skeleton import default_skeleton


def test_layout_and_round_trip():
    _, _, _, joints = make_dance(frames=450, spin=2.5)        # spins through 180 degrees several times
    feats, canon = F.joints_to_features(joints, return_joints=True)
    assert feats.shape == (449, 264)
    recovered = F.features_to_joints(feats)
    assert np.abs(recovered - canon[:-1]).max() < 1e-9
    # root height, RIC and velocity blocks mean what the layout says
    assert np.allclose(feats[:, 0], canon[:-1, 0, 1])
    assert canon[..., 1].min() == pytest.approx(0.0)            # floor
    assert np.allclose(canon[0, 0, [0, 2]], 0.0)                # origin
    assert np.allclose(feats[:, 1], np.concatenate([[0], np.cumsum(feats[:-1, 2])]))
    assert set(np.unique(feats[:, 260:])) <= {0.0, 1.0}


def test_canonical_facing_is_plus_z():
    _, _, _, joints = make_dance(frames=60)
    turn = axis_angle_to_quat(np.array([0, 2.0, 0]))
    turned = quat_rotate(np.broadcast_to(turn, joints.shape[:-1] + (4,)), joints) + [3.0, 0.5, -2.0]
    a = F.joints_to_features(joints, target_skeleton=None)
    b = F.joints_to_features(turned, target_skeleton=None)
    assert np.abs(a - b).max() < 1e-9                           # invariant to world yaw and position
    canon = F.canonicalize(joints)
    across = (canon[0, 2] - canon[0, 1]) + (canon[0, 17] - canon[0, 16])
    forward = np.cross([0, 1, 0], across)
    assert forward[2] > 0 and abs(forward[0]) < 1e-9


def test_uniform_skeleton_keeps_directions_and_sets_lengths():
    _, _, _, joints = make_dance(frames=100)
    small = default_skeleton(height=1.4, body_only=True)
    out = F.retarget_to_skeleton(joints, small)
    target_len = np.linalg.norm(small.offsets[4])
    assert np.allclose(np.linalg.norm(out[:, 4] - out[:, 1], axis=-1), target_len)
    d_in = joints[:, 7] - joints[:, 4]
    d_out = out[:, 7] - out[:, 4]
    cos = (d_in * d_out).sum(-1) / np.linalg.norm(d_in, axis=-1) / np.linalg.norm(d_out, axis=-1)
    assert cos.min() > 1 - 1e-12


def test_chain_ik_fk_inverse():
    _, _, _, joints = make_dance(frames=80)
    q = F.chain_ik(joints, smooth_forward=False)
    offs = F.raw_direction_offsets(joints[0])
    assert np.abs(F.chain_fk(q, joints[:, 0], offs) - joints).max() < 1e-9
    assert np.allclose(q[0, 0], [1, 0, 0, 0])                   # frame 0 root forced to identity


def test_foot_contacts_threshold():
    joints = np.zeros((5, 22, 3))
    joints[:, 7, 0] = [0, 0.01, 0.02, 0.2, 0.4]                # left ankle: still, then fast
    c = F.velocity_foot_contacts(joints)
    assert c.shape == (4, 4)
    assert c[:, 0].tolist() == [1, 0, 0, 0] or c[:, 0].tolist() == [1, 1, 0, 0]
    assert c[:2, 0].all() and not c[2:, 0].any()                # 0.01^2 < 0.002 < 0.18^2


def test_normalisation_and_stats():
    _, _, _, joints = make_dance(frames=100)
    feats = F.joints_to_features(joints)
    mean, std = F.feature_stats([feats, feats[:50]])
    norm = F.normalize_features(feats, mean, std)
    assert np.allclose(F.denormalize_features(norm, mean, std), feats)
    assert (std >= 1e-6).all()
    nan_clip = feats.copy()
    nan_clip[0, 0] = np.nan
    m2, _ = F.feature_stats([feats, nan_clip])                  # NaN clips are skipped
    assert np.allclose(m2, feats.mean(0))


def test_bad_input():
    with pytest.raises(ValueError, match="at least 2 frames"):
        F.joints_to_features(np.zeros((1, 22, 3)))
    with pytest.raises(ValueError, match=r"\(T, 22, 3\)"):
        F.joints_to_features(np.zeros((10, 24, 3)))
    bad = np.zeros((10, 22, 3))
    bad[2, 5, 0] = np.inf
    with pytest.raises(ValueError, match="frame 2, joint 5"):
        F.joints_to_features(bad)
    with pytest.raises(ValueError, match="264"):
        F.features_to_joints(np.zeros((4, 263)))
