# SPDX-License-Identifier: GPL-3.0-or-later
"""RetrievalNet: a CLIP-style pair of small transformer encoders (264-d motion, 55-d music -> 256-d unit vectors).

Written from the facts in the clean-room reference; the module tree reproduces the key names of the
released ``retrievalnet_audio55_motion264.ckpt`` once its Lightning ``model.`` prefix is stripped. The
attention is the "efficient" linear kind: queries are softmaxed over each head's channels, keys over time.
Also holds the numpy side of live retrieval: query windowing and cosine top-k.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .configs import RetrievalConfig  # noqa: F401  (torch-free sizes)
from .retrieval_search import top_k, window_starts, windows  # noqa: F401  (numpy side, torch-free)


class LinearSelfAttention(nn.Module):
    def __init__(self, latent: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(latent)
        self.query = nn.Linear(latent, latent)
        self.key = nn.Linear(latent, latent)
        self.value = nn.Linear(latent, latent)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, d = x.shape
        h = self.norm(x)
        q = self.query(h).view(b, n, self.heads, -1).softmax(dim=-1)
        k = self.key(h)
        v = self.value(h)
        if mask is not None:
            # Padded frames: keys drop out of the time softmax and values contribute nothing.
            keep = mask[:, :, None]
            k = k.masked_fill(~keep, -1e6)
            v = v * keep
        k = k.view(b, n, self.heads, -1).softmax(dim=1)
        v = v.view(b, n, self.heads, -1)
        ctx = torch.einsum("bnhd,bnhe->bhde", k, v)        # per head: sum over time of k_t (outer) v_t
        out = torch.einsum("bnhd,bhde->bnhe", q, ctx).reshape(b, n, d)
        return x + out                                       # no output projection in the release


class FeedForward(nn.Module):
    def __init__(self, latent: int, ff: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(latent)
        self.linear1 = nn.Linear(latent, ff)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(ff, latent)

    def forward(self, x):
        return x + self.linear2(self.dropout(F.gelu(self.linear1(self.norm(x)))))


class EncoderBlock(nn.Module):
    def __init__(self, latent: int, heads: int, ff: int, dropout: float):
        super().__init__()
        self.sa_block = LinearSelfAttention(latent, heads)
        self.ffn = FeedForward(latent, ff, dropout)

    def forward(self, x, mask=None):
        return self.ffn(self.sa_block(x, mask))


class TransEncoder(nn.Module):
    """(B, T, in_dim) -> (B, latent) from a learned CLS token; T <= max_len."""

    def __init__(self, in_dim: int, latent: int = 256, heads: int = 4, ff: int = 1024, layers: int = 4,
                 max_len: int = 384, dropout: float = 0.2):
        super().__init__()
        self.max_len = max_len
        self.proj_in = nn.Linear(in_dim, latent)
        self.embedding = nn.Parameter(torch.randn(max_len, latent) * 0.02)
        self.cls_token = nn.Parameter(torch.randn(latent) * 0.02)
        self.blocks = nn.ModuleList(EncoderBlock(latent, heads, ff, dropout) for _ in range(layers))
        self.proj_out = nn.Linear(latent, latent)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, in_dim); optional mask (B, T) bool, True for real frames."""
        b, t, _ = x.shape
        if t > self.max_len:
            raise ValueError(f"sequence of {t} frames is longer than the encoder's max_len {self.max_len}")
        if t == 0:
            raise ValueError("empty sequence")
        h = self.proj_in(x) + self.embedding[:t]
        # The CLS token gets no positional embedding and takes part in every softmax over time.
        h = torch.cat([self.cls_token.expand(b, 1, -1), h], dim=1)
        if mask is not None:
            mask = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=mask.device), mask.bool()], dim=1)
        for block in self.blocks:
            h = block(h, mask)
        return self.proj_out(h[:, 0])


class RetrievalNet(nn.Module):
    def __init__(self, cfg: RetrievalConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or RetrievalConfig()
        common = dict(latent=cfg.latent, heads=cfg.heads, ff=cfg.ff, layers=cfg.layers, max_len=cfg.max_len,
                      dropout=cfg.dropout)
        self.motion_encoder = TransEncoder(cfg.motion_dim, **common)
        self.cond_encoder = TransEncoder(cfg.music_dim, **common)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    @staticmethod
    def _batched(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
        return (x[None], True) if x.ndim == 2 else (x, False)

    def encode_motion(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, 264) motion features -> (B, latent) unit vectors ((T, 264) -> (latent,))."""
        x, single = self._batched(x)
        e = F.normalize(self.motion_encoder(x, mask), dim=-1)
        return e[0] if single else e

    def encode_music(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, 55) music features -> (B, latent) unit vectors ((T, 55) -> (latent,))."""
        x, single = self._batched(x)
        e = F.normalize(self.cond_encoder(x, mask), dim=-1)
        return e[0] if single else e


def expected_state_shapes(cfg: RetrievalConfig | None = None) -> dict[str, tuple]:
    """State-dict key -> shape (prefix already stripped), built on the meta device."""
    with torch.device("meta"):
        model = RetrievalNet(cfg)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def strip_lightning_prefix(state_dict: dict, prefix: str = "model.") -> dict:
    """Keys under ``prefix`` with the prefix removed (other keys are dropped) as a new dict."""
    out = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    if not out:
        raise ValueError(f"no state-dict key starts with {prefix!r} (first keys: {list(state_dict)[:5]})")
    return out
