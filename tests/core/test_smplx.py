# SPDX-License-Identifier: GPL-3.0-or-later
"""SMPL-X motion readers and the smplx-backed exact skeleton, on files the tests write themselves."""
import joblib
import numpy as np
import pytest

from core_models.io.smplx_motion import SmplxMotionError, read_amass_npz, read_smplx_pkl
from core_models.kinematics import forward_kinematics
from core_models.rotations import quat_to_axis_angle
from core_models.skeleton import default_skeleton, smplx_skeleton
from smplx_fixture import write_synthetic_smplx_model


def _pose_arrays(frames=40, seed=0):
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, frames)[:, None]
    body = 0.3 * np.sin(t * rng.uniform(1, 5, (1, 63)) + rng.uniform(0, 6, (1, 63)))
    orient = np.zeros((frames, 3))
    orient[:, 1] = t[:, 0]                       # turning about the up axis
    transl = np.concatenate([t, np.zeros((frames, 1)), 0.5 * t], axis=1)
    return orient, body, transl


def test_amass_npz_smplx_layout(tmp_path):
    orient, body, transl = _pose_arrays()
    hands = np.random.default_rng(1).normal(size=(40, 99)) * 0.1
    path = tmp_path / "clip_poses.npz"
    np.savez(path, poses=np.concatenate([orient, body, hands], 1), trans=transl, betas=np.zeros(16),
             mocap_frame_rate=np.array(60.0))
    motion = read_amass_npz(path, up_axis="Y")
    assert motion.fps == 60.0 and motion.num_frames == 40
    aa = quat_to_axis_angle(motion.rotations)
    assert np.allclose(aa[:, 1:22].reshape(40, -1), body, atol=1e-9)
    assert np.allclose(aa[:, 22:].reshape(40, -1), hands, atol=1e-9)
    skel = default_skeleton()
    assert np.allclose(motion.root_translation, transl + skel.offsets[0])


def test_amass_npz_z_up_is_detected(tmp_path):
    orient, body, transl = _pose_arrays()
    orient = np.tile([np.pi / 2, 0, 0], (40, 1))          # AMASS: body stands along +Z
    zup_transl = np.stack([transl[:, 0], -transl[:, 2], np.full(40, 0.9)], 1)
    path = tmp_path / "amass.npz"
    np.savez(path, poses=np.concatenate([orient, np.zeros((40, 63))], 1), trans=zup_transl,
             mocap_framerate=np.array(120.0))
    motion = read_amass_npz(path)                          # up_axis="auto"
    joints = motion.joints()
    up = joints[:, 12] - joints[:, 0]
    assert (up[:, 1] > 0.3).all() and np.abs(up[:, 2]).max() < 0.05
    assert np.allclose(motion.root_translation[:, 1], 0.9 + 0.0, atol=0.15)


def test_official_pkl(tmp_path):
    orient, body, transl = _pose_arrays(frames=30)
    path = tmp_path / "dance.pkl"
    joblib.dump({"body_pose": body.reshape(30, 21, 3).astype(np.float32), "global_orient": orient,
                 "transl": transl}, path)
    motion = read_smplx_pkl(path, up_axis="Y")
    assert motion.fps == 30 and motion.num_frames == 30
    assert np.allclose(quat_to_axis_angle(motion.rotations)[:, 1:22].reshape(30, -1), body, atol=1e-6)


def test_pkl_with_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    path = tmp_path / "evil.pkl"
    joblib.dump({"body_pose": Evil()}, path)
    with pytest.raises(SmplxMotionError, match="refusing to load 'builtins.print'"):
        read_smplx_pkl(path)


@pytest.mark.parametrize("case, match", [
    ("missing_trans", r"missing key\(s\) \['trans'\]"),
    ("no_rate", "no frame rate"),
    ("short_poses", "at least 66"),
    ("nan", "NaN/inf"),
    ("mismatch", "frame counts differ"),
    ("garbage", "not a readable .npz"),
])
def test_amass_bad_files(tmp_path, case, match):
    path = tmp_path / f"{case}.npz"
    poses, trans = np.zeros((10, 156)), np.zeros((10, 3))
    if case == "missing_trans":
        np.savez(path, poses=poses, mocap_frame_rate=30)
    elif case == "no_rate":
        np.savez(path, poses=poses, trans=trans)
    elif case == "short_poses":
        np.savez(path, poses=poses[:, :30], trans=trans, mocap_frame_rate=30)
    elif case == "nan":
        poses[4, 7] = np.nan
        np.savez(path, poses=poses, trans=trans, mocap_frame_rate=30)
    elif case == "mismatch":
        np.savez(path, poses=poses, trans=trans[:7], mocap_frame_rate=30)
    else:
        path.write_bytes(b"this is not a zip archive")
    with pytest.raises(SmplxMotionError, match=match) as err:
        read_amass_npz(path)
    assert str(path) in str(err.value)


def test_smplx_package_skeleton_from_synthetic_model(tmp_path):
    rest = default_skeleton(height=1.8).rest_positions() + [0.0, -0.3, 0.02]   # SMPL-X models float around 0
    path = tmp_path / "SMPLX_NEUTRAL.npz"
    write_synthetic_smplx_model(path, rest)
    skel = smplx_skeleton(path)
    assert skel.num_joints == 55 and skel.source == "smplx:SMPLX_NEUTRAL.npz"
    expected = rest.copy()
    expected[:, 1] -= rest[:, 1].min() - 0.0   # lowest vertex may be below the lowest joint
    floor = skel.meta["floor_offset"]
    assert np.abs(skel.rest_positions() - (rest - [0, floor, 0])).max() < 1e-5
    # betas move the skeleton through shapedirs (the smplx package really ran)
    tall = smplx_skeleton(path, betas=np.full(10, 3.0))
    assert np.abs(tall.offsets - skel.offsets).max() > 1e-4
    # a motion on this skeleton runs through FK
    motion = read_amass_npz_for(tmp_path, skel)
    assert np.isfinite(motion.joints()).all()


def read_amass_npz_for(tmp_path, skel):
    orient, body, transl = _pose_arrays(frames=10)
    p = tmp_path / "m.npz"
    np.savez(p, poses=np.concatenate([orient, body], 1), trans=transl, mocap_frame_rate=30)
    return read_amass_npz(p, skeleton=skel, up_axis="Y")


@pytest.mark.parametrize("break_it, match", [
    ("drop_J_regressor", "lacks the key 'J_regressor'"),
    ("bad_kintree", "'kintree_table' has shape"),
    ("pkl_suffix", "expected an .npz"),
    ("missing", "does not exist"),
])
def test_smplx_model_file_errors(tmp_path, break_it, match):
    path = tmp_path / "model.npz"
    write_synthetic_smplx_model(path, default_skeleton().rest_positions())
    if break_it == "drop_J_regressor":
        data = dict(np.load(path))
        del data["J_regressor"]
        np.savez(path, **data)
    elif break_it == "bad_kintree":
        data = dict(np.load(path))
        data["kintree_table"] = data["kintree_table"][:, :24]
        np.savez(path, **data)
    elif break_it == "pkl_suffix":
        path = path.rename(tmp_path / "model.pkl")
    else:
        path = tmp_path / "nope.npz"
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        smplx_skeleton(path)


def test_load_body_clip_reads_smplx_files(tmp_path):
    from core_models.io import load_body_clip

    orient, body, transl = _pose_arrays(frames=60)
    path = tmp_path / "clip.npz"
    np.savez(path, poses=np.concatenate([orient, body], 1), trans=transl, mocap_frame_rate=np.array(60.0))
    clip = load_body_clip(path)
    assert clip.source_fps == 60.0 and clip.source_frames == 60 and clip.fps == 30.0 and clip.num_frames == 30
    assert clip.mapping.profile == "smplx" and len(clip.mapping.source_for) == 22
    motion = read_amass_npz(path)
    assert np.abs(clip.joints[0] - motion.joints()[0, :22]).max() < 1e-9
    with pytest.raises(ValueError, match="need no bone mapping"):
        load_body_clip(path, overrides={"left_knee": "x"})
