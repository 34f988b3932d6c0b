# SPDX-License-Identifier: GPL-3.0-or-later
"""Map the bones of common rigs onto the canonical 22-joint SMPL-X body, by bone names.

Each canonical joint is taken from the source bone whose *head* (joint position) sits at that joint:
Mixamo ``LeftUpLeg`` is the hip joint, ``LeftLeg`` the knee, ``LeftFoot`` the ankle; Rigify
``DEF-thigh.L`` the hip; Unreal ``calf_l`` the knee; CMU/Daz ``lThigh`` the hip (``lButtock`` is not).

Spine (canonical pelvis -> spine1 -> spine2 -> spine3 -> neck). When the hierarchy is known, the spine
bones are taken from the source chain strictly between the pelvis and the neck bone (the head bone
when the rig has no neck; leading bones whose head coincides with the pelvis are skipped when offsets
are known):

* 3 bones: spine1, spine2, spine3 in order (Mixamo Spine/Spine1/Spine2, SMPL, Rigify spine.001-003);
* 2 bones: spine1 = the first, spine3 = the one that parents the neck (and normally the collars),
  spine2 synthesised halfway between them (Bandai Spine/Chest, CMU Daz abdomen/chest);
* 1 bone: it is spine3 (it parents the neck), spine1 and spine2 synthesised between pelvis and it;
* more than 3 (Unreal 5 spine_01..05): spine1 = the first, spine3 = the last (the neck's parent),
  spine2 = the interior bone nearest the middle of the chain (by bone length when offsets are known);
* none: all three synthesised.

Without a hierarchy the profile's names are used. Missing spine, neck or head joints are synthesised
by linear interpolation along pelvis (t=0), spine1 (1/4), spine2 (1/2), spine3 (3/4), neck (1) -- the
spacing of the project's default skeleton -- or extrapolated past the last known joint for the head.

Toes (canonical left_foot/right_foot, the toe base): when the rig has no toe bone (CMU Daz) the
ankle bone's child is used -- normally its End Site -- else the toe is synthesised in front of and
below the ankle (along the body's facing direction from the hips, proportioned by the shin length).
Missing collars, wrists and the pelvis are synthesised too (see :func:`canonical_joints`); missing
hips, knees, ankles, shoulders or elbows, or both neck and head, are a :class:`RetargetError`.
"""
from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..skeleton import BODY_JOINT_NAMES, BODY_PARENTS, default_skeleton
from .bone_map import auto_map, map_by_names
from .mapping_template import unmapped_message

__all__ = ["RetargetError", "UnmappableRigError", "BoneMapping", "CANONICAL_JOINTS", "PROFILES", "REQUIRED_JOINTS",
           "normalize_bone_name", "map_bones", "canonical_joints", "load_mapping_file",
           "estimate_height", "detect_unit_scale", "unit_scale", "convert_up_axis", "UNIT_SCALES"]

CANONICAL_JOINTS: tuple[str, ...] = BODY_JOINT_NAMES
_CI = {n: i for i, n in enumerate(CANONICAL_JOINTS)}
REQUIRED_JOINTS: tuple[str, ...] = ("left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
                                    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow")
_SPINE = ("spine1", "spine2", "spine3")
_SIDES = (("left", "l"), ("right", "r"))


class RetargetError(ValueError):
    """A rig's bones could not be mapped onto the canonical body."""


class UnmappableRigError(RetargetError):
    """The body was not found in a rig, neither by a named profile nor by its hierarchy and rest pose.

    missing: canonical joints without a bone; mapping: the partial :class:`BoneMapping` (what was found,
    with ``candidates`` for every joint, so a UI can list them and a template can be written)."""

    def __init__(self, message: str, missing: list[str], mapping: "BoneMapping", bone_names: list[str]):
        super().__init__(message)
        self.missing, self.mapping, self.bone_names = missing, mapping, bone_names


# --- profiles -------------------------------------------------------------------------------------------
def _profile(table: dict[str, list[str]], extras: tuple[str, ...] = ()) -> dict:
    """Expand '{side}' (left/right) and '{s}' (l/r) templates into per-side canonical entries."""
    out: dict[str, list[str]] = {}
    for key, names in table.items():
        if key.startswith("*"):
            for side, s in _SIDES:
                out[f"{side}_{key[1:]}"] = [n.format(side=side, s=s) for n in names]
        else:
            out[key] = list(names)
    ext = {n.format(side=side, s=s) for n in extras for side, s in _SIDES}
    return {"joints": out, "extras": ext}


def _rigify(base: str) -> list[str]:
    return [f"DEF-{base}", f"ORG-{base}", base]


PROFILES: dict[str, dict] = {
    "smplx": _profile({
        "pelvis": ["pelvis"], "spine1": ["spine1"], "spine2": ["spine2"], "spine3": ["spine3"],
        "neck": ["neck"], "head": ["head"],
        "*hip": ["{side}_hip", "{s}_hip"], "*knee": ["{side}_knee", "{s}_knee"],
        "*ankle": ["{side}_ankle", "{s}_ankle"], "*foot": ["{side}_foot", "{s}_foot"],
        "*collar": ["{side}_collar", "{s}_collar"], "*shoulder": ["{side}_shoulder", "{s}_shoulder"],
        "*elbow": ["{side}_elbow", "{s}_elbow"], "*wrist": ["{side}_wrist", "{s}_wrist"],
    }, extras=("jaw", "{side}_eye_smplhf", "{side}_index1", "{s}_hand", "{side}_thumb1")),
    "bandai": _profile({
        "pelvis": ["Hips"], "spine1": ["Spine"], "spine2": [], "spine3": ["Chest"],
        "neck": ["Neck"], "head": ["Head"],
        "*hip": ["UpperLeg_{s}"], "*knee": ["LowerLeg_{s}"], "*ankle": ["Foot_{s}"], "*foot": ["Toes_{s}"],
        "*collar": ["Shoulder_{s}"], "*shoulder": ["UpperArm_{s}"], "*elbow": ["LowerArm_{s}"],
        "*wrist": ["Hand_{s}"],
    }, extras=("joint_Root",)),
    "mixamo": _profile({
        "pelvis": ["Hips"], "spine1": ["Spine"], "spine2": ["Spine1"], "spine3": ["Spine2"],
        "neck": ["Neck"], "head": ["Head"],
        "*hip": ["{side}UpLeg"], "*knee": ["{side}Leg"], "*ankle": ["{side}Foot"], "*foot": ["{side}ToeBase"],
        "*collar": ["{side}Shoulder"], "*shoulder": ["{side}Arm"], "*elbow": ["{side}ForeArm"],
        "*wrist": ["{side}Hand"],
    }, extras=("HeadTop_End", "{side}Toe_End", "{side}HandIndex1", "{side}HandThumb1")),
    "cmu": _profile({   # CMU via Daz/Poser naming (hip, abdomen, lThigh ...) and the CMU ASF naming
        "pelvis": ["hip", "Hips", "pelvis"],
        "spine1": ["abdomen", "abdomenLower", "Spine"], "spine2": ["abdomen2", "abdomenUpper"],
        "spine3": ["chest", "chestUpper", "Spine1"],
        "neck": ["neck", "neckLower"], "head": ["head"],
        "*hip": ["{s}Thigh", "{s}ThighBend", "{side}UpLeg"], "*knee": ["{s}Shin", "{side}Leg"],
        "*ankle": ["{s}Foot", "{side}Foot"], "*foot": ["{s}Toe", "{side}ToeBase"],
        "*collar": ["{s}Collar", "{side}Shoulder"], "*shoulder": ["{s}Shldr", "{s}ShldrBend", "{side}Arm"],
        "*elbow": ["{s}ForeArm", "{s}ForearmBend", "{side}ForeArm"], "*wrist": ["{s}Hand", "{side}Hand"],
    }, extras=("LowerBack", "Neck1", "{s}HipJoint", "{s}Buttock", "{side}FingerBase", "{side}HandIndex1",
               "{s}Thumb", "{s}Thumb1", "{side}Eye", "{s}Index1")),
    "rigify": _profile({
        "pelvis": _rigify("spine"), "spine1": _rigify("spine.001"), "spine2": _rigify("spine.002"),
        "spine3": _rigify("spine.003"), "neck": _rigify("spine.004"), "head": _rigify("spine.006"),
        "*hip": _rigify("thigh.{s}"), "*knee": _rigify("shin.{s}"), "*ankle": _rigify("foot.{s}"),
        "*foot": _rigify("toe.{s}"), "*collar": _rigify("shoulder.{s}"), "*shoulder": _rigify("upper_arm.{s}"),
        "*elbow": _rigify("forearm.{s}"), "*wrist": _rigify("hand.{s}"),
    }, extras=("DEF-spine.005", "ORG-spine.005", "spine.005", "DEF-pelvis.{s}", "heel.02.{s}", "breast.{s}",
               "DEF-thigh.{s}.001", "DEF-upper_arm.{s}.001", "root", "torso")),
    "unreal": _profile({
        "pelvis": ["pelvis"], "spine1": ["spine_01"], "spine2": ["spine_03", "spine_02"],
        "spine3": ["spine_05", "spine_04", "spine_03"], "neck": ["neck_01"], "head": ["head"],
        "*hip": ["thigh_{s}"], "*knee": ["calf_{s}"], "*ankle": ["foot_{s}"], "*foot": ["ball_{s}"],
        "*collar": ["clavicle_{s}"], "*shoulder": ["upperarm_{s}"], "*elbow": ["lowerarm_{s}"],
        "*wrist": ["hand_{s}"],
    }, extras=("root", "neck_02", "ik_foot_root", "thigh_twist_01_{s}", "calf_twist_01_{s}",
               "upperarm_twist_01_{s}", "index_01_{s}")),
    "3dsmax_biped": _profile({
        "pelvis": ["Bip01 Pelvis", "Bip001 Pelvis"], "spine1": ["Bip01 Spine", "Bip001 Spine"],
        "spine2": ["Bip01 Spine1", "Bip001 Spine1"], "spine3": ["Bip01 Spine2", "Bip001 Spine2"],
        "neck": ["Bip01 Neck", "Bip001 Neck"], "head": ["Bip01 Head", "Bip001 Head"],
        "*hip": ["Bip01 {s} Thigh", "Bip001 {s} Thigh"], "*knee": ["Bip01 {s} Calf", "Bip001 {s} Calf"],
        "*ankle": ["Bip01 {s} Foot", "Bip001 {s} Foot"], "*foot": ["Bip01 {s} Toe0", "Bip001 {s} Toe0"],
        "*collar": ["Bip01 {s} Clavicle", "Bip001 {s} Clavicle"],
        "*shoulder": ["Bip01 {s} UpperArm", "Bip001 {s} UpperArm"],
        "*elbow": ["Bip01 {s} Forearm", "Bip001 {s} Forearm"], "*wrist": ["Bip01 {s} Hand", "Bip001 {s} Hand"],
    }, extras=("Bip01", "Bip001", "Bip01 {s} Toe0Nub", "Bip01 HeadNub")),
}
# Order in which a profile's joints are resolved; a source bone is used at most once, so the more
# specific joints (spine3 = the neck's parent) are resolved before the ambiguous ones (spine2).
_RESOLVE_ORDER = ("pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
                  "left_foot", "right_foot", "neck", "head", "left_collar", "right_collar", "left_shoulder",
                  "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
                  "spine3", "spine1", "spine2")

_PREFIX_RE = re.compile(r"^(?:mixamorig\d*_?|[mf]_avg_)", re.IGNORECASE)
_SEP_RE = re.compile(r"[\s_.\-]+")


def normalize_bone_name(name: str) -> str:
    """Case-folded bone name without namespace ('mixamorig1:', 'Armature|'), 'm_avg_' prefixes and the
    separators '_ . -' and spaces: 'mixamorig:Left_Up-Leg' -> 'leftupleg', 'DEF-thigh.L' -> 'defthighl'."""
    n = str(name).strip()
    n = n.rsplit("|", 1)[-1].rsplit(":", 1)[-1]
    n = _PREFIX_RE.sub("", n)
    return _SEP_RE.sub("", n).lower()


_NORMALIZED_PROFILES = {
    pname: ({c: [normalize_bone_name(n) for n in names] for c, names in prof["joints"].items()},
            {normalize_bone_name(n) for n in prof["extras"]})
    for pname, prof in PROFILES.items()
}


# --- the mapping ----------------------------------------------------------------------------------------
@dataclass
class BoneMapping:
    """How the canonical 22 joints are obtained from a source rig.

    source_for: canonical name -> source bone (or End Site) name whose position is used.
    synthesised: canonical name -> human-readable description of how the joint is made up.
    unmapped_source: source bones (End Sites left out) that no canonical joint uses.
    profile: the rig profile whose names matched best ('custom' when overrides decide everything, 'auto'
    when the body was found from the hierarchy and rest pose, 'names' from bone names alone).
    recipes: canonical name -> machine-readable synthesis recipe used by :func:`canonical_joints`.
    """
    source_for: dict[str, str]
    synthesised: dict[str, str]
    unmapped_source: list[str]
    profile: str
    recipes: dict[str, tuple] = field(default_factory=dict)
    overridden: list[str] = field(default_factory=list)
    # canonical -> 0..1 for joints taken from bones; canonical -> [(bone, score)] best first, every joint
    confidence: dict[str, float] = field(default_factory=dict)
    candidates: dict[str, list] = field(default_factory=dict)
    up_axis: str | None = None          # '+Y', '+Z' ... from the rest pose (automatic mapping only)
    facing: str | None = None

    @property
    def mapped(self) -> list[str]:
        return [c for c in CANONICAL_JOINTS if c in self.source_for]

    def summary(self) -> str:
        derived = [c for c in self.synthesised if c in self.source_for]
        made_up = [c for c in self.synthesised if c not in self.source_for]
        lines = [f"profile '{self.profile}': {len(self.source_for) - len(derived)} of {len(CANONICAL_JOINTS)} "
                 f"joints mapped to source bones"
                 + (f", {len(derived)} taken from End Sites/child bones ({', '.join(derived)})" if derived else "")
                 + (f", {len(made_up)} synthesised ({', '.join(made_up)})" if made_up else "")]
        for c in CANONICAL_JOINTS:
            if c in self.synthesised:
                lines.append(f"  {c:15s} <- {self.synthesised[c]}")
            elif c in self.source_for:
                lines.append(f"  {c:15s} <- {self.source_for[c]}" + (" (override)" if c in self.overridden else ""))
        if self.unmapped_source:
            lines.append("  unused source bones: " + ", ".join(self.unmapped_source))
        return "\n".join(lines)


def load_mapping_file(path) -> dict:
    """Read a JSON bone mapping ``{"left_knee": "MyKneeBone", "spine2": null, ...}``."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RetargetError(f"bone mapping file '{path}' not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RetargetError(f"bone mapping file '{path}' is not valid JSON: {e}") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and (k.startswith("_") or v is None
                                                                     or isinstance(v, str)) for k, v in data.items()):
        raise RetargetError(f"bone mapping file '{path}' must hold one JSON object of canonical joint name -> "
                            f"source bone name (or null), e.g. {{\"left_knee\": \"MyKneeBone\"}}")
    return data


def _validate_overrides(overrides, names: list[str]) -> dict[str, int | None]:
    if overrides is None:
        return {}
    if isinstance(overrides, (str, Path)):
        overrides = load_mapping_file(overrides)
    if not isinstance(overrides, dict):
        raise RetargetError(f"overrides must be a dict canonical joint -> source bone name (or None), "
                            f"or a JSON file path; got {type(overrides).__name__}")
    # '_'-keys are a template's notes and candidates; "" is a joint left for the automatic mapping
    overrides = {k: v for k, v in overrides.items() if not str(k).startswith("_") and v != ""}
    unknown = [k for k in overrides if k not in _CI]
    if unknown:
        raise RetargetError(f"unknown canonical joint name(s) in the overrides: {', '.join(map(repr, unknown))}; "
                            f"valid names are: {', '.join(CANONICAL_JOINTS)}")
    exact = {n: i for i, n in reversed(list(enumerate(names)))}
    norm = {}
    for i, n in reversed(list(enumerate(names))):
        norm[normalize_bone_name(n)] = i
    out: dict[str, int | None] = {}
    for c, src in overrides.items():
        if src is None:
            out[c] = None
            continue
        if not isinstance(src, str):
            raise RetargetError(f"override for '{c}' must be a bone name or None, got {src!r}")
        i = exact.get(src, norm.get(normalize_bone_name(src)))
        if i is None:
            close = difflib.get_close_matches(src, names, n=3)
            raise RetargetError(f"override '{c}' -> '{src}': the rig has no bone of that name"
                                + (f" (did you mean {', '.join(map(repr, close))}?)" if close else "")
                                + f"; bones: {', '.join(names)}")
        out[c] = i
    return out


def _match_profile(pjoints: dict[str, list[str]], lookup: dict[str, int]) -> dict[str, int]:
    used: set[int] = set()
    picks: dict[str, int] = {}
    for c in _RESOLVE_ORDER:
        for key in pjoints.get(c, ()):
            i = lookup.get(key)
            if i is not None and i not in used:
                picks[c] = i
                used.add(i)
                break
    return picks


def _ancestors(j: int, parents) -> list[int]:
    out = []
    seen = set()
    while j is not None and j >= 0 and j not in seen:
        seen.add(j)
        j = parents[j]
        if j >= 0:
            out.append(j)
    return out


def _consistency(picks: dict[str, int], parents) -> int:
    """Number of picked canonical joints whose canonical parent is picked but is not a source ancestor."""
    bad = 0
    for c, i in picks.items():
        p = BODY_PARENTS[_CI[c]]
        while p >= 0 and CANONICAL_JOINTS[p] not in picks:
            p = BODY_PARENTS[p]
        if p >= 0 and picks[CANONICAL_JOINTS[p]] not in _ancestors(i, parents):
            bad += 1
    return bad


def _spine_from_chain(pelvis: int, top: int, parents, offsets) -> list[int] | None:
    """Source bones strictly between pelvis and top (neck), from the pelvis outwards; None if top is not
    below the pelvis. Leading bones at zero distance from the pelvis are dropped when offsets are known."""
    anc = _ancestors(top, parents)
    if pelvis not in anc:
        return None
    chain = list(reversed(anc[:anc.index(pelvis)]))
    if offsets is not None:
        while chain and np.linalg.norm(offsets[chain[0]]) < 1e-9:
            chain.pop(0)
    return chain


def _pick_spine(chain: list[int], top: int, offsets) -> dict[str, int]:
    n = len(chain)
    if n == 0:
        return {}
    if n == 1:
        return {"spine3": chain[0]}
    if n == 2:
        return {"spine1": chain[0], "spine3": chain[1]}
    if n == 3:
        return dict(zip(_SPINE, chain))
    if offsets is not None:
        # distance of each chain bone's head from the pelvis along the chain, and of the neck
        dist = np.cumsum([np.linalg.norm(offsets[j]) for j in chain] + [np.linalg.norm(offsets[top])])
        half = 0.5 * dist[-1]
        spine2 = chain[min(range(1, n - 1), key=lambda k: abs(dist[k] - half))]
    else:
        spine2 = chain[(n - 1) // 2]
    return {"spine1": chain[0], "spine2": spine2, "spine3": chain[-1]}


def map_bones(source_names, source_parents=None, overrides=None, *, source_offsets=None,
              source_rest_positions=None, is_end_site=None, profile: str | None = None) -> BoneMapping:
    """Map source bone names onto the 22 canonical joints.

    source_parents (optional) enables the structural spine rule, toes from the ankle's child/End Site
    and the profile consistency check; source_offsets (J, 3) -- rest offsets *relative to the parent*,
    as BVH OFFSETs -- let the spine rule skip zero-length bones and pick spine2 by length; or give
    source_rest_positions (J, 3), absolute rest positions (e.g. Blender ``bone.head_local``) instead.
    is_end_site marks End Sites (otherwise leaves whose name ends in '_end' count as End Sites).
    overrides: canonical name -> source bone name (or None to force "not mapped"), or a JSON file path.
    profile: force one of :data:`PROFILES` instead of choosing the best-matching one, or 'auto' to find
    the body from the hierarchy and rest pose alone (see :mod:`.bone_map`; also what happens when no
    profile fits). A partial ``overrides`` is completed the same way.

    The result's ``confidence`` (0..1 per mapped joint) and ``candidates`` (per joint, up to three
    ``(bone, score)``, best first) say how sure the mapping is; :class:`UnmappableRigError` carries the
    partial mapping (with candidates) when the body is not found.
    """
    names = [str(n) for n in source_names]
    nj = len(names)
    parents = None if source_parents is None else [int(p) for p in source_parents]
    if parents is not None and len(parents) != nj:
        raise RetargetError(f"{nj} source names but {len(parents)} parents")
    offsets = None if source_offsets is None else np.asarray(source_offsets, dtype=np.float64).reshape(-1, 3)
    if source_rest_positions is not None:
        if offsets is not None:
            raise RetargetError("give source_offsets or source_rest_positions, not both")
        if parents is None:
            raise RetargetError("source_rest_positions need source_parents")
        rest = np.asarray(source_rest_positions, dtype=np.float64).reshape(-1, 3)
        if rest.shape[0] != nj:
            raise RetargetError(f"{nj} source names but {rest.shape[0]} rest positions")
        offsets = rest - np.where(np.array(parents)[:, None] >= 0, rest[np.maximum(parents, 0)], 0.0)
    if offsets is not None and offsets.shape[0] != nj:
        raise RetargetError(f"{nj} source names but {offsets.shape[0]} offsets")
    if is_end_site is None:
        ends = [parents is not None and parents[i] >= 0 and n.endswith("_end")
                and not any(p == i for p in parents) for i, n in enumerate(names)]
    else:
        ends = [bool(e) for e in is_end_site]
    forced = _validate_overrides(overrides, names)

    lookup: dict[str, int] = {}
    for i, n in enumerate(names):
        if not ends[i]:
            lookup.setdefault(normalize_bone_name(n), i)
    raw_prefix = any(re.match(r"^mixamorig\d*[:_]", n, re.IGNORECASE) for n in names)
    if profile is not None and profile not in PROFILES and profile != "auto":
        raise RetargetError(f"unknown profile '{profile}'; profiles: {', '.join(PROFILES)} or 'auto'")
    best = ((0, 0, 0), "auto", {})          # profile 'auto': straight to the hierarchy and rest pose
    for pname in ([] if profile == "auto" else [profile] if profile else PROFILES):
        pjoints, extras = _NORMALIZED_PROFILES[pname]
        picks = _match_profile(pjoints, lookup)
        score = (len(picks), -(_consistency(picks, parents) if parents is not None else 0),
                 len(extras & lookup.keys()) + (5 if pname == "mixamo" and raw_prefix else 0))
        if best[1] == "auto" or score > best[0]:
            best = (score, pname, picks)
    (count, minus_inconsistent, _), pname, picks = best
    inconsistent = -minus_inconsistent      # picked joints whose parent is not a source ancestor
    if not picks and forced:
        pname = "custom"

    chosen: dict[str, int] = {c: i for c, i in picks.items() if c not in forced}
    for c, i in forced.items():
        if i is not None:
            chosen[c] = i
    confidence = {c: 1.0 if parents is not None else 0.9 for c in chosen}
    candidates = {c: [(names[i], confidence[c])] for c, i in chosen.items()}
    auto, closest = None, pname
    if _missing_required(chosen) or inconsistent:
        # no named profile fits: find the body from the hierarchy and rest pose (names as hints)
        rest = None if offsets is None else _rest_positions(offsets, parents)
        pinned = {i: c for c, i in forced.items() if i is not None}
        flat = parents is None or all(p < 0 for p in parents)
        auto = map_by_names(names, parents is not None) if flat else auto_map(names, parents, rest, ends, pinned)
        found = {c: i for c, i in auto.chosen.items() if c not in forced}
        if not _missing_required({**found, **{c: i for c, i in forced.items() if i is not None}}) \
                or _missing_required(chosen):
            chosen = {c: i for c, i in forced.items() if i is not None}
            chosen.update(found)
            confidence = {c: (1.0 if c in forced else auto.confidence.get(c, 0.5)) for c in chosen}
            pname = "names" if flat else "auto"
        candidates = {**auto.candidates, **{c: [(names[i], 1.0)] for c, i in forced.items() if i is not None}}
    synth: dict[str, str] = {}
    recipes: dict[str, tuple] = {}

    # Spine from the hierarchy (unless the user overrode any spine joint).
    if parents is not None and not any(c in forced for c in _SPINE) and "pelvis" in chosen:
        top = chosen.get("neck", chosen.get("head"))
        chain = None if top is None else _spine_from_chain(chosen["pelvis"], top, parents, offsets)
        if chain is not None:
            for c in _SPINE:
                chosen.pop(c, None)
            chosen.update(_pick_spine(chain, top, offsets))
            around = min(confidence.get("pelvis", 1.0), confidence.get("neck", confidence.get("head", 1.0)))
            confidence.update({c: around for c in _SPINE if c in chosen})

    # Toes from the ankle's child (normally its End Site).
    for side, _ in _SIDES:
        toe, ankle = f"{side}_foot", f"{side}_ankle"
        if toe in chosen or toe in forced or ankle not in chosen or parents is None:
            continue
        kids = [k for k, p in enumerate(parents) if p == chosen[ankle]]
        if kids:
            kids.sort(key=lambda k: (not ends[k], k))
            chosen[toe] = kids[0]
            confidence[toe] = 0.8 * confidence.get(ankle, 1.0)
            synth[toe] = (f"End Site of '{names[chosen[ankle]]}'" if ends[kids[0]]
                          else f"child '{names[kids[0]]}' of the ankle bone '{names[chosen[ankle]]}'")
    if parents is None:
        for side, _ in _SIDES:
            toe, ankle = f"{side}_foot", f"{side}_ankle"
            if toe not in chosen and toe not in forced and ankle in chosen:
                cand = f"{names[chosen[ankle]]}_end"
                if cand in names:
                    chosen[toe] = names.index(cand)
                    confidence[toe] = 0.8 * confidence.get(ankle, 1.0)
                    synth[toe] = f"End Site of '{names[chosen[ankle]]}'"

    for c in CANONICAL_JOINTS:
        candidates.setdefault(c, [])
    missing_required = _missing_required(chosen)
    if missing_required:
        partial = BoneMapping({c: names[chosen[c]] for c in CANONICAL_JOINTS if c in chosen}, {}, [], pname,
                              confidence=confidence, candidates=candidates,
                              up_axis=auto and auto.up_axis, facing=auto and auto.facing)
        hint = (f"(No known naming convention fits either: the closest, '{closest}', names {count} of "
                f"{len(CANONICAL_JOINTS)} joints.)" if count else "")
        message = unmapped_message(missing_required, auto.problems if auto else [], hint)
        raise UnmappableRigError(message + " Bones in the rig: " + ", ".join(names) + ".",
                                 missing_required, partial, names)

    # Synthesis recipes for whatever is still missing.
    if "pelvis" not in chosen:
        recipes["pelvis"] = ("mid", "left_hip", "right_hip")
        synth["pelvis"] = "midpoint of the hip joints"
    chain_names = ("pelvis",) + _SPINE + ("neck", "head")
    known = [c for c in chain_names if c in chosen or c == "pelvis"]
    for c in chain_names[1:]:
        if c not in chosen:
            lo = [k for k in known if _CHAIN_T[k] < _CHAIN_T[c]]
            hi = [k for k in known if _CHAIN_T[k] > _CHAIN_T[c]]
            recipes[c] = ("chain",)
            if hi:
                synth[c] = f"interpolated between {lo[-1]} and {hi[0]}"
            else:
                synth[c] = f"extrapolated from {lo[-2] if len(lo) > 1 else lo[-1]} and {lo[-1]}"
    for side, _ in _SIDES:
        if f"{side}_collar" not in chosen:
            recipes[f"{side}_collar"] = ("collar", side)
            synth[f"{side}_collar"] = f"between spine3, neck and {side}_shoulder (default-skeleton proportions)"
        if f"{side}_wrist" not in chosen:
            recipes[f"{side}_wrist"] = ("wrist", side)
            synth[f"{side}_wrist"] = f"extrapolated along the {side} upper arm from the elbow"
        if f"{side}_foot" not in chosen:
            recipes[f"{side}_foot"] = ("toe", side)
            synth[f"{side}_foot"] = f"in front of and below the {side} ankle (no toe bone or End Site)"

    used = set(chosen.values())
    unmapped = [n for i, n in enumerate(names) if i not in used and not ends[i]]
    return BoneMapping(source_for={c: names[chosen[c]] for c in CANONICAL_JOINTS if c in chosen},
                       synthesised={c: synth[c] for c in CANONICAL_JOINTS if c in synth},
                       unmapped_source=unmapped, profile=pname,
                       recipes={c: recipes[c] for c in CANONICAL_JOINTS if c in recipes},
                       overridden=[c for c in CANONICAL_JOINTS if c in forced],
                       confidence={c: round(float(confidence.get(c, 1.0)), 3) for c in CANONICAL_JOINTS if c in chosen},
                       candidates={c: candidates[c] for c in CANONICAL_JOINTS},
                       up_axis=auto and auto.up_axis, facing=auto and auto.facing)


def _missing_required(chosen) -> list[str]:
    missing = [c for c in REQUIRED_JOINTS if c not in chosen]
    return missing + (["neck", "head"] if "neck" not in chosen and "head" not in chosen else [])


def _rest_positions(offsets: np.ndarray, parents) -> np.ndarray:
    rest: dict[int, np.ndarray] = {}

    def at(j: int) -> np.ndarray:      # parents may come after their children in a hand-made list
        if j not in rest:
            rest[j] = offsets[j] + (at(parents[j]) if parents[j] >= 0 else 0.0)
        return rest[j]
    return np.array([at(j) for j in range(len(parents))])


# --- proportions of the project's default skeleton used for synthesis -------------------------------------
def _default_proportions():
    p = default_skeleton(1.0, body_only=True).rest_positions()
    ci = _CI
    chain_t = {"pelvis": 0.0, "spine1": 0.25, "spine2": 0.5, "spine3": 0.75, "neck": 1.0}
    pel, neck, head = p[ci["pelvis"]], p[ci["neck"]], p[ci["head"]]
    chain_t["head"] = 1.0 + np.linalg.norm(head - neck) / np.linalg.norm(neck - pel)
    s3, sh, col = p[ci["spine3"]], p[ci["left_shoulder"]], p[ci["left_collar"]]
    basis = np.stack([sh - s3, neck - s3], axis=1)
    collar_ab = np.linalg.lstsq(basis, col - s3, rcond=None)[0]
    upper = np.linalg.norm(p[ci["left_elbow"]] - sh)
    fore = np.linalg.norm(p[ci["left_wrist"]] - p[ci["left_elbow"]])
    ank, knee, toe = p[ci["left_ankle"]], p[ci["left_knee"]], p[ci["left_foot"]]
    shin = np.linalg.norm(knee - ank)
    toe_fwd, toe_down = (toe - ank)[2] / shin, (ank - toe)[1] / shin
    # Height model: leg length + trunk polyline, calibrated on the default skeleton (height 1).
    return chain_t, collar_ab, fore / upper, (toe_fwd, toe_down), 1.0 / _size_measure(p)


def _size_measure(j: np.ndarray) -> np.ndarray:
    """Pose-independent body size of canonical joints (..., 22, 3): mean leg length (hip-knee-ankle)
    plus the trunk polyline pelvis-spine1-spine2-spine3-neck-head plus the hip-centre to pelvis distance."""
    ci = _CI
    n = lambda a, b: np.linalg.norm(j[..., ci[a], :] - j[..., ci[b], :], axis=-1)  # noqa: E731
    leg = 0.5 * (n("left_hip", "left_knee") + n("left_knee", "left_ankle")
                 + n("right_hip", "right_knee") + n("right_knee", "right_ankle"))
    trunk = n("pelvis", "spine1") + n("spine1", "spine2") + n("spine2", "spine3") + n("spine3", "neck") + n("neck", "head")
    mid = 0.5 * (j[..., ci["left_hip"], :] + j[..., ci["right_hip"], :])
    return leg + trunk + np.linalg.norm(j[..., ci["pelvis"], :] - mid, axis=-1)


_CHAIN_T, _COLLAR_AB, _FOREARM_RATIO, _TOE_SHAPE, _HEIGHT_PER_SIZE = _default_proportions()


def canonical_joints(global_positions, source_names, mapping: BoneMapping, source_parents=None,
                     up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """(F, 22, 3) canonical joint positions from source global positions (F, J, 3) (or (J, 3)).

    Mapped joints are copied; the others follow ``mapping.recipes``: pelvis = midpoint of the hips;
    spine/neck/head interpolated along the pelvis-neck-head chain (or extrapolated for the head);
    collar = spine3 + a (shoulder - spine3) + b (neck - spine3) with a, b fitted on the default
    skeleton; wrist = elbow + r (elbow - shoulder) with r the default forearm/upper-arm ratio; toe =
    ankle moved forward (body facing from the hips and ``up``) and down in proportion to the shin.
    ``source_parents`` is accepted for symmetry with :func:`map_bones` and not needed.
    """
    pos = np.asarray(global_positions, dtype=np.float64)
    single = pos.ndim == 2
    if single:
        pos = pos[None]
    names = [str(n) for n in source_names]
    if pos.ndim != 3 or pos.shape[1:] != (len(names), 3):
        raise RetargetError(f"global positions must be (F, {len(names)}, 3); got {np.shape(global_positions)}")
    index = {}
    for i, n in enumerate(names):
        index.setdefault(n, i)
    out = np.full((pos.shape[0], len(CANONICAL_JOINTS), 3), np.nan)
    for c, src in mapping.source_for.items():
        if src not in index:
            raise RetargetError(f"mapping uses source bone '{src}' for '{c}', but the rig has no such bone")
        out[:, _CI[c]] = pos[:, index[src]]
    rec = mapping.recipes
    J = lambda c: out[:, _CI[c]]  # noqa: E731
    if "pelvis" in rec:
        out[:, _CI["pelvis"]] = 0.5 * (J("left_hip") + J("right_hip"))
    chain = [c for c in ("pelvis", "spine1", "spine2", "spine3", "neck", "head") if c not in rec or c == "pelvis"]
    for c in ("spine1", "spine2", "spine3", "neck", "head"):
        if c not in rec:
            continue
        t = _CHAIN_T[c]
        lo = [k for k in chain if _CHAIN_T[k] < t]
        hi = [k for k in chain if _CHAIN_T[k] > t]
        if hi:
            a, b = lo[-1], hi[0]
        else:
            a, b = (lo[-2], lo[-1]) if len(lo) > 1 else (lo[-1], lo[-1])
        ta, tb = _CHAIN_T[a], _CHAIN_T[b]
        w = 0.0 if tb == ta else (t - ta) / (tb - ta)
        out[:, _CI[c]] = J(a) + w * (J(b) - J(a))
    up = np.asarray(up, dtype=np.float64)
    up = up / np.linalg.norm(up)
    for side, _ in _SIDES:
        if f"{side}_collar" in rec:
            s3 = J("spine3")
            out[:, _CI[f"{side}_collar"]] = (s3 + _COLLAR_AB[0] * (J(f"{side}_shoulder") - s3)
                                             + _COLLAR_AB[1] * (J("neck") - s3))
        if f"{side}_wrist" in rec:
            el = J(f"{side}_elbow")
            out[:, _CI[f"{side}_wrist"]] = el + _FOREARM_RATIO * (el - J(f"{side}_shoulder"))
        if f"{side}_foot" in rec:
            ank = J(f"{side}_ankle")
            shin = np.linalg.norm(J(f"{side}_knee") - ank, axis=-1, keepdims=True)
            fwd = np.cross(J("left_hip") - J("right_hip"), up)
            fwd = fwd / np.maximum(np.linalg.norm(fwd, axis=-1, keepdims=True), 1e-12)
            out[:, _CI[f"{side}_foot"]] = ank + shin * (_TOE_SHAPE[0] * fwd - _TOE_SHAPE[1] * up)
    return out[0] if single else out


# --- units and axes -------------------------------------------------------------------------------------
UNIT_SCALES = {"m": 1.0, "cm": 0.01, "mm": 0.001, "in": 0.0254}


def estimate_height(joints) -> np.ndarray | float:
    """Standing height estimate from canonical joints (..., 22, 3), in their units; independent of the
    pose (sum of bone lengths along leg and trunk, scaled by the default skeleton's height ratio)."""
    j = np.asarray(joints, dtype=np.float64)
    h = _size_measure(j) * _HEIGHT_PER_SIZE
    return float(h) if np.ndim(h) == 0 else h


def unit_scale(unit) -> float:
    """Metres per file unit for 'm', 'cm', 'mm', 'in' or a positive number."""
    if isinstance(unit, str):
        key = unit.strip().lower()
        if key not in UNIT_SCALES:
            raise ValueError(f"unknown unit '{unit}'; use one of {', '.join(UNIT_SCALES)}, 'auto' or a number")
        return UNIT_SCALES[key]
    value = float(unit)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"unit scale must be a positive number, got {unit}")
    return value


def detect_unit_scale(positions, canonical: bool | None = None, return_unit: bool = False):
    """Metres per file unit guessed from a figure's size.

    positions: (J, 3) or (F, J, 3) (the first frame is used). If they are the 22 canonical joints
    (``canonical`` True, or None and J == 22) the size is :func:`estimate_height` (pose independent);
    otherwise the largest extent of the point cloud along any axis (about the height for a standing
    or T-posed figure). With H that size in file units:
    0.5 <= H < 3 -> metres; 30 <= H < 90 -> inches; 90 <= H < 300 -> centimetres;
    300 <= H < 3000 -> millimetres; anything else -> scaled so that H is 1.7 m (unit 'fit').
    Returns the scale, or (scale, unit name) with ``return_unit``.
    """
    p = np.asarray(positions, dtype=np.float64)
    if p.ndim == 3:
        p = p[0]
    if p.ndim != 2 or p.shape[-1] != 3 or p.shape[0] < 2:
        raise ValueError(f"detect_unit_scale needs (J, 3) or (F, J, 3) positions of 2+ joints; got {np.shape(positions)}")
    if not np.isfinite(p).all():
        raise ValueError("detect_unit_scale: positions contain NaN or inf")
    if canonical is None:
        canonical = p.shape[0] == len(CANONICAL_JOINTS)
    h = estimate_height(p) if canonical else float((p.max(0) - p.min(0)).max())
    for lo, hi, unit in ((0.5, 3.0, "m"), (30.0, 90.0, "in"), (90.0, 300.0, "cm"), (300.0, 3000.0, "mm")):
        if lo <= h < hi:
            scale = UNIT_SCALES[unit]
            break
    else:
        if h <= 0:
            raise ValueError("detect_unit_scale: the figure has zero size")
        scale, unit = 1.7 / h, "fit"
    return (scale, unit) if return_unit else scale


def convert_up_axis(positions, up_axis: str = "Y") -> np.ndarray:
    """Positions (..., 3) from a right-handed source with the given up axis to Y-up:
    'Y' unchanged; 'Z': (x, y, z) -> (x, z, -y)."""
    p = np.asarray(positions, dtype=np.float64)
    axis = str(up_axis).upper()
    if axis == "Y":
        return p
    if axis == "Z":
        return np.stack([p[..., 0], p[..., 2], -p[..., 1]], axis=-1)
    raise ValueError(f"up_axis must be 'Y' or 'Z', got '{up_axis}'")
