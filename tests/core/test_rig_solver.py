# SPDX-License-Identifier: GPL-3.0-or-later
"""The rig solver (core_models.rig): forward kinematics of a rig given as arrays, and the same fix on the same
motion whatever the bones' rest orientations (BVH-like rigs have none, Blender bones have a rest and a roll)."""
import numpy as np

from motion_fixture import rig_bvh, standing_clip
from core_models import footfix
from core_models.io import load_body_clip, read_bvh
from core_models.rig import RigPose, leg_bones, solve_fix
from core_models.rotations import quat_to_matrix
from core_models.skating import SkatingParams, add_skating


def _skated_rig(tmp_path):
    skated, _ = add_skating(standing_clip(120), SkatingParams(seed=3))
    body = load_body_clip(rig_bvh(tmp_path / "skated.bvh", skated))          # 60 fps rig, centimetres
    return read_bvh(tmp_path / "skated.bvh"), body, footfix.fix_feet(body, method="ik_lock").joints


def test_forward_kinematics_from_local_rotations_matches_the_bvh(tmp_path):
    clip = read_bvh(rig_bvh(tmp_path / "rig.bvh", standing_clip(30)))
    local = clip.local_rotation_matrices()
    glob_r, glob_p = clip.global_transforms()
    root = clip.local_translations()[:, 0]
    rig = RigPose.from_local(clip.parents, clip.offsets, local, root, 60.0)
    assert np.abs(rig.rotations - glob_r).max() < 1e-12 and np.abs(rig.positions - glob_p).max() < 1e-9


def test_rest_orientations_do_not_change_the_fix(tmp_path):
    clip, body, fixed = _skated_rig(tmp_path)
    glob_r, glob_p = clip.global_transforms()
    legs, _ = leg_bones(clip.names, clip.is_end_site, body.mapping)
    plain = RigPose(clip.parents, glob_r, glob_p, 60.0, unit_scale=body.unit_scale)
    edits = solve_fix(plain, legs, 0, body.joints, fixed)
    assert edits.root_frames.any() and edits.root_delta.shape == (clip.num_frames, 3)
    assert all(m.shape == (clip.num_frames, 3, 3) for m in edits.rotations.values())

    # the same motion on bones whose frames are turned by a rest orientation each (as Blender bones are)
    rng = np.random.default_rng(0)
    q = rng.normal(size=(clip.num_joints, 4))
    rest = quat_to_matrix(q / np.linalg.norm(q, axis=-1, keepdims=True))
    turned = RigPose(clip.parents, glob_r @ rest[None], glob_p, 60.0, rest=rest, unit_scale=body.unit_scale)
    again = solve_fix(turned, legs, 0, body.joints, fixed)
    assert np.abs(again.root_delta - np.einsum("ba,fb->fa", rest[0], edits.root_delta)).max() < 1e-9
    assert set(again.rotations) == set(edits.rotations)
    for j, m in edits.rotations.items():
        assert np.array_equal(again.rotation_frames[j], edits.rotation_frames[j])
        # relative to its rest: rest^T (parent-relative rotation) rest, the parent's rest being the BVH frame's
        assert np.abs(again.rotations[j] - rest[j].T[None] @ m @ rest[j][None]).max() < 1e-9

