# SPDX-License-Identifier: GPL-3.0-or-later
"""Joint positions <-> the official 264-d motion features (HumanML3D-style), normalisation, contacts.

Layout of one 264-d frame (half-open ranges), as in the InfiniteDance release:
  0        root height y (after floor subtraction)
  1        accumulated root yaw a_t (half-angle; exclusive cumulative sum of dim 2)
  2        root yaw velocity w_t = arcsin(y of r_{t+1} r_t^-1) (half-angle per frame)
  3:5      root xz velocity in the root's facing frame, r_{t+1} (p_{t+1} - p_t)
  5:68     joints 1..21 "RIC": xz relative to the root, y absolute, rotated to face +Z
  68:194   joints 1..21 local rotations, continuous 6-D (bone-alignment rotations, not SMPL rotations)
  194:260  velocities of all 22 joints, r_t (p_{t+1} - p_t)
  260:264  foot contacts (left ankle, left toe, right ankle, right toe)
Quirks kept for compatibility with the official checkpoints: the IK's across vector uses
(j1 - j2) + (j17 - j16) (hip term sign flipped vs. the facing step), the root rotation of frame 0 is
forced to identity, every kinematic chain starts from the root rotation (arms included), and the last
input frame is dropped (T joints -> T-1 feature frames).
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from .rotations import quat_between, quat_conjugate, quat_mul, quat_rotate, quat_to_6d, quat_to_matrix
from .skeleton import (BODY_CHAINS, BODY_PARENTS, FACE_JOINTS, LEFT_FOOT_JOINTS, NUM_BODY_JOINTS,
                       RIGHT_FOOT_JOINTS, T2M_RAW_OFFSETS, Skeleton, default_skeleton)

FEATURE_DIM = 264
CONTACT_VELOCITY_THRESHOLD = 0.002   # squared displacement, m^2 per frame^2 (official value, 30 fps)
FORWARD_SMOOTH_SIGMA = 20.0          # frames

# Named slices of the 264-d vector.
ROOT_Y = slice(0, 1)
ROOT_YAW = slice(1, 2)
ROOT_YAW_VEL = slice(2, 3)
ROOT_XZ_VEL = slice(3, 5)
RIC = slice(5, 68)
ROT6D = slice(68, 194)
JOINT_VEL = slice(194, 260)
CONTACTS = slice(260, 264)

_UP = np.array([0.0, 1.0, 0.0])
_FORWARD = np.array([0.0, 0.0, 1.0])


def _check_joints(joints: np.ndarray, min_frames: int = 2) -> np.ndarray:
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (NUM_BODY_JOINTS, 3):
        raise ValueError(f"expected body joints of shape (T, {NUM_BODY_JOINTS}, 3); got {joints.shape}")
    if joints.shape[0] < min_frames:
        raise ValueError(f"need at least {min_frames} frames to compute 264-d features (velocities need a "
                         f"next frame); got {joints.shape[0]}")
    if not np.isfinite(joints).all():
        bad = np.argwhere(~np.isfinite(joints))[0]
        raise ValueError(f"joint positions contain NaN/inf (first at frame {bad[0]}, joint {bad[1]})")
    return joints


def _across(joints: np.ndarray, ik_quirk: bool) -> np.ndarray:
    r_hip, l_hip, r_sh, l_sh = FACE_JOINTS
    hips = joints[..., l_hip, :] - joints[..., r_hip, :] if ik_quirk else joints[..., r_hip, :] - joints[..., l_hip, :]
    across = hips + (joints[..., r_sh, :] - joints[..., l_sh, :])
    return across / np.maximum(np.linalg.norm(across, axis=-1, keepdims=True), 1e-12)


def _facing_quat(joints: np.ndarray, ik_quirk: bool, smooth_sigma: float | None) -> np.ndarray:
    """Yaw quaternions turning each frame's forward direction onto +Z."""
    forward = np.cross(_UP, _across(joints, ik_quirk))
    if smooth_sigma:
        forward = gaussian_filter1d(forward, smooth_sigma, axis=0, mode="nearest")
    forward = forward / np.maximum(np.linalg.norm(forward, axis=-1, keepdims=True), 1e-12)
    return quat_between(forward, np.broadcast_to(_FORWARD, forward.shape))


# For each bone (indexed by its child joint 1..21): the bone before it in its kinematic chain, or 0 when
# the bone starts a chain (then the running rotation is the root's, even for the arm chains off spine3).
_PREV_BONE = np.zeros(NUM_BODY_JOINTS, dtype=int)
for _chain in BODY_CHAINS:
    for _k in range(2, len(_chain)):
        _PREV_BONE[_chain[_k]] = _chain[_k - 1]
_BONES = np.arange(1, NUM_BODY_JOINTS)
_PARENTS = np.array(BODY_PARENTS)


def chain_ik(joints: np.ndarray, smooth_forward: bool = True) -> np.ndarray:
    """The official features' bone-alignment IK: (T, 22, 4) rotations, each stored at the bone's child joint.

    Index 0 holds the root facing rotation (frame 0 forced to identity). Walking a chain, the running
    rotation after a bone is exactly that bone's alignment rotation (raw rest direction -> data), so each
    local rotation is conj(alignment of the previous bone, or the root's at a chain start) * alignment.
    """
    root = _facing_quat(joints, ik_quirk=True, smooth_sigma=FORWARD_SMOOTH_SIGMA if smooth_forward else None)
    root[0] = (1.0, 0.0, 0.0, 0.0)
    bones = joints[:, _BONES] - joints[:, _PARENTS[_BONES]]
    align = np.empty(joints.shape[:-1] + (4,))
    align[:, 0] = root
    align[:, 1:] = quat_between(np.broadcast_to(T2M_RAW_OFFSETS[_BONES], bones.shape), bones)
    quats = np.empty_like(align)
    quats[:, 0] = root
    quats[:, 1:] = quat_mul(quat_conjugate(align[:, _PREV_BONE[_BONES]]), align[:, 1:])
    return quats


def chain_fk(quats: np.ndarray, root_positions: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Inverse of :func:`chain_ik` given per-joint bone offsets along the raw directions (22, 3)."""
    joints = np.zeros(quats.shape[:-1] + (3,))
    joints[:, 0] = root_positions
    for chain in BODY_CHAINS:
        running = quats[:, 0]
        for parent, child in zip(chain[:-1], chain[1:]):
            running = quat_mul(running, quats[:, child])
            joints[:, child] = quat_rotate(running, np.broadcast_to(offsets[child], running.shape[:-1] + (3,))) \
                + joints[:, parent]
    return joints


def raw_direction_offsets(pose: np.ndarray) -> np.ndarray:
    """Offsets along the raw rest directions with the bone lengths of one pose (22, 3)."""
    lengths = np.zeros(NUM_BODY_JOINTS)
    for j, p in enumerate(BODY_PARENTS):
        if p >= 0:
            lengths[j] = np.linalg.norm(pose[j] - pose[p])
    return T2M_RAW_OFFSETS * lengths[:, None]


def _leg_length(offsets: np.ndarray) -> float:
    return float(np.abs(offsets[5]).max() + np.abs(offsets[8]).max())


def retarget_to_skeleton(joints: np.ndarray, target: Skeleton | np.ndarray) -> np.ndarray:
    """The official "uniform skeleton" step: same bone directions, the target's bone lengths.

    The root trajectory is scaled by the leg-length ratio target/source. (The release does this as IK
    followed by FK with the target offsets; since FK then re-applies each bone's alignment rotation to a
    raw direction, the result is every bone rescaled along its own direction, computed here directly.)
    """
    target_pose = target.rest_positions()[:NUM_BODY_JOINTS] if isinstance(target, Skeleton) else np.asarray(target)
    src_offsets = raw_direction_offsets(joints[0])
    tgt_lengths = np.linalg.norm(raw_direction_offsets(target_pose), axis=-1)
    scale = _leg_length(tgt_lengths[:, None] * T2M_RAW_OFFSETS) / max(_leg_length(src_offsets), 1e-9)
    bones = joints[:, 1:] - joints[:, _PARENTS[1:]]
    bones = bones / np.maximum(np.linalg.norm(bones, axis=-1, keepdims=True), 1e-12) * tgt_lengths[1:, None]
    out = np.empty_like(joints)
    out[:, 0] = joints[:, 0] * scale
    for j in range(1, NUM_BODY_JOINTS):                   # parents come first
        out[:, j] = out[:, _PARENTS[j]] + bones[:, j - 1]
    return out


def pose_facing(pose: np.ndarray) -> np.ndarray:
    """Yaw quaternion turning one pose's (22, 3) forward direction onto +Z (the turn :func:`canonicalize` makes)."""
    return _facing_quat(pose, ik_quirk=False, smooth_sigma=None)


def canonicalize(joints: np.ndarray) -> np.ndarray:
    """Floor at y=0, frame-0 root at the xz origin, frame 0 facing +Z (the official processing steps)."""
    joints = joints.copy()
    joints[..., 1] -= joints[..., 1].min()
    joints[..., [0, 2]] -= joints[0, 0, [0, 2]]
    face = pose_facing(joints[0])
    return quat_rotate(np.broadcast_to(face, joints.shape[:-1] + (4,)), joints)


def velocity_foot_contacts(joints: np.ndarray, threshold: float = CONTACT_VELOCITY_THRESHOLD) -> np.ndarray:
    """(T-1, 4) contacts [l_ankle, l_toe, r_ankle, r_toe]: squared per-frame displacement below threshold."""
    feet = list(LEFT_FOOT_JOINTS) + list(RIGHT_FOOT_JOINTS)
    disp = joints[1:, feet] - joints[:-1, feet]
    return ((disp ** 2).sum(-1) < threshold).astype(np.float64)


def joints_to_features(joints: np.ndarray, target_skeleton: Skeleton | None | str = "default",
                       contact_threshold: float = CONTACT_VELOCITY_THRESHOLD, return_joints: bool = False):
    """(T, 22, 3) joints at 30 fps, metres, Y up -> (T-1, 264) features.

    ``target_skeleton``: bone lengths used by the official "uniform skeleton" step. "default" is the
    project's own default skeleton (the release used a HumanML3D example body we cannot ship); None
    keeps the clip's own proportions. With ``return_joints`` also returns the (T, 22, 3) joints that the
    features encode (after retargeting and canonicalisation): :func:`features_to_joints` recovers the
    first T-1 of them.
    """
    joints = _check_joints(joints)
    if isinstance(target_skeleton, str):
        if target_skeleton != "default":
            raise ValueError(f"target_skeleton must be a Skeleton, None or 'default'; got '{target_skeleton}'")
        target_skeleton = default_skeleton(body_only=True)
    if target_skeleton is not None:
        joints = retarget_to_skeleton(joints, target_skeleton)
    positions = canonicalize(joints)
    contacts = velocity_foot_contacts(positions, contact_threshold)

    quats = chain_ik(positions, smooth_forward=True)
    root_rot = quats[:, 0]
    root_vel = quat_rotate(root_rot[1:], positions[1:, 0] - positions[:-1, 0])[:, [0, 2]]
    yaw_step = quat_mul(root_rot[1:], quat_conjugate(root_rot[:-1]))
    # Same rotation, w >= 0: without this a facing that turns through 180 degrees between two frames
    # (where the w >= 0 facing quaternions jump sign) gets the wrong yaw velocity (official bug).
    yaw_step = np.where(yaw_step[:, :1] < 0, -yaw_step, yaw_step)
    yaw_vel = np.arcsin(np.clip(yaw_step[:, 2], -1.0, 1.0))
    yaw = np.concatenate([[0.0], np.cumsum(yaw_vel)[:-1]])

    ric = positions.copy()
    ric[..., [0, 2]] -= positions[:, :1, [0, 2]]
    ric = quat_rotate(np.broadcast_to(root_rot[:, None], ric.shape[:-1] + (4,)), ric)
    rot6d = quat_to_6d(quats[:, 1:])
    local_vel = quat_rotate(np.broadcast_to(root_rot[:-1, None], positions[1:].shape[:-1] + (4,)),
                            positions[1:] - positions[:-1])

    n = positions.shape[0] - 1
    feats = np.concatenate([
        positions[:-1, 0, 1:2], yaw[:, None], yaw_vel[:, None], root_vel,
        ric[:-1, 1:].reshape(n, -1), rot6d[:-1].reshape(n, -1), local_vel.reshape(n, -1), contacts,
    ], axis=-1)
    return (feats, positions) if return_joints else feats


def features_to_joints(features: np.ndarray) -> np.ndarray:
    """Recover (T, 22, 3) joints from de-normalised (T, 264) features (the official recover_from_ric264)."""
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[1] != FEATURE_DIM:
        raise ValueError(f"expected features of shape (T, {FEATURE_DIM}); got {feats.shape}")
    yaw = np.concatenate([[0.0], np.cumsum(feats[:-1, 2])])
    inv = np.zeros((feats.shape[0], 4))
    inv[:, 0] = np.cos(yaw)
    inv[:, 2] = -np.sin(yaw)                          # q_t^-1 for q_t = (cos a, 0, sin a, 0)
    step = np.zeros((feats.shape[0], 3))
    step[1:, [0, 2]] = feats[:-1, 3:5]
    root = np.cumsum(quat_rotate(inv, step), axis=0)
    root[:, 1] = feats[:, 0]
    ric = feats[:, RIC].reshape(-1, NUM_BODY_JOINTS - 1, 3)
    ric = quat_rotate(np.broadcast_to(inv[:, None], ric.shape[:-1] + (4,)), ric)
    ric[..., [0, 2]] += root[:, None, [0, 2]]
    return np.concatenate([root[:, None], ric], axis=1)


def normalize_features(features: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(x - Mean) / Std per dimension, with no epsilon (as the official code; see :func:`feature_stats`)."""
    return (np.asarray(features) - mean) / std


def denormalize_features(features: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return np.asarray(features) * std + mean


def smooth_over_time(features: np.ndarray, sigma_frames: float) -> np.ndarray:
    """(T, D) features smoothed along time by a Gaussian of ``sigma_frames`` (0: returned as they are)."""
    if sigma_frames <= 0 or features.shape[0] < 2:
        return features
    return gaussian_filter1d(np.asarray(features, np.float64), float(sigma_frames), axis=0, mode="nearest")


def feature_stats(clips, min_std: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension Mean/Std over all frames of all clips (clips with NaN skipped, as the release does).

    Unlike the release we floor Std at ``min_std`` so a constant dimension cannot divide by zero.
    """
    good = [np.asarray(c, np.float64) for c in clips if np.isfinite(c).all()]
    if not good:
        raise ValueError("no clip without NaN to compute feature statistics from")
    allf = np.concatenate(good, axis=0)
    return allf.mean(0), np.maximum(allf.std(0), min_std)


__all__ = ["FEATURE_DIM", "joints_to_features", "features_to_joints", "normalize_features",
           "denormalize_features", "smooth_over_time", "feature_stats", "velocity_foot_contacts", "canonicalize",
           "retarget_to_skeleton", "chain_ik", "chain_fk", "quat_to_matrix"]
