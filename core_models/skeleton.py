# SPDX-License-Identifier: GPL-3.0-or-later
"""Joint tables, the project's default rest skeleton, and an exact skeleton from a user's SMPL-X file.

Core space: metres, Y up, the body faces +Z, the character's left is +X.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_FINGERS = ("index", "middle", "pinky", "ring", "thumb")

# SMPL-X joint order (55): 22 body joints, jaw, two eyes, 15 left and 15 right finger joints.
SMPLX_JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck",
    "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "jaw", "left_eye_smplhf", "right_eye_smplhf",
) + tuple(f"{side}_{finger}{k}" for side in ("left", "right") for finger in _FINGERS for k in (1, 2, 3))

SMPLX_PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19,
    15, 15, 15,
) + tuple(p for wrist in (20, 21) for f in range(5)
          for p in (wrist, 25 + 15 * (wrist - 20) + 3 * f, 26 + 15 * (wrist - 20) + 3 * f))

NUM_BODY_JOINTS = 22
BODY_JOINT_NAMES: tuple[str, ...] = SMPLX_JOINT_NAMES[:NUM_BODY_JOINTS]
BODY_PARENTS: tuple[int, ...] = SMPLX_PARENTS[:NUM_BODY_JOINTS]
JOINT_INDEX = {name: i for i, name in enumerate(SMPLX_JOINT_NAMES)}

# HumanML3D kinematic chains over the 22 body joints (each starts from its parent).
BODY_CHAINS: tuple[tuple[int, ...], ...] = (
    (0, 2, 5, 8, 11), (0, 1, 4, 7, 10), (0, 3, 6, 9, 12, 15), (9, 14, 17, 19, 21), (9, 13, 16, 18, 20),
)
# Unit rest directions of each body bone (HumanML3D "t2m_raw_offsets"); the official 264-d features'
# rotation block is defined relative to these.
T2M_RAW_OFFSETS = np.array([
    (0, 0, 0), (1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, -1, 0), (0, 1, 0), (0, -1, 0),
    (0, -1, 0), (0, 1, 0), (0, 0, 1), (0, 0, 1), (0, 1, 0), (1, 0, 0), (-1, 0, 0), (0, 0, 1),
    (0, -1, 0), (0, -1, 0), (0, -1, 0), (0, -1, 0), (0, -1, 0), (0, -1, 0)], dtype=np.float64)

LEFT_FOOT_JOINTS = (7, 10)    # left ankle, left toe base
RIGHT_FOOT_JOINTS = (8, 11)   # right ankle, right toe base
FACE_JOINTS = (2, 1, 17, 16)  # r_hip, l_hip, r_shoulder, l_shoulder
LEG_JOINTS = {"left": (1, 4, 7, 10), "right": (2, 5, 8, 11)}  # hip, knee, ankle, toe
UPPER_BODY_JOINTS = (3, 6, 9, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21)


def mirror_index(names: tuple[str, ...] = SMPLX_JOINT_NAMES) -> np.ndarray:
    """Index of each joint's left/right counterpart (itself for centre joints)."""
    lookup = {n: i for i, n in enumerate(names)}

    def swap(n: str) -> str:
        if n.startswith("left_"):
            return "right_" + n[5:]
        if n.startswith("right_"):
            return "left_" + n[6:]
        return n.replace("left_eye", "RIGHT_EYE").replace("right_eye", "left_eye").replace("RIGHT_EYE", "right_eye")

    return np.array([lookup[swap(n)] for n in names])


@dataclass
class Skeleton:
    """A joint hierarchy with rest offsets (each joint's position relative to its parent, rest pose).

    ``offsets[0]`` is the root's rest position (pelvis height above the floor for standing skeletons).
    """
    names: tuple[str, ...]
    parents: tuple[int, ...]
    offsets: np.ndarray  # (J, 3) float64, metres
    source: str = "custom"
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.offsets = np.asarray(self.offsets, dtype=np.float64)
        if self.offsets.shape != (len(self.names), 3) or len(self.parents) != len(self.names):
            raise ValueError(f"skeleton '{self.source}': {len(self.names)} names, {len(self.parents)} parents "
                             f"and offsets of shape {self.offsets.shape} do not agree")
        for j, p in enumerate(self.parents):
            if (j == 0) != (p < 0) or p >= j:
                raise ValueError(f"skeleton '{self.source}': parents must be topologically ordered with the "
                                 f"root first; joint {j} ({self.names[j]}) has parent {p}")

    @property
    def num_joints(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def children(self, j: int) -> list[int]:
        return [c for c, p in enumerate(self.parents) if p == j]

    def rest_positions(self) -> np.ndarray:
        """Global joint positions of the rest pose, (J, 3)."""
        pos = np.zeros_like(self.offsets)
        for j, p in enumerate(self.parents):
            pos[j] = self.offsets[j] if p < 0 else pos[p] + self.offsets[j]
        return pos

    def subset(self, count: int) -> "Skeleton":
        """The first ``count`` joints (e.g. the 22-joint body of a 55-joint SMPL-X skeleton)."""
        return Skeleton(self.names[:count], self.parents[:count], self.offsets[:count].copy(),
                        self.source, dict(self.meta))

    def with_offsets(self, offsets: np.ndarray, source: str | None = None) -> "Skeleton":
        return Skeleton(self.names, self.parents, np.array(offsets, dtype=np.float64),
                        source or self.source, dict(self.meta))


# --- the project's own default skeleton ------------------------------------------------------------
# Segment lengths as fractions of standing height H, from the anthropometric table of Drillis & Contini
# (1966) as reproduced in D. A. Winter, "Biomechanics and Motor Control of Human Movement", 4th ed.,
# Wiley 2009, Fig. 4.1. Depths (z) of the spine curve and the foot are our own rounded estimates.
DEFAULT_HEIGHT = 1.70
_W = {
    "hip_height": 0.530,      # greater trochanter height
    "hip_width": 0.191,       # distance between hip joint centres
    "thigh": 0.245,           # hip -> knee
    "shank": 0.246,           # knee -> ankle
    "ankle_height": 0.039,    # ankle -> floor
    "foot_forward": 0.110,    # ankle -> ball of the foot (toe base), horizontal
    "shoulder_height": 0.818,
    "shoulder_width": 0.259,  # distance between shoulder joint centres
    "chin_height": 0.870,
    "eye_height": 0.936,
    "upper_arm": 0.186,
    "forearm": 0.146,
    "hand": 0.108,
}


def _default_body_offsets(height: float) -> np.ndarray:
    """Rest offsets of the 22 body joints in a T-pose, in metres."""
    h = {k: v * height for k, v in _W.items()}
    pos = np.zeros((NUM_BODY_JOINTS, 3))
    pelvis_y = h["hip_height"] + 0.025 * height          # pelvis joint a little above the hip joints
    pos[0] = (0, pelvis_y, 0)
    for side, s in (("left", 1.0), ("right", -1.0)):
        hip, knee, ankle, toe = LEG_JOINTS[side]
        pos[hip] = (s * h["hip_width"] / 2, h["hip_height"], 0)
        pos[knee] = (s * h["hip_width"] / 2, h["hip_height"] - h["thigh"], 0.005 * height)
        pos[ankle] = (s * h["hip_width"] / 2, h["ankle_height"], -0.012 * height)
        pos[toe] = (s * h["hip_width"] / 2, 0.012 * height, h["foot_forward"] - 0.012 * height)
    neck_y = h["shoulder_height"] + 0.025 * height
    spine = np.linspace(pelvis_y, neck_y, 5)[1:4]          # spine1..3 evenly between pelvis and neck
    pos[3] = (0, spine[0], -0.010 * height)
    pos[6] = (0, spine[1], -0.005 * height)
    pos[9] = (0, spine[2], -0.010 * height)
    pos[12] = (0, neck_y, -0.015 * height)
    pos[15] = (0, (h["chin_height"] + h["eye_height"]) / 2, 0.005 * height)
    for side, s, collar, shoulder, elbow, wrist in (("left", 1.0, 13, 16, 18, 20), ("right", -1.0, 14, 17, 19, 21)):
        sx = s * h["shoulder_width"] / 2
        pos[collar] = (s * 0.045 * height, spine[2] + 0.04 * height, -0.010 * height)
        pos[shoulder] = (sx, h["shoulder_height"], -0.012 * height)
        pos[elbow] = (sx + s * h["upper_arm"], h["shoulder_height"], -0.012 * height)
        pos[wrist] = (sx + s * (h["upper_arm"] + h["forearm"]), h["shoulder_height"], -0.012 * height)
    offsets = pos.copy()
    for j, p in enumerate(BODY_PARENTS):
        if p >= 0:
            offsets[j] = pos[j] - pos[p]
    return offsets


def _default_extra_offsets(height: float) -> np.ndarray:
    """Jaw, eyes and 30 finger joints (indices 22..54) relative to their parents."""
    h = {k: v * height for k, v in _W.items()}
    out = np.zeros((len(SMPLX_JOINT_NAMES) - NUM_BODY_JOINTS, 3))
    out[0] = (0, -0.01 * height, 0.02 * height)            # jaw below and in front of the head joint
    out[1] = (0.018 * height, 0.035 * height, 0.045 * height)   # left eye
    out[2] = (-0.018 * height, 0.035 * height, 0.045 * height)  # right eye
    finger_len = 0.45 * h["hand"]                           # three phalanges share the finger length
    spread = {"index": 0.012, "middle": 0.004, "ring": -0.004, "pinky": -0.012, "thumb": 0.016}
    for side_i, s in enumerate((1.0, -1.0)):
        for f, finger in enumerate(_FINGERS):
            base = 3 + 15 * side_i + 3 * f
            palm = 0.55 * h["hand"] if finger != "thumb" else 0.2 * h["hand"]
            z = spread[finger] * height
            out[base] = (s * palm, -0.004 * height if finger == "thumb" else 0.0, z)
            seg = finger_len / 3 if finger != "thumb" else 0.8 * finger_len / 3
            out[base + 1] = (s * seg, 0, 0.3 * seg if finger == "thumb" else 0)
            out[base + 2] = (s * seg * 0.8, 0, 0.3 * seg if finger == "thumb" else 0)
    return out


def default_skeleton(height: float = DEFAULT_HEIGHT, body_only: bool = False) -> Skeleton:
    """The project's own SMPL-X-topology skeleton (55 joints; 22 with ``body_only``) in a T-pose."""
    offsets = np.concatenate([_default_body_offsets(height), _default_extra_offsets(height)])
    skel = Skeleton(SMPLX_JOINT_NAMES, SMPLX_PARENTS, offsets, source=f"choreo-default-{height:.2f}m")
    return skel.subset(NUM_BODY_JOINTS) if body_only else skel


# --- exact skeleton from the user's SMPL-X model file ------------------------------------------------
SMPLX_MODEL_KEYS = {"v_template": (None, 3), "shapedirs": (None, 3, None), "J_regressor": (55, None),
                    "kintree_table": (2, 55), "f": (None, 3)}


def _check_smplx_model_file(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"SMPL-X model file '{path}' does not exist; point the setting at your "
                                "SMPLX_NEUTRAL/MALE/FEMALE .npz (download it from smpl-x.is.tue.mpg.de)")
    if path.suffix.lower() != ".npz":
        raise ValueError(f"SMPL-X model file '{path}': expected an .npz model file (the .pkl variant needs "
                         "chumpy); convert it or use the .npz download")
    try:
        archive = np.load(path, allow_pickle=False)
        keys = set(archive.files)
    except Exception as exc:  # zip or header corruption
        raise ValueError(f"SMPL-X model file '{path}' cannot be read as .npz: {exc}") from exc
    data = {}
    for key, shape in SMPLX_MODEL_KEYS.items():
        if key not in keys:
            raise ValueError(f"SMPL-X model file '{path}' lacks the key '{key}' (has: {sorted(keys)}); "
                             "is it an SMPL-X model file?")
        try:
            arr = data[key] = archive[key]
        except Exception as exc:
            raise ValueError(f"SMPL-X model file '{path}': '{key}' cannot be read ({exc})") from exc
        if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
            want = "x".join("N" if s is None else str(s) for s in shape)
            raise ValueError(f"SMPL-X model file '{path}': '{key}' has shape {arr.shape}, expected {want}")
    nv = data["v_template"].shape[0]
    if data["shapedirs"].shape[0] != nv or data["J_regressor"].shape[1] != nv:
        raise ValueError(f"SMPL-X model file '{path}': v_template has {nv} vertices but shapedirs "
                         f"{data['shapedirs'].shape} / J_regressor {data['J_regressor'].shape} disagree")
    return data


def smplx_skeleton(model_path: str | Path, betas: np.ndarray | None = None, gender: str = "neutral") -> Skeleton:
    """Exact rest skeleton (55 joints) of the user's SMPL-X body, through the ``smplx`` package.

    Y up as SMPL-X itself; the skeleton is shifted so that the lowest rest vertex stands on the floor.
    """
    import torch
    import smplx

    path = Path(model_path)
    data = _check_smplx_model_file(path)
    num_betas = min(10, data["shapedirs"].shape[-1])
    model = smplx.create(str(path), model_type="smplx", gender=gender, use_pca=False,
                         num_betas=num_betas, ext="npz")
    b = torch.zeros(1, num_betas)
    if betas is not None:
        betas = np.asarray(betas, dtype=np.float32).reshape(-1)[:num_betas]
        b[0, :betas.shape[0]] = torch.from_numpy(betas)
    with torch.no_grad():
        # Rest pose only: shaped template and its regressed joints (the model's forward would also
        # select landmark vertices, which is neither needed nor robust to trimmed model files).
        vertices = model.v_template + smplx.lbs.blend_shapes(b, model.shapedirs)
        joints_t = smplx.lbs.vertices2joints(model.J_regressor, vertices)
    joints = joints_t[0, :55].double().numpy()
    floor = float(vertices[0, :, 1].min())
    joints[:, 1] -= floor
    offsets = joints.copy()
    for j, p in enumerate(SMPLX_PARENTS):
        if p >= 0:
            offsets[j] = joints[j] - joints[p]
    vertices_np = vertices[0].double().numpy()
    vertices_np[:, 1] -= floor
    return Skeleton(SMPLX_JOINT_NAMES, SMPLX_PARENTS, offsets, source=f"smplx:{path.name}",
                    meta={"model_path": str(path), "floor_offset": floor, "rest_vertices": vertices_np,
                          "faces": np.asarray(model.faces, dtype=np.int64),
                          "skin_weights": model.lbs_weights.double().numpy()})
