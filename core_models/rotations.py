# SPDX-License-Identifier: GPL-3.0-or-later
"""Rotation conversions for numpy arrays and torch tensors alike.

Quaternions are w-first ``(w, x, y, z)``; 6D is the first two columns of the rotation matrix,
``[R[:, 0], R[:, 1]]`` (the layout of the official 264-d features); matrices act on column vectors.
Every function takes arrays of any leading batch shape and returns the same kind it was given.
"""
from __future__ import annotations

import numpy as np

_EPS = 1e-12


class _Numpy:
    stack = staticmethod(np.stack)
    sqrt = staticmethod(np.sqrt)
    sin = staticmethod(np.sin)
    cos = staticmethod(np.cos)
    atan2 = staticmethod(np.arctan2)
    where = staticmethod(np.where)
    abs = staticmethod(np.abs)

    @staticmethod
    def cat(xs, axis=-1):
        return np.concatenate(xs, axis=axis)

    @staticmethod
    def norm(x, keepdim=True):
        return np.sqrt((x * x).sum(-1, keepdims=keepdim))

    @staticmethod
    def cross(a, b):
        # np.cross spends most of its time on axis bookkeeping for the small arrays used here
        a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
        b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
        return np.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)

    @staticmethod
    def clamp(x, lo, hi):
        return np.clip(x, lo, hi)

    @staticmethod
    def argmax(x):
        return np.argmax(x, axis=-1)

    @staticmethod
    def take(x, idx):
        return np.take_along_axis(x, idx[..., None, None], axis=-2)[..., 0, :]

    @staticmethod
    def zeros_like(x):
        return np.zeros_like(x)


class _Torch:
    def __init__(self, torch):
        self.t = torch
        self.stack = lambda xs, axis=0: torch.stack(xs, dim=axis)
        self.sqrt, self.sin, self.cos, self.atan2 = torch.sqrt, torch.sin, torch.cos, torch.atan2
        self.where, self.abs, self.zeros_like = torch.where, torch.abs, torch.zeros_like

    def cat(self, xs, axis=-1):
        return self.t.cat(xs, dim=axis)

    def norm(self, x, keepdim=True):
        return self.t.linalg.vector_norm(x, dim=-1, keepdim=keepdim)

    def cross(self, a, b):
        return self.t.linalg.cross(a, b, dim=-1)

    def clamp(self, x, lo, hi):
        return self.t.clamp(x, lo, hi)

    def argmax(self, x):
        return self.t.argmax(x, dim=-1)

    def take(self, x, idx):
        return self.t.gather(x, -2, idx[..., None, None].expand(*idx.shape, 1, x.shape[-1]))[..., 0, :]


def _ns(x):
    """The array namespace of ``x`` (numpy or torch), without importing torch for numpy input."""
    if isinstance(x, np.ndarray):
        return _Numpy
    mod = type(x).__module__
    if mod.startswith("torch"):
        import torch
        return _Torch(torch)
    return _Numpy


def _asarray(x):
    return x if not isinstance(x, (list, tuple)) else np.asarray(x, dtype=np.float64)


def normalize(v, eps: float = _EPS):
    xp = _ns(v)
    return v / xp.clamp(xp.norm(v), eps, None)


# --- quaternions ---------------------------------------------------------------------------------------
def quat_identity(shape=(), dtype=np.float64) -> np.ndarray:
    q = np.zeros(tuple(shape) + (4,), dtype=dtype)
    q[..., 0] = 1.0
    return q


def quat_normalize(q):
    return normalize(_asarray(q))


def quat_conjugate(q):
    q = _asarray(q)
    xp = _ns(q)
    return xp.cat([q[..., :1], -q[..., 1:]])


quat_inverse = quat_conjugate  # for unit quaternions


def quat_mul(a, b):
    """Hamilton product ``a * b`` (apply b first, then a)."""
    a, b = _asarray(a), _asarray(b)
    xp = _ns(a)
    aw, ax, ay, az = a[..., 0], a[..., 1], a[..., 2], a[..., 3]
    bw, bx, by, bz = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return xp.stack([aw * bw - ax * bx - ay * by - az * bz,
                     aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw], axis=-1)


def quat_rotate(q, v):
    """Rotate vectors ``v (..., 3)`` by unit quaternions ``q (..., 4)``."""
    q, v = _asarray(q), _asarray(v)
    xp = _ns(q)
    w, u = q[..., :1], q[..., 1:]
    t = 2.0 * xp.cross(u, v)
    return v + w * t + xp.cross(u, t)


def quat_between(u, v):
    """Shortest-arc unit quaternion rotating direction ``u`` onto direction ``v``.

    For opposite vectors the axis is any vector perpendicular to ``u`` (chosen deterministically).
    """
    u, v = normalize(_asarray(u)), normalize(_asarray(v))
    xp = _ns(u)
    w = 1.0 + (u * v).sum(-1, keepdims=True) if xp is _Numpy else 1.0 + (u * v).sum(-1, keepdim=True)
    axis = xp.cross(u, v)
    # Opposite directions: rotate by pi about an axis perpendicular to u.
    ex = xp.zeros_like(u)
    ex[..., 0] = 1.0
    ey = xp.zeros_like(u)
    ey[..., 1] = 1.0
    alt = xp.where(xp.abs(u[..., :1]) < 0.9, xp.cross(u, ex), xp.cross(u, ey))
    opposite = w < 1e-9
    axis = xp.where(opposite, normalize(alt), axis)
    w = xp.where(opposite, xp.zeros_like(w), w)
    return normalize(xp.cat([w, axis]))


def quat_to_matrix(q):
    q = quat_normalize(q)
    xp = _ns(q)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    rows = [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]
    m = xp.stack(rows, axis=-1)
    return m.reshape(tuple(q.shape[:-1]) + (3, 3))


def matrix_to_quat(m):
    """Rotation matrix to unit quaternion with w >= 0 (Shepperd's method, numerically stable)."""
    m = _asarray(m)
    xp = _ns(m)
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # Four candidate solutions, pick the one with the largest denominator per element.
    cand = xp.stack([
        xp.stack([1 + m00 + m11 + m22, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
        xp.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m00 - m11 - m22, m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0]], -1),
        xp.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 - m00 + m11 - m22, m[..., 1, 2] + m[..., 2, 1]], -1),
        xp.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1], 1 - m00 - m11 + m22], -1),
    ], axis=-2)
    diag = xp.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    best = xp.argmax(diag)
    q = normalize(xp.take(cand, best))
    return q * xp.where(q[..., :1] < 0, -1.0, 1.0)


def quat_to_axis_angle(q):
    q = quat_normalize(q)
    xp = _ns(q)
    q = q * xp.where(q[..., :1] < 0, -1.0, 1.0)
    sin_half = xp.norm(q[..., 1:])
    angle = 2.0 * xp.atan2(sin_half, q[..., :1])
    # angle / sin(angle/2) -> 2 as angle -> 0
    small = sin_half < 1e-8
    scale = xp.where(small, 2.0 + xp.zeros_like(angle), angle / xp.where(small, 1.0 + xp.zeros_like(angle), sin_half))
    return q[..., 1:] * scale


def axis_angle_to_quat(aa):
    aa = _asarray(aa)
    xp = _ns(aa)
    angle = xp.norm(aa)
    half = angle * 0.5
    small = angle < 1e-8
    # sin(half)/angle -> 1/2 - angle^2/48 near zero
    k = xp.where(small, 0.5 - angle * angle / 48.0, xp.sin(half) / xp.where(small, 1.0 + xp.zeros_like(angle), angle))
    return xp.cat([xp.cos(half), aa * k])


def axis_angle_to_matrix(aa):
    return quat_to_matrix(axis_angle_to_quat(aa))


def matrix_to_6d(m):
    """First two columns, concatenated: ``[R[:, 0], R[:, 1]]`` -> (..., 6)."""
    m = _asarray(m)
    xp = _ns(m)
    return xp.cat([m[..., :, 0], m[..., :, 1]])


def sixd_to_matrix(d6):
    """Gram-Schmidt as in the official code: x = n(a); z = n(x cross b); y = z cross x; R = [x y z]."""
    d6 = _asarray(d6)
    xp = _ns(d6)
    x = normalize(d6[..., :3])
    z = normalize(xp.cross(x, d6[..., 3:6]))
    y = xp.cross(z, x)
    return xp.stack([x, y, z], axis=-1)


def quat_to_6d(q):
    return matrix_to_6d(quat_to_matrix(q))


def quat_fix_continuity(q, axis: int = 0):
    """Flip quaternion signs along ``axis`` (time) so consecutive quaternions have a positive dot product."""
    q = np.array(q, dtype=np.float64, copy=True)
    q = np.moveaxis(q, axis, 0)
    if q.shape[0] > 1:
        dots = (q[1:] * q[:-1]).sum(-1)
        flips = np.cumsum(dots < 0, axis=0) % 2
        q[1:][flips.astype(bool)] *= -1
    return np.moveaxis(q, 0, axis)


def quat_slerp(a, b, t):
    """Spherical interpolation between unit quaternion arrays a and b with weights t (broadcast, numpy)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    t = np.asarray(t, np.float64)[..., None]
    dot = (a * b).sum(-1, keepdims=True)
    b = np.where(dot < 0, -b, b)
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin_t = np.sin(theta)
    linear = sin_t < 1e-6
    safe = np.where(linear, 1.0, sin_t)
    wa = np.where(linear, 1.0 - t, np.sin((1.0 - t) * theta) / safe)
    wb = np.where(linear, t, np.sin(t * theta) / safe)
    return normalize(wa * a + wb * b)


_AXES = {"X": 0, "Y": 1, "Z": 2}


def axis_rotation_matrix(axis: str, angle_rad) -> np.ndarray:
    """(..., 3, 3) rotation matrices about ``axis`` ('X', 'Y' or 'Z') by ``angle_rad`` (radians, any shape)."""
    angle = np.asarray(angle_rad)
    c, s = np.cos(angle), np.sin(angle)
    m = np.zeros(angle.shape + (3, 3))
    i = _AXES[axis.upper()]
    j, k = (i + 1) % 3, (i + 2) % 3
    m[..., i, i] = 1.0
    m[..., j, j] = c
    m[..., k, k] = c
    m[..., k, j] = s
    m[..., j, k] = -s
    return m


def euler_to_matrix(angles, order: str, degrees: bool = True) -> np.ndarray:
    """Intrinsic Euler angles as BVH writes them: ``order`` 'ZXY' means R = Rz(a0) @ Rx(a1) @ Ry(a2)."""
    angles = np.asarray(angles, dtype=np.float64)
    if degrees:
        angles = np.deg2rad(angles)
    order = order.upper()
    if len(order) != 3 or set(order) - set("XYZ"):
        raise ValueError(f"Euler order '{order}' is not three of X, Y, Z")
    m = axis_rotation_matrix(order[0], angles[..., 0])
    for i in (1, 2):
        m = m @ axis_rotation_matrix(order[i], angles[..., i])
    return m


def matrix_to_euler(m, order: str, degrees: bool = True) -> np.ndarray:
    """Inverse of :func:`euler_to_matrix` for any of the 12 orders (Tait-Bryan and proper Euler)."""
    from scipy.spatial.transform import Rotation

    m = np.asarray(m, dtype=np.float64)
    flat = m.reshape(-1, 3, 3)
    # scipy: uppercase = intrinsic rotations, same composition as ours.
    ang = Rotation.from_matrix(flat).as_euler(order.upper(), degrees=degrees)
    return ang.reshape(m.shape[:-2] + (3,))
