# SPDX-License-Identifier: GPL-3.0-or-later
"""A LLaMA decoder (RMSNorm, llama3 RoPE scaling, grouped-query attention, SwiGLU) with a static KV cache.

Our own implementation, written for ChoreoLLaMA: the model is always driven with input embeddings (the
music bridge and the dance bridge produce them), so the token embedding table exists only to keep the
checkpoint layout (and the tie with the output head). Parameter names follow the Hugging Face
``LlamaForCausalLM`` layout the official checkpoint uses (``model.layers.{i}.self_attn.q_proj`` ...), so a
state dict loads unchanged. RoPE uses the "rotate half" pairing of that layout.

The KV cache is allocated once per generation (``setup_cache``) and written in place at ``input_pos``:
shapes never change between decode steps and no step allocates. Generation runs the step eagerly; the
static shapes are what lets ``ChoreoLLaMA.compile_decode`` (``torch.compile``, CUDA graphs) capture it, which
only ``benchmarks/gpu.py`` does today.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .configs import LlamaConfig  # noqa: F401  (sizes live in configs.py, torch-free)


def rope_inverse_frequencies(cfg: LlamaConfig) -> torch.Tensor:
    """Per-pair rotation frequencies, with the llama3 long-context scaling when configured.

    Computed in float32 throughout, as the release computes them (Hugging Face's LLaMA rotary embedding):
    a float64 computation rounded at the end differs from it by one float32 step in some of the values,
    which the logits of a long prefill amplify.
    """
    exponents = torch.arange(0, cfg.head_dim, 2, dtype=torch.int64).to(torch.float32) / cfg.head_dim
    inv = 1.0 / (float(cfg.rope_theta) ** exponents)
    rs = cfg.rope_scaling
    if not rs or rs.get("rope_type", rs.get("type")) in (None, "default"):
        return inv
    if rs.get("rope_type", rs.get("type")) != "llama3":
        raise ValueError(f"unsupported rope_scaling type {rs!r}; only 'llama3' is implemented")
    factor, low, high = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    old_len = rs["original_max_position_embeddings"]
    wavelen = 2 * math.pi / inv
    # Long wavelengths are slowed by `factor`, short ones kept, the band between blended smoothly.
    scaled = torch.where(wavelen > old_len / low, inv / factor, inv)
    smooth = (old_len / wavelen - low) / (high - low)
    blended = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= old_len / high) & (wavelen <= old_len / low)
    return torch.where(medium, blended, scaled)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in fp32 like the reference model, then cast back (matters in bf16).
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


class KVCache(nn.Module):
    def __init__(self, batch: int, max_seq: int, n_kv_heads: int, head_dim: int, dtype, device):
        super().__init__()
        shape = (batch, n_kv_heads, max_seq, head_dim)
        self.register_buffer("k", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v", torch.zeros(shape, dtype=dtype, device=device), persistent=False)

    def update(self, input_pos: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
        self.k.index_copy_(2, input_pos, k)
        self.v.index_copy_(2, input_pos, v)
        return self.k, self.v


class Attention(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.q_proj = nn.Linear(cfg.dim, cfg.n_heads * cfg.head_dim, bias=False)
        self.k_proj = nn.Linear(cfg.dim, cfg.n_kv_heads * cfg.head_dim, bias=False)
        self.v_proj = nn.Linear(cfg.dim, cfg.n_kv_heads * cfg.head_dim, bias=False)
        self.o_proj = nn.Linear(cfg.n_heads * cfg.head_dim, cfg.dim, bias=False)
        self.kv_cache: KVCache | None = None

    def forward(self, x, cos, sin, mask, input_pos):
        b, s, _ = x.shape
        q = self.q_proj(x).view(b, s, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, s, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, s, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        if self.kv_cache is not None:
            k, v = self.kv_cache.update(input_pos, k, v)
        if self.n_kv_heads != self.n_heads:   # grouped-query attention: each kv head serves a group
            rep = self.n_heads // self.n_kv_heads
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.o_proj(out.transpose(1, 2).reshape(b, s, -1))


class MLP(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.dim, cfg.intermediate, bias=False)
        self.up_proj = nn.Linear(cfg.dim, cfg.intermediate, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate, cfg.dim, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.self_attn = Attention(cfg)
        self.mlp = MLP(cfg)
        self.input_layernorm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.dim, cfg.norm_eps)

    def forward(self, x, cos, sin, mask, input_pos):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, input_pos)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaBody(nn.Module):
    """``model.*`` of the checkpoint: embedding table, layers, final norm."""

    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)


class Llama(nn.Module):
    """Decoder + output head. ``forward(embeds, input_pos)`` returns the final hidden states (B, S, dim);
    ``logits(hidden, lo, hi)`` applies the head to rows [lo, hi) of the vocabulary only."""

    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.cfg = cfg
        self.model = LlamaBody(cfg)
        self.lm_head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        # RoPE frequencies stay fp32 whatever the model dtype (a bf16 copy would skew long positions), so
        # they are not a buffer that .to(dtype) would cast; computed once per device on first use.
        self._inv_freq: dict[torch.device, torch.Tensor] = {}
        self.max_seq = 0
        self.register_buffer("causal_mask", torch.zeros(0, 0, dtype=torch.bool), persistent=False)

    def setup_cache(self, batch: int, max_seq: int, dtype=None, device=None) -> None:
        """Allocate the static KV cache for ``batch`` sequences of up to ``max_seq`` positions."""
        p = self.lm_head.weight
        dtype, device = dtype or p.dtype, device or p.device
        for layer in self.model.layers:
            layer.self_attn.kv_cache = KVCache(batch, max_seq, self.cfg.n_kv_heads, self.cfg.head_dim, dtype, device)
        self.max_seq = max_seq
        self.causal_mask = torch.tril(torch.ones(max_seq, max_seq, dtype=torch.bool, device=device))

    def clear_cache(self) -> None:
        for layer in self.model.layers:
            layer.self_attn.kv_cache = None
        self.max_seq = 0
        self.causal_mask = torch.zeros(0, 0, dtype=torch.bool, device=self.lm_head.weight.device)

    def _rope(self, positions: torch.Tensor, dtype):
        inv = self._inv_freq.get(positions.device)
        if inv is None:
            inv = self._inv_freq[positions.device] = rope_inverse_frequencies(self.cfg).to(positions.device)
        freqs = positions.float()[:, None] * inv[None]
        emb = torch.cat([freqs, freqs], dim=-1)
        return emb.cos().to(dtype), emb.sin().to(dtype)

    def forward(self, embeds: torch.Tensor, input_pos: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden states for ``embeds`` (B, S, dim) at positions ``input_pos`` (S,).

        Without a cache (``setup_cache`` not called) this is a plain causal forward over positions 0..S-1.
        """
        s = embeds.shape[1]
        if input_pos is None:
            input_pos = torch.arange(s, device=embeds.device)
        cos, sin = self._rope(input_pos, embeds.dtype)
        if self.max_seq:
            mask = self.causal_mask[input_pos][None, None]            # (1, 1, S, max_seq)
        else:
            mask = torch.ones(s, s, dtype=torch.bool, device=embeds.device).tril()[None, None]
        x = embeds
        for layer in self.model.layers:
            x = layer(x, cos, sin, mask, input_pos)
        return self.model.norm(x)

    def logits(self, hidden: torch.Tensor, lo: int = 0, hi: int | None = None) -> torch.Tensor:
        weight = self.lm_head.weight if lo == 0 and hi is None else self.lm_head.weight[lo:hi]
        return F.linear(hidden, weight)
