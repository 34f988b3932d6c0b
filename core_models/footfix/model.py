# SPDX-License-Identifier: GPL-3.0-or-later
"""The FRDM denoiser (a small temporal transformer over the 259-d representation) and its weight sets.

A weight set is a folder: ``frdm.safetensors`` (the denoiser), ``stats.safetensors`` (mean/std of the
259-d features), ``config.json`` (family "frdm", sizes, training data, licence) and ``manifest.json``; the
folder layout, config check and atomic write are :mod:`core_models.runtime.files`'. This module loads a set
on torch only: the ONNX one is loaded by the runtime's backend choice, which hands :func:`footfix.fix_feet`
an :class:`FRDMWeights` whose model has a ``denoise`` method.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..motion import MOTION_FPS
from ..runtime.files import FRDM_FAMILY, atomic_folder, read_config, record_files, verify_weights, weight_files
from .errors import FootFixError
from .representation import FRDM_DIM

try:                                    # contacts, ik_lock and the ONNX denoiser work without torch
    import torch
    from torch import nn
    _Module = nn.Module
except ImportError:                     # pragma: no cover - torch is a dependency of the full install
    torch = None
    nn = None
    _Module = object

FORMAT = 1
WEIGHT_FILES = {"model": "frdm.safetensors", "stats": "stats.safetensors"}
LICENCE = "CC BY-NC 4.0 (follows from the Bandai Namco data)"


@dataclass
class FRDMConfig:
    """Sizes of the FRDM denoiser and its diffusion (the weight set's config.json stores these)."""
    d_model: int = 128
    layers: int = 4
    heads: int = 4
    ff: int = 256
    window: int = 120            # frames per denoising window (training crop length)
    dropout: float = 0.1
    diffusion_steps: int = 1000  # T of the training schedule (cosine)
    dim: int = FRDM_DIM
    skip: bool = True            # x0 = sqrt(abar) x_t + sqrt(1 - abar) F(x_t, t) (see FRDMDenoiser)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FRDMConfig":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        known.setdefault("skip", False)          # sets written before the skip connection predict x0 directly
        return cls(**known)


def _sinusoid(positions, dim: int):
    """Sinusoidal embeddings (..., dim) of integer positions or timesteps (torch)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=positions.device) / half)
    ang = positions.float()[..., None] * freqs
    return torch.cat([torch.sin(ang), torch.cos(ang)], dim=-1)


def _alpha_bar_t(t, steps: int):
    """alpha_bar of the cosine schedule at integer steps t (torch), as :func:`cosine_alpha_bar`."""
    s = 0.008
    f = torch.cos((t.float() / steps + s) / (1 + s) * math.pi / 2) ** 2 / math.cos(s / (1 + s) * math.pi / 2) ** 2
    return f.clamp(1e-6, 1.0)


class FRDMDenoiser(_Module):
    """Temporal transformer: merged noisy motion (B, W, 259) and diffusion step t (B,) -> predicted clean
    motion (B, W, 259). The step is embedded (sinusoid + MLP) and added before every layer.

    With ``cfg.skip`` the network's output F is mixed with its noisy input as
    x0 = sqrt(abar_t) x_t + sqrt(1 - abar_t) F: the best linear guess of x0 for unit-variance data, so at low
    noise the model starts from its input and learns only the correction (the preconditioning idea of Karras
    et al. 2022, for the variance-preserving schedule). Without it a small model trained briefly ignores
    x_t and returns the conditional mean at every step."""

    def __init__(self, cfg: FRDMConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.inp = nn.Linear(cfg.dim, d)
        self.time = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.time_proj = nn.ModuleList([nn.Linear(d, d) for _ in range(cfg.layers)])
        self.layers = nn.ModuleList([
            nn.TransformerEncoderLayer(d, cfg.heads, cfg.ff, cfg.dropout, activation="gelu", batch_first=True,
                                       norm_first=True) for _ in range(cfg.layers)])
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, cfg.dim)

    def forward(self, x, t):
        w = x.shape[1]
        pos = _sinusoid(torch.arange(w, device=x.device), self.cfg.d_model)
        temb = self.time(_sinusoid(t, self.cfg.d_model))
        h = self.inp(x) + pos[None]
        for proj, layer in zip(self.time_proj, self.layers):
            h = layer(h + proj(temb)[:, None])
        out = self.out(self.norm(h))
        if self.cfg.skip:
            ab = _alpha_bar_t(t, self.cfg.diffusion_steps).to(x.dtype)[:, None, None]
            out = ab.sqrt() * x + (1.0 - ab).sqrt() * out
        return out


def cosine_alpha_bar(steps: int) -> np.ndarray:
    """Cumulative signal fractions alpha_bar_0..T of the cosine schedule (alpha_bar_0 = 1)."""
    s = 0.008
    t = np.arange(steps + 1) / steps
    f = np.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    return np.clip(f / f[0], 1e-6, 1.0)


@dataclass
class FRDMWeights:
    """A loaded FRDM weight set: ``model`` is a torch :class:`FRDMDenoiser` or any object with a
    ``denoise(x (B, W, 259) float32, t (B,) int64) -> x0`` method (the ONNX Runtime one); ``device`` is the
    torch device or a string naming the backend's provider."""
    model: object
    cfg: FRDMConfig
    mean: np.ndarray
    std: np.ndarray
    config: dict
    folder: Path | None
    device: object = None


def save_frdm_weights(dest, model, mean: np.ndarray, std: np.ndarray, meta: dict | None = None) -> Path:
    """Write an FRDM weight set atomically: frdm.safetensors, stats.safetensors (mean/std of the 259-d
    features), config.json (sizes, training data, licence, ...) and manifest.json (sha256 of each file)."""
    from safetensors.torch import save_file

    dest = Path(dest)
    with atomic_folder(dest) as tmp:
        state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
        save_file(state, tmp / WEIGHT_FILES["model"])
        save_file({"mean": torch.tensor(np.asarray(mean, np.float32)), "std": torch.tensor(np.asarray(std, np.float32))},
                  tmp / WEIGHT_FILES["stats"])
        config = {"family": FRDM_FAMILY, "format": FORMAT, "model": model.cfg.to_dict(), "files": WEIGHT_FILES,
                  "fps": MOTION_FPS, "feature_dim": FRDM_DIM, "licence": LICENCE, "source": "choreo"}
        config.update(meta or {})
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        record_files(tmp, list(WEIGHT_FILES.values()) + ["config.json"], config.get("source", "choreo"),
                     config["licence"])
    return dest


def load_frdm_weights(folder, device="auto", verify: bool = True) -> FRDMWeights:
    """Load an FRDM weight set on torch, strictly (every key and shape must match its config)."""
    if torch is None:
        raise FootFixError("torch is not installed, so the FRDM weights cannot be loaded on torch; load them on "
                           "ONNX Runtime (core_models.runtime.backends) or use method='ik_lock'")
    from safetensors.torch import load_file

    from ..weights import resolve_device

    folder = Path(folder)
    config = read_config(folder, FRDM_FAMILY, FootFixError)
    if verify:
        problems = verify_weights(folder)
        if problems:
            raise FootFixError(f"FRDM weight set '{folder}' failed verification: {'; '.join(problems[:3])}")
    try:
        files = weight_files(folder, config, WEIGHT_FILES)
        dev = resolve_device(device)
    except ValueError as exc:                # the runtime's WeightSetError: a bad "files" entry or device
        raise FootFixError(str(exc)) from exc
    cfg = FRDMConfig.from_dict(config["model"])
    model = FRDMDenoiser(cfg)
    try:
        state = load_file(str(folder / files["model"]))
        stats = load_file(str(folder / files["stats"]))
    except Exception as exc:                 # safetensors has its own error types for damaged files
        raise FootFixError(f"FRDM weights in '{folder}' cannot be read ({exc})") from exc
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if expected != got:
        missing = sorted(set(expected) - set(got))[:3]
        extra = sorted(set(got) - set(expected))[:3]
        shape = [k for k in expected if k in got and expected[k] != got[k]][:3]
        raise FootFixError(f"FRDM weights in '{folder}' do not match their config (missing {missing}, unexpected "
                           f"{extra}, wrong shape {shape})")
    model.load_state_dict(state, strict=True)
    model.to(dev).eval()
    return FRDMWeights(model, cfg, stats["mean"].numpy().astype(np.float64), stats["std"].numpy().astype(np.float64),
                       config, folder, dev)
