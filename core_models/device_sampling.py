# SPDX-License-Identifier: GPL-3.0-or-later
"""The token sampler of ``sampling.py`` in torch, so that a GPU decode loop never waits for the host.

Same rules, same order, same arithmetic (float64) as :func:`sampling.sample_slot`, on whatever device the
logits live, with no Python branch on a tensor value (a branch would copy it to the host and stall the GPU
queue every token). The random numbers come in as ``u`` (one uniform per row, drawn on the host up front
from the same numpy streams the host sampler uses), so for equal logits both samplers pick equal tokens.
"""
from __future__ import annotations

import torch

from .sampling import SamplingConfig


def _counts(ids: torch.Tensor, vocab: int) -> torch.Tensor:
    """(B, vocab) occurrences of each id in each row of ``ids`` (B, n)."""
    counts = torch.zeros(ids.shape[0], vocab, dtype=torch.int64, device=ids.device)
    if ids.shape[1]:
        counts.scatter_add_(1, ids, torch.ones_like(ids))
    return counts


def adjust_logits(logits: torch.Tensor, history: torch.Tensor, slot: int, cfg: SamplingConfig) -> torch.Tensor:
    """Rules 1-4 of ``sampling.py`` on slot-local logits (B, V) with this window's same-slot history (B, n)."""
    logits = logits.to(torch.float64)
    batch, vocab = logits.shape
    n = history.shape[1]
    temp = torch.full((batch, 1), float(cfg.temperature), dtype=torch.float64, device=logits.device)
    if slot == 0 and n >= cfg.boost_window:
        recent = history[:, n - cfg.boost_window:].sort(dim=1).values
        distinct = (recent[:, 1:] != recent[:, :-1]).sum(dim=1) + 1
        temp = torch.where((distinct <= cfg.boost_max_distinct)[:, None], temp * cfg.temperature_boost, temp)
    logits = logits / temp
    if n and cfg.repetition_penalty != 1.0:
        recent = _counts(history[:, max(0, n - cfg.repetition_window):], vocab) > 0
        penalised = torch.where(logits > 0, logits / cfg.repetition_penalty, logits * cfg.repetition_penalty)
        logits = torch.where(recent, penalised, logits)
    max_rep = cfg.max_repeat_slot0 if slot == 0 else cfg.max_repeat_other
    banned = _counts(history[:, max(0, n - (max_rep + 5)):], vocab) >= max_rep
    ng = cfg.ngram_slot0
    if slot == 0 and ng >= 2 and n >= ng:
        grams = history.unfold(1, ng, 1)                                    # (B, n - ng + 1, ng)
        context = history[:, n - (ng - 1):]
        match = (grams[..., :-1] == context[:, None]).all(dim=-1)
        followers = torch.zeros(batch, vocab, dtype=torch.int64, device=logits.device)
        followers.scatter_add_(1, grams[..., -1], match.to(torch.int64))
        banned |= followers > 0
    return logits.masked_fill(banned, float("-inf"))


def sample_slot(logits: torch.Tensor, history: torch.Tensor, slot: int, cfg: SamplingConfig,
                u: torch.Tensor) -> torch.Tensor:
    """One slot-local id per row (B,) int64 on the logits' device; ``u`` (B,) uniforms in [0, 1)."""
    logits = adjust_logits(logits, history, slot, cfg)
    batch, vocab = logits.shape
    k = min(cfg.top_k, vocab)
    values, order = torch.sort(logits, dim=1, descending=True, stable=True)    # ties keep the lower id first
    values, order = values[:, :k], order[:, :k]
    p = torch.exp(values - values[:, :1])
    p = p / p.sum(dim=1, keepdim=True)
    p = torch.where((torch.cumsum(p, dim=1) - p) > cfg.top_p, torch.zeros_like(p), p)   # nucleus, first kept
    cdf = torch.cumsum(p, dim=1)
    u = u.to(torch.float64)
    pick = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True)[:, 0].clamp(max=k - 1)
    drawn = order.gather(1, pick[:, None])[:, 0]
    uniform = (u * vocab).to(torch.int64).clamp(max=vocab - 1)               # every id banned
    return torch.where(torch.isneginf(values[:, 0]), uniform, drawn)
