# SPDX-License-Identifier: GPL-3.0-or-later
"""A simple mannequin body built in code from a skeleton, so that a dancer without a body model reads as a person.

One closed ellipsoid per body part, placed on the skeleton's rest pose (whatever its axes and unit): a segment
ellipsoid along each limb and spine bone, wider ones for the pelvis and chest, a head above the head joint,
flattened ones for the hands and feet (the soles reach down to the floor under the toes). Radii come from a
small per-part table in fractions of the skeleton's standing height, so a child and a tall adult both look
proportioned. Each part is weighted rigidly to the bone that carries it (one vertex group per bone, weight 1),
which keeps every vertex on its bone; no mesh data is shipped and nothing comes from body-model files.
The Blender add-on builds the object from the arrays.
"""
from __future__ import annotations

import numpy as np

from ..io.retarget import map_bones

__all__ = ["mannequin_mesh", "PART_RADII", "ellipsoid"]

# radius (fraction of standing height) of the part each canonical joint's bone carries; depth = radius * flat
PART_RADII = {"pelvis": 0.085, "spine1": 0.075, "spine2": 0.078, "spine3": 0.085, "neck": 0.03, "head": 0.062,
              "collar": 0.03, "shoulder": 0.032, "elbow": 0.026, "wrist": 0.028, "hip": 0.05, "knee": 0.037,
              "ankle": 0.03, "foot": 0.022}
_FLAT = {"pelvis": 0.7, "spine1": 0.7, "spine2": 0.7, "spine3": 0.65, "wrist": 0.4, "ankle": 0.55, "foot": 0.5}


def ellipsoid(centre, axes: np.ndarray, radii, segments: int = 12, rings: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """A closed UV ellipsoid: vertices (V, 3) and triangles (F, 3). ``axes`` (3, 3): columns are the
    directions of the three radii; the poles lie along the third."""
    theta = np.linspace(0.0, np.pi, rings + 1)[1:-1]                 # latitudes without the poles
    phi = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
    st, ct = np.sin(theta)[:, None], np.cos(theta)[:, None]
    ring = np.stack([st * np.cos(phi), st * np.sin(phi), np.broadcast_to(ct, st.shape * np.array([1, segments]))],
                    axis=-1).reshape(-1, 3)
    unit = np.concatenate([[[0.0, 0.0, 1.0]], ring, [[0.0, 0.0, -1.0]]])
    verts = np.asarray(centre, np.float64) + (unit * np.asarray(radii, np.float64)) @ np.asarray(axes, np.float64).T
    faces = []
    top, bottom = 0, len(unit) - 1
    at = lambda r, s: 1 + r * segments + s % segments  # noqa: E731
    for s in range(segments):
        faces.append((top, at(0, s), at(0, s + 1)))
        for r in range(rings - 2):
            a, b, c, d = at(r, s), at(r + 1, s), at(r + 1, s + 1), at(r, s + 1)
            faces += [(a, b, c), (a, c, d)]
        faces.append((bottom, at(rings - 2, s + 1), at(rings - 2, s)))
    return verts, np.array(faces, np.int64)


def _frame(primary: np.ndarray, hint: np.ndarray) -> np.ndarray:
    """(3, 3) right-handed axes whose third column is ``primary`` and whose first lies nearest ``hint``."""
    z = primary / np.linalg.norm(primary)
    x = hint - np.dot(hint, z) * z
    if np.linalg.norm(x) < 1e-6:
        x = np.eye(3)[int(np.argmin(np.abs(z)))]
        x = x - np.dot(x, z) * z
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z], axis=1)


def _rest(offsets, parents) -> np.ndarray:
    pos = np.zeros_like(offsets)
    for j, p in enumerate(parents):
        pos[j] = offsets[j] if p < 0 else pos[p] + offsets[j]
    return pos


def mannequin_mesh(skeleton_offsets, parents, names, segments: int = 12, rings: int = 8, mapping=None
                   ) -> tuple[np.ndarray, np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """A mannequin for a skeleton given by rest offsets (J, 3) (each head in its parent's frame), parents and
    bone names (any humanoid rig: the body is found by :func:`core_models.io.retarget.map_bones`, or pass its
    ``mapping``). Returns vertices (V, 3) in the skeleton's axes and unit, triangles (F, 3), and vertex groups
    {bone name: (vertex indices, weights)} (every vertex in exactly one group, weight 1)."""
    offsets = np.asarray(skeleton_offsets, np.float64).reshape(-1, 3)
    parents = [int(p) for p in parents]
    names = [str(n) for n in names]
    rest = _rest(offsets, parents)
    mapping = mapping or map_bones(names, parents, source_offsets=offsets)
    index = {n: i for i, n in enumerate(names)}
    bone = {c: index[b] for c, b in mapping.source_for.items() if b in index}
    at = lambda c: rest[bone[c]]  # noqa: E731
    feet = 0.5 * (at("left_ankle") + at("right_ankle"))
    head = at("head") if "head" in bone else at("neck")
    up = head - feet
    up /= np.linalg.norm(up)
    floor = min(float(np.dot(at(f"{s}_{k}"), up)) for s in ("left", "right") for k in ("ankle", "foot") if f"{s}_{k}" in bone)
    height = (float(np.dot(head, up)) - floor) / 0.9      # the head joint sits at about 90 % of the standing height
    left = at("left_hip") - at("right_hip")
    forward = np.cross(left, up)
    forward /= np.linalg.norm(forward)
    parts = []                                      # (bone index, centre, axes, radii)

    def segment(c: str, a: np.ndarray, b: np.ndarray, kind: str, hint=forward):
        if c not in bone or np.linalg.norm(b - a) < 1e-9:
            return
        r = PART_RADII[kind] * height
        half = 0.5 * np.linalg.norm(b - a) + 0.4 * r
        parts.append((bone[c], 0.5 * (a + b), _frame(b - a, hint), (r, r * _FLAT.get(kind, 1.0), half)))

    chain = {c: at(c) for c in ("pelvis", "spine1", "spine2", "spine3", "neck") if c in bone}
    hips_mid = 0.5 * (at("left_hip") + at("right_hip"))
    width = np.linalg.norm(left)
    if "pelvis" in bone:
        top = chain.get("spine1", at("pelvis") + 0.08 * height * up)
        centre = 0.5 * (hips_mid + top)
        parts.append((bone["pelvis"], centre, _frame(up, left / width),
                      (max(0.55 * width + 0.05 * height, PART_RADII["pelvis"] * height), 0.07 * height,
                       0.5 * np.linalg.norm(top - hips_mid) + 0.05 * height)))
    links = [c for c in ("spine1", "spine2", "spine3", "neck") if c in chain]
    for c, nxt in zip(links, links[1:]):
        if c != "spine3":                           # the chest is one wide part below
            segment(c, chain[c], chain[nxt], c, hint=left)
    if "spine3" in bone:
        shoulders = 0.5 * (at("left_shoulder") + at("right_shoulder"))
        span = np.linalg.norm(at("left_shoulder") - at("right_shoulder"))
        base = at("spine3")
        parts.append((bone["spine3"], 0.5 * (base + shoulders), _frame(up, left / width),
                      (0.42 * span, PART_RADII["spine3"] * height * _FLAT["spine3"],
                       0.5 * max(float(np.dot(shoulders - base, up)), 0.05 * height) + 0.04 * height)))
    if "neck" in bone and "head" in bone:
        segment("neck", at("neck"), at("head"), "neck")
    if "head" in bone:
        r = PART_RADII["head"] * height
        parts.append((bone["head"], at("head") + 0.45 * r * up, _frame(up, left), (0.85 * r, 0.95 * r, 1.1 * r)))
    for s in ("left", "right"):
        j = lambda k: f"{s}_{k}"  # noqa: E731
        if j("collar") in bone:
            segment(j("collar"), at(j("collar")), at(j("shoulder")), "collar")
        segment(j("shoulder"), at(j("shoulder")), at(j("elbow")), "shoulder")
        if j("wrist") in bone:
            segment(j("elbow"), at(j("elbow")), at(j("wrist")), "elbow")
            along = at(j("wrist")) - at(j("elbow"))
            along /= np.linalg.norm(along)
            segment(j("wrist"), at(j("wrist")), at(j("wrist")) + 0.1 * height * along, "wrist", hint=forward)
        segment(j("hip"), at(j("hip")), at(j("knee")), "hip")
        segment(j("knee"), at(j("knee")), at(j("ankle")), "knee")
        ankle = at(j("ankle"))
        toe = at(j("foot")) if j("foot") in bone else ankle + 0.1 * height * forward
        ahead = toe - ankle - np.dot(toe - ankle, up) * up
        ahead = ahead / max(np.linalg.norm(ahead), 1e-9)
        # the foot reaches from the heel behind the ankle to past the toe joint, its sole on the floor
        thick = 0.6 * (float(np.dot(ankle, up)) - floor) + 0.01 * height
        heel, tip = ankle - 0.045 * height * ahead, toe + 0.035 * height * ahead
        middle = 0.5 * (heel + tip)
        centre = middle + (floor + thick - float(np.dot(middle, up))) * up
        parts.append((bone[j("ankle")], centre, _frame(ahead, up),
                      (thick, PART_RADII["ankle"] * height * 1.4, 0.5 * np.linalg.norm(tip - heel))))
    verts, faces, owner = [], [], []
    count = 0
    for j, centre, axes, radii in parts:
        v, f = ellipsoid(centre, axes, radii, segments, rings)
        verts.append(v)
        faces.append(f + count)
        owner.append(np.full(len(v), j))
        count += len(v)
    verts, faces, owner = np.concatenate(verts), np.concatenate(faces), np.concatenate(owner)
    groups = {names[j]: (np.nonzero(owner == j)[0], np.ones(int((owner == j).sum()))) for j in np.unique(owner)}
    return verts, faces, groups
