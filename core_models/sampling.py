# SPDX-License-Identifier: GPL-3.0-or-later
"""Token sampling for ChoreoLLaMA: temperature / top-k / top-p plus the release's anti-collapse rules.

One numpy implementation serves every backend (torch and ONNX Runtime): the logits of each step come to
the host (the vocabulary is small: 512 ids a slot) and a ``numpy.random.Generator`` seeded from the
user's seed draws, so the same seed gives the same tokens whichever backend computed the logits. Works on
a batch of independent sequences. Each row draws exactly one uniform number per token, whatever rule
decides it, so the random stream never depends on the logits.

Rules per slot g (logits restricted to the slot's 512 ids, i.e. slot-local ids 0..511), in order:
  1. temperature; for slot 0, if the last 6 slot-0 tokens hold <= 2 distinct ids, temperature x boost;
  2. repetition penalty over the distinct ids among the last 30 same-slot tokens of this window
     (positive logits divided by the penalty, others multiplied), after the temperature;
  3. max-repeat ban: ids occurring >= max_repeat times in the last max_repeat + 5 same-slot tokens;
  4. n-gram block (slot 0): ids that followed an earlier occurrence of the last n-1 tokens are banned;
  5. top-k, softmax over the k values, nucleus (drop a token when the probability before it exceeds
     top_p; the first is always kept), draw (ties keep the lower id first). If every id is banned the
     draw is uniform over the slot.
Defaults are the release's ``infer.sh`` values.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

MAX_TEMPERATURE = 2.0    # beyond this the top-k ids are drawn almost uniformly: noise, not dance


@dataclass
class SamplingConfig:
    temperature: float = 0.8
    top_k: int = 15
    top_p: float = 0.95
    repetition_penalty: float = 1.20
    repetition_window: int = 30
    max_repeat_slot0: int = 8
    max_repeat_other: int = 16
    ngram_slot0: int = 5
    temperature_boost: float = 1.8
    boost_window: int = 6
    boost_max_distinct: int = 2

    def __post_init__(self):
        if not 0.0 < self.temperature <= MAX_TEMPERATURE:
            raise ValueError(f"temperature must be above 0 and at most {MAX_TEMPERATURE:g} (default 0.8; lower is "
                             f"steadier, higher more varied), got {self.temperature:g}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be a whole number >= 1 (default 15), got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be above 0 and at most 1 (default 0.95), got {self.top_p:g}")
        if self.repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")

    def to_dict(self) -> dict:
        return asdict(self)


def make_rng(seed) -> np.random.Generator:
    """The sampler's random stream for a seed (a Generator passes through)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(None if seed is None else int(seed))


def _presence(ids: np.ndarray, vocab: int) -> np.ndarray:
    """(B, vocab) counts of each id in each row of ``ids`` (B, n)."""
    counts = np.zeros((ids.shape[0], vocab), np.int64)
    if ids.shape[1]:
        np.add.at(counts, (np.arange(ids.shape[0])[:, None], ids), 1)
    return counts


def adjust_logits(logits, history, slot: int, cfg: SamplingConfig) -> np.ndarray:
    """Apply rules 1-4 to slot-local logits (B, V) given this window's same-slot history (B, n): float64."""
    logits = np.array(logits, dtype=np.float64)
    history = np.asarray(history, dtype=np.int64).reshape(logits.shape[0], -1)
    batch, vocab = logits.shape
    n = history.shape[1]
    temp = np.full((batch, 1), cfg.temperature)
    if slot == 0 and n >= cfg.boost_window:
        recent = np.sort(history[:, n - cfg.boost_window:], axis=1)
        distinct = (recent[:, 1:] != recent[:, :-1]).sum(axis=1) + 1
        temp[distinct <= cfg.boost_max_distinct] *= cfg.temperature_boost
    logits = logits / temp
    if n and cfg.repetition_penalty != 1.0:
        recent = _presence(history[:, max(0, n - cfg.repetition_window):], vocab) > 0
        penalised = np.where(logits > 0, logits / cfg.repetition_penalty, logits * cfg.repetition_penalty)
        logits = np.where(recent, penalised, logits)
    max_rep = cfg.max_repeat_slot0 if slot == 0 else cfg.max_repeat_other
    banned = _presence(history[:, max(0, n - (max_rep + 5)):], vocab) >= max_rep
    ng = cfg.ngram_slot0
    if slot == 0 and ng >= 2 and n >= ng:
        grams = np.lib.stride_tricks.sliding_window_view(history, ng, axis=1)   # (B, n - ng + 1, ng)
        context = history[:, n - (ng - 1):]
        match = (grams[..., :-1] == context[:, None]).all(axis=-1)
        for b in range(batch):
            banned[b, grams[b, match[b], -1]] = True
    return np.where(banned, -np.inf, logits)


def sample_slot(logits, history, slot: int, cfg: SamplingConfig, rng=None) -> np.ndarray:
    """Draw one slot-local id per row: (B,) int64. ``history`` (B, n) holds this window's same-slot ids;
    ``rng`` a numpy Generator (or a seed)."""
    rng = make_rng(rng)
    logits = adjust_logits(logits, history, slot, cfg)
    batch, vocab = logits.shape
    k = min(cfg.top_k, vocab)
    order = np.argsort(-logits, axis=1, kind="stable")[:, :k]          # descending, ties by lower id
    values = np.take_along_axis(logits, order, axis=1)
    u = rng.random(batch)
    out = np.empty(batch, np.int64)
    for b in range(batch):
        if np.isneginf(values[b, 0]):             # every id banned: uniform over the slot
            out[b] = min(int(u[b] * vocab), vocab - 1)
            continue
        p = np.exp(values[b] - values[b, 0])
        p /= p.sum()
        p[(np.cumsum(p) - p) > cfg.top_p] = 0.0    # nucleus: the first token is always kept
        cdf = np.cumsum(p)
        out[b] = order[b, min(int(np.searchsorted(cdf, u[b] * cdf[-1], side="right")), k - 1)]
    return out
