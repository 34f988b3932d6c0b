# SPDX-License-Identifier: GPL-3.0-or-later
"""Automatic bone mapping of any humanoid biped: hierarchy and rest pose first, bone names second.

The named profiles of :mod:`.retarget` only know conventions someone listed. This module finds the body
in an arbitrary rig the way an animator would:

1. Bones that never carry a body joint are set aside by name -- twist, share, helper, IK, pole, roll,
   corrective, end/nub, finger, eye and jaw bones, VRM ``J_Sec_``/``J_Adj_`` bones, MMD 捩/IK bones,
   Rigify ``.001`` segments that continue a limb bone -- and the rest of the tree is re-linked around
   them (Daz ``lThighBend -> lThighTwist -> lShin`` becomes ``lThighBend -> lShin``).
2. Legs are chains hip -> knee -> ankle that go down to the floor, arms chains shoulder -> elbow ->
   wrist that go sideways at chest height and end in a short hand; both are scored by rest geometry
   (direction, length against the figure's height, upper/lower ratio, straightness) and by name tokens.
   The best mirror-symmetric pair of each wins. The up axis is the one (of +-X, +-Y, +-Z) whose best
   leg pair scores highest; facing is the toes' direction (else the named sides, else the convention
   of the up axis: Y-up faces +Z, Z-up faces -Y).
3. The pelvis is where the legs meet (or where legs and spine meet, Daz ``hip`` / MMD センター), the
   collars sit between the chest and the shoulders, the neck starts the chain above the chest that
   leads to the head. Sides come from name markers (Left/L/_l/.L/lThigh/左), else from rest position.

Names are split into tokens (namespaces ``mixamorig1:``/``Armature|``/``rig:`` dropped, camelCase and
``_ . - space`` split, full-width characters folded) so ``LeftUpLeg``, ``thigh_l``, ``Thigh.L``,
``L_Thigh``, ``Bip01 L Thigh``, ``lThighBend`` and ``左足`` all read as "left hip".

Every joint gets a confidence in [0, 1] (geometry and name agreement, lowered when another bone
is nearly as good) and up to three candidates with scores, so a UI can list them even when the
mapping fails. Failures are :class:`MappingProblem` lines in animator words.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

import numpy as np

from ..skeleton import BODY_JOINT_NAMES, default_skeleton

__all__ = ["BoneReading", "read_bone_name", "AutoMapping", "auto_map", "map_by_names", "name_candidates",
           "LEG", "ARM"]

LEG = ("hip", "knee", "ankle")
ARM = ("shoulder", "elbow", "wrist")
SIDED_KINDS = LEG + ARM + ("toe", "collar")
# (kind, pattern on the side-free lower-case name, score); the first pattern that matches a kind counts.
# Order matters: 'forearm' before 'arm', 'upleg' before 'leg', '足首' (ankle) before '足' (MMD thigh).
_KIND_PATTERNS: tuple[tuple[str, str, float], ...] = (
    ("toe", r"toe|ball|つま先", 1.0),
    ("ankle", r"foot|ankle|足首", 1.0),
    ("knee", r"calf|shin|lowerleg|knee|ひざ|膝", 1.0),
    ("hip", r"thigh|upleg|upperleg|femur", 1.0),
    ("wrist", r"hand|wrist|palm|手首", 1.0),
    ("elbow", r"forearm|lowerarm|elbow|ひじ|肘", 1.0),
    ("shoulder", r"upperarm|uparm|shldr|humerus|arm|腕", 1.0),
    ("collar", r"clavicle|collar|肩", 1.0),
    ("collar", r"shoulder", 0.7),           # Mixamo/Rigify/VRM 'Shoulder' is the collar ...
    ("shoulder", r"shoulder", 0.7),         # ... SMPL/Cascadeur 'shoulder' the upper arm: the chain decides
    ("neck", r"neck|首", 1.0),
    ("head", r"head|頭", 1.0),
    ("spine", r"spine|chest|abdomen|waist|torso|back|lumbar|thorax|上半身", 1.0),
    ("pelvis", r"pelvis|hips?$|^hips?|下半身|センター|center|cog", 0.8),
    ("knee", r"leg", 0.8),                  # Mixamo LeftLeg, after UpLeg/UpperLeg/LowerLeg
    ("hip", r"足", 0.8),                    # MMD 左足, after 足首/つま先
)
_SKIP_TOKENS = frozenset((
    "twist", "share", "helper", "hlp", "ik", "pole", "roll", "cor", "correct", "corrective", "correction",
    "end", "nub", "finger", "thumb", "index", "middle", "ring", "pinky", "little", "digit", "metacarpal",
    "eye", "eyes", "jaw", "tongue", "teeth", "tooth", "sec", "adj", "target", "ctrl", "mch", "org", "wgt",
    "prop", "weapon", "dummy", "null", "tip", "hair", "breast", "bust", "skirt", "lid", "brow",
))
_SKIP_JAPANESE = ("捩", "指", "目", "キャンセル", "ダミー", "親", "先")   # twist, finger, eye, cancel, dummy, parent, tip
_LEFT_TOKENS = frozenset(("l", "left", "lf", "lft"))
_RIGHT_TOKENS = frozenset(("r", "right", "rt", "rgt"))
_TOKEN_RE = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+|[^\x00-\x7f]+")
_VERTEBRA_RE = re.compile(r"^[CTL]\d{1,2}$")           # Xsens L5, L3, T12, T8: spine, not a left marker
_SEGMENT_RE = re.compile(r"[._](\d{3})$")                # Blender's '.001' split segments


@dataclass(frozen=True)
class BoneReading:
    """What a bone's name says: side (+1 left, -1 right, 0 none), kind scores, whether to set it aside."""
    side: int
    kinds: dict
    skip: bool
    core: str


def _strip_namespace(name: str) -> str:
    return unicodedata.normalize("NFKC", str(name)).strip().rsplit("|", 1)[-1].rsplit(":", 1)[-1]


def read_bone_name(name: str) -> BoneReading:
    """Side, kind scores and set-aside flag from one bone name ('mixamorig:LeftUpLeg' -> left, hip 1.0)."""
    base = _strip_namespace(name)
    if _VERTEBRA_RE.match(base):
        return BoneReading(0, {"spine": 1.0}, False, base.lower())
    tokens = [t for piece in re.split(r"[\s_.\-]+", base) for t in _TOKEN_RE.findall(piece)]
    side, kept = 0, []
    for t in tokens:
        low = t.lower()
        if low in _LEFT_TOKENS:
            side = side or 1
        elif low in _RIGHT_TOKENS:
            side = side or -1
        else:
            if t[0] in "左右":                                      # MMD: 左足, 右ひじ
                side = side or (1 if t[0] == "左" else -1)
                t = t[1:]
                if not t:
                    continue
            kept.append(t.lower())
    core = "".join(k for k in kept if not k.isdigit())
    skip = bool(_SKIP_TOKENS.intersection(kept)) or any(
        ch in core for ch in _SKIP_JAPANESE if not (ch == "先" and "つま先" in core and "ik" not in kept))
    kinds: dict[str, float] = {}
    for kind, pattern, score in _KIND_PATTERNS:
        if kind not in kinds and re.search(pattern, core):
            kinds[kind] = score
            if score >= 1.0:
                break                    # a definite word: later, weaker patterns are about other words
    if "pelvis" in kinds and side and re.search(r"hip", core):
        kinds = {"hip": 0.9}             # SMPL 'L_Hip' is the hip joint, 'Hips' the pelvis
    return BoneReading(side, kinds, skip, core)


# --- the rig as a tree of body-joint candidates ------------------------------------------------------------
@dataclass
class _Rig:
    names: list
    parents: list
    pos: np.ndarray | None
    reading: list
    core: list                    # bones that may carry a body joint
    core_parent: dict             # bone -> nearest core ancestor (or -1)
    kids: dict                    # bone -> core children
    forced: dict                  # bone -> canonical joint the user chose for it
    _reach: dict = field(default_factory=dict)

    def reach(self, j: int) -> float:
        """Farthest rest distance from bone j of any bone below it (set-aside bones included: fingers)."""
        if not self._reach:
            far = np.zeros(len(self.names))
            for k in range(len(self.names)):        # walk every bone up its ancestors once
                p, seen = self.parents[k], set()
                while p >= 0 and p not in seen:
                    seen.add(p)
                    far[p] = max(far[p], float(np.linalg.norm(self.pos[k] - self.pos[p])))
                    p = self.parents[p]
            self._reach = dict(enumerate(far))
        return self._reach[j]

    def ancestors(self, j: int) -> list[int]:
        out = []
        j = self.core_parent.get(j, -1)
        while j >= 0:
            out.append(j)
            j = self.core_parent.get(j, -1)
        return out

    def name_score(self, j: int, kind: str, side: int = 0) -> float:
        """1 for a definite name, 0 for a name that says nothing, negative for one that says otherwise."""
        canonical = self.forced.get(j)
        if canonical is not None:
            want_kind, want_side = _joint_kind(canonical)
            return 2.0 if want_kind == kind and side in (0, want_side) else -1.0
        r = self.reading[j]
        s = r.kinds.get(kind, 0.0)
        if s == 0.0 and r.kinds and max(r.kinds.values()) >= 1.0:
            s = -0.5                                   # 'hand' offered as a knee
        if side and r.side and r.side != side:
            s -= 1.0
        return s


def _joint_kind(canonical: str) -> tuple[str, int]:
    side = 1 if canonical.startswith("left_") else -1 if canonical.startswith("right_") else 0
    kind = canonical.split("_", 1)[1] if side else canonical
    return {"foot": "toe"}.get(kind, kind), side


def _build(names, parents, positions, ends, forced) -> _Rig:
    reading = [read_bone_name(n) for n in names]
    skip = [r.skip or bool(e) for r, e in zip(reading, ends)]
    for j, p in enumerate(parents):            # a Rigify '.001' segment continues its parent limb bone
        if p >= 0 and _SEGMENT_RE.search(names[j]) and reading[j].kinds.keys() & set(LEG + ARM):
            if _SEGMENT_RE.sub("", names[j]) == _SEGMENT_RE.sub("", names[p]) or reading[p].kinds == reading[j].kinds:
                skip[j] = True
    for j in forced:
        skip[j] = False
    core = [j for j in range(len(names)) if not skip[j]]
    core_set = set(core)
    core_parent, kids = {}, {j: [] for j in core}
    for j in core:
        p = parents[j]
        seen = set()
        while p >= 0 and p not in core_set and p not in seen:
            seen.add(p)
            p = parents[p]
        core_parent[j] = p if p in core_set else -1
        if core_parent[j] >= 0:
            kids[core_parent[j]].append(j)
    return _Rig(names, parents, positions, reading, core, core_parent, kids, forced)


# --- proportions of the project's default body (height 1), the yardstick of the geometric scores ----------
def _proportions() -> dict:
    p = default_skeleton(1.0, body_only=True).rest_positions()
    i = {n: k for k, n in enumerate(BODY_JOINT_NAMES)}
    floor = p[:, 1].min()
    frac = lambda n: p[i[n], 1] - floor  # noqa: E731
    length = lambda a, b: float(np.linalg.norm(p[i[a]] - p[i[b]]))  # noqa: E731
    return {"leg": length("left_hip", "left_knee") + length("left_knee", "left_ankle"),
            "arm": length("left_shoulder", "left_elbow") + length("left_elbow", "left_wrist"),
            "shoulder_height": frac("left_shoulder"),
            "head_over_shoulder": (frac("head") - frac("left_shoulder")) / (frac("left_shoulder") - frac("pelvis"))}


_BODY = _proportions()


def _gauss(x, width):
    return float(np.exp(-(x / width) ** 2))


@dataclass
class _Frame:
    up: np.ndarray
    floor: float
    height: float

    def h(self, p) -> float:
        return float(np.dot(p, self.up)) - self.floor


def _chains(rig: _Rig, length: int = 3) -> list[tuple[int, ...]]:
    out = [(j,) for j in rig.core]
    for _ in range(length - 1):
        out = [c + (k,) for c in out for k in rig.kids[c[-1]]]
    return out


def _limb_geometry(rig: _Rig, chain, frame: _Frame | None, leg: bool) -> float:
    """0..1: how much a chain looks like a leg (or an arm) in the rest pose; 0.5 without positions."""
    if frame is None:
        return 0.5
    a, b, c = (rig.pos[j] for j in chain)
    la, lb = np.linalg.norm(b - a), np.linalg.norm(c - b)
    if la < 1e-9 or lb < 1e-9 or frame.height <= 0:
        return 0.0
    ratio = _gauss(np.log(la / lb), 0.4)
    rise = np.dot(b - a, frame.up) / la
    if leg:
        down = max(0.0, -(rise + np.dot(c - b, frame.up) / lb) / 2) ** 2
        low = np.clip(1 - frame.h(c) / (0.25 * frame.height), 0, 1)
        size = _gauss((la + lb) / frame.height - _BODY["leg"], 0.15)
        terms = (down, low, size, ratio)
    else:
        sideways = np.clip((rise + 0.95) / 0.25, 0, 1) * np.clip((0.6 - rise) / 0.3, 0, 1)
        straight = max(0.0, np.dot(b - a, c - b) / (la * lb))
        size = _gauss((la + lb) / frame.height - _BODY["arm"], 0.12)
        height = _gauss(frame.h(a) / frame.height - _BODY["shoulder_height"], 0.12)
        short_hand = np.clip(1.6 - rig.reach(chain[2]) / lb, 0, 1)       # a wrist ends the arm: only a hand below it
        terms = (sideways, straight, size, height, ratio, short_hand)
    return float(np.prod(terms) ** (1 / len(terms)))


@dataclass
class _Limb:
    chain: tuple
    geo: float
    names: tuple        # per joint name score for the unsided kinds
    score: float


def _limbs(rig: _Rig, frame, kinds, leg: bool, exclude=frozenset()) -> list[_Limb]:
    out = []
    for chain in _chains(rig):
        if exclude.intersection(chain):
            continue
        geo = _limb_geometry(rig, chain, frame, leg)
        names = tuple(rig.name_score(j, k) for j, k in zip(chain, kinds))
        if sum(n < 0 for n in names) >= 2:     # most of its bones are named as something else (an arm as a leg)
            continue
        name01 = float(np.clip(np.mean(names), 0, 1))
        score = (0.6 * geo + 0.4 * name01) if frame is not None else name01
        if min(names) < 0:
            score *= 0.5
        if score > 0.15:
            out.append(_Limb(chain, geo, names, score))
    out.sort(key=lambda limb: -limb.score)
    return out[:24]


@dataclass
class _Pair:
    left: _Limb
    right: _Limb
    score: float


def _nested(rig, a: _Limb, b: _Limb) -> bool:
    return bool(set(a.chain) & set(b.chain)) or a.chain[0] in rig.ancestors(b.chain[0]) \
        or b.chain[0] in rig.ancestors(a.chain[0])


def _side_of(rig: _Rig, limb: _Limb) -> int:
    votes = sum(rig.reading[j].side for j in limb.chain)
    forced = [_joint_kind(rig.forced[j])[1] for j in limb.chain if j in rig.forced]
    return forced[0] if forced else int(np.sign(votes))


def _pairs(rig: _Rig, limbs: list[_Limb], frame, left_axis) -> list[_Pair]:
    out = []
    for i, a in enumerate(limbs):
        for b in limbs[i + 1:]:
            if _nested(rig, a, b):
                continue
            sa, sb = _side_of(rig, a), _side_of(rig, b)
            if sa and sa == sb:
                continue                           # both named left: not a pair
            score = 0.5 * (a.score + b.score)
            if frame is not None:
                la, lb = (sum(np.linalg.norm(rig.pos[c[k + 1]] - rig.pos[c[k]]) for k in range(2))
                          for c in (a.chain, b.chain))
                score *= _gauss((la - lb) / max(la + lb, 1e-9), 0.08)
                apart = np.linalg.norm(rig.pos[a.chain[0]] - rig.pos[b.chain[0]]) / frame.height
                score *= np.clip(apart / 0.04, 0, 1)
            if sa == -1 or sb == 1:
                left, right = b, a
            elif sa == 1 or sb == -1:
                left, right = a, b
            elif frame is not None and left_axis is not None:
                da = np.dot(rig.pos[a.chain[0]] - rig.pos[b.chain[0]], left_axis)
                left, right = (a, b) if da > 0 else (b, a)
            else:
                continue                           # no names, no positions: cannot tell the sides
            out.append(_Pair(left, right, float(score)))
    out.sort(key=lambda p: -p.score)
    return out


# --- the result -----------------------------------------------------------------------------------------------
@dataclass
class AutoMapping:
    """What the automatic mapping found: bone index per canonical joint, confidence, candidates, problems."""
    chosen: dict = field(default_factory=dict)          # canonical -> bone index
    confidence: dict = field(default_factory=dict)      # canonical -> 0..1
    candidates: dict = field(default_factory=dict)      # canonical -> [(bone name, score)] best first
    up_axis: str | None = None
    facing: str | None = None
    problems: list = field(default_factory=list)        # animator-words lines, empty when the body was found


_AXES = {"+X": (1, 0, 0), "-X": (-1, 0, 0), "+Y": (0, 1, 0), "-Y": (0, -1, 0), "+Z": (0, 0, 1), "-Z": (0, 0, -1)}


def _axis_name(v) -> str:
    k = int(np.argmax(np.abs(v)))
    return ("+" if v[k] > 0 else "-") + "XYZ"[k]


def _frame(rig: _Rig, up) -> _Frame:
    h = rig.pos[rig.core] @ up
    return _Frame(np.asarray(up, dtype=np.float64), float(h.min()), float(h.max() - h.min()))


def _facing(rig, frame, legs: _Pair | None, toes) -> np.ndarray:
    up = frame.up
    flat = lambda v: v - np.dot(v, up) * up  # noqa: E731
    if legs is not None and all(t is not None for t in toes):
        f = flat(sum(rig.pos[t] - rig.pos[leg.chain[2]] for t, leg in zip(toes, (legs.left, legs.right))))
        if np.linalg.norm(f) > 1e-6 * frame.height:
            return f / np.linalg.norm(f)
    if legs is not None and (_side_of(rig, legs.left) or _side_of(rig, legs.right)):
        f = np.cross(flat(rig.pos[legs.left.chain[0]] - rig.pos[legs.right.chain[0]]), up)
        if np.linalg.norm(f) > 1e-9:
            return f / np.linalg.norm(f)
    k = int(np.argmax(np.abs(up)))
    return np.array([0.0, -1.0, 0.0]) if k == 2 else np.array([0.0, 0.0, 1.0]) if k == 1 else np.array([0.0, 0.0, 1.0])


def _toe(rig: _Rig, ankle: int, frame) -> int | None:
    kids = rig.kids.get(ankle, [])
    if not kids:
        return None
    if frame is None:
        return max(kids, key=lambda k: rig.name_score(k, "toe"))
    return max(kids, key=lambda k: (rig.name_score(k, "toe"), -frame.h(rig.pos[k])))


def _put(out: AutoMapping, rig: _Rig, canonical: str, bone: int, conf: float) -> None:
    out.chosen[canonical] = bone
    out.confidence[canonical] = round(float(np.clip(conf, 0, 1)), 3)


def _candidates_from_pairs(rig, pairs: list[_Pair], joints_left, joints_right, out: AutoMapping):
    best: dict[str, dict[int, float]] = {}
    for p in pairs[:12]:
        for limb, joints in ((p.left, joints_left), (p.right, joints_right)):
            for c, j in zip(joints, limb.chain):
                slot = best.setdefault(c, {})
                slot[j] = max(slot.get(j, 0.0), p.score)
    for c, slot in best.items():
        out.candidates[c] = [(rig.names[j], round(s, 3)) for j, s in sorted(slot.items(), key=lambda kv: -kv[1])[:3]]


def _margin(pairs: list[_Pair], limb_of, k: int) -> float:
    """Score gap between the best pair and the best one that puts another bone at chain position k."""
    best = limb_of(pairs[0]).chain[k]
    rival = next((p.score for p in pairs[1:] if limb_of(p).chain[k] != best), 0.0)
    return pairs[0].score - rival


def _limb_confidence(rig, pairs, limb_of, k, kind, side, frame) -> float:
    limb = limb_of(pairs[0])
    name = float(np.clip(rig.name_score(limb.chain[k], kind, side), 0, 1))
    base = 0.6 * limb.geo + 0.4 * name if frame is not None else 0.3 + 0.6 * name
    return base * float(np.clip(0.5 + _margin(pairs, limb_of, k) / 0.2, 0.5, 1.0))


def _place_pair(out, rig, pairs, kinds, frame) -> _Pair | None:
    """Record the best pair's joints with confidences; return a rival pair (other limbs) scoring about as
    well, None when the best pair is clearly the one."""
    for limb_of, side, name in ((lambda p: p.left, 1, "left"), (lambda p: p.right, -1, "right")):
        for k, kind in enumerate(kinds):
            _put(out, rig, f"{name}_{kind}", limb_of(pairs[0]).chain[k],
                 _limb_confidence(rig, pairs, limb_of, k, kind, side, frame))
    rival = next((p for p in pairs[1:] if {p.left.chain[0], p.right.chain[0]}
                  .isdisjoint({pairs[0].left.chain[0], pairs[0].right.chain[0]})), None)
    return rival if rival is not None and pairs[0].score - rival.score <= 0.03 else None


def _forget(out: AutoMapping, kinds) -> None:
    """Drop an ambiguous pair of limbs from the picks (their candidates stay for the user to choose)."""
    for side in ("left", "right"):
        for kind in kinds:
            out.chosen.pop(f"{side}_{kind}", None)
            out.confidence.pop(f"{side}_{kind}", None)


def _trunk_path(rig: _Rig, chest: int, arm_roots: set, frame) -> list[int]:
    """Core bones from the chest up to the head: the branch above the chest that is not an arm."""
    path, j = [], chest
    while True:
        kids = [k for k in rig.kids[j] if k not in arm_roots and not (set(rig_descendants(rig, k)) & arm_roots)]
        if not kids:
            return path
        if frame is None:
            j = max(kids, key=lambda k: (max(rig.name_score(k, "neck"), rig.name_score(k, "head")), -k))
        else:
            j = max(kids, key=lambda k: max(frame.h(rig.pos[d]) for d in [k] + rig_descendants(rig, k)))
        path.append(j)


def rig_descendants(rig: _Rig, j: int) -> list[int]:
    out, stack = [], list(rig.kids[j])
    while stack:
        k = stack.pop()
        out.append(k)
        stack.extend(rig.kids[k])
    return out


def _body(rig: _Rig, frame: _Frame | None) -> tuple[AutoMapping, float]:
    out = AutoMapping()
    legs = _limbs(rig, frame, LEG, leg=True)
    left_axis = None
    if frame is not None:
        # a provisional facing for the sides: the convention of this up axis (refined from the toes below)
        left_axis = np.cross(frame.up, _facing(rig, frame, None, (None, None)))
    leg_pairs = _pairs(rig, legs, frame, left_axis)
    if not leg_pairs:
        found = len(legs)
        out.problems.append("no legs were found: Choreo looks for two bone chains thigh -> shin -> foot going "
                            "down from the hips to the floor" if found == 0 else
                            "only one leg was found (a thigh -> shin -> foot chain going down to the floor); "
                            "a second, mirror-image leg is missing")
        return out, 0.0
    best = leg_pairs[0]
    toes = [_toe(rig, leg.chain[2], frame) for leg in (best.left, best.right)]
    if frame is not None:
        facing = _facing(rig, frame, best, toes)
        left_axis = np.cross(frame.up, facing)
        leg_pairs = _pairs(rig, legs, frame, left_axis)
        best = leg_pairs[0]
        toes = [_toe(rig, leg.chain[2], frame) for leg in (best.left, best.right)]
        out.up_axis, out.facing = _axis_name(frame.up), _axis_name(facing)
        _candidates_from_pairs(rig, leg_pairs, [f"left_{k}" for k in LEG], [f"right_{k}" for k in LEG], out)
        extra = [limb for limb in legs if limb.geo > 0.6 and limb.score > 0.6 * best.score
                 and not _nested(rig, limb, best.left) and not _nested(rig, limb, best.right)]
        if len({limb.chain[0] for limb in extra}) >= 2 and not any(n > 0.5 for limb in extra for n in limb.names):
            out.problems.append("this rig has four legs (more bone chains going down to the floor than two): "
                                "it looks like a quadruped, and Choreo only maps two-legged humanoid characters")
            return out, best.score
    if _place_pair(out, rig, leg_pairs, LEG, frame) is not None:
        out.problems.append("two different pairs of bone chains look equally like the legs; say which bones are "
                            "the thighs, shins and feet")
        _forget(out, LEG)
    _candidates_from_pairs(rig, leg_pairs, [f"left_{k}" for k in LEG], [f"right_{k}" for k in LEG], out)
    for side, toe in zip(("left", "right"), toes):
        if toe is not None:
            _put(out, rig, f"{side}_foot", toe, out.confidence[f"{side}_ankle"]
                 * (1.0 if rig.name_score(toe, "toe") > 0 or frame is None else 0.9))

    leg_bones = set().union(*(set([leg.chain[0]] + rig_descendants(rig, leg.chain[0])) for leg in (best.left, best.right)))
    arms = _limbs(rig, frame, ARM, leg=False, exclude=leg_bones)
    arm_pairs = _pairs(rig, arms, frame, left_axis)
    if not arm_pairs:
        out.problems.append("no arms were found: Choreo looks for two bone chains upper arm -> forearm -> hand "
                            "reaching out sideways from the chest" if not arms else
                            "only one arm was found (an upper arm -> forearm -> hand chain reaching out sideways "
                            "from the chest); a second, mirror-image arm is missing")
        return out, best.score * 0.5
    _candidates_from_pairs(rig, arm_pairs, [f"left_{k}" for k in ARM], [f"right_{k}" for k in ARM], out)
    rival = _place_pair(out, rig, arm_pairs, ARM, frame)
    if rival is not None:
        a, b = arm_pairs[0], rival
        out.problems.append("two different pairs of bone chains look equally like the arms ("
                            f"'{rig.names[a.left.chain[0]]}'/'{rig.names[a.right.chain[0]]}' and "
                            f"'{rig.names[b.left.chain[0]]}'/'{rig.names[b.right.chain[0]]}'); say which bones are "
                            "the upper arms, forearms and hands")
        _forget(out, ARM)
        return out, 0.5 * (best.score + arm_pairs[0].score)
    arm = arm_pairs[0]

    # chest (where the arms meet), collars between it and the shoulders, pelvis where legs (and spine) meet
    shoulders = (arm.left.chain[0], arm.right.chain[0])
    anc = [rig.ancestors(s) for s in shoulders]
    chest = next((a for a in anc[0] if a in anc[1]), None)
    hips_anc = [rig.ancestors(leg.chain[0]) for leg in (best.left, best.right)]
    pelvis = next((a for a in hips_anc[0] if a in hips_anc[1]), None)
    if chest is None or pelvis is None:
        out.problems.append("the legs and arms are not connected through a spine (no common parent bone)")
        return out, 0.5 * (best.score + arm.score)
    if pelvis not in rig.ancestors(chest) and pelvis != chest:
        chest_anc = rig.ancestors(chest)
        pelvis = next((a for a in hips_anc[0] if a in chest_anc), pelvis)
    while rig.core_parent[pelvis] >= 0 and rig.name_score(pelvis, "pelvis") <= 0 \
            and rig.name_score(rig.core_parent[pelvis], "pelvis") > 0:
        pelvis = rig.core_parent[pelvis]            # 3ds Max Biped: thighs hang off 'Spine', not 'Pelvis'
    _put(out, rig, "pelvis", pelvis, 0.7 + 0.3 * float(np.clip(rig.name_score(pelvis, "pelvis"), 0, 1)))
    for side, s, limb_conf in (("left", shoulders[0], out.confidence["left_shoulder"]),
                               ("right", shoulders[1], out.confidence["right_shoulder"])):
        above = rig.ancestors(s)
        between = above[:above.index(chest)] if chest in above else []
        if between:
            collar = max(reversed(between), key=lambda a: rig.name_score(a, "collar"))
            _put(out, rig, f"{side}_collar", collar,
                 limb_conf * (1.0 if rig.name_score(collar, "collar") > 0 else 0.9))
    trunk = _trunk_path(rig, chest, set(shoulders) | {out.chosen.get(f"{s}_collar", -2) for s in ("left", "right")},
                        frame)
    if trunk:
        if len(trunk) == 1:
            only = trunk[0]
            kind = "neck" if rig.name_score(only, "neck") > rig.name_score(only, "head") else "head"
            _put(out, rig, kind, only, 0.6 + 0.4 * float(np.clip(rig.name_score(only, kind), 0, 1)))
        else:
            _put(out, rig, "neck", trunk[0], 0.6 + 0.4 * float(np.clip(rig.name_score(trunk[0], "neck"), 0, 1)))
            out.candidates["neck"] = [(rig.names[j], round(0.6 + 0.4 * max(0.0, rig.name_score(j, "neck")), 3))
                                      for j in trunk[:3]]
            out.candidates["head"] = _head_candidates(rig, trunk[1:], frame, shoulders, pelvis)
            head = rig.names.index(out.candidates["head"][0][0])
            _put(out, rig, "head", head, out.candidates["head"][0][1])
    else:
        out.problems.append("no neck or head was found above the chest (where the arms meet)")
    if frame is not None:
        rise = np.dot(rig.pos[chest] - rig.pos[pelvis], frame.up)
        if rise < 0.5 * np.linalg.norm(rig.pos[chest] - rig.pos[pelvis]):
            out.problems.append("the spine lies flat instead of going up from the hips to the chest: "
                                "it looks like a quadruped, and Choreo only maps two-legged humanoid characters")
    return out, 0.5 * (best.score + arm.score)


def _head_candidates(rig, path, frame, shoulders, pelvis):
    scored = []
    for j in path:
        name = float(np.clip(rig.name_score(j, "head"), 0, 1))
        if frame is None:
            geo = 0.5
        else:
            sh = np.mean([frame.h(rig.pos[s]) for s in shoulders])
            want = sh + _BODY["head_over_shoulder"] * (sh - frame.h(rig.pos[pelvis]))
            geo = _gauss((frame.h(rig.pos[j]) - want) / frame.height, 0.05)
        scored.append((rig.names[j], round(0.5 * geo + 0.5 * name if frame is not None else 0.3 + 0.6 * name, 3)))
    scored.sort(key=lambda t: -t[1])
    return scored[:3]


def name_candidates(names, limit: int = 3) -> dict[str, list[tuple[str, float]]]:
    """Per canonical joint, the bones whose names read as that joint (kind and side), best first."""
    readings = [read_bone_name(n) for n in names]
    out = {}
    for c in BODY_JOINT_NAMES:
        kind, side = _joint_kind(c)
        kind = {"spine1": "spine", "spine2": "spine", "spine3": "spine"}.get(kind, kind)
        scored = [(str(n), round(r.kinds[kind] * (1.0 if r.side == side else 0.5 if not r.side else 0.0), 3))
                  for n, r in zip(names, readings) if not r.skip and kind in r.kinds]
        scored = sorted((s for s in scored if s[1] > 0), key=lambda t: -t[1])
        out[c] = scored[:limit]
    return out


def auto_map(names, parents, positions=None, ends=None, forced=None) -> AutoMapping:
    """Find the body in a rig. ``positions``: rest global positions (J, 3) or None; ``forced``: bone index ->
    canonical joint the user chose (kept, and used to steer the search)."""
    names = [str(n) for n in names]
    ends = ends or [False] * len(names)
    forced = dict(forced or {})
    if all(p < 0 for p in parents):
        return map_by_names(names, unconnected=True)
    rig = _build(names, list(parents), None if positions is None else np.asarray(positions, float), ends, forced)
    if rig.pos is None:
        result, _ = _body(rig, None)
    else:
        tries = [_body(rig, _frame(rig, np.array(v, dtype=np.float64))) for v in _AXES.values()]
        result = max(tries, key=lambda t: (not t[0].problems, t[1]))[0]
    for c, cands in name_candidates(names).items():
        have = {n for n, _ in result.candidates.get(c, [])}
        # bones that only the name suggests come after the ones the hierarchy found, at half their score
        result.candidates[c] = (result.candidates.get(c, [])
                                + [(n, round(0.5 * s, 3)) for n, s in cands if n not in have])[:3]
    for c in BODY_JOINT_NAMES:
        if c in result.chosen and not result.candidates.get(c):
            result.candidates[c] = [(names[result.chosen[c]], result.confidence.get(c, 0.0))]
    return result


def map_by_names(names, unconnected: bool = False) -> AutoMapping:
    """For rigs without a usable hierarchy: each joint from the bone whose name reads best as it (each bone
    used once; spine joints are left to be made up, their order cannot be read from names alone).
    ``unconnected``: the rig has bones but no parents (said in the problems, should the names not do)."""
    out = AutoMapping(candidates=name_candidates(names))
    if unconnected:
        out.problems.append("the bones are not connected to each other (no bone has a parent), so the legs and "
                            "arms cannot be followed from the hips")
    used: set[str] = set()
    for c in BODY_JOINT_NAMES:
        if c.startswith("spine"):
            continue
        pick = next(((n, s) for n, s in out.candidates[c] if n not in used and s >= 0.7), None)
        if pick is not None:
            used.add(pick[0])
            out.chosen[c] = names.index(pick[0])
            out.confidence[c] = round(0.8 * pick[1], 3)
    return out
