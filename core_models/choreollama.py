# SPDX-License-Identifier: GPL-3.0-or-later
"""ChoreoLLaMA: music bridge (Cadence-MoE), dance bridge and the LLaMA backbone, and window sampling.

Sequence per window: ``[music_len music-bridge vectors][prefix tokens][sampled tokens]``. Dance tokens are
the three RVQ layers interleaved (l0, l1, l2, l0, ...); each token enters as its own codebook vector
through the dance-bridge MLP and leaves through the shared LM head restricted to the slot that is due.
Module and parameter names follow the official checkpoint (reference infinitedance.md section 3.3), so
its flat state dict loads unchanged; the same code runs the compact family at small sizes.

Music bridge (the release's "Cadence-MoE"; there is no gating): a universal expert over
``input_proj([music | style | retrieval condition])`` and one expert per frequency band of the retrieval
condition (rFFT over time, split into equal bands of bins), each expert ``proj -> MHA -> LayerNorm ->
Mamba`` with a residual around Mamba, fused by one linear layer.
"""
from __future__ import annotations

import threading

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .configs import GENRES, GeneratorConfig, LlamaConfig  # noqa: F401  (torch-free sizes)
from .llama import Llama
from .progress import check_cancel
from . import device_sampling
from .sampling import SamplingConfig, make_rng, sample_slot

class Mamba(nn.Module):
    """Mamba v1 selective-state-space block in plain PyTorch (same parameters and maths as mamba_ssm).

    The recurrence h_t = exp(dt_t A) h_{t-1} + dt_t B_t x_t is an associative scan over pairs
    (decay, input); it is evaluated in log2(T) vectorised doubling steps instead of T sequential ones.
    """

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2, dt_rank: int = 128):
        super().__init__()
        d_inner = expand * d_model
        self.d_inner, self.d_state, self.dt_rank = d_inner, d_state, dt_rank
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
        self.conv1d = nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(d_inner, dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(dt_rank, d_inner)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(d_inner, 1))
        self.D = nn.Parameter(torch.ones(d_inner))
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)

    def ssm_inputs(self, u: torch.Tensor):
        """Gate z, conv output x, and the discretised (decay, input, C) of the scan for u (B, T, d_model)."""
        t = u.shape[1]
        x, z = self.in_proj(u).chunk(2, dim=-1)
        x = F.silu(self.conv1d(x.transpose(1, 2))[..., :t].transpose(1, 2))        # causal: left padding
        dt, b, c = self.x_proj(x).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        # The scan runs in fp32 whatever the model dtype: bf16 decays compound badly over hundreds of steps.
        dt = F.softplus(self.dt_proj(dt)).float()                                  # bias inside softplus
        x, b, c = x.float(), b.float(), c.float()
        a = -torch.exp(self.A_log.float())
        decay = torch.exp(dt[..., None] * a)                                       # (B, T, D, N)
        inputs = (dt * x)[..., None] * b[:, :, None, :]                            # (B, T, D, N)
        return z, x, decay, inputs, c

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        z, x, decay, inputs, c = self.ssm_inputs(u)
        h = associative_scan(decay, inputs)
        y = torch.einsum("btdn,btn->btd", h, c) + x * self.D.float()
        return self.out_proj((y * F.silu(z.float())).to(u.dtype))


def associative_scan(decay: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """h_t = decay_t * h_{t-1} + inputs_t along dim 1 (h_{-1} = 0), by recursive doubling (Hillis-Steele)."""
    a, h = decay, inputs
    step, t = 1, decay.shape[1]
    while step < t:
        # Combine each position with the partial result `step` earlier: (a1, h1) then (a2, h2).
        h = torch.cat([h[:, :step], a[:, step:] * h[:, :-step] + h[:, step:]], dim=1)
        a = torch.cat([a[:, :step], a[:, step:] * a[:, :-step]], dim=1)
        step *= 2
    return h


class Expert(nn.Module):
    def __init__(self, in_dim: int, cfg: GeneratorConfig):
        super().__init__()
        hidden = cfg.llama.dim
        self.proj = nn.Linear(in_dim, hidden)
        self.transformer_attn = nn.MultiheadAttention(hidden, cfg.bridge_heads, batch_first=True)
        self.mamba = Mamba(hidden, cfg.d_state, cfg.d_conv, cfg.expand, cfg.dt_rank)
        self.norm = nn.LayerNorm(hidden)

    def forward(self, x):
        h = self.proj(x)
        a = self.transformer_attn(h, h, h, need_weights=False)[0]     # bidirectional over the window
        return self.mamba(self.norm(a)) + a


def band_split(x: torch.Tensor, n_bins: int) -> list[torch.Tensor]:
    """Split (B, T, C) along time into ``n_bins`` equal-width frequency bands that sum back to x."""
    t = x.shape[1]
    spec = torch.fft.rfft(x.float(), dim=1)
    k = torch.arange(spec.shape[1], device=x.device)
    # Band edges at linspace(0, nyquist, n_bins + 1) in bin units; the last band includes Nyquist.
    edges = torch.linspace(0, t / 2, n_bins + 1, dtype=torch.float64, device=x.device)
    bands = []
    for i in range(n_bins):
        keep = (k >= edges[i]) & ((k < edges[i + 1]) if i < n_bins - 1 else (k <= edges[i + 1]))
        bands.append(torch.fft.irfft(spec * keep[None, :, None], n=t, dim=1).to(x.dtype))
    return bands


class MusicBridge(nn.Module):
    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        hidden = cfg.llama.dim
        self.n_bins = cfg.n_bins
        self.input_proj = nn.Linear(cfg.music_dim + cfg.style_dim + cfg.cond_dim, hidden)
        self.universal_expert = Expert(hidden, cfg)
        self.specialized_experts = nn.ModuleList(Expert(cfg.cond_dim, cfg) for _ in range(cfg.n_bins))
        self.fusion_proj = nn.Linear(hidden * (1 + cfg.n_bins), hidden)

    def forward(self, music, style_emb, cond):
        """music (B, M, music_dim), style_emb (B, style_dim), cond (B, M, cond_dim) -> (B, M, hidden)."""
        x = torch.cat([music, style_emb[:, None].expand(-1, music.shape[1], -1), cond], dim=-1)
        outs = [self.universal_expert(self.input_proj(x))]
        outs += [expert(band) for expert, band in zip(self.specialized_experts, band_split(cond, self.n_bins))]
        return self.fusion_proj(torch.cat(outs, dim=-1))


class DanceBridge(nn.Module):
    """Per-token MLP from a codebook vector to an LLaMA input: code_dim -> hidden -> out (the LLaMA width)."""

    def __init__(self, code_dim: int, hidden: int, out: int | None = None):
        super().__init__()
        self.fc1 = nn.Linear(code_dim, hidden)
        self.fc2 = nn.Linear(hidden, hidden if out is None else out)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class ChoreoLLaMA(nn.Module):
    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.cfg = cfg
        self.llama = Llama(cfg.llama)
        self.music_bridge = MusicBridge(cfg)
        self.dance_bridge = DanceBridge(cfg.code_dim, cfg.bridge_hidden, cfg.llama.dim)
        self.style_embedding = nn.Embedding(cfg.num_styles, cfg.style_dim)
        self.cond_projection = nn.Linear(cfg.cond_len, cfg.music_len)
        self.style_classifier = nn.Linear(cfg.llama.dim, cfg.num_styles)   # training-time auxiliary head
        # Codebooks come from the tokenizer at run time (not part of the generator checkpoint).
        self.register_buffer("codebooks", torch.zeros(cfg.num_quantizers, cfg.nb_code, cfg.code_dim),
                             persistent=False)

    def set_codebooks(self, codebooks: torch.Tensor) -> None:
        want = (self.cfg.num_quantizers, self.cfg.nb_code, self.cfg.code_dim)
        if tuple(codebooks.shape) != want:
            raise ValueError(f"tokenizer codebooks {tuple(codebooks.shape)} do not fit this generator, which "
                             f"expects {want}; the tokenizer and generator must come from the same weight set")
        self.codebooks = codebooks.to(self.codebooks.device, self.codebooks.dtype)

    def music_embeddings(self, music: torch.Tensor, style: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The window's first ``music_len`` input vectors. cond (B, cond_len, cond_dim) is resampled along
        time by ``cond_projection`` to the music length."""
        cond = self.cond_projection(cond.transpose(1, 2)).transpose(1, 2)
        return self.music_bridge(music, self.style_embedding(style), cond)

    def embed_tokens(self, local_ids: torch.Tensor, first_slot: int = 0) -> torch.Tensor:
        """Slot-local ids (B, n) whose first token is in ``first_slot`` -> (B, n, hidden)."""
        q = self.cfg.num_quantizers
        local_ids = local_ids.long()
        slots = (torch.arange(local_ids.shape[1], device=local_ids.device) + first_slot) % q
        return self.dance_bridge(self.codebooks[slots[None].expand_as(local_ids), local_ids])

    def forward(self, music, style, cond, local_ids):
        """Teacher-forced logits over the full vocabulary (B, M + n, vocab) for training and tests."""
        x = torch.cat([self.music_embeddings(music, style, cond), self.embed_tokens(local_ids)], dim=1)
        return self.llama.logits(self.llama(x))

    def compile_decode(self, mode: str = "reduce-overhead") -> None:
        """Compile the decode step (dance bridge, one cached LLaMA position, the next slot's logits) with
        ``torch.compile``; on CUDA, ``reduce-overhead`` replays it as a CUDA graph. The KV cache then stays
        allocated between windows at the full window length, so the graph's buffers never move."""
        self._decode = torch.compile(self._decode_step, mode=mode, fullgraph=True, dynamic=False)
        self.keep_cache = True

    def eager_decode(self) -> None:
        """Undo :meth:`compile_decode`: the plain decode step, and the KV cache released after each window."""
        self._decode, self.keep_cache = None, False
        self.llama.clear_cache()

    def _decode_step(self, token: torch.Tensor, slot: int, pos: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        emb = self.dance_bridge(self.codebooks[slot][token])[:, None]
        return self.llama.logits(self.llama(emb, pos)[:, 0], lo, hi)

    _decode = None          # the compiled step, when compile_decode() was called
    keep_cache = False

    @torch.no_grad()
    def generate_window(self, music: torch.Tensor, style: torch.Tensor, cond: torch.Tensor,
                        prefix: torch.Tensor | None, new_tokens: int, sampling: SamplingConfig,
                        rng=None, cancel: threading.Event | None = None, on_token=None,
                        sampler: str = "auto") -> torch.Tensor:
        """Sample ``new_tokens`` slot-local ids (B, new_tokens) after ``prefix`` (B, P) local ids, P % Q == 0.

        One prefill over [music; prefix], then one cached step per token. ``rng``: a numpy Generator or a seed
        shared by the rows, or a list of them, one per row (several takes in one pass: row b then draws what a
        batch-1 window with its seed draws). ``sampler``: "host" takes each step's slot logits to the host
        for the shared numpy sampler (the ONNX backend's too); "device" runs the same rules in torch where the
        logits are, with the uniforms drawn from the same numpy streams up front, so no step waits for the
        host; "auto" is "device" on CUDA, "host" elsewhere. For equal logits both give equal tokens.
        """
        q = self.cfg.num_quantizers
        batch = music.shape[0]
        rngs = [make_rng(r) for r in rng] if isinstance(rng, (list, tuple)) else None
        if rngs is not None and len(rngs) != batch:
            raise ValueError(f"{len(rngs)} random streams for a batch of {batch}")
        shared = None if rngs is not None else make_rng(rng)
        if sampler not in ("auto", "host", "device"):
            raise ValueError(f"sampler must be 'auto', 'host' or 'device', got {sampler!r}")
        prefix_len = 0 if prefix is None else prefix.shape[1]
        if prefix_len % q:
            raise ValueError(f"the prefix must hold whole latents (a multiple of {q} tokens), got {prefix_len}")
        embeds = self.music_embeddings(music, style, cond)
        if prefix_len:
            embeds = torch.cat([embeds, self.embed_tokens(prefix)], dim=1)
        dev = embeds.device
        on_device = sampler == "device" or (sampler == "auto" and dev.type == "cuda")
        start = embeds.shape[1]
        total = start + new_tokens
        if self.keep_cache:
            total = max(total, self.cfg.music_len + self.cfg.dance_len)
        cache = self.llama.model.layers[0].self_attn.kv_cache
        if not (self.keep_cache and cache is not None and cache.k.shape[0] == batch and self.llama.max_seq == total
                and cache.k.dtype == embeds.dtype and cache.k.device == dev):
            self.llama.setup_cache(batch, total, dtype=embeds.dtype, device=dev)
        step = self._decode or self._decode_step
        try:
            hidden = self.llama(embeds, torch.arange(start, device=dev))[:, -1]
            lo, hi = self.cfg.slot_range(0)
            logits = self.llama.logits(hidden, lo, hi)
            if on_device:
                u = np.stack([r.random(new_tokens) for r in rngs], axis=1) if rngs is not None else \
                    shared.random((new_tokens, batch))
                u = torch.as_tensor(u, device=dev)
                out = torch.zeros((batch, new_tokens), dtype=torch.long, device=dev)
            else:
                out = np.zeros((batch, new_tokens), np.int64)
            pos = torch.empty(1, dtype=torch.long, device=dev)
            for i in range(new_tokens):
                slot = i % q
                if on_device:
                    token = device_sampling.sample_slot(logits, out[:, slot:i:q], slot, sampling, u[i])
                    out[:, i] = token
                else:
                    host = logits.float().cpu().numpy()
                    history = out[:, slot:i:q]
                    if rngs is None:
                        out[:, i] = sample_slot(host, history, slot, sampling, shared)
                    else:
                        out[:, i] = [sample_slot(host[b:b + 1], history[b:b + 1], slot, sampling, r)[0]
                                     for b, r in enumerate(rngs)]
                    token = torch.as_tensor(out[:, i], device=dev)
                if on_token is not None:
                    on_token(i + 1, new_tokens)
                if i + 1 == new_tokens:
                    break                                      # no forward after the last token
                if cancel is not None and i % 48 == 47:
                    check_cancel(cancel)
                pos.fill_(start + i)
                lo, hi = self.cfg.slot_range((i + 1) % q)
                logits = step(token, slot, pos, lo, hi)
                if self._decode is not None:
                    logits = logits.clone()                    # a CUDA graph's output is overwritten next replay
            return out if on_device else torch.as_tensor(out, device=dev)
        finally:
            if not self.keep_cache:
                self.llama.clear_cache()
