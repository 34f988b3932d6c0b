# SPDX-License-Identifier: GPL-3.0-or-later
"""The mannequin built in code from a skeleton (core_models.rig.mannequin): closed parts, one group per vertex,
the skeleton's height, vertices near their bone; on the default SMPL-X skeleton and on a Z-up centimetre rig."""
from collections import Counter

import numpy as np
import pytest

from bone_map_rigs import catalogue
from core_models.rig.mannequin import ellipsoid, mannequin_mesh
from core_models.skeleton import default_skeleton


def _default():
    s = default_skeleton(1.75)
    return s.offsets, s.parents, s.names, 1.75, 1


def _ue5():
    rig = catalogue()["unreal_ue5"]                   # Z up, centimetres, 1.78 m
    return rig.offsets, rig.parents, rig.names, 178.0, 2


def test_an_ellipsoid_is_closed():
    v, f = ellipsoid(np.zeros(3), np.eye(3), (1.0, 2.0, 3.0))
    edges = Counter(tuple(sorted(e)) for tri in f for e in ((tri[0], tri[1]), (tri[1], tri[2]), (tri[2], tri[0])))
    assert set(edges.values()) == {2} and len(v) - len(edges) + len(f) == 2      # a sphere: Euler characteristic 2


@pytest.mark.parametrize("make", [_default, _ue5])
def test_mannequin_parts_groups_height_and_bones(make):
    offsets, parents, names, height, up = make()
    verts, faces, groups = mannequin_mesh(offsets, parents, names)
    assert faces.shape[1] == 3 and faces.min() >= 0 and faces.max() < len(verts)
    # every vertex in exactly one group, weight 1
    owner = np.full(len(verts), -1)
    for k, (idx, w) in enumerate(groups.values()):
        assert np.all(owner[idx] == -1) and np.allclose(w, 1.0)
        owner[idx] = k
    assert (owner >= 0).all()
    # each group's part is closed: every edge of its faces is shared by exactly two of them
    for idx, _ in groups.values():
        part = faces[np.isin(faces[:, 0], idx)]
        assert np.isin(part, idx).all()
        edges = Counter(tuple(sorted(e)) for tri in part for e in ((tri[0], tri[1]), (tri[1], tri[2]), (tri[2], tri[0])))
        assert set(edges.values()) == {2}
    # the standing height, along the skeleton's up axis
    extent = verts[:, up].max() - verts[:, up].min()
    assert abs(extent - height) <= 0.1 * height, (extent, height)
    # vertices stay near their bone: within a fifth of the height of the segments from its head to its children
    rest = np.zeros_like(np.asarray(offsets, float))
    for j, p in enumerate(parents):
        rest[j] = offsets[j] if p < 0 else rest[p] + offsets[j]
    for name, (idx, _) in groups.items():
        j = list(names).index(name)
        ends = [rest[k] for k, p in enumerate(parents) if p == j] or [rest[j]]
        gap = np.min([_to_segment(verts[idx], rest[j], e) for e in ends], axis=0)
        assert gap.max() < 0.2 * height, (name, gap.max() / height)
    assert {"pelvis", "head"} <= set(groups) and len(groups) >= 20


def _to_segment(points, a, b):
    ab = b - a
    t = np.clip((points - a) @ ab / max(ab @ ab, 1e-12), 0.0, 1.0)
    return np.linalg.norm(points - (a + t[:, None] * ab), axis=-1)
