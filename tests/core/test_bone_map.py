# SPDX-License-Identifier: GPL-3.0-or-later
"""Automatic bone mapping of humanoid rigs written in code: every convention, partial user mappings,
bad input (quadruped, one leg, two pairs of arms, no hierarchy) and the mapping template."""
from __future__ import annotations

import json

import numpy as np
import pytest

from bone_map_rigs import catalogue, quadruped, with_second_arms, without
from core_models.io.bone_map import read_bone_name
from core_models.io.mapping_template import write_mapping_template
from core_models.io.retarget import (CANONICAL_JOINTS, RetargetError, UnmappableRigError, load_mapping_file,
                                     map_bones)

RIGS = catalogue()


def _map(rig, **kw):
    return map_bones(rig.names, rig.parents, source_rest_positions=rig.rest_positions, **kw)


def _check(rig, m):
    wrong = {c: (m.source_for.get(c), want) for c, want in rig.expected.items() if m.source_for.get(c) != want}
    assert not wrong, wrong
    assert set(m.source_for) | set(m.synthesised) == set(CANONICAL_JOINTS)
    assert set(m.confidence) == set(m.source_for) and all(0.0 <= v <= 1.0 for v in m.confidence.values())
    assert set(m.candidates) == set(CANONICAL_JOINTS)


@pytest.mark.parametrize("name", list(RIGS))
@pytest.mark.parametrize("profile", [None, "auto"])
def test_every_convention_maps(name, profile):
    """Named profiles where they fit; the hierarchy + rest pose method alone on every rig."""
    rig = RIGS[name]
    m = _map(rig, profile=profile)
    _check(rig, m)
    if profile == "auto":
        assert m.profile == "auto"
        z_up = "Z-up" in rig.notes
        assert (m.up_axis, m.facing) == (("+Z", "-Y") if z_up else ("+Y", "+Z"))
        assert min(m.confidence.values()) > (0.4 if name == "anonymous" else 0.45)
        for c in ("left_knee", "right_elbow"):
            assert m.candidates[c][0][0] == m.source_for[c]


def test_unlisted_conventions_need_no_profile():
    for name in ("daz_genesis9", "mmd_pmx", "vrm", "rokoko", "xsens_mvn", "cascadeur", "anonymous"):
        assert _map(RIGS[name]).profile == "auto", name


def test_sides_from_rest_position_when_names_say_nothing():
    rig = RIGS["anonymous"]
    turned = [np.array([-p[0], -p[1], p[2]]) for p in rig.rest]        # the same rig facing +Y instead of -Y
    m = map_bones(rig.names, rig.parents, source_rest_positions=np.array(turned))
    assert m.facing == "+Y"
    _check(rig, m)          # the toes show where the front is: left stays left


def test_names_read_by_tokens():
    for name in ("lThigh", "LeftUpLeg", "thigh_l", "Thigh.L", "L_Thigh", "Bip01 L Thigh", "mixamorig1:LeftUpLeg",
                 "Armature|DEF-thigh.L", "rig:L_Thigh", "J_Bip_L_UpperLeg", "左足", "lThighBend"):
        r = read_bone_name(name)
        assert (r.side, max(r.kinds, key=r.kinds.get), r.skip) == (1, "hip", False), (name, r)
    for name in ("upperarm_twist_01_l", "upperarm_twistCor_01_l", "ik_foot_l", "左腕捩", "左足ＩＫ", "J_Sec_Hair1_01",
                 "Toe_End", "LeftHandIndex1", "lEye", "lowerJaw", "knee_pole_l", "Bip01 L Toe0Nub"):
        assert read_bone_name(name).skip, name
    assert read_bone_name("L5").side == 0 and "spine" in read_bone_name("T12").kinds
    assert read_bone_name("右ひじ").side == -1 and "elbow" in read_bone_name("右ひじ").kinds
    assert read_bone_name("LeftShoulder").kinds.keys() == {"collar", "shoulder"}     # the chain decides


def test_partial_user_mapping_is_completed():
    rig = RIGS["anonymous"]
    m = _map(rig, overrides={"left_knee": rig.expected["left_knee"]})
    _check(rig, m)
    assert m.overridden == ["left_knee"] and m.confidence["left_knee"] == 1.0
    # one joint on a rig the named profiles do not know, with names only (no rest pose)
    r = RIGS["rokoko"]
    m = map_bones(r.names, r.parents, overrides={"head": "Head"})
    assert m.source_for["left_knee"] == "LeftShin" and m.profile == "auto" and m.overridden == ["head"]


def test_names_and_hierarchy_without_rest_pose():
    for name in ("rokoko", "vrm", "xsens_mvn", "daz_genesis9"):
        rig = RIGS[name]
        m = map_bones(rig.names, rig.parents)
        for c in ("left_hip", "right_knee", "left_ankle", "right_shoulder", "left_elbow", "right_wrist", "head"):
            assert m.source_for[c] == rig.expected[c], (name, c)


def test_no_hierarchy_maps_by_names_or_says_so():
    rig = RIGS["rokoko"]
    m = map_bones(rig.names, [-1] * len(rig.names), source_offsets=rig.rest_positions)
    assert m.profile == "names" and m.source_for["left_knee"] == "LeftShin"
    anon = RIGS["anonymous"]
    with pytest.raises(UnmappableRigError) as info:
        map_bones(anon.names, [-1] * len(anon.names), source_offsets=anon.rest_positions)
    assert "not connected" in str(info.value) and "--mapping" in str(info.value)


@pytest.mark.parametrize("case, words, missing", [
    ("quadruped", "quadruped", "left_knee"),
    ("one_leg", "only one leg", "right_knee"),
    ("one_leg_named", "only one leg", "right_knee"),        # the named right arm is not taken for the leg
    ("two_arm_pairs", "two different pairs", "left_elbow"),
])
def test_bad_rigs_say_what_is_missing(case, words, missing, tmp_path):
    anon = RIGS["anonymous"]
    rig = {"quadruped": quadruped,
           "one_leg": lambda: without(catalogue()["anonymous"], anon.expected["right_hip"]),
           "one_leg_named": lambda: without(catalogue()["mixamo"], "mixamorig:RightUpLeg"),
           "two_arm_pairs": lambda: with_second_arms(catalogue()["anonymous"], (anon.expected["left_shoulder"],
                                                     anon.expected["right_shoulder"]), anon.expected["spine3"]),
           }[case]()
    with pytest.raises(UnmappableRigError) as info:
        _map(rig)
    err = info.value
    assert isinstance(err, RetargetError)
    msg = str(err)
    assert words in msg.lower() and missing in err.missing and "--mapping FILE.json" in msg
    assert "map_bones" not in msg and "load_body_clip" not in msg and "overrides=" not in msg
    assert set(err.mapping.candidates) == set(CANONICAL_JOINTS)
    path = write_mapping_template(tmp_path / "map.json", err.bone_names, err.mapping)
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert [k for k in doc if not k.startswith("_")] == list(CANONICAL_JOINTS)
    assert doc["_bones"] == rig.names and "--mapping" in doc["_how_to_use"]
    if case == "two_arm_pairs":       # the user picks the arms from the candidates: the rest follows
        assert doc["left_elbow"] == "" and len(doc["_candidates"]["left_shoulder"]) >= 2
        doc.update({"left_shoulder": anon.expected["left_shoulder"], "right_shoulder": anon.expected["right_shoulder"]})
        path.write_text(json.dumps(doc), encoding="utf-8")
        m = _map(rig, overrides=load_mapping_file(path))
        assert m.source_for["left_elbow"] == anon.expected["left_elbow"]
        assert m.source_for["right_wrist"] == anon.expected["right_wrist"]


def test_template_of_a_good_mapping_round_trips(tmp_path):
    rig = RIGS["vrm"]
    m = _map(rig)
    path = write_mapping_template(tmp_path / "vrm.json", rig.names, m)
    again = _map(rig, overrides=str(path))
    assert again.source_for == m.source_for
