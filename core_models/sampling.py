# SPDX-License-Identifier: GPL-3.0-or-later
"""Token sampling for ChoreoLLaMA: temperature / top-k / top-p plus the release's anti-collapse rules.

Everything stays on the model's device as tensors (no ``.item()`` per token): the history of each RVQ
slot is a tensor and its length is known on the host from the step count, so a generation loop never
waits for the device between tokens. Works on a batch of independent sequences.

Rules per slot g (logits restricted to the slot's 512 ids, i.e. slot-local ids 0..511), in order:
  1. temperature; for slot 0, if the last 6 slot-0 tokens hold <= 2 distinct ids, temperature x boost;
  2. repetition penalty over the distinct ids among the last 30 same-slot tokens of this window
     (positive logits divided by the penalty, others multiplied), after the temperature;
  3. max-repeat ban: ids occurring >= max_repeat times in the last max_repeat + 5 same-slot tokens;
  4. n-gram block (slot 0): ids that followed an earlier occurrence of the last n-1 tokens are banned;
  5. top-k, softmax over the k values, nucleus (drop a token when the probability before it exceeds
     top_p; the first is always kept), draw. If every id is banned the draw is uniform over the slot.
Defaults are the release's ``infer.sh`` values.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch


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
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")

    def to_dict(self) -> dict:
        return asdict(self)


def _distinct_count(rows: torch.Tensor) -> torch.Tensor:
    srt = rows.sort(dim=1).values
    return (srt[:, 1:] != srt[:, :-1]).sum(dim=1) + 1


def _presence(ids: torch.Tensor, vocab: int) -> torch.Tensor:
    """(B, vocab) counts of each id in each row of ``ids`` (B, n)."""
    counts = torch.zeros(ids.shape[0], vocab, dtype=torch.int32, device=ids.device)
    if ids.shape[1]:
        counts.scatter_add_(1, ids, torch.ones_like(ids, dtype=torch.int32))
    return counts


def adjust_logits(logits: torch.Tensor, history: torch.Tensor, slot: int, cfg: SamplingConfig) -> torch.Tensor:
    """Apply rules 1-4 to slot-local logits (B, V) given this window's same-slot history (B, n)."""
    logits = logits.float()
    batch, vocab = logits.shape
    n = history.shape[1]
    temp = torch.full((batch, 1), cfg.temperature, device=logits.device)
    if slot == 0 and n >= cfg.boost_window:
        collapsed = _distinct_count(history[:, n - cfg.boost_window:]) <= cfg.boost_max_distinct
        temp = torch.where(collapsed[:, None], temp * cfg.temperature_boost, temp)
    logits = logits / temp
    if n and cfg.repetition_penalty != 1.0:
        recent = _presence(history[:, max(0, n - cfg.repetition_window):], vocab) > 0
        penalised = torch.where(logits > 0, logits / cfg.repetition_penalty, logits * cfg.repetition_penalty)
        logits = torch.where(recent, penalised, logits)
    max_rep = cfg.max_repeat_slot0 if slot == 0 else cfg.max_repeat_other
    banned = _presence(history[:, max(0, n - (max_rep + 5)):], vocab) >= max_rep
    ng = cfg.ngram_slot0
    if slot == 0 and ng >= 2 and n >= ng:
        grams = history.unfold(1, ng, 1)                      # (B, n - ng + 1, ng): context + follower
        context = history[:, n - (ng - 1):]
        match = (grams[..., :-1] == context[:, None]).all(dim=-1)
        followers = torch.zeros(batch, vocab, dtype=torch.int32, device=logits.device)
        followers.scatter_add_(1, grams[..., -1], match.to(torch.int32))
        banned |= followers > 0
    return logits.masked_fill(banned, float("-inf"))


def sample_slot(logits: torch.Tensor, history: torch.Tensor, slot: int, cfg: SamplingConfig,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one slot-local id per row: (B,) long. ``history`` (B, n) holds this window's same-slot ids."""
    logits = adjust_logits(logits, history, slot, cfg)
    vocab = logits.shape[1]
    values, indices = logits.topk(min(cfg.top_k, vocab), dim=1)     # sorted, descending
    all_banned = torch.isneginf(values[:, :1])
    # Rows with every id banned draw uniformly over the slot (decided with where: no host sync).
    values = torch.where(all_banned, torch.zeros_like(values), values)
    probs = torch.softmax(values, dim=1)
    probs = probs.masked_fill((probs.cumsum(dim=1) - probs) > cfg.top_p, 0.0)
    draw = indices.gather(1, torch.multinomial(probs, 1, generator=generator))
    uniform = torch.randint(0, vocab, draw.shape, device=logits.device, generator=generator)
    return torch.where(all_banned, uniform, draw)[:, 0]
