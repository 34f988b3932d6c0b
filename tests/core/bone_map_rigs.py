# SPDX-License-Identifier: GPL-3.0-or-later
"""Humanoid test rigs written in code (no downloaded assets), one per naming convention, for the bone
mapping tests and ``benchmarks/bone_map.py``.

Each rig is built on the project's default body, with its own proportions (height, leg, arm and shoulder
scale), rest pose (T or A: arms 45 degrees down), up axis (Y, or Z with the body facing -Y as in Blender),
unit, and its convention's extra bones (twist, finger, IK, helper, secondary). ``expected`` lists the
bone each canonical joint must map to (``None``: the joint has no bone and is made up).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core_models.skeleton import BODY_JOINT_NAMES, default_skeleton

SIDES = (("left", "L", "l", "Left", "左", 1), ("right", "R", "r", "Right", "右", -1))


@dataclass
class TestRig:
    convention: str
    names: list = field(default_factory=list)
    parents: list = field(default_factory=list)
    rest: list = field(default_factory=list)         # global rest positions
    expected: dict = field(default_factory=dict)     # canonical -> bone name
    notes: str = ""

    def add(self, name, parent, position, joint=None):
        self.names.append(name)
        self.parents.append(-1 if parent is None else self.names.index(parent))
        self.rest.append(np.asarray(position, dtype=np.float64))
        if joint:
            self.expected[joint] = name
        return name

    @property
    def offsets(self) -> np.ndarray:
        rest = np.array(self.rest)
        par = np.array(self.parents)
        return rest - np.where(par[:, None] >= 0, rest[np.maximum(par, 0)], 0.0)

    @property
    def rest_positions(self) -> np.ndarray:
        return np.array(self.rest)


def _body(height, legs, arms, width, a_pose):
    """Default-skeleton joints (Y up, facing +Z) with scaled legs, arms and shoulder width."""
    p = default_skeleton(height, body_only=True).rest_positions()
    j = {n: p[i].copy() for i, n in enumerate(BODY_JOINT_NAMES)}
    for side in ("left", "right"):
        hip = j[f"{side}_hip"]
        for k in ("knee", "ankle", "foot"):
            j[f"{side}_{k}"] = hip + legs * (j[f"{side}_{k}"] - hip)
        sh = j[f"{side}_shoulder"]
        sh[0] *= width
        j[f"{side}_shoulder"] = sh
        for k in ("elbow", "wrist"):
            d = arms * (j[f"{side}_{k}"] - p[BODY_JOINT_NAMES.index(f"{side}_shoulder")])
            if a_pose:      # 45 degrees down about the forward axis
                c = np.cos(np.pi / 4)
                d = np.array([d[0] * c, -abs(d[0]) * c, d[2]])
            j[f"{side}_{k}"] = sh + d
    lift = -min(v[1] for v in j.values())               # toes on the floor
    return {k: v + [0.0, lift, 0.0] for k, v in j.items()}


def build(convention, names, *, height=1.75, legs=1.0, arms=1.0, width=1.0, a_pose=False, z_up=False,
          unit=1.0, spine=3, necks=1, root=None, leg_parent="pelvis", inline_twist=(), leaf_twist=(),
          segments=(), fingers=None, head_top=None, extras=None, hip_bone=None, toe=True, notes=""):
    """A rig from a role -> name-template table. Sided templates use {side} (left), {S} (L), {s} (l),
    {Side} (Left), {jp} (左). ``spine``/``necks``: number of spine/neck bones (names from 'spine'/'neck'
    lists). ``leg_parent``: 'pelvis', 'spine0' (3ds Max Biped) or 'hip_bone' (Daz 'pelvis' under 'hip')."""
    j = _body(height, legs, arms, width, a_pose)
    rig = TestRig(convention, notes=notes)
    fmt = lambda t, sd: t.format(side=sd[0], S=sd[1], s=sd[2], Side=sd[3], jp=sd[4])  # noqa: E731
    if root:
        rig.add(root, None, [0.0, 0.0, 0.0])
    pelvis = rig.add(names["pelvis"], root, j["pelvis"], "pelvis")
    if hip_bone:
        rig.add(hip_bone, pelvis, j["pelvis"] - [0.0, 0.02, 0.0])
    chain, prev = [], pelvis
    for k in range(spine):
        t = (k + 1) / (spine + 1)
        prev = rig.add(names["spine"][k], prev, j["pelvis"] + t * (j["neck"] - j["pelvis"]) * 0.97)
        chain.append(prev)
    chest = prev
    # the spine rule of retarget.map_bones: first, middle (by length), last bone below the neck
    rig.expected.update({"spine1": chain[0] if spine > 1 else None, "spine3": chain[-1],
                         "spine2": {3: 1, 4: 2, 5: 2}.get(spine) and chain[{3: 1, 4: 2, 5: 2}[spine]]})
    neck_bones = []
    for k in range(necks):
        t = k / necks
        prev = rig.add(names["neck"][k], prev, j["neck"] + t * (j["head"] - j["neck"]), "neck" if k == 0 else None)
        neck_bones.append(prev)
    head = rig.add(names["head"], prev, j["head"], "head")
    if head_top:
        rig.add(head_top, head, j["head"] + [0.0, 0.12 * height / 1.75, 0.0])
    for sd in SIDES:
        side = sd[0]
        parent = chest
        if names.get("collar"):
            parent = rig.add(fmt(names["collar"], sd), chest, j[f"{side}_collar"], f"{side}_collar")
        parent = _limb(rig, fmt, sd, names, j, parent, ("shoulder", "elbow", "wrist"), inline_twist, leaf_twist,
                       segments)
        if fingers:
            for f, tmpl in enumerate(fingers):
                prev = parent
                for k in range(3):
                    d = j[f"{side}_wrist"] - j[f"{side}_elbow"]
                    d = d / np.linalg.norm(d)
                    prev = rig.add(fmt(tmpl, sd).replace("#", str(k + 1)), prev,
                                   j[f"{side}_wrist"] + (0.04 + 0.025 * k) * d * height / 1.75
                                   + [0.0, 0.0, 0.02 * (f - 2)])
        lp = {"pelvis": pelvis, "spine0": chain[0] if chain else pelvis, "hip_bone": hip_bone}[leg_parent]
        last = _limb(rig, fmt, sd, names, j, lp, ("hip", "knee", "ankle"), inline_twist, leaf_twist, segments)
        if toe:
            rig.add(fmt(names["toe"], sd), last, j[f"{side}_foot"], f"{side}_foot")
        else:
            rig.expected[f"{side}_foot"] = None
    for name, parent, where in (extras or ()):
        for sd in (SIDES if "{" in name else SIDES[:1]):
            rig.add(fmt(name, sd), fmt(parent, sd) if parent else None,
                    j[fmt(where, sd)] if isinstance(where, str) else where)
    if z_up:     # (x, y, z) Y-up facing +Z -> (x, -z, y): Z-up facing -Y, as Blender
        rig.rest = [np.array([p[0], -p[2], p[1]]) for p in rig.rest]
    rig.rest = [p * unit for p in rig.rest]
    return rig


def _limb(rig, fmt, sd, names, j, parent, kinds, inline_twist, leaf_twist, segments):
    side = sd[0]
    for k, kind in enumerate(kinds):
        parent = rig.add(fmt(names[kind], sd), parent, j[f"{side}_{kind}"], f"{side}_{kind}")
        if k + 1 < len(kinds):
            mid = 0.5 * (j[f"{side}_{kind}"] + j[f"{side}_{kinds[k + 1]}"])
            for tmpl in leaf_twist:
                if tmpl.startswith(kind + ":"):
                    rig.add(fmt(tmpl.split(":", 1)[1], sd), parent, mid)
            for tmpl in inline_twist:
                if tmpl.startswith(kind + ":"):
                    parent = rig.add(fmt(tmpl.split(":", 1)[1], sd), parent, mid)
            if kind in segments:
                parent = rig.add(fmt(names[kind], sd) + ".001", parent, mid)
    return parent


def _std(**kw):
    return kw


def catalogue() -> dict[str, TestRig]:
    """Every convention tested, name -> TestRig."""
    rigs = {}
    rigs["mixamo"] = build("mixamo", _std(
        pelvis="mixamorig:Hips", spine=["mixamorig:Spine", "mixamorig:Spine1", "mixamorig:Spine2"],
        neck=["mixamorig:Neck"], head="mixamorig:Head", collar="mixamorig:{Side}Shoulder",
        shoulder="mixamorig:{Side}Arm", elbow="mixamorig:{Side}ForeArm", wrist="mixamorig:{Side}Hand",
        hip="mixamorig:{Side}UpLeg", knee="mixamorig:{Side}Leg", ankle="mixamorig:{Side}Foot",
        toe="mixamorig:{Side}ToeBase"), height=1.8, unit=100.0, head_top="mixamorig:HeadTop_End",
        fingers=["mixamorig:{Side}HandThumb#", "mixamorig:{Side}HandIndex#", "mixamorig:{Side}HandMiddle#"],
        notes="cm, T-pose, fingers")
    rigs["unreal_ue4"] = build("unreal_ue4", _std(
        pelvis="pelvis", spine=["spine_01", "spine_02", "spine_03"], neck=["neck_01"], head="head",
        collar="clavicle_{s}", shoulder="upperarm_{s}", elbow="lowerarm_{s}", wrist="hand_{s}",
        hip="thigh_{s}", knee="calf_{s}", ankle="foot_{s}", toe="ball_{s}"), root="root", z_up=True, unit=100.0,
        a_pose=True, height=1.83, leaf_twist=("shoulder:upperarm_twist_01_{s}", "elbow:lowerarm_twist_01_{s}",
                                              "hip:thigh_twist_01_{s}", "knee:calf_twist_01_{s}"),
        fingers=["thumb_0#_{s}", "index_0#_{s}", "middle_0#_{s}", "ring_0#_{s}", "pinky_0#_{s}"],
        extras=[("ik_foot_root", "root", [0.0, 0.0, 0.0]), ("ik_foot_{s}", "ik_foot_root", "{side}_ankle"),
                ("ik_hand_root", "root", [0.0, 0.0, 0.0]), ("ik_hand_gun", "ik_hand_root", "right_wrist"),
                ("ik_hand_{s}", "ik_hand_gun", "{side}_wrist")],
        notes="Z-up cm, A-pose, twist/finger/IK bones")
    rigs["unreal_ue5"] = build("unreal_ue5", _std(
        pelvis="pelvis", spine=[f"spine_0{k}" for k in range(1, 6)], neck=["neck_01", "neck_02"], head="head",
        collar="clavicle_{s}", shoulder="upperarm_{s}", elbow="lowerarm_{s}", wrist="hand_{s}",
        hip="thigh_{s}", knee="calf_{s}", ankle="foot_{s}", toe="ball_{s}"), root="root", z_up=True, unit=100.0,
        spine=5, necks=2, height=1.78, legs=1.05,
        leaf_twist=("shoulder:upperarm_twistCor_01_{s}", "shoulder:upperarm_twist_01_{s}",
                    "elbow:lowerarm_twist_01_{s}", "hip:thigh_twistCor_01_{s}", "knee:calf_correctiveRoot_{s}"),
        notes="Z-up cm, 5 spine, 2 neck, twistCor/corrective bones")
    rigs["rigify"] = build("rigify", _std(
        pelvis="DEF-spine", spine=["DEF-spine.001", "DEF-spine.002", "DEF-spine.003"],
        neck=["DEF-spine.004", "DEF-spine.005"], head="DEF-spine.006", collar="DEF-shoulder.{S}",
        shoulder="DEF-upper_arm.{S}", elbow="DEF-forearm.{S}", wrist="DEF-hand.{S}", hip="DEF-thigh.{S}",
        knee="DEF-shin.{S}", ankle="DEF-foot.{S}", toe="DEF-toe.{S}"), z_up=True, necks=2, a_pose=True,
        segments=("shoulder", "elbow", "hip", "knee"), height=1.65, arms=1.08, notes="Z-up, A-pose, .001 segments")
    rigs["daz_genesis8"] = build("daz_genesis8", _std(
        pelvis="hip", spine=["abdomenLower", "abdomenUpper", "chestLower", "chestUpper"],
        neck=["neckLower", "neckUpper"], head="head", collar="{s}Collar", shoulder="{s}ShldrBend",
        elbow="{s}ForearmBend", wrist="{s}Hand", hip="{s}ThighBend", knee="{s}Shin", ankle="{s}Foot",
        toe="{s}Toe"), spine=4, necks=2, hip_bone="pelvis", leg_parent="hip_bone", unit=100.0, height=1.7,
        inline_twist=("shoulder:{s}ShldrTwist", "elbow:{s}ForearmTwist", "hip:{s}ThighTwist"),
        fingers=["{s}Thumb#", "{s}Index#", "{s}Mid#"],
        extras=[("lEye", "head", "head"), ("rEye", "head", "head"), ("lowerJaw", "head", "head")],
        notes="cm, legs under 'pelvis' under 'hip', inline twist bones")
    rigs["daz_genesis9"] = build("daz_genesis9", _std(
        pelvis="hip", spine=["spine1", "spine2", "spine3", "spine4"], neck=["neck1", "neck2"], head="head",
        collar="{s}_shoulder", shoulder="{s}_upperarm", elbow="{s}_forearm", wrist="{s}_hand",
        hip="{s}_thigh", knee="{s}_shin", ankle="{s}_foot", toe="{s}_toes"), spine=4, necks=2, hip_bone="pelvis",
        leg_parent="hip_bone", unit=100.0, height=1.68, a_pose=True,
        leaf_twist=("shoulder:{s}_upperarm_twist1", "elbow:{s}_forearm_twist1", "hip:{s}_thigh_twist1"),
        notes="cm, A-pose, 'l_shoulder' is the collar")
    rigs["3dsmax_biped"] = build("3dsmax_biped", _std(
        pelvis="Bip01 Pelvis", spine=["Bip01 Spine", "Bip01 Spine1", "Bip01 Spine2"], neck=["Bip01 Neck"],
        head="Bip01 Head", collar="Bip01 {S} Clavicle", shoulder="Bip01 {S} UpperArm", elbow="Bip01 {S} Forearm",
        wrist="Bip01 {S} Hand", hip="Bip01 {S} Thigh", knee="Bip01 {S} Calf", ankle="Bip01 {S} Foot",
        toe="Bip01 {S} Toe0"), root="Bip01", z_up=True, leg_parent="spine0", head_top="Bip01 HeadNub",
        fingers=["Bip01 {S} Finger0#", "Bip01 {S} Finger1#"], height=1.8, width=1.1,
        notes="Z-up, thighs under 'Bip01 Spine', Nub/finger bones")
    rigs["mmd_pmx"] = build("mmd_pmx", _std(
        pelvis="センター", spine=["上半身", "上半身2"], neck=["首"], head="頭", collar="{jp}肩", shoulder="{jp}腕",
        elbow="{jp}ひじ", wrist="{jp}手首", hip="{jp}足", knee="{jp}ひざ", ankle="{jp}足首", toe="{jp}つま先"),
        spine=2, hip_bone="下半身", leg_parent="hip_bone", height=1.6, legs=0.95, a_pose=True, unit=12.5,
        root="全ての親", leaf_twist=("shoulder:{jp}腕捩", "elbow:{jp}手捩"),
        fingers=["{jp}親指#", "{jp}人指#"],
        extras=[("{jp}足ＩＫ", "全ての親", "{side}_ankle"), ("{jp}つま先ＩＫ", "{jp}足ＩＫ", "{side}_foot")],
        notes="MMD units, A-pose, IK and 捩 twist bones")
    rigs["vrm"] = build("vrm", _std(
        pelvis="J_Bip_C_Hips", spine=["J_Bip_C_Spine", "J_Bip_C_Chest", "J_Bip_C_UpperChest"],
        neck=["J_Bip_C_Neck"], head="J_Bip_C_Head", collar="J_Bip_{S}_Shoulder", shoulder="J_Bip_{S}_UpperArm",
        elbow="J_Bip_{S}_LowerArm", wrist="J_Bip_{S}_Hand", hip="J_Bip_{S}_UpperLeg", knee="J_Bip_{S}_LowerLeg",
        ankle="J_Bip_{S}_Foot", toe="J_Bip_{S}_ToeBase"), root="Root", height=1.5, legs=1.1, arms=0.95,
        extras=[("J_Sec_Hair1_01", "J_Bip_C_Head", "head"), ("J_Sec_Hair1_02", "J_Sec_Hair1_01", "neck"),
                ("J_Sec_{S}_Bust1", "J_Bip_C_Chest", "{side}_collar"), ("J_Adj_{S}_FaceEye", "J_Bip_C_Head", "head"),
                ("J_Sec_{S}_SkirtBack0_01", "J_Bip_C_Hips", "{side}_hip"),
                ("J_Sec_{S}_SkirtBack0_02", "J_Sec_{S}_SkirtBack0_01", "{side}_knee")],
        fingers=["J_Bip_{S}_Thumb#", "J_Bip_{S}_Index#"], notes="secondary (hair, skirt) and adjust bones")
    rigs["rokoko"] = build("rokoko", _std(
        pelvis="Hips", spine=["Spine", "Spine1", "Spine2", "Spine3", "Spine4"], neck=["Neck"], head="Head",
        collar="{Side}Shoulder", shoulder="{Side}Arm", elbow="{Side}ForeArm", wrist="{Side}Hand",
        hip="{Side}Thigh", knee="{Side}Shin", ankle="{Side}Foot", toe="{Side}Toe"), spine=5, unit=100.0,
        height=1.72, notes="cm, 5 spine bones")
    rigs["xsens_mvn"] = build("xsens_mvn", _std(
        pelvis="Pelvis", spine=["L5", "L3", "T12", "T8"], neck=["Neck"], head="Head", collar="{Side}Shoulder",
        shoulder="{Side}UpperArm", elbow="{Side}ForeArm", wrist="{Side}Hand", hip="{Side}UpperLeg",
        knee="{Side}LowerLeg", ankle="{Side}Foot", toe="{Side}Toe"), spine=4, unit=100.0, height=1.9, width=1.15,
        notes="cm, vertebra names L5 L3 T12 T8")
    rigs["perception_neuron"] = build("perception_neuron", _std(
        pelvis="Hips", spine=["Spine", "Spine1", "Spine2"], neck=["Neck", "Neck1"], head="Head",
        collar="{Side}Shoulder", shoulder="{Side}Arm", elbow="{Side}ForeArm", wrist="{Side}Hand",
        hip="{Side}UpLeg", knee="{Side}Leg", ankle="{Side}Foot", toe="{Side}Toe"), necks=2, toe=False,
        fingers=["{Side}HandThumb#", "{Side}HandIndex#", "{Side}HandMiddle#", "{Side}HandRing#", "{Side}HandPinky#"],
        height=1.7, legs=0.97, notes="no toe bones, 2 neck bones, fingers")
    rigs["cascadeur"] = build("cascadeur", _std(
        pelvis="pelvis", spine=["spine", "chest"], neck=["neck"], head="head", collar="{s}_clavicle",
        shoulder="{s}_shoulder", elbow="{s}_elbow", wrist="{s}_wrist", hip="{s}_thigh", knee="{s}_knee",
        ankle="{s}_ankle", toe="{s}_toe"), spine=2, z_up=True, a_pose=True, height=1.76,
        notes="Z-up, A-pose, 'l_shoulder' is the upper arm")
    # meaningless names (renumbered below): no name tells a side or a joint, only hierarchy and rest pose
    placeholder = {role: f"{role}{{Side}}" for role in ("collar", "shoulder", "elbow", "wrist", "hip", "knee",
                                                       "ankle", "toe")}
    rigs["anonymous"] = _anonymous(build("anonymous", _std(
        pelvis="pelvis", spine=["s1", "s2", "s3"], neck=["n1"], head="head", **placeholder), height=1.62,
        legs=1.08, arms=0.92, z_up=True, a_pose=True, head_top="top", root="root",
        fingers=["f{Side}#"], notes="meaningless names bone_000..., Z-up, A-pose, fingers"))
    return rigs


def _anonymous(rig: TestRig) -> TestRig:
    """Renumber every bone bone_000, bone_001 ... in hierarchy order (no name tells a side or a joint)."""
    rename = {n: f"bone_{k:03d}" for k, n in enumerate(rig.names)}
    rig.names = [rename[n] for n in rig.names]
    rig.expected = {c: n and rename[n] for c, n in rig.expected.items()}
    return rig


def without(rig: TestRig, bone: str) -> TestRig:
    """The rig less one bone and everything below it (a one-legged rig)."""
    gone = {rig.names.index(bone)}
    for k, p in enumerate(rig.parents):
        if p in gone or any(a in gone for a in _ancestors(rig.parents, k)):
            gone.add(k)
    out = TestRig(rig.convention + f"-without-{bone}", notes=rig.notes)
    for k, n in enumerate(rig.names):
        if k not in gone:
            out.add(n, None if rig.parents[k] < 0 else rig.names[rig.parents[k]], rig.rest[k])
    out.expected = {c: n for c, n in rig.expected.items() if n is None or n in out.names}
    return out


def _ancestors(parents, k):
    out = []
    while parents[k] >= 0:
        k = parents[k]
        out.append(k)
    return out


def with_second_arms(rig: TestRig, shoulders=("bone_007", "bone_011"), chest="bone_004", drop=0.03) -> TestRig:
    """A second, equally plausible pair of arms hanging off the chest just below the first."""
    up = np.array([0.0, 0.0, 1.0]) if rig.convention.startswith("anonymous") else np.array([0.0, 1.0, 0.0])
    for s in shoulders:
        k = rig.names.index(s)
        chain = [k, next(c for c, p in enumerate(rig.parents) if p == k)]
        chain.append(next(c for c, p in enumerate(rig.parents) if p == chain[1]))
        parent = chest
        for j in chain:
            parent = rig.add(f"extra_{rig.names[j]}", parent, rig.rest[j] - drop * up)
    return rig


def quadruped() -> TestRig:
    """Four legs under a horizontal spine (Y up, facing +Z), neck and head forward, a tail; no names."""
    rig = TestRig("quadruped")
    rig.add("b00", None, [0.0, 0.8, -0.5])                      # hips
    prev = "b00"
    for k in range(1, 4):
        prev = rig.add(f"b0{k}", prev, [0.0, 0.8, -0.5 + 0.3 * k])  # horizontal spine to the shoulders
    rig.add("b04", "b03", [0.0, 0.95, 0.55])
    rig.add("b05", "b04", [0.0, 1.05, 0.75])
    rig.add("b06", "b00", [0.0, 0.8, -0.8])                     # tail
    for name, parent, x, z in (("fl", "b03", 0.15, 0.4), ("fr", "b03", -0.15, 0.4),
                               ("hl", "b00", 0.15, -0.5), ("hr", "b00", -0.15, -0.5)):
        p = rig.add(f"{name}1", parent, [x, 0.75, z])
        p = rig.add(f"{name}2", p, [x, 0.42, z + 0.03])
        p = rig.add(f"{name}3", p, [x, 0.08, z - 0.02])
        rig.add(f"{name}4", p, [x, 0.0, z + 0.08])
    return rig
