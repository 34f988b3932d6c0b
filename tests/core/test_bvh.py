# SPDX-License-Identifier: GPL-3.0-or-later
"""BVH reader/writer: synthetic files with mixed channel orders, bad inputs, and real mocap round trips."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from conftest import need_mocap
from core_models.io.bvh import BvhClip, BvhError, bvh_from_rotations, matrix_to_bvh_euler, read_bvh, write_bvh
from core_models.kinematics import forward_kinematics
from core_models.rotations import euler_to_matrix, quat_normalize
from core_models.skeleton import Skeleton

# --- a synthetic file -----------------------------------------------------------------------------------
# Root ZXY with positions; Chest XYZ; Slider YXZ *with position channels*; Leg with only two rotation
# channels (Y X); End Sites on Slider and Leg. Centimetres, 120 fps.
JOINTS = [  # name, parent, offset, channels
    ("Hips", -1, (1.0, 90.0, -3.0), ("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation")),
    ("Chest", 0, (0.0, 25.0, 1.5), ("Xrotation", "Yrotation", "Zrotation")),
    ("Slider", 1, (4.0, 12.0, 0.0), ("Xposition", "Yposition", "Zposition", "Yrotation", "Xrotation", "Zrotation")),
    ("Slider_end", 2, (0.0, 10.0, 0.0), ()),
    ("Leg", 0, (-9.0, -5.0, 0.5), ("Yrotation", "Xrotation")),
    ("Leg_end", 4, (0.0, -42.0, 3.0), ()),
]
FRAMES = 7
FRAME_TIME = 1.0 / 120.0


def _synthetic_motion(seed=0, frames=FRAMES):
    rng = np.random.default_rng(seed)
    cols = []
    for _, _, off, ch in JOINTS:
        for c in ch:
            if c.endswith("position"):
                base = off["XYZ".index(c[0])]
                cols.append(base + rng.uniform(-30, 30, frames))
            else:
                cols.append(rng.uniform(-179, 179, frames))
    return np.stack(cols, axis=1)


def _bvh_text(motion, frame_time_line=None, frames_line=None, hierarchy_edit=None):
    lines = ["HIERARCHY"]

    def emit(j, depth):
        name, _, off, ch = JOINTS[j]
        ind = "  " * depth
        lines.append(f"{ind}End Site" if name.endswith("_end") else f"{ind}{'ROOT' if depth == 0 else 'JOINT'} {name}")
        lines.append(ind + "{")
        lines.append(f"{ind}  OFFSET {off[0]} {off[1]} {off[2]}")
        if ch:
            lines.append(f"{ind}  CHANNELS {len(ch)} {' '.join(ch)}")
        for k, (_, p, _, _) in enumerate(JOINTS):
            if p == j:
                emit(k, depth + 1)
        lines.append(ind + "}")

    emit(0, 0)
    text = "\n".join(lines) + "\n"
    if hierarchy_edit:
        text = hierarchy_edit(text)
    text += "MOTION\n"
    text += (frames_line if frames_line is not None else f"Frames: {motion.shape[0]}") + "\n"
    text += (frame_time_line if frame_time_line is not None else f"Frame Time: {FRAME_TIME!r}") + "\n"
    text += "\n".join(" ".join(repr(float(v)) for v in row) for row in motion) + "\n"
    return text


def _expected_positions(motion):
    """Independent FK: scipy intrinsic Euler rotations, per frame, plain loops."""
    out = np.zeros((motion.shape[0], len(JOINTS), 3))
    for f in range(motion.shape[0]):
        col = 0
        glob_r, glob_p = [], []
        for j, (name, p, off, ch) in enumerate(JOINTS):
            t = np.array(off, dtype=float)
            order, angles = "", []
            for c in ch:
                v = motion[f, col]
                col += 1
                if c.endswith("position"):
                    t["XYZ".index(c[0])] = v
                else:
                    order += c[0]
                    angles.append(v)
            r = Rotation.from_euler(order, angles, degrees=True).as_matrix() if order else np.eye(3)
            if p < 0:
                glob_r.append(r)
                glob_p.append(t)
            else:
                glob_r.append(glob_r[p] @ r)
                glob_p.append(glob_p[p] + glob_r[p] @ t)
        out[f] = glob_p
    return out


@pytest.fixture
def synthetic(tmp_path):
    motion = _synthetic_motion()
    path = tmp_path / "mixed.bvh"
    path.write_text(_bvh_text(motion))
    return path, motion


def test_read_synthetic_hierarchy_and_channels(synthetic):
    path, motion = synthetic
    clip = read_bvh(path)
    assert clip.names == [j[0] for j in JOINTS]
    assert clip.parents == [j[1] for j in JOINTS]
    assert clip.is_end_site == [False, False, False, True, False, True]
    assert clip.channels == [j[3] for j in JOINTS]
    assert clip.joint_names() == ["Hips", "Chest", "Slider", "Leg"]
    np.testing.assert_array_equal(clip.offsets, [j[2] for j in JOINTS])
    np.testing.assert_array_equal(clip.motion, motion)          # exact float parsing
    assert clip.num_frames == FRAMES and clip.fps == 120.0 and clip.frame_time == FRAME_TIME
    assert clip.path == str(path)
    np.testing.assert_array_equal(clip.motion[:, clip.channel_columns(2)], motion[:, 9:15])
    assert clip.rotation_order(0) == "ZXY" and clip.rotation_order(2) == "YXZ" and clip.rotation_order(3) == ""


def test_global_positions_match_independent_fk(synthetic):
    path, motion = synthetic
    clip = read_bvh(path)
    np.testing.assert_allclose(clip.global_positions(), _expected_positions(motion), atol=1e-9)
    np.testing.assert_allclose(clip.global_positions(scale=0.01), _expected_positions(motion) * 0.01, atol=1e-11)
    rot = clip.local_rotation_matrices()
    np.testing.assert_allclose(rot[:, 3], np.broadcast_to(np.eye(3), (FRAMES, 3, 3)))
    np.testing.assert_allclose(rot[:, 0], euler_to_matrix(motion[:, 3:6], "ZXY"), atol=1e-12)
    # position channels replace the offset; joints without them use it
    lt = clip.local_translations()
    np.testing.assert_array_equal(lt[:, 2], motion[:, 9:12])
    np.testing.assert_array_equal(lt[:, 1], np.broadcast_to(JOINTS[1][2], (FRAMES, 3)))
    rest = clip.rest_positions()
    np.testing.assert_allclose(rest[5], np.add(JOINTS[0][2], JOINTS[4][2]) + JOINTS[5][2])


def test_write_read_round_trip_synthetic(synthetic, tmp_path):
    path, motion = synthetic
    clip = read_bvh(path)
    out = tmp_path / "out" / "copy.bvh"
    out.parent.mkdir()
    write_bvh(out, clip)
    back = read_bvh(out)
    assert back.names == clip.names and back.parents == clip.parents
    assert back.channels == clip.channels and back.is_end_site == clip.is_end_site
    np.testing.assert_array_equal(back.offsets, clip.offsets)
    assert back.frame_time == clip.frame_time
    assert np.abs(back.motion - clip.motion).max() < 1e-5
    assert [p.name for p in out.parent.iterdir()] == ["copy.bvh"]       # no temp file left behind
    text = out.read_text()
    assert "\tJOINT Chest" in text and "\t\tEnd Site" in text


def test_write_large_values_keep_precision(tmp_path):
    clip = read_bvh_text(tmp_path, _bvh_text(_synthetic_motion()))
    clip.motion[:, :3] += np.array([3456.123456789, -2999.987654321, 1234.5])
    write_bvh(tmp_path / "big.bvh", clip)
    assert np.abs(read_bvh(tmp_path / "big.bvh").motion - clip.motion).max() < 1e-5


def read_bvh_text(tmp_path, text, name="t.bvh"):
    p = tmp_path / name
    p.write_text(text)
    return read_bvh(p)


def test_write_reorders_non_depth_first_joint_order(tmp_path):
    # joints: root, a (child of root), b (child of root), a1 (child of a) -> depth-first is root, a, a1, b
    clip = BvhClip(["root", "a", "b", "a1"], [-1, 0, 0, 1], np.arange(12.0).reshape(4, 3),
                   [("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation"),
                    ("Zrotation", "Xrotation", "Yrotation"), ("Xrotation",), ("Yrotation", "Zrotation")],
                   [False] * 4, 0.04, np.arange(3 * 12.0).reshape(3, 12))
    write_bvh(tmp_path / "r.bvh", clip)
    back = read_bvh(tmp_path / "r.bvh")
    assert back.names == ["root", "a", "a1", "b"] and back.parents == [-1, 0, 1, 0]
    for name in clip.names:
        i, k = clip.index(name), back.index(name)
        np.testing.assert_allclose(back.motion[:, back.channel_columns(k)], clip.motion[:, clip.channel_columns(i)])
    np.testing.assert_allclose(back.global_positions()[:, [0, 1, 3, 2]], clip.global_positions(), atol=1e-5)
    assert back.fps == 25.0


def test_crlf_tabs_same_line_braces_and_spaced_names(tmp_path):
    motion = _synthetic_motion()
    text = _bvh_text(motion).replace("JOINT Chest\n  {", "JOINT Chest {").replace("JOINT Leg", "JOINT Left Leg")
    text = text.replace("  ", "\t").replace("\n", "\r\n")
    clip = read_bvh_text(tmp_path, text)
    assert clip.names == ["Hips", "Chest", "Slider", "Slider_end", "Left Leg", "Left Leg_end"]
    np.testing.assert_array_equal(clip.motion, motion)
    write_bvh(tmp_path / "w.bvh", clip)
    assert read_bvh(tmp_path / "w.bvh").names == clip.names


def test_one_frame_clip_loads(tmp_path):
    motion = _synthetic_motion(frames=1)
    clip = read_bvh_text(tmp_path, _bvh_text(motion))
    assert clip.num_frames == 1
    np.testing.assert_allclose(clip.global_positions()[0], _expected_positions(motion)[0], atol=1e-9)


def test_matrix_to_bvh_euler_all_orders():
    mats = Rotation.random(500, random_state=3).as_matrix()
    for order in ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX"):
        np.testing.assert_allclose(euler_to_matrix(matrix_to_bvh_euler(mats, order), order), mats, atol=1e-9)
        lock = np.array([[30.0, 90.0, 20.0], [-70.0, -90.0, 45.0]])        # gimbal lock
        m = euler_to_matrix(lock, order)
        np.testing.assert_allclose(euler_to_matrix(matrix_to_bvh_euler(m, order), order), m, atol=1e-9)


def test_bvh_from_rotations_matches_core_fk(tmp_path):
    # SMPL-like order (not depth-first): root, l, r, spine, l_knee, r_knee
    names = ["root", "l_hip", "r_hip", "spine", "l_knee", "r_knee"]
    parents = [-1, 0, 0, 0, 1, 2]
    offsets = np.array([[0, 0.9, 0], [0.1, -0.05, 0], [-0.1, -0.05, 0], [0, 0.1, 0], [0, -0.4, 0], [0, -0.4, 0]])
    rng = np.random.default_rng(5)
    t = 40
    rot = quat_normalize(rng.normal(size=(t, 6, 4)))
    trans = np.cumsum(rng.normal(scale=0.01, size=(t, 3)), axis=0) + [0, 0.9, 0]
    clip = bvh_from_rotations(names, parents, offsets, rot, trans, 1 / 30, rotation_order="ZXY",
                              end_sites={"l_knee": (0, -0.42, 0.03), 5: (0, -0.42, 0.03)}, scale=100.0)
    assert clip.names == ["root", "l_hip", "l_knee", "l_knee_end", "r_hip", "r_knee", "r_knee_end", "spine"]
    assert clip.channels[0] == ("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation")
    assert all(len(c) == 3 for c, e in zip(clip.channels[1:], clip.is_end_site[1:]) if not e)
    skel = Skeleton(tuple(names), tuple(parents), offsets)
    expected = forward_kinematics(rot, trans, skel) * 100.0
    got = clip.global_positions()
    order = [clip.index(n) for n in names]
    np.testing.assert_allclose(got[:, order], expected, atol=1e-9)
    write_bvh(tmp_path / "gen.bvh", clip)
    back = read_bvh(tmp_path / "gen.bvh")
    assert back.names == clip.names and back.parents == clip.parents and back.channels == clip.channels
    assert np.abs(back.motion - clip.motion).max() < 1e-5
    np.testing.assert_allclose(back.global_positions()[:, order], expected, atol=1e-3)   # cm


# --- bad inputs -----------------------------------------------------------------------------------------
def _bad(tmp_path, text, *needles, name="bad.bvh"):
    p = tmp_path / name
    p.write_text(text) if isinstance(text, str) else p.write_bytes(text)
    with pytest.raises(BvhError) as info:
        read_bvh(p)
    msg = str(info.value)
    assert str(p) in msg, msg
    for n in needles:
        assert n.lower() in msg.lower(), f"{n!r} not in: {msg}"
    return msg


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(BvhError, match="not found"):
        read_bvh(tmp_path / "nope.bvh")
    _bad(tmp_path, "", "empty")
    _bad(tmp_path, "   \n\n", "empty")
    _bad(tmp_path, "hello world\n1 2 3\n", "no HIERARCHY")
    motion = _synthetic_motion()
    good = _bvh_text(motion)
    _bad(tmp_path, good.split("MOTION")[0], "no MOTION")
    _bad(tmp_path, good.replace("HIERARCHY\n", ""), "HIERARCHY")


def test_truncated_motion(tmp_path):
    good = _bvh_text(_synthetic_motion())
    cut = good[: len(good) - 40]                                   # ends in the middle of the last row
    nchan = 6 + 3 + 6 + 2
    msg = _bad(tmp_path, cut, "values")
    assert str(FRAMES * nchan) in msg or f"expected {nchan}" in msg
    rows = good.rstrip("\n").split("\n")
    msg = _bad(tmp_path, "\n".join(rows[:-2]) + "\n", "truncated", str(FRAMES * nchan), str((FRAMES - 2) * nchan))
    assert "found" in msg
    _bad(tmp_path, good + "1 2 3\n", "values")                      # extra data
    extra_col = good.rstrip("\n") + " 5\n"
    _bad(tmp_path, extra_col, f"expected {nchan}")


def test_garbled_numbers(tmp_path):
    motion = _synthetic_motion()
    text = _bvh_text(motion).replace(repr(float(motion[3, 4])), "1.2.3", 1)
    _bad(tmp_path, text, "not a number", "1.2.3", "line")
    text = _bvh_text(motion).replace(repr(float(motion[0, 0])), "abc", 1)
    _bad(tmp_path, text, "not a number", "abc")
    hier = _bvh_text(motion).replace("OFFSET 0.0 25.0 1.5", "OFFSET 0.0 x 1.5")
    _bad(tmp_path, hier, "OFFSET", "Chest")


def test_zero_frames_and_frame_header(tmp_path):
    motion = _synthetic_motion()
    _bad(tmp_path, _bvh_text(motion[:0], frames_line="Frames: 0"), "zero frames")
    _bad(tmp_path, _bvh_text(motion, frame_time_line=""), "Frame Time")
    _bad(tmp_path, _bvh_text(motion, frames_line=""), "Frames")
    _bad(tmp_path, _bvh_text(motion, frame_time_line="Frame Time: 0"), "Frame Time", "positive")
    _bad(tmp_path, _bvh_text(motion, frame_time_line="Frame Time: -0.1"), "Frame Time", "positive")
    _bad(tmp_path, _bvh_text(motion, frame_time_line="Frame Time: fast"), "Frame Time", "not a number")
    _bad(tmp_path, _bvh_text(motion, frames_line="Frames: 7.5"), "Frames", "whole number")


def test_nan_and_inf_channels(tmp_path):
    motion = _synthetic_motion()
    motion[4, 11] = np.nan                                          # Slider Zposition, frame 4
    msg = _bad(tmp_path, _bvh_text(motion), "non-finite", "Slider", "frame 4", "Zposition")
    motion = _synthetic_motion()
    motion[2, 16] = np.inf                                          # Leg Xrotation
    _bad(tmp_path, _bvh_text(motion), "Leg", "frame 2", "Xrotation")
    assert "nan" in msg


def test_hierarchy_errors(tmp_path):
    motion = _synthetic_motion()
    # a '}' removed: the last block stays open
    _bad(tmp_path, _bvh_text(motion, hierarchy_edit=lambda t: t[: t.rstrip().rfind("}")]), "unbalanced braces")
    # an extra '}'
    _bad(tmp_path, _bvh_text(motion, hierarchy_edit=lambda t: t + "}\n"), "unbalanced braces")
    # a '{' removed
    _bad(tmp_path, _bvh_text(motion, hierarchy_edit=lambda t: t.replace("JOINT Chest\n  {", "JOINT Chest", 1)),
         "expected '{'", "Chest")
    _bad(tmp_path, _bvh_text(motion, hierarchy_edit=lambda t: t.replace("Yrotation Zrotation", "Yrotation Wrotation", 1)),
         "unknown channel", "Wrotation")
    _bad(tmp_path, _bvh_text(motion, hierarchy_edit=lambda t: t.replace("CHANNELS 3 Xrotation", "CHANNELS 4 Xrotation", 1)),
         "declares 4 channels")
    _bad(tmp_path, _bvh_text(motion, hierarchy_edit=lambda t: t.replace("JOINT Leg", "BONE Leg")), "unexpected 'BONE'")


def test_write_refuses_bad_clips(tmp_path):
    clip = read_bvh_text(tmp_path, _bvh_text(_synthetic_motion()))
    clip.motion[1, 1] = np.nan
    with pytest.raises(BvhError, match="non-finite"):
        write_bvh(tmp_path / "x.bvh", clip)
    with pytest.raises(BvhError, match="does not exist"):
        write_bvh(tmp_path / "no" / "x.bvh", read_bvh(tmp_path / "t.bvh"))
    with pytest.raises(BvhError, match="motion must be"):
        BvhClip(["a"], [-1], [[0, 0, 0]], [("Xrotation",)], [False], 0.1, np.zeros((3, 2)))


# --- real data -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["bandai", "cmu"])
def test_real_round_trip(mocap, kind, tmp_path):
    for path in need_mocap(mocap, kind):
        clip = read_bvh(path)
        assert clip.num_frames > 10
        if kind == "bandai":
            assert clip.fps == 30.0 and all(len(c) == 6 for c, e in zip(clip.channels, clip.is_end_site) if not e)
            spine = clip.index("Spine")       # position channels equal the OFFSET: they replace it
            np.testing.assert_allclose(clip.motion[:, clip.channel_columns(spine)][:, :3],
                                       np.broadcast_to(clip.offsets[spine], (clip.num_frames, 3)), atol=1e-4)
        else:
            assert clip.fps == 120.0 and clip.channels[0][3:] == ("Zrotation", "Yrotation", "Xrotation")
            assert "lFoot_end" in clip.names
        out = tmp_path / f"{Path(path).stem}_rt.bvh"
        write_bvh(out, clip)
        back = read_bvh(out)
        assert back.names == clip.names and back.parents == clip.parents and back.channels == clip.channels
        assert back.is_end_site == clip.is_end_site and back.frame_time == clip.frame_time
        np.testing.assert_array_equal(back.offsets, clip.offsets)
        assert np.abs(back.motion - clip.motion).max() < 1e-5
