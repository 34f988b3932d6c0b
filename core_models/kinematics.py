# SPDX-License-Identifier: GPL-3.0-or-later
"""Forward kinematics, inverse kinematics from joint positions, and analytic two-bone IK (numpy)."""
from __future__ import annotations

import numpy as np

from .rotations import (matrix_to_quat, normalize, quat_between, quat_fix_continuity, quat_mul,
                        quat_conjugate, quat_rotate, quat_to_axis_angle, quat_to_matrix, axis_angle_to_quat)
from .skeleton import Skeleton


def forward_kinematics(rotations: np.ndarray, root_translation: np.ndarray, skeleton: Skeleton,
                       return_global_rotations: bool = False):
    """Global joint positions (..., J, 3) from local quaternions (..., J, 4) and root positions (..., 3)."""
    rotations = np.asarray(rotations, dtype=np.float64)
    local = quat_to_matrix(rotations)
    glob = np.empty_like(local)
    pos = np.empty(rotations.shape[:-1] + (3,))
    offsets = skeleton.offsets
    for j, p in enumerate(skeleton.parents):
        if p < 0:
            glob[..., j, :, :] = local[..., j, :, :]
            pos[..., j, :] = root_translation
        else:
            glob[..., j, :, :] = glob[..., p, :, :] @ local[..., j, :, :]
            pos[..., j, :] = pos[..., p, :] + glob[..., p, :, :] @ offsets[j]
    return (pos, glob) if return_global_rotations else pos


def _kabsch(rest: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rotations R (T, 3, 3) minimising sum |R rest_i - target_i|^2; rest (C, 3), target (T, C, 3)."""
    h = np.einsum("ci,tcj->tij", rest, target)          # cross-covariance, rest x target
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(np.swapaxes(vt, -1, -2) @ np.swapaxes(u, -1, -2)))
    corr = np.ones(h.shape[:-2] + (3,))
    corr[..., 2] = d
    return np.swapaxes(vt, -1, -2) @ (corr[..., :, None] * np.swapaxes(u, -1, -2))


def _twist_about(q: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Twist part of rotation q about the unit axis (swing-twist decomposition)."""
    proj = (q[..., 1:] * axis).sum(-1, keepdims=True) * axis
    t = np.concatenate([q[..., :1], proj], axis=-1)
    n = np.linalg.norm(t, axis=-1, keepdims=True)
    ident = np.zeros_like(t)
    ident[..., 0] = 1.0
    return np.where(n < 1e-9, ident, t / np.maximum(n, 1e-12))


# Above this swing angle the zero-twist swing becomes ill-conditioned (it is undefined at 180 degrees):
# there the twist follows the previous frame instead, blended in between the two angles.
_TWIST_FOLLOW_START = np.deg2rad(120.0)
_TWIST_FOLLOW_FULL = np.deg2rad(160.0)


def _single_child_local(rest_dir: np.ndarray, local_target: np.ndarray) -> np.ndarray:
    """Local rotations (T, n, 4) aligning ``rest_dir`` (n, 3) with ``local_target`` (T, n, 3), twist
    continuous in time."""
    swing = quat_between(np.broadcast_to(rest_dir, local_target.shape), local_target)
    angle = 2.0 * np.arccos(np.clip(np.abs(swing[..., 0]), 0.0, 1.0))
    risky = angle > _TWIST_FOLLOW_START
    if not risky.any():
        return swing
    b = normalize(local_target)
    out = swing.copy()
    for t, n in zip(*np.nonzero(risky)):    # rare: frames whose bone is bent far from its rest direction
        if t == 0:
            continue
        # Twist about the target that brings the swing closest to the previous frame's rotation.
        delta = quat_mul(out[t - 1, n], quat_conjugate(swing[t, n]))
        twist = _twist_about(delta, b[t, n])
        w = np.clip((angle[t, n] - _TWIST_FOLLOW_START) / (_TWIST_FOLLOW_FULL - _TWIST_FOLLOW_START), 0.0, 1.0)
        out[t, n] = quat_mul(axis_angle_to_quat(quat_to_axis_angle(twist) * w), swing[t, n])
    return out


def _depth_levels(parents) -> list[list[int]]:
    depth = []
    for p in parents:
        depth.append(0 if p < 0 else depth[p] + 1)
    return [[j for j, d in enumerate(depth) if d == level] for level in range(max(depth) + 1)]


def inverse_kinematics(joints: np.ndarray, skeleton: Skeleton) -> tuple[np.ndarray, np.ndarray]:
    """Local rotations (T, J, 4) and root translation (T, 3) that reproduce ``joints`` (T, J, 3) by FK.

    A joint with several children (pelvis, spine3, wrists) gets the best rigid fit of its rest child
    offsets (Kabsch); a joint with one child gets the shortest swing from its rest bone direction, with
    the twist kept continuous in time; leaves keep their parent's orientation. With a skeleton fitted to
    the clip (:func:`fit_skeleton`) FK reproduces rigid input to rounding error. Joints of one depth in
    the hierarchy are solved together.
    """
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1] != skeleton.num_joints or joints.shape[2] != 3:
        raise ValueError(f"inverse_kinematics expects joints (T, {skeleton.num_joints}, 3); got {joints.shape}")
    if not np.isfinite(joints).all():
        raise ValueError("inverse_kinematics: joint positions contain NaN or infinite values")
    t_len, j_len = joints.shape[:2]
    local_q = np.zeros((t_len, j_len, 4))
    local_q[..., 0] = 1.0
    glob_m = np.zeros((t_len, j_len, 3, 3))
    ident = np.broadcast_to(np.eye(3), (t_len, 3, 3))
    parents = skeleton.parents
    children = [skeleton.children(j) for j in range(j_len)]

    def parent_matrices(js):
        return np.stack([ident if parents[j] < 0 else glob_m[:, parents[j]] for j in js], axis=1)

    for level in _depth_levels(parents):
        single, single_child = [], []
        for j in level:
            kids = children[j]
            if not kids:
                glob_m[:, j] = ident if parents[j] < 0 else glob_m[:, parents[j]]
                continue
            rest = skeleton.offsets[kids]
            if len(kids) >= 2 and np.linalg.matrix_rank(rest, tol=1e-6) >= 2:
                parent_m = ident if parents[j] < 0 else glob_m[:, parents[j]]
                g = _kabsch(rest, joints[:, kids] - joints[:, j:j + 1])
                local_q[:, j] = matrix_to_quat(np.swapaxes(parent_m, -1, -2) @ g)
                glob_m[:, j] = g
            else:
                single.append(j)
                single_child.append(kids[int(np.argmax(np.linalg.norm(rest, axis=-1)))])
        if not single:
            continue
        parent_m = parent_matrices(single)                                   # (T, n, 3, 3)
        target = joints[:, single_child] - joints[:, single]                 # (T, n, 3) world
        local_target = np.einsum("tnji,tnj->tni", parent_m, target)          # parent^T @ target
        q = _single_child_local(skeleton.offsets[single_child], local_target)
        local_q[:, single] = q
        glob_m[:, single] = parent_m @ quat_to_matrix(q)
    return quat_fix_continuity(local_q), joints[:, 0].copy()


def fit_skeleton(joints: np.ndarray, template: Skeleton, source: str = "fitted") -> Skeleton:
    """A skeleton with the clip's own bone lengths and rigid shapes, oriented like ``template``.

    Single-child bones keep the template's rest direction with the clip's median length; the children of
    a multi-child joint keep their (rigid) arrangement from the clip, rotated to best match the template.
    """
    joints = np.asarray(joints, dtype=np.float64)
    parents = np.array(template.parents)
    bone_lengths = np.linalg.norm(joints[:, 1:] - joints[:, parents[1:]], axis=-1)
    # the middle of the range (robust ends): the length that keeps the largest stretch either way smallest
    lengths = 0.5 * (np.percentile(bone_lengths, 1, axis=0) + np.percentile(bone_lengths, 99, axis=0))
    offsets = template.offsets.copy()
    offsets[1:] = normalize(template.offsets[1:]) * lengths[:, None]
    for j in range(template.num_joints):
        kids = template.children(j)
        rest = template.offsets[kids]
        if len(kids) >= 2 and np.linalg.matrix_rank(rest, tol=1e-6) >= 2:
            data = joints[:, kids] - joints[:, j:j + 1]                   # (T, C, 3)
            rot = _kabsch(rest, data)                                     # template -> data, per frame
            offsets[kids] = np.einsum("tji,tcj->tci", rot, data).mean(0)
    offsets[0] = joints[0, 0]
    return template.with_offsets(offsets, source=source)


def project_to_skeleton(joints: np.ndarray, skeleton: Skeleton, iterations: int = 40) -> np.ndarray:
    """The rigid body of ``skeleton`` nearest to joint positions (T, J, 3) whose bones stretch and shrink
    (a generator's decoded joints). Repeatedly (position-based projection): every single-child bone gets
    its rest length back by moving both of its joints half-way, and every joint with several children
    (pelvis, chest) takes its rest arrangement with them, rotated and placed to fit them best (shape
    matching: never a mirror image, which distances alone would allow). A length error is thereby shared by
    neighbouring joints instead of piling up towards the hands and feet as chained IK would do. Rigid input
    comes back unchanged; IK of the result is exact."""
    rest = skeleton.rest_positions()
    clusters, clustered = [], set()
    for j in range(skeleton.num_joints):
        kids = skeleton.children(j)
        if len(kids) >= 2 and np.linalg.matrix_rank(rest[kids] - rest[j], tol=1e-6) >= 2:
            members = [j] + kids
            clusters.append((members, rest[members] - rest[members].mean(axis=0)))
            clustered.update(kids)
    bones = [(skeleton.parents[j], j, float(np.linalg.norm(rest[j] - rest[skeleton.parents[j]])))
             for j in range(1, skeleton.num_joints) if j not in clustered]
    x = np.array(joints, dtype=np.float64)
    for _ in range(iterations):
        for a, b, length in bones:
            v = x[:, b] - x[:, a]
            current = np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)
            step = 0.5 * (current - length) / current * v
            x[:, a] += step
            x[:, b] -= step
        for members, shape in clusters:
            centre = x[:, members].mean(axis=1, keepdims=True)
            rot = _kabsch(shape, x[:, members] - centre)
            x[:, members] = np.einsum("tij,cj->tci", rot, shape) + centre
    return x


def two_bone_ik(root: np.ndarray, mid: np.ndarray, end_target: np.ndarray,
                upper_length: np.ndarray | float, lower_length: np.ndarray | float,
                pole: np.ndarray | None = None, max_stretch: float = 0.9999) -> np.ndarray:
    """New middle-joint positions (e.g. knees) so that root-mid-end reaches ``end_target`` exactly.

    root, mid, end_target, pole: (..., 3). The bend plane contains ``pole`` (default: the current middle
    joint). Targets out of reach are pulled in to ``max_stretch`` of the full length along the same line;
    the returned end positions are available from :func:`two_bone_end`.
    """
    root, end_target = np.asarray(root, np.float64), np.asarray(end_target, np.float64)
    pole = np.asarray(mid if pole is None else pole, np.float64)
    l1 = np.asarray(upper_length, np.float64)[..., None] if np.ndim(upper_length) else float(upper_length)
    l2 = np.asarray(lower_length, np.float64)[..., None] if np.ndim(lower_length) else float(lower_length)
    to_target = end_target - root
    dist = np.linalg.norm(to_target, axis=-1, keepdims=True)
    direction = to_target / np.maximum(dist, 1e-12)
    d = np.clip(dist, np.abs(l1 - l2) + 1e-6, (l1 + l2) * max_stretch)
    along = (l1 * l1 - l2 * l2 + d * d) / (2.0 * d)             # law of cosines: projection of the knee
    height = np.sqrt(np.maximum(l1 * l1 - along * along, 0.0))
    to_pole = pole - root
    perp = to_pole - (to_pole * direction).sum(-1, keepdims=True) * direction
    perp_n = np.linalg.norm(perp, axis=-1, keepdims=True)
    # Degenerate pole (on the root-target line): bend towards any perpendicular, deterministic.
    fallback = np.cross(direction, np.broadcast_to([1.0, 0.0, 0.0], direction.shape))
    fallback = np.where(np.linalg.norm(fallback, axis=-1, keepdims=True) < 1e-6,
                        np.cross(direction, np.broadcast_to([0.0, 0.0, 1.0], direction.shape)), fallback)
    perp = np.where(perp_n < 1e-9, normalize(fallback), perp / np.maximum(perp_n, 1e-12))
    return root + along * direction + height * perp


def two_bone_end(root: np.ndarray, end_target: np.ndarray, upper_length, lower_length,
                 max_stretch: float = 0.9999) -> np.ndarray:
    """Where the end joint lands for :func:`two_bone_ik` (the target itself when it is in reach)."""
    l1 = np.asarray(upper_length, np.float64)[..., None] if np.ndim(upper_length) else float(upper_length)
    l2 = np.asarray(lower_length, np.float64)[..., None] if np.ndim(lower_length) else float(lower_length)
    to_target = np.asarray(end_target, np.float64) - root
    dist = np.linalg.norm(to_target, axis=-1, keepdims=True)
    d = np.clip(dist, np.abs(l1 - l2) + 1e-6, (l1 + l2) * max_stretch)
    return root + to_target / np.maximum(dist, 1e-12) * d


def local_to_global_rotations(rotations: np.ndarray, parents) -> np.ndarray:
    """Global quaternions (..., J, 4) from local ones."""
    out = np.empty_like(np.asarray(rotations, np.float64))
    for j, p in enumerate(parents):
        out[..., j, :] = rotations[..., j, :] if p < 0 else quat_mul(out[..., p, :], rotations[..., j, :])
    return out


def global_to_local_rotations(global_rotations: np.ndarray, parents) -> np.ndarray:
    out = np.empty_like(np.asarray(global_rotations, np.float64))
    for j, p in enumerate(parents):
        out[..., j, :] = global_rotations[..., j, :] if p < 0 else \
            quat_mul(quat_conjugate(global_rotations[..., p, :]), global_rotations[..., j, :])
    return out


__all__ = ["forward_kinematics", "inverse_kinematics", "fit_skeleton", "two_bone_ik", "two_bone_end",
           "local_to_global_rotations", "global_to_local_rotations", "quat_rotate"]
