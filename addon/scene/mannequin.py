# SPDX-License-Identifier: GPL-3.0-or-later
"""A mannequin body for any armature: the core's ellipsoid-per-bone mesh (``core_models.rig.mannequin``) as a
mesh object with one vertex group per bone and an Armature modifier, parented to the armature.

The mesh is built from the armature's own rest bones (heads in core axes), so it fits whatever skeleton the
dancer was built from; no mesh data ships with Choreo.
"""
from __future__ import annotations

import bpy
import numpy as np

from .space import to_blender, to_core

MANNEQUIN_TAG = "choreo_mannequin"        # object property: this mesh is Choreo's mannequin (safe to rebuild)
MATERIAL_NAME = "Choreo Mannequin"
BODY_COLOUR = (0.72, 0.62, 0.52, 1.0)     # a neutral clay tone: reads as a body, not as a particular person


def _material():
    """One shared plain material, so adding and removing dancers leaves no pile of copies behind."""
    material = bpy.data.materials.get(MATERIAL_NAME)
    if material is None:
        material = bpy.data.materials.new(MATERIAL_NAME)
        material.diffuse_color = BODY_COLOUR               # Workbench and the viewport's solid mode
        material.roughness = 0.6
        if material.node_tree is None:                     # before 5.0 a new material has no nodes yet
            material.use_nodes = True
        bsdf = material.node_tree.nodes.get("Principled BSDF")
        if bsdf is not None:                               # Cycles and EEVEE
            bsdf.inputs["Base Color"].default_value = BODY_COLOUR
            bsdf.inputs["Roughness"].default_value = 0.6
    return material


def rest_skeleton(armature_obj) -> tuple[list[str], list[int], np.ndarray]:
    """Bone names, parent indices and rest offsets (each head relative to its parent's, core axes, the
    armature's unit) of an armature, parents listed before their children."""
    bones = armature_obj.data.bones
    names = [b.name for b in bones]                        # depth-first: parents come first
    parents = [names.index(b.parent.name) if b.parent else -1 for b in bones]
    heads = to_core(np.array([np.array(b.head_local) for b in bones]))
    offsets = heads - np.where(np.array(parents)[:, None] >= 0, heads[np.maximum(parents, 0)], 0.0)
    return names, parents, offsets


def add_mannequin(armature_obj, mapping=None) -> bpy.types.Object:
    """A skinned mannequin mesh for ``armature_obj``, parented to it (returns the mesh object).

    ``mapping``: the armature's bone mapping when already known (else the core maps it by itself); raises
    the core's ``UnmappableRigError`` when the body cannot be found in the bones.
    """
    from ...core_models.rig.mannequin import mannequin_mesh

    names, parents, offsets = rest_skeleton(armature_obj)
    vertices, triangles, groups = mannequin_mesh(offsets, parents, names, mapping=mapping)
    name = f"{armature_obj.name}_mannequin"
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(to_blender(vertices).tolist(), [], np.asarray(triangles, np.int64).tolist())
    mesh.update()
    mesh.polygons.foreach_set("use_smooth", np.ones(len(mesh.polygons), dtype=bool))
    mesh.materials.append(_material())
    body = bpy.data.objects.new(name, mesh)
    body[MANNEQUIN_TAG] = True
    armature_obj.users_collection[0].objects.link(body)
    body.parent = armature_obj
    for bone, (indices, weights) in groups.items():
        group = body.vertex_groups.new(name=bone)
        # rigid parts: every weight is 1, so one call per bone adds them all
        for weight in np.unique(weights):
            group.add(indices[weights == weight].tolist(), float(weight), "REPLACE")
    modifier = body.modifiers.new("Armature", "ARMATURE")
    modifier.object = armature_obj
    return body


def mannequin_of(armature_obj):
    """The armature's Choreo mannequin, or None."""
    return next((c for c in armature_obj.children if c.get(MANNEQUIN_TAG)), None)
