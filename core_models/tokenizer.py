# SPDX-License-Identifier: GPL-3.0-or-later
"""Residual VQ-VAE dance tokenizer (264-d normalised motion features <-> 3 layers of 512 codes per latent).

Written from the facts in the clean-room reference (shapes, module indices, key names); the module tree
reproduces the state-dict layout of the released ``dance_vqvae.pth`` (``ckpt["net"]``) exactly, so it loads
with ``strict=True``. One latent covers ``stride_t ** down_t`` motion frames (4 at 30 fps for the release).

Token ids come in two forms: *local* ids in [0, nb_code) per layer, shaped (..., L, Q), used by this
module; and *absolute* LM ids, a flat interleaved sequence l0, l1, l2, l0, ... where layer g occupies
[DANCE_TOKEN_START + g * nb_code, DANCE_TOKEN_START + (g + 1) * nb_code).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .configs import TokenizerConfig  # noqa: F401  (torch-free sizes)

DANCE_TOKEN_START = 4096

_ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU}


class ResBlock(nn.Module):
    """Pre-activation residual block: x + conv2(act(conv1(act(x)))), conv1 dilated k3, conv2 k1."""

    def __init__(self, width: int, dilation: int, act: str):
        super().__init__()
        self.act1 = _ACTIVATIONS[act]()
        self.conv1 = nn.Conv1d(width, width, 3, padding=dilation, dilation=dilation)
        self.act2 = _ACTIVATIONS[act]()
        self.conv2 = nn.Conv1d(width, width, 1)

    def forward(self, x):
        return x + self.conv2(self.act2(self.conv1(self.act1(x))))


class Resnet1D(nn.Module):
    def __init__(self, width: int, depth: int, rate: int, act: str):
        super().__init__()
        # Largest dilation first, in the encoder as well as the decoder (the release's default ordering).
        dilations = [rate ** i for i in range(depth)][::-1]
        self.model = nn.Sequential(*[ResBlock(width, d, act) for d in dilations])

    def forward(self, x):
        return self.model(x)


class Encoder(nn.Module):
    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        w, s = cfg.width, cfg.stride_t
        stages = [nn.Sequential(nn.Conv1d(w, w, 2 * s, stride=s, padding=s // 2),
                                Resnet1D(w, cfg.depth, cfg.dilation_growth_rate, cfg.vq_act))
                  for _ in range(cfg.down_t)]
        # Indices 0, 1, 2..down_t+1, down_t+2 are the checkpoint's encoder.model.{i}.
        self.model = nn.Sequential(nn.Conv1d(cfg.input_dim, w, 3, padding=1), nn.ReLU(), *stages,
                                   nn.Conv1d(w, cfg.output_emb_width, 3, padding=1))

    def forward(self, x):
        return self.model(x)


class Decoder(nn.Module):
    def __init__(self, cfg: TokenizerConfig, out_dim: int):
        super().__init__()
        w = cfg.width
        stages = [nn.Sequential(Resnet1D(w, cfg.depth, cfg.dilation_growth_rate, cfg.vq_act),
                                nn.Upsample(scale_factor=cfg.stride_t, mode="nearest"),
                                nn.Conv1d(w, w, 3, padding=1))
                  for _ in range(cfg.down_t)]
        self.model = nn.Sequential(nn.Conv1d(cfg.output_emb_width, w, 3, padding=1), nn.ReLU(), *stages,
                                   nn.Conv1d(w, w, 3, padding=1), nn.ReLU(), nn.Conv1d(w, out_dim, 3, padding=1))

    def forward(self, x):
        return self.model(x)


class Codebook(nn.Module):
    def __init__(self, nb_code: int, code_dim: int):
        super().__init__()
        # Only the codebook is persisted; EMA statistics are a training concern and are not kept here.
        self.register_buffer("codebook", torch.randn(nb_code, code_dim))

    def nearest(self, r: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N,) index of the nearest code by squared Euclidean distance (first on ties)."""
        c = self.codebook
        dist = (r * r).sum(-1, keepdim=True) - 2.0 * (r @ c.t()) + (c * c).sum(-1)[None]
        return dist.argmin(dim=-1)


class ResidualQuantizer(nn.Module):
    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        self.layers = nn.ModuleList(Codebook(cfg.nb_code, cfg.code_dim) for _ in range(cfg.num_quantizers))

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """(B, L, D) latents -> (B, L, Q) local ids; each layer codes what the previous ones left."""
        b, l, d = z.shape
        residual = z.reshape(b * l, d)
        ids = []
        for layer in self.layers:
            idx = layer.nearest(residual)
            residual = residual - layer.codebook[idx]
            ids.append(idx)
        return torch.stack(ids, dim=-1).reshape(b, l, len(self.layers))

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, L, Q) local ids -> (B, L, D) sum of the layers' code vectors."""
        return sum(layer.codebook[ids[..., g]] for g, layer in enumerate(self.layers))


class RVQVAE(nn.Module):
    """Encoder, residual quantizer and decoders with the release's state-dict names."""

    def __init__(self, cfg: TokenizerConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or TokenizerConfig()
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg, cfg.input_dim)
        if cfg.vel_decoder:
            self.vel_decoder = Decoder(cfg, 2)
        if cfg.rot_decoder:
            # 128 = dims [1, 2, 68:194]; kept only so the checkpoint loads strictly, unused at inference.
            self.rot_decoder = Decoder(cfg, 128)
        self.quantizer = ResidualQuantizer(cfg)

    @property
    def frames_per_latent(self) -> int:
        return self.cfg.stride_t ** self.cfg.down_t

    def codebook(self, g: int) -> torch.Tensor:
        return self.quantizer.layers[g].codebook

    def encode_latent(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, input_dim) normalised features -> (B, T // frames_per_latent, code_dim) pre-quantisation."""
        if x.ndim != 3 or x.shape[-1] != self.cfg.input_dim:
            raise ValueError(f"expected (B, T, {self.cfg.input_dim}) features, got {tuple(x.shape)}")
        t, f = x.shape[1], self.frames_per_latent
        if t == 0 or t % f:
            raise ValueError(f"frame count {t} must be a positive multiple of {f}")
        z = self.encoder(x.transpose(1, 2)).transpose(1, 2)
        if z.shape[1] != t // f:
            # Only even strides keep the length exactly; fail loudly rather than misalign tokens and frames.
            raise ValueError(f"encoder gave {z.shape[1]} latents for {t} frames (stride_t={self.cfg.stride_t})")
        return z

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        return self.quantizer.quantize(z)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, input_dim) normalised features -> (B, T // frames_per_latent, Q) int64 local ids."""
        return self.quantize(self.encode_latent(x))

    def embed_ids(self, ids: torch.Tensor) -> torch.Tensor:
        ids = torch.as_tensor(ids, device=self.codebook(0).device)
        q = self.cfg.num_quantizers
        if ids.ndim != 3 or ids.shape[-1] != q:
            raise ValueError(f"expected (B, L, {q}) local ids, got {tuple(ids.shape)}")
        if ids.dtype.is_floating_point or ids.dtype == torch.bool:
            raise ValueError(f"ids must be integers, got {ids.dtype}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.cfg.nb_code):
            raise ValueError(f"local ids must lie in [0, {self.cfg.nb_code}), got [{int(ids.min())}, {int(ids.max())}]")
        return self.quantizer.embed(ids.long())

    def decode_latent(self, z: torch.Tensor) -> torch.Tensor:
        """(B, L, code_dim) -> (B, L * frames_per_latent, input_dim) normalised features."""
        zc = z.transpose(1, 2)
        y = self.decoder(zc).transpose(1, 2)
        if self.cfg.vel_decoder:
            # The dedicated velocity decoder is the better estimate of the root XZ velocity (dims 3:5).
            v = self.vel_decoder(zc).transpose(1, 2)
            y = torch.cat([y[..., :3], v, y[..., 5:]], dim=-1)
        return y

    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, L, Q) local ids -> (B, L * frames_per_latent, input_dim) normalised features."""
        return self.decode_latent(self.embed_ids(ids))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction through the quantiser (eval-style, no straight-through gradient)."""
        return self.decode(self.encode(x))


def absolute_to_local(ids_1d, nb_code: int = 512, num_quantizers: int = 3) -> np.ndarray:
    """Interleaved absolute LM ids (l0, l1, l2, l0, ...) -> (L, Q) int64 local ids.

    The input is flattened in C order first, so a (L, Q) array of absolute ids is accepted too.
    """
    arr = np.asarray(ids_1d).reshape(-1)
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind != "f" or not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError(f"token ids must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size % num_quantizers:
        raise ValueError(f"{arr.size} tokens is not a multiple of {num_quantizers} (one per RVQ layer)")
    slot = np.arange(arr.size) % num_quantizers
    local = arr - (DANCE_TOKEN_START + slot * nb_code)
    bad = np.flatnonzero((local < 0) | (local >= nb_code))
    if bad.size:
        i = int(bad[0])
        lo = DANCE_TOKEN_START + int(slot[i]) * nb_code
        raise ValueError(f"token {int(arr[i])} at position {i} is outside layer {int(slot[i])}'s range "
                         f"[{lo}, {lo + nb_code})")
    return local.reshape(-1, num_quantizers)


def local_to_absolute(local, nb_code: int = 512) -> np.ndarray:
    """(L, Q) local ids -> 1-D int64 interleaved absolute LM ids."""
    arr = np.asarray(local)
    if arr.ndim != 2 or arr.dtype.kind not in "iu":
        raise ValueError(f"expected a (L, Q) integer array, got shape {arr.shape} dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= nb_code):
        raise ValueError(f"local ids must lie in [0, {nb_code}), got [{arr.min()}, {arr.max()}]")
    offsets = DANCE_TOKEN_START + np.arange(arr.shape[1], dtype=np.int64) * nb_code
    return (arr.astype(np.int64) + offsets).reshape(-1)


def expected_state_shapes(cfg: TokenizerConfig | None = None) -> dict[str, tuple]:
    """State-dict key -> shape for ``cfg``, built on the meta device so nothing is allocated."""
    with torch.device("meta"):
        model = RVQVAE(cfg or TokenizerConfig())
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}
