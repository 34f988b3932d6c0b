# SPDX-License-Identifier: GPL-3.0-or-later
"""The numpy side of live retrieval (no torch): query windows over a song and cosine top-k search."""
from __future__ import annotations

import numpy as np


def window_starts(num_frames: int, window: int = 384, stride: int = 192) -> list[int]:
    """Starts of the query windows: 0, stride, ... up to and including the first window reaching the end."""
    if num_frames < 1 or window < 1 or stride < 1:
        raise ValueError(f"need num_frames, window, stride >= 1, got {num_frames}, {window}, {stride}")
    starts = [0]
    while starts[-1] + window < num_frames:
        starts.append(starts[-1] + stride)
    return starts


def windows(features, window: int = 384, stride: int = 192) -> np.ndarray:
    """(T, D) -> (N, window, D); a window cut short by the end is filled by tiling its own frames."""
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"expected (T, D) features, got shape {features.shape}")
    out = []
    for s in window_starts(features.shape[0], window, stride):
        seg = features[s:s + window]
        if seg.shape[0] < window:
            seg = seg[np.arange(window) % seg.shape[0]]
        out.append(seg)
    return np.stack(out)


def top_k(query_emb, corpus_emb, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Cosine top-k: (Q, D), (N, D) -> indices (Q, k) int64 and scores (Q, k), best first, ties by lower index.

    k is clamped to N. Rows are re-normalised, so un-normalised embeddings are fine.
    """
    q = np.atleast_2d(np.asarray(query_emb, dtype=np.float32))
    c = np.atleast_2d(np.asarray(corpus_emb, dtype=np.float32))
    if q.shape[1] != c.shape[1]:
        raise ValueError(f"embedding sizes differ: query {q.shape[1]}, corpus {c.shape[1]}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
    scores = q @ c.T
    k = min(k, c.shape[0])
    # A stable sort of the negated scores keeps equal scores in index order.
    idx = np.argsort(-scores, axis=1, kind="stable")[:, :k].astype(np.int64)
    return idx, np.take_along_axis(scores, idx, axis=1)
