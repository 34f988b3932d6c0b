# SPDX-License-Identifier: GPL-3.0-or-later
"""A synthetic SMPL-X model file (right keys and shapes, made-up numbers) for core and add-on tests."""
import numpy as np

from core_models.skeleton import SMPLX_PARENTS


def write_synthetic_smplx_model(path, rest_joints):
    """An .npz with the keys and shapes of an SMPL-X model file; vertex i sits on joint i."""
    rng = np.random.default_rng(0)
    n_joints, extra = 55, 45
    verts = np.concatenate([rest_joints, rest_joints[rng.integers(0, 55, extra)] + rng.normal(0, 0.01, (extra, 3))])
    nv = verts.shape[0]
    regressor = np.zeros((n_joints, nv))
    regressor[np.arange(55), np.arange(55)] = 1.0
    weights = np.zeros((nv, n_joints))
    weights[np.arange(nv), np.concatenate([np.arange(55), rng.integers(0, 55, extra)])] = 1.0
    kintree = np.array([[4294967295 if p < 0 else p for p in SMPLX_PARENTS], list(range(55))], dtype=np.int64)
    np.savez(path, v_template=verts, shapedirs=rng.normal(0, 1e-3, (nv, 3, 20)), posedirs=np.zeros((nv, 3, 486)),
             J_regressor=regressor, weights=weights, kintree_table=kintree,
             f=rng.integers(0, nv, (60, 3)).astype(np.int64),
             hands_componentsl=np.eye(45), hands_componentsr=np.eye(45), hands_meanl=np.zeros(45),
             hands_meanr=np.zeros(45), lmk_faces_idx=np.zeros(51, np.int64), lmk_bary_coords=np.full((51, 3), 1 / 3),
             dynamic_lmk_faces_idx=np.zeros((79, 17), np.int64), dynamic_lmk_bary_coords=np.full((79, 17, 3), 1 / 3))
