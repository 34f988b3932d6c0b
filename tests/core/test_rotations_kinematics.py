# SPDX-License-Identifier: GPL-3.0-or-later
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from conftest import make_dance
from core_models import rotations as R
from core_models.kinematics import fit_skeleton, forward_kinematics, inverse_kinematics, two_bone_end, two_bone_ik
from core_models.skeleton import (BODY_PARENTS, SMPLX_JOINT_NAMES, SMPLX_PARENTS, default_skeleton, mirror_index)

RNG = np.random.default_rng(7)
QUATS = R.quat_normalize(RNG.normal(size=(500, 4)))


def test_quaternion_matrix_matches_scipy():
    m = R.quat_to_matrix(QUATS)
    ref = Rotation.from_quat(QUATS[:, [1, 2, 3, 0]]).as_matrix()   # scipy is scalar-last
    assert np.abs(m - ref).max() < 1e-12
    back = R.matrix_to_quat(m)
    assert np.abs(np.abs((back * QUATS).sum(-1)) - 1).max() < 1e-12
    assert (back[:, 0] >= 0).all()


def test_axis_angle_and_6d_round_trips():
    aa = R.quat_to_axis_angle(QUATS)
    assert np.abs(np.linalg.norm(aa, axis=-1)).max() <= np.pi + 1e-9
    assert np.abs(R.axis_angle_to_matrix(aa) - R.quat_to_matrix(QUATS)).max() < 1e-12
    m = R.quat_to_matrix(QUATS)
    d6 = R.matrix_to_6d(m)
    assert np.allclose(d6[:, :3], m[:, :, 0]) and np.allclose(d6[:, 3:], m[:, :, 1])
    assert np.abs(R.sixd_to_matrix(d6) - m).max() < 1e-12
    # tiny angles stay finite and exact
    tiny = np.array([[1e-10, 0, 0]])
    assert np.allclose(R.axis_angle_to_quat(tiny), [[1, 5e-11, 0, 0]])
    assert np.allclose(R.quat_to_axis_angle(R.axis_angle_to_quat(tiny)), tiny)


def test_torch_and_numpy_agree():
    t = torch.tensor(QUATS)
    for fn in (R.quat_to_matrix, R.quat_to_axis_angle, R.quat_to_6d):
        assert np.abs(fn(t).numpy() - fn(QUATS)).max() < 1e-12
    m = R.quat_to_matrix(QUATS)
    assert np.abs(R.matrix_to_quat(torch.tensor(m)).numpy() - R.matrix_to_quat(m)).max() < 1e-12
    d6 = torch.tensor(R.matrix_to_6d(m), dtype=torch.float32, requires_grad=True)
    out = R.sixd_to_matrix(d6)
    out.sum().backward()                                 # differentiable for training losses
    assert torch.isfinite(d6.grad).all()


def test_quat_between_and_rotate():
    u, v = RNG.normal(size=(200, 3)), RNG.normal(size=(200, 3))
    q = R.quat_between(u, v)
    assert np.abs(R.normalize(R.quat_rotate(q, u)) - R.normalize(v)).max() < 1e-12
    opposite = R.quat_between(np.array([0.0, 1.0, 0.0]), np.array([0.0, -1.0, 0.0]))
    assert np.allclose(R.quat_rotate(opposite, [0.0, 1.0, 0.0]), [0, -1, 0])
    # quat_mul composes like matrices
    a, b = QUATS[:100], QUATS[100:200]
    assert np.abs(R.quat_to_matrix(R.quat_mul(a, b)) - R.quat_to_matrix(a) @ R.quat_to_matrix(b)).max() < 1e-12


@pytest.mark.parametrize("order", ["ZXY", "XYZ", "YXZ", "ZYX"])
def test_euler_matches_scipy_intrinsic(order):
    ang = RNG.uniform(-170, 170, size=(100, 3))
    m = R.euler_to_matrix(ang, order)
    assert np.abs(m - Rotation.from_euler(order, ang, degrees=True).as_matrix()).max() < 1e-12
    assert np.abs(R.euler_to_matrix(R.matrix_to_euler(m, order), order) - m).max() < 1e-10


def test_sign_continuity():
    q = R.quat_fix_continuity(np.where(RNG.random((500, 1)) < 0.5, -1, 1) * np.repeat(QUATS[:1], 500, 0))
    assert ((q[1:] * q[:-1]).sum(-1) > 0).all()


def test_skeleton_tables():
    assert len(SMPLX_JOINT_NAMES) == 55 and len(SMPLX_PARENTS) == 55
    assert SMPLX_PARENTS[25:28] == (20, 25, 26) and SMPLX_PARENTS[52:55] == (21, 52, 53)
    assert SMPLX_PARENTS[:22] == BODY_PARENTS
    mirror = mirror_index()
    assert SMPLX_JOINT_NAMES[mirror[1]] == "right_hip" and mirror[0] == 0
    assert SMPLX_JOINT_NAMES[mirror[SMPLX_JOINT_NAMES.index("left_thumb3")]] == "right_thumb3"
    skel = default_skeleton()
    rest = skel.rest_positions()
    height = rest[:, 1].max()
    assert 1.45 < height < 1.7                                  # head joint of a 1.70 m person
    assert abs(rest[10, 1]) < 0.05 and rest[10, 2] > rest[7, 2]  # toes on the floor, in front of the ankle
    assert rest[1, 0] > 0 > rest[2, 0]                          # left is +X
    assert rest[20, 0] > 0.6 and rest[21, 0] < -0.6             # T-pose arms


def test_fk_ik_round_trip_exact():
    rot, root, skel, joints = make_dance(frames=400)
    q, r = inverse_kinematics(joints, skel)
    assert np.abs(forward_kinematics(q, r, skel) - joints).max() < 1e-9
    assert ((q[1:] * q[:-1]).sum(-1) > 0).all()                # sign continuity


def test_ik_on_fitted_skeleton_of_other_proportions():
    _, _, _, joints = make_dance(frames=200, seed=3)
    fitted = fit_skeleton(joints, default_skeleton(height=1.5, body_only=True))
    q, r = inverse_kinematics(joints, fitted)
    assert np.abs(forward_kinematics(q, r, fitted) - joints).max() < 1e-9


def test_ik_full_smplx_skeleton_with_fingers():
    _, _, skel, joints = make_dance(frames=60, joints=55)
    q, r = inverse_kinematics(joints, skel)
    assert np.abs(forward_kinematics(q, r, skel) - joints).max() < 1e-9


def test_ik_twist_has_no_flips_through_singularity():
    """An arm swept across the body (through the swing singularity) keeps a continuous rotation."""
    skel = default_skeleton(body_only=True)
    frames = 120
    ang = np.linspace(0, np.deg2rad(175), frames)              # left upper arm swings to point at -X
    aa = np.zeros((frames, 22, 3))
    aa[:, 16, 1] = ang                                         # about +Y: from +X towards -Z ... -X
    aa[:, 18, 2] = 0.6                                         # bent elbow makes the twist observable
    rot = R.axis_angle_to_quat(aa)
    joints = forward_kinematics(rot, np.tile([0, 1, 0.0], (frames, 1)), skel)
    q, r = inverse_kinematics(joints, skel)
    assert np.abs(forward_kinematics(q, r, skel) - joints).max() < 1e-9
    step = 2 * np.degrees(np.arccos(np.clip(np.abs((q[1:] * q[:-1]).sum(-1)), 0, 1)))
    assert step.max() < 10.0, f"largest frame-to-frame rotation change {step.max():.1f} deg"


def test_two_bone_ik_reaches_target_and_respects_pole():
    n = 50
    hip = RNG.normal(size=(n, 3)) * 0.1 + [0, 1, 0]
    target = hip + R.normalize(RNG.normal(size=(n, 3)) + [0, -3, 0]) * RNG.uniform(0.3, 0.8, (n, 1))
    pole = hip + [0, -0.4, 0.5]
    knee = two_bone_ik(hip, None if False else pole, target, 0.42, 0.41, pole=pole)
    end = two_bone_end(hip, target, 0.42, 0.41)
    assert np.allclose(np.linalg.norm(knee - hip, axis=-1), 0.42)
    assert np.allclose(np.linalg.norm(end - knee, axis=-1), 0.41)
    reach = np.linalg.norm(target - hip, axis=-1) < 0.83 * 0.9999
    assert np.abs(end - target)[reach].max() < 1e-9
    # the knee bends towards the pole side of the hip-target line
    line = R.normalize(end - hip)
    side_knee = knee - hip - ((knee - hip) * line).sum(-1, keepdims=True) * line
    side_pole = pole - hip - ((pole - hip) * line).sum(-1, keepdims=True) * line
    assert ((side_knee * side_pole).sum(-1) > 0).all()
    far = two_bone_end(hip[:1], hip[:1] + [0, -5.0, 0], 0.42, 0.41)
    assert np.linalg.norm(far - hip[:1]) == pytest.approx(0.83 * 0.9999)


def test_bad_input_is_named():
    skel = default_skeleton(body_only=True)
    with pytest.raises(ValueError, match="expects joints"):
        inverse_kinematics(np.zeros((10, 21, 3)), skel)
    bad = np.zeros((10, 22, 3))
    bad[3, 4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        inverse_kinematics(bad, skel)
