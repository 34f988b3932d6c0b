# SPDX-License-Identifier: GPL-3.0-or-later
"""Bone mapping onto the canonical 22-joint body, unit and axis handling, load_body_clip."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import need_mocap
from core_models.io import BodyClip, UnsupportedFormatError, load_body_clip
from core_models.io.bvh import bvh_from_rotations, read_bvh, write_bvh
from core_models.io.retarget import (CANONICAL_JOINTS, RetargetError, UnmappableRigError, canonical_joints,
                                     convert_up_axis,
                                     detect_unit_scale, estimate_height, map_bones, normalize_bone_name)
from core_models.rotations import axis_angle_to_quat, quat_conjugate, quat_mul, quat_rotate
from core_models.skeleton import BODY_JOINT_NAMES, BODY_PARENTS, default_skeleton

CI = {n: i for i, n in enumerate(CANONICAL_JOINTS)}

# --- synthetic rigs -------------------------------------------------------------------------------------
def humanoid(pelvis, spine, neck, head, arms, legs, root=None, hip_parents=(None, None), ends=()):
    """names, parents of a humanoid: [root ->] pelvis -> spine... -> neck... -> head; arms hang off the
    last spine bone (collar, shoulder, elbow, wrist[, more]); legs off the pelvis (or hip_parents)."""
    names, parents = [], []

    def add(name, parent):
        names.append(name)
        parents.append(-1 if parent is None else names.index(parent))

    if root:
        add(root, None)
    add(pelvis, root)
    prev = pelvis
    for s in spine:
        add(s, prev)
        prev = s
    top = prev
    for n in neck:
        add(n, prev)
        prev = n
    add(head, prev)
    for arm in arms:
        prev = top
        for b in arm:
            add(b, prev)
            prev = b
    for leg, hp in zip(legs, hip_parents):
        prev = pelvis
        if hp:
            add(hp, pelvis)
            prev = hp
        for b in leg:
            add(b, prev)
            prev = b
    for e, parent in ends:
        add(e, parent)
    return names, parents


def _arms(fmt):
    return [[f.format(side=side, s=s, S=s.upper()) for f in fmt] for side, s in (("Left", "l"), ("Right", "r"))]


RIGS = {
    "mixamo": humanoid("mixamorig:Hips", ["mixamorig:Spine", "mixamorig:Spine1", "mixamorig:Spine2"],
                       ["mixamorig:Neck"], "mixamorig:Head",
                       _arms(["mixamorig:{side}Shoulder", "mixamorig:{side}Arm", "mixamorig:{side}ForeArm",
                              "mixamorig:{side}Hand", "mixamorig:{side}HandIndex1"]),
                       _arms(["mixamorig:{side}UpLeg", "mixamorig:{side}Leg", "mixamorig:{side}Foot",
                              "mixamorig:{side}ToeBase", "mixamorig:{side}Toe_End"])),
    "rigify": humanoid("DEF-spine", ["DEF-spine.001", "DEF-spine.002", "DEF-spine.003"],
                       ["DEF-spine.004", "DEF-spine.005"], "DEF-spine.006",
                       _arms(["DEF-shoulder.{S}", "DEF-upper_arm.{S}", "DEF-upper_arm.{S}.001", "DEF-forearm.{S}",
                              "DEF-forearm.{S}.001", "DEF-hand.{S}"]),
                       _arms(["DEF-thigh.{S}", "DEF-thigh.{S}.001", "DEF-shin.{S}", "DEF-shin.{S}.001",
                              "DEF-foot.{S}", "DEF-toe.{S}"]), root="root"),
    "unreal": humanoid("pelvis", ["spine_01", "spine_02", "spine_03", "spine_04", "spine_05"],
                       ["neck_01", "neck_02"], "head",
                       _arms(["clavicle_{s}", "upperarm_{s}", "lowerarm_{s}", "hand_{s}"]),
                       _arms(["thigh_{s}", "calf_{s}", "foot_{s}", "ball_{s}"]), root="root"),
    "cmu": humanoid("hip", ["abdomen", "chest"], ["neck"], "head",
                    _arms(["{s}Collar", "{s}Shldr", "{s}ForeArm", "{s}Hand"]),
                    _arms(["{s}Thigh", "{s}Shin", "{s}Foot", "{s}Foot_end"]),
                    hip_parents=("lButtock", "rButtock")),
    "cmu_asf": humanoid("Hips", ["LowerBack", "Spine", "Spine1"], ["Neck", "Neck1"], "Head",
                        _arms(["{side}Shoulder", "{side}Arm", "{side}ForeArm", "{side}Hand"]),
                        _arms(["{side}UpLeg", "{side}Leg", "{side}Foot", "{side}ToeBase"]),
                        hip_parents=("LHipJoint", "RHipJoint")),
    "bandai": humanoid("Hips", ["Spine", "Chest"], ["Neck"], "Head",
                       _arms(["Shoulder_{S}", "UpperArm_{S}", "LowerArm_{S}", "Hand_{S}"]),
                       _arms(["UpperLeg_{S}", "LowerLeg_{S}", "Foot_{S}", "Toes_{S}"]), root="joint_Root"),
    "smplx": (list(BODY_JOINT_NAMES), list(BODY_PARENTS)),
}
# (profile expected, canonical -> expected source, joints expected to be synthesised)
EXPECT = {
    "mixamo": ("mixamo", {"pelvis": "mixamorig:Hips", "left_hip": "mixamorig:LeftUpLeg", "left_knee": "mixamorig:LeftLeg",
                          "left_ankle": "mixamorig:LeftFoot", "left_foot": "mixamorig:LeftToeBase",
                          "spine1": "mixamorig:Spine", "spine2": "mixamorig:Spine1", "spine3": "mixamorig:Spine2",
                          "left_collar": "mixamorig:LeftShoulder", "left_shoulder": "mixamorig:LeftArm",
                          "right_elbow": "mixamorig:RightForeArm", "right_wrist": "mixamorig:RightHand"}, set()),
    "rigify": ("rigify", {"pelvis": "DEF-spine", "spine1": "DEF-spine.001", "spine3": "DEF-spine.003",
                          "neck": "DEF-spine.004", "head": "DEF-spine.006", "left_hip": "DEF-thigh.L",
                          "left_knee": "DEF-shin.L", "left_ankle": "DEF-foot.L", "left_foot": "DEF-toe.L",
                          "left_collar": "DEF-shoulder.L", "left_shoulder": "DEF-upper_arm.L",
                          "left_elbow": "DEF-forearm.L", "right_wrist": "DEF-hand.R"}, set()),
    "unreal": ("unreal", {"pelvis": "pelvis", "spine1": "spine_01", "spine2": "spine_03", "spine3": "spine_05",
                          "neck": "neck_01", "head": "head", "left_hip": "thigh_l", "left_knee": "calf_l",
                          "left_ankle": "foot_l", "left_foot": "ball_l", "left_collar": "clavicle_l",
                          "left_shoulder": "upperarm_l", "left_elbow": "lowerarm_l", "left_wrist": "hand_l"}, set()),
    "cmu": ("cmu", {"pelvis": "hip", "spine1": "abdomen", "spine3": "chest", "left_hip": "lThigh",
                    "left_knee": "lShin", "left_ankle": "lFoot", "left_foot": "lFoot_end", "left_collar": "lCollar",
                    "left_shoulder": "lShldr", "left_elbow": "lForeArm", "left_wrist": "lHand"},
            {"spine2", "left_foot", "right_foot"}),
    "cmu_asf": ("cmu", {"pelvis": "Hips", "left_hip": "LeftUpLeg", "left_knee": "LeftLeg", "left_foot": "LeftToeBase",
                        "spine3": "Spine1", "neck": "Neck", "left_collar": "LeftShoulder", "left_shoulder": "LeftArm"},
                set()),
    "bandai": ("bandai", {"pelvis": "Hips", "spine1": "Spine", "spine3": "Chest", "neck": "Neck", "head": "Head",
                          "left_hip": "UpperLeg_L", "left_knee": "LowerLeg_L", "left_ankle": "Foot_L",
                          "left_foot": "Toes_L", "left_collar": "Shoulder_L", "left_shoulder": "UpperArm_L",
                          "left_elbow": "LowerArm_L", "left_wrist": "Hand_L"}, {"spine2"}),
    "smplx": ("smplx", {n: n for n in BODY_JOINT_NAMES}, set()),
}


def _covers_all(m):
    assert set(m.source_for) | set(m.synthesised) == set(CANONICAL_JOINTS)


@pytest.mark.parametrize("rig", list(RIGS))
def test_profiles_map_their_rigs(rig):
    names, parents = RIGS[rig]
    profile, expected, synth = EXPECT[rig]
    ends = [n.endswith("_end") for n in names]
    m = map_bones(names, parents, is_end_site=ends)
    _covers_all(m)
    assert m.profile == profile
    for c, src in expected.items():
        assert m.source_for.get(c) == src, (c, m.source_for.get(c), src)
    assert set(m.synthesised) == synth, m.synthesised
    assert m.summary().startswith(f"profile '{profile}'")
    # names only (no hierarchy): still complete
    m2 = map_bones([n for n, e in zip(names, ends) if not e])
    _covers_all(m2)
    assert m2.profile == profile


def test_cmu_asf_spine_skips_zero_length_lower_back():
    names, parents = RIGS["cmu_asf"]
    offsets = np.ones((len(names), 3))
    offsets[names.index("LowerBack")] = 0.0
    m = map_bones(names, parents, source_offsets=offsets)
    assert m.source_for["spine1"] == "Spine" and m.source_for["spine3"] == "Spine1" and "spine2" in m.synthesised
    rest = np.zeros((len(names), 3))
    for j, p in enumerate(parents):
        rest[j] = offsets[j] + (rest[p] if p >= 0 else 0.0)
    m = map_bones(names, parents, source_rest_positions=rest)
    assert m.source_for["spine1"] == "Spine" and "spine2" in m.synthesised
    m = map_bones(names, parents)       # without offsets LowerBack is the first spine bone
    assert [m.source_for[c] for c in ("spine1", "spine2", "spine3")] == ["LowerBack", "Spine", "Spine1"]


def test_long_spine_picks_middle_by_length():
    names, parents = RIGS["unreal"]
    offsets = np.zeros((len(names), 3))
    for name, dy in (("spine_01", 10), ("spine_02", 20), ("spine_03", 20), ("spine_04", 5), ("spine_05", 5),
                     ("neck_01", 10)):
        offsets[names.index(name), 1] = dy
    m = map_bones(names, parents, source_offsets=offsets)       # heads at 10, 30, 50, 55, 60; neck at 70
    assert [m.source_for[c] for c in ("spine1", "spine2", "spine3")] == ["spine_01", "spine_02", "spine_05"]


def test_smpl_variant_names_and_normalisation():
    smpl = ["m_avg_Pelvis", "m_avg_L_Hip", "m_avg_R_Hip", "m_avg_Spine1", "m_avg_L_Knee", "m_avg_R_Knee",
            "m_avg_Spine2", "m_avg_L_Ankle", "m_avg_R_Ankle", "m_avg_Spine3", "m_avg_L_Foot", "m_avg_R_Foot",
            "m_avg_Neck", "m_avg_L_Collar", "m_avg_R_Collar", "m_avg_Head", "m_avg_L_Shoulder", "m_avg_R_Shoulder",
            "m_avg_L_Elbow", "m_avg_R_Elbow", "m_avg_L_Wrist", "m_avg_R_Wrist", "m_avg_L_Hand", "m_avg_R_Hand"]
    m = map_bones(smpl, list(BODY_PARENTS) + [20, 21])
    assert m.profile == "smplx" and not m.synthesised and len(m.source_for) == 22
    assert m.source_for["left_wrist"] == "m_avg_L_Wrist" and m.unmapped_source == ["m_avg_L_Hand", "m_avg_R_Hand"]
    assert normalize_bone_name("mixamorig1:Left_Up-Leg") == "leftupleg"
    assert normalize_bone_name("Armature|DEF-thigh.L") == "defthighl"
    assert normalize_bone_name("Left hip") == normalize_bone_name("left_hip")


def test_unlisted_names_map_by_hierarchy_and_bad_rigs_raise_with_guidance():
    names, parents = humanoid("Hips", ["Spine"], ["Neck"], "Head",
                              _arms(["{side}Shoulder", "{side}Arm", "{side}ForeArm", "{side}Hand"]),
                              _arms(["{side}Thigh", "{side}KneeJoint", "{side}Foot"]))
    m = map_bones(names, parents)                # no profile names 'KneeJoint': the legs' chains do
    assert m.profile == "auto" and m.source_for["left_knee"] == "LeftKneeJoint"
    assert m.source_for["right_hip"] == "RightThigh" and 0 < m.confidence["left_knee"] <= 1
    # legs that end at the knee: nothing to find
    names, parents = humanoid("Hips", ["Spine"], ["Neck"], "Head",
                              _arms(["{side}Shoulder", "{side}Arm", "{side}ForeArm", "{side}Hand"]),
                              _arms(["{side}Thigh"]))
    with pytest.raises(UnmappableRigError) as info:
        map_bones(names, parents)
    msg = str(info.value)
    for needle in ("left knee [left_knee]", "right_knee", "LeftThigh", "--mapping FILE.json", "Bone Map panel"):
        assert needle in msg, (needle, msg)
    assert "map_bones" not in msg and "load_body_clip" not in msg
    assert "left_shoulder" not in msg.split("Bones in the rig")[0]
    assert info.value.mapping.candidates["left_hip"][0][0] == "LeftThigh"


def test_overrides(tmp_path):
    names, parents = humanoid("Hips", ["Spine"], ["Neck"], "Head",
                              _arms(["{side}Shoulder", "{side}Arm", "{side}ForeArm", "{side}Hand"]),
                              _arms(["{side}Thigh", "{side}KneeJoint", "{side}Foot"]))
    fix = {"left_hip": "LeftThigh", "right_hip": "RightThigh", "left_knee": "LeftKneeJoint", "right_knee": "rightkneejoint"}
    m = map_bones(names, parents, overrides=fix)
    _covers_all(m)
    assert m.source_for["right_knee"] == "RightKneeJoint" and set(m.overridden) == set(fix)
    assert m.source_for["left_ankle"] == "LeftFoot"
    assert m.synthesised["left_foot"].startswith("in front of")            # no toe bone, no End Site
    # None forces "not mapped": the collar is synthesised instead
    m = map_bones(names, parents, overrides={**fix, "left_collar": None})
    assert "left_collar" not in m.source_for and "left_collar" in m.synthesised
    assert "LeftShoulder" in m.unmapped_source
    # an override wins over the profile
    m = map_bones(*RIGS["bandai"], overrides={"spine2": "Chest", "spine3": None})
    assert m.source_for["spine2"] == "Chest" and "spine3" in m.synthesised
    with pytest.raises(RetargetError, match="unknown canonical joint.*left_kneee.*valid names are: pelvis"):
        map_bones(names, parents, overrides={**fix, "left_kneee": "LeftKneeJoint"})
    with pytest.raises(RetargetError, match="no bone of that name.*LeftKneeJoint"):
        map_bones(names, parents, overrides={**fix, "left_knee": "LeftKneeJiont"})
    path = tmp_path / "map.json"
    path.write_text(json.dumps(fix))
    _covers_all(map_bones(names, parents, overrides=str(path)))
    path.write_text("[1, 2]")
    with pytest.raises(RetargetError, match="JSON object"):
        map_bones(names, parents, overrides=path)


def test_canonical_joints_synthesis_on_default_skeleton():
    skel = default_skeleton(1.7, body_only=True)
    rest = skel.rest_positions()
    # a rig with only hips..ankles, shoulders, elbows, neck: the rest is synthesised near the truth
    keep = ["left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "neck", "head",
            "left_shoulder", "right_shoulder", "left_elbow", "right_elbow"]
    names = [f"b_{n}" for n in keep]
    pos = np.stack([rest[CI[n]] for n in keep])
    m = map_bones(names, overrides={n: f"b_{n}" for n in keep})
    assert m.profile == "custom"
    got = canonical_joints(pos, names, m)
    assert got.shape == (22, 3)
    err = np.linalg.norm(got - rest, axis=-1)
    assert err.max() < 0.06, dict(zip(CANONICAL_JOINTS, err.round(3)))
    assert err[CI["spine2"]] < 0.03 and err[CI["left_wrist"]] < 1e-9
    # toes are in front (+Z, the body faces +Z) of and below the ankles
    assert got[CI["left_foot"], 2] > rest[CI["left_ankle"], 2] + 0.1 and got[CI["left_foot"], 1] < rest[CI["left_ankle"], 1]
    # the missing joints follow the body when it turns
    q = axis_angle_to_quat(np.array([0.0, np.pi / 2, 0.0]))
    turned = canonical_joints(quat_rotate(q, pos), names, m)
    np.testing.assert_allclose(turned, quat_rotate(q, got), atol=1e-12)


def test_unit_detection():
    for height in (1.55, 1.75, 1.95):
        joints = default_skeleton(height, body_only=True).rest_positions()
        assert abs(estimate_height(joints) - height) < 1e-9
        assert detect_unit_scale(joints) == 1.0
        assert detect_unit_scale(joints * 100) == 0.01
        assert detect_unit_scale(joints * 1000) == 0.001
        assert detect_unit_scale(joints / 0.0254, return_unit=True) == (0.0254, "in")
        # any joint set: extent of the figure
        assert detect_unit_scale(np.concatenate([joints, joints[:1]]) * 100, canonical=False) == 0.01
    scale, unit = detect_unit_scale(default_skeleton(1.7, body_only=True).rest_positions() * 10, return_unit=True)
    assert unit == "fit" and abs(scale - 0.1) < 1e-9


def test_convert_up_axis():
    p = np.array([[1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(convert_up_axis(p, "Y"), p)
    np.testing.assert_array_equal(convert_up_axis(p, "z"), [[1.0, 3.0, -2.0]])
    with pytest.raises(ValueError):
        convert_up_axis(p, "X")


# --- load_body_clip on generated files --------------------------------------------------------------------
def _smpl_clip(frames=24, seed=0, zup=False, scale=1.0, frame_time=1 / 30):
    skel = default_skeleton(1.75, body_only=True)
    rng = np.random.default_rng(seed)
    rot = axis_angle_to_quat(rng.normal(scale=0.3, size=(frames, 22, 3)))
    trans = skel.offsets[0] + np.cumsum(rng.normal(scale=0.01, size=(frames, 3)), axis=0)
    offsets = skel.offsets.copy()
    head_end = np.array([0.0, 0.1, 0.0])
    if zup:   # the same motion in a right-handed Z-up frame: (x, y, z)_Yup -> (x, -z, y)_Zup
        m = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])
        mq = axis_angle_to_quat(np.array([np.pi / 2, 0, 0]))
        offsets = offsets @ m.T
        head_end = m @ head_end
        trans = trans @ m.T
        rot = quat_mul(quat_mul(mq, rot), quat_conjugate(mq))
    return bvh_from_rotations(BODY_JOINT_NAMES, BODY_PARENTS, offsets, rot, trans, frame_time, scale=scale,
                              end_sites={"head": head_end})


def test_load_body_clip_units_axes_and_resampling(tmp_path):
    write_bvh(tmp_path / "m.bvh", _smpl_clip())
    write_bvh(tmp_path / "cm.bvh", _smpl_clip(scale=100.0))
    write_bvh(tmp_path / "mm.bvh", _smpl_clip(scale=1000.0))
    write_bvh(tmp_path / "zup.bvh", _smpl_clip(zup=True, scale=100.0))
    ref = load_body_clip(tmp_path / "m.bvh")
    assert isinstance(ref, BodyClip) and ref.joints.shape == (24, 22, 3) and ref.unit == "m"
    assert ref.fps == 30.0 and ref.source_fps == 30.0 and ref.source_frames == 24
    assert ref.mapping.profile == "smplx" and not ref.mapping.synthesised
    assert abs(estimate_height(ref.joints[0]) - 1.75) < 1e-4
    for name, unit in (("cm", "cm"), ("mm", "mm")):
        b = load_body_clip(tmp_path / f"{name}.bvh")
        assert b.unit == unit
        np.testing.assert_allclose(b.joints, ref.joints, atol=1e-6)
    z = load_body_clip(tmp_path / "zup.bvh", up_axis="Z")
    np.testing.assert_allclose(z.joints, ref.joints, atol=1e-6)
    assert z.up_axis == "Z" and z.unit == "cm"
    forced = load_body_clip(tmp_path / "cm.bvh", unit="m")
    np.testing.assert_allclose(forced.joints, ref.joints * 100, atol=1e-4)
    np.testing.assert_allclose(load_body_clip(tmp_path / "cm.bvh", unit=0.01).joints, ref.joints, atol=1e-6)
    # 120 fps source -> 30 fps output
    write_bvh(tmp_path / "fast.bvh", _smpl_clip(frames=48, frame_time=0.008333))
    fast = load_body_clip(tmp_path / "fast.bvh")
    assert fast.source_fps == 120.0 and fast.joints.shape[0] == 12
    np.testing.assert_allclose(fast.joints, read_bvh_joints(tmp_path / "fast.bvh")[::4], atol=1e-9)
    assert "smplx" in ref.report() and "height" in ref.report()
    skel = ref.source_skeleton
    assert skel.names[-1] == "right_wrist" and skel.is_end_site.count(True) == 1
    # the source skeleton is in metres and core axes
    np.testing.assert_allclose(z.source_skeleton.offsets, ref.source_skeleton.offsets, atol=1e-9)


def read_bvh_joints(path):
    clip = read_bvh(path)
    pos = clip.global_positions()
    return pos[:, [clip.index(n) for n in BODY_JOINT_NAMES]]


def test_load_body_clip_errors(tmp_path):
    (tmp_path / "x.fbx").write_text("nope")
    with pytest.raises(UnsupportedFormatError, match=r"unsupported.*'\.fbx'.*supported: \.bvh"):
        load_body_clip(tmp_path / "x.fbx")
    clip = _smpl_clip()
    clip.names = [n.replace("knee", "shin_joint") for n in clip.names]
    write_bvh(tmp_path / "odd.bvh", clip)
    found = load_body_clip(tmp_path / "odd.bvh")          # by the hierarchy, the rest pose and 'shin'
    assert found.mapping.profile == "auto" and found.mapping.source_for["left_knee"] == "left_shin_joint"
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"left_knee": "left_shin_joint", "right_knee": "right_shin_joint"}))
    ok = load_body_clip(tmp_path / "odd.bvh", overrides=path)
    assert ok.mapping.source_for["left_knee"] == "left_shin_joint"


# --- real data -----------------------------------------------------------------------------------------
RIGID = [("left_hip", "left_knee"), ("left_knee", "left_ankle"), ("left_ankle", "left_foot"),
         ("right_hip", "right_knee"), ("right_knee", "right_ankle"), ("right_ankle", "right_foot"),
         ("spine3", "neck"), ("neck", "head"), ("left_collar", "left_shoulder"), ("left_shoulder", "left_elbow"),
         ("left_elbow", "left_wrist"), ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
         ("spine1", "spine3")]


@pytest.mark.parametrize("kind", ["bandai", "cmu"])
def test_real_mapping(mocap, kind):
    for path in need_mocap(mocap, kind):
        b = load_body_clip(path)
        m = b.mapping
        _covers_all(m)
        assert m.profile == kind and "spine2" in m.synthesised
        assert b.joints.shape[1:] == (22, 3) and np.isfinite(b.joints).all()
        if kind == "bandai":
            assert b.unit == "cm" and b.source_fps == 30.0 and b.joints.shape[0] == b.source_frames
            assert set(m.synthesised) == {"spine2"}
            lo = 1.4
        else:
            assert b.unit == "m" and b.source_fps == 120.0
            assert m.source_for["left_foot"] == "lFoot_end" and "End Site" in m.synthesised["left_foot"]
            assert b.joints.shape[0] == round(b.source_frames / 4)
            lo = 1.2   # the CMU "_scaled" figures are about 1.3 m tall in their metres
        h = estimate_height(b.joints[0])
        assert lo <= h <= 2.0, h
        assert 0.3 < b.joints[0, :, 1].max() - b.joints[0, :, 1].min() < 2.0
        for a, c in RIGID:
            length = np.linalg.norm(b.joints[:, CI[a]] - b.joints[:, CI[c]], axis=-1)
            assert np.ptp(length) < 1e-6, (a, c, np.ptp(length))
            assert length.min() > 0.01
        # left is left: with the body facing +Z, the left hip is at +X (checked via the feet's direction)
        j = b.joints
        fwd = np.cross(j[:, CI["left_hip"]] - j[:, CI["right_hip"]], [0.0, 1.0, 0.0])
        toes = j[:, CI["left_foot"]] - j[:, CI["left_ankle"]] + j[:, CI["right_foot"]] - j[:, CI["right_ankle"]]
        assert np.mean((fwd * toes).sum(-1) > 0) > 0.9
