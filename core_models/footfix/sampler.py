# SPDX-License-Identifier: GPL-3.0-or-later
"""FRDM sampling: the paper's Algorithm 2 with few steps, on any backend.

Start from noise x_T; at every step merge, predict x0, then guide it: geometric guidance while t >= t_th
(root, leg positions and rotations blended towards the input with w_t = t/T), foot-contact guidance below
(planted ankles/toes: velocities scaled by w_t, positions re-integrated from them), and re-noise the guided
x0 to the next step. The denoiser runs on overlapping windows of its training length; predictions are
cross-faded. The model is called through ``denoise(x, t) -> x0`` on numpy arrays, so the sampler is the same
for torch and ONNX Runtime.

Sampler defaults (:class:`SamplerConfig`), chosen on held-out clips with our small CPU-trained model
(``benchmarks/fix_feet.py`` also scores Algorithm 2 to the letter): evenly spaced steps, t_th = 0.2 T,
re-noising with the noise the model saw ("ddim"; the paper re-uses the initial noise x_T, which leaves a
small model's residual noise in the result), the root velocities guided in the foot-contact steps too (left
to the model, a small model's root wanders), and the result low-passed by 1 frame. Position guidance
integrates planted-joint velocities within each contact interval, puts planted joints on their planted
height, and fades the offsets in and out over a few frames, so no foot jumps.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from ..progress import ProgressFn, check_cancel, no_progress
from .contacts import BLEND_FRAMES, CONTACT_JOINTS, fade_fill, mask_runs
from .errors import FootFixError
from .model import FRDMWeights, cosine_alpha_bar
from .representation import LOWER_POS, LOWER_ROT, ROOT_CHANNELS, merge, ric_channels, vel_channels

try:                                    # a torch FRDMDenoiser is wrapped here; the ONNX one needs no torch
    import torch
    from torch import nn
except ImportError:                     # pragma: no cover - torch is a dependency of the full install
    torch = None
    nn = None

# 30 steps: on the held-out clips FSR falls from 10 to 20 to 30 steps and levels off after (benchmarks/fix_feet.py);
# 1,024 frames still take about 1.5 s on one CPU thread.
DEFAULT_STEPS = 30


@dataclass
class SamplerConfig:
    steps: int = DEFAULT_STEPS      # denoising steps (timesteps spread evenly over T..1)
    t_th: float = 0.2               # t/T below which foot-contact guidance replaces geometric guidance
    seed: int = 0
    blend: int = BLEND_FRAMES
    root_always: bool = True        # keep pulling the root velocities to the (drift-corrected) input late too
    smooth: float = 0.0             # frames: Gaussian low-pass of the input before it guides (0: off; 1.5 left
                                    # more skating on the held-out clips: benchmarks/fix_feet.py)
    spacing: str = "linear"         # step spacing: linear or quadratic
    renoise: str = "ddim"           # "ddim": re-noise with the predicted noise; "initial": with x_T (Algorithm 2)
    out_smooth: float = 1.0         # frames: Gaussian low-pass of the repaired root and legs before the rig solve


def sampler_timesteps(total: int, steps: int, spacing: str = "linear") -> list[int]:
    """Descending diffusion steps T .. 1: evenly spaced ("linear"), or "quadratic" (more steps near the end)."""
    if steps < 1:
        raise FootFixError(f"the sampler needs at least one step, got {steps}")
    if spacing not in ("linear", "quadratic"):
        raise FootFixError(f"unknown step spacing '{spacing}'; use linear or quadratic")
    if steps == 1:
        return [int(total)]
    k = np.arange(steps - 1, -1, -1) / (steps - 1)
    ts = np.unique(np.round(1 + (total - 1) * (k if spacing == "linear" else k ** 2)).astype(int))[::-1]
    return [int(t) for t in ts]


def _window_plan(t_len: int, window: int) -> tuple[list[int], np.ndarray]:
    """Window starts covering ``t_len`` frames (3/4 window hop) and the cross-fade weight of a window frame."""
    if t_len <= window:
        return [0], np.ones(window)
    hop = max(1, (3 * window) // 4)
    starts = list(range(0, t_len - window + 1, hop))
    if starts[-1] != t_len - window:
        starts.append(t_len - window)
    ramp = max(1, (window - hop) // 2 + 1)
    k = np.arange(window)
    return starts, np.clip(np.minimum(k + 1, window - k) / ramp, 1e-3, 1.0)


def denoiser(model, device=None):
    """``denoise(x (B, W, 259) float32, t (B,) int64) -> x0`` (numpy) for a torch FRDMDenoiser or an object
    with such a ``denoise`` method (the ONNX Runtime one), so the sampler itself is backend-free."""
    if hasattr(model, "denoise"):
        return model.denoise
    dev = device or torch.device("cpu")

    def run(x, t):
        with torch.no_grad():
            return model(torch.as_tensor(x, device=dev), torch.as_tensor(t, device=dev)).float().cpu().numpy()
    return run


def predict_clean(model, x, t: int, window: int, device=None):
    """x0 prediction for a whole sequence x (T, 259) (normalised, merged; numpy), window by window in one
    batch. ``model``: a torch FRDMDenoiser or a ``denoise`` callable / object (see :func:`denoiser`)."""
    is_module = nn is not None and isinstance(model, nn.Module)
    denoise = denoiser(model, device) if is_module or hasattr(model, "denoise") else model
    x = np.asarray(x, np.float32)
    t_len = x.shape[0]
    if t_len < window:
        x = np.concatenate([x, np.repeat(x[-1:], window - t_len, axis=0)], axis=0)
    starts, wts = _window_plan(x.shape[0], window)
    batch = np.stack([x[s:s + window] for s in starts])
    pred = np.asarray(denoise(batch, np.full(len(starts), t, np.int64)), np.float32)
    out = np.zeros_like(x)
    norm = np.zeros((x.shape[0], 1), np.float32)
    w = np.asarray(wts, np.float32)[:, None]
    for i, s in enumerate(starts):
        out[s:s + window] += pred[i] * w
        norm[s:s + window] += w
    return (out / norm)[:t_len]


def _yaw_angle(x_den: np.ndarray) -> np.ndarray:
    """Facing rotation angle (about +Y) of each frame from the yaw velocities (2 x accumulated half-angle)."""
    return 2.0 * np.concatenate([[0.0], np.cumsum(x_den[:-1, 1])])


def _roty(angle: np.ndarray, v: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([c * v[..., 0] + s * v[..., 2], v[..., 1], -s * v[..., 0] + c * v[..., 2]], axis=-1)


def _root_world(x_den: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Root positions (canonical frame) from root velocities and height, as features_to_joints does."""
    step = np.zeros((x_den.shape[0], 3))
    step[1:, 0], step[1:, 2] = x_den[:-1, 2], x_den[:-1, 3]
    root = np.cumsum(_roty(-angle, step), axis=0)
    root[:, 1] = x_den[:, 0]
    return root


def contact_guidance(x_den: np.ndarray, angle: np.ndarray, weights: np.ndarray, w: float, mode: str = "auto",
                     blend: int = BLEND_FRAMES, levels: np.ndarray | None = None) -> np.ndarray:
    """Foot-contact guidance on a de-normalised prediction (T, 259).

    ``weights`` (T, 4): how firmly each ankle/toe of :data:`CONTACT_JOINTS` is planted. The planted joints'
    world velocities are scaled by ``w`` and their positions re-integrated from them inside each contact
    interval (offsets faded in/out around it); their velocity channels are set from the guided positions.
    With ``levels`` (4,) (planted heights in the features' frame) planted joints are also put on the floor by
    1 - w. 'grounding' guides the vertical component only.
    """
    g = x_den.copy()
    flat = np.array([1.0, 0.0, 1.0])
    root = _root_world(g, angle)
    feet = np.stack([root * flat + _roty(-angle, g[:, ric_channels(j)]) for j in CONTACT_JOINTS], axis=1)
    axes = np.array([1.0, 1.0, 1.0]) if mode == "auto" else np.array([0.0, 1.0, 0.0])
    for k, j in enumerate(CONTACT_JOINTS):
        p_w = np.asarray(weights[:, k], np.float64)
        b = p_w > 0
        if not b.any():
            continue
        v_world = np.zeros_like(feet[:, k])
        v_world[:-1] = np.diff(feet[:, k], axis=0)
        v_world *= 1.0 - axes * (p_w[:, None] * (1.0 - w))
        p_pred = feet[:, k]
        offset = np.zeros_like(p_pred)
        for s, e in mask_runs(b):
            path = p_pred[s] + np.concatenate([np.zeros((1, 3)), np.cumsum(v_world[s:e - 1], axis=0)])
            offset[s:e] = (path - p_pred[s:e]) * axes
        if levels is not None:                          # on the floor, not just still
            offset[:, 1] += (levels[k] - (p_pred[:, 1] + offset[:, 1])) * p_w * (1.0 - w)
        p = p_pred + fade_fill(offset, b, blend)
        g[:, ric_channels(j)] = _roty(angle, p - root * flat)
        vel = _roty(angle[:-1], np.diff(p, axis=0))    # velocity channels agree with the guided positions
        g[:-1, vel_channels(j)] = vel
    return g


def sample(weights: FRDMWeights, x_in: np.ndarray, contacts: np.ndarray, cfg: SamplerConfig | None = None,
           mode: str = "auto", progress: ProgressFn = no_progress, cancel: threading.Event | None = None,
           levels: np.ndarray | None = None) -> np.ndarray:
    """Algorithm 2: de-normalised input features (T, 259) -> restored features (T, 259) (upper body merged
    from the input). ``contacts`` (T, 4): planted weights (or bool contacts) of the ankles/toes of
    :data:`CONTACT_JOINTS`; ``levels`` (4,): their planted heights in the features' frame. The geometric
    guidance also pulls the root velocities towards the input (the root path is geometry too; left free it
    wanders). Deterministic for a seed."""
    cfg = cfg or SamplerConfig()
    mcfg = weights.cfg
    denoise = denoiser(weights.model, weights.device)
    mean, std = weights.mean, weights.std
    x_in_n = ((x_in - mean) / std).astype(np.float32)
    angle = _yaw_angle(x_in)
    # numpy noise, so every backend (torch, ONNX Runtime) starts from the same x_T for a seed
    x_T = np.random.default_rng(int(cfg.seed)).standard_normal(x_in_n.shape).astype(np.float32)
    abar = cosine_alpha_bar(mcfg.diffusion_steps)
    ts = sampler_timesteps(mcfg.diffusion_steps, cfg.steps, cfg.spacing)
    if cfg.renoise not in ("initial", "ddim"):
        raise FootFixError(f"unknown re-noising '{cfg.renoise}'; use initial or ddim")
    t_th = cfg.t_th * mcfg.diffusion_steps
    x_t = x_T
    guided = x_in
    geo = np.concatenate([ROOT_CHANNELS, LOWER_POS, LOWER_ROT])
    contacts = np.asarray(contacts, np.float64)
    # the guidance target is the input's geometry, not its frame-to-frame noise (which the model would
    # otherwise copy back at the low-noise steps)
    target = x_in.copy()
    if cfg.smooth > 0 and len(x_in) > 1:
        target[:, geo] = gaussian_filter1d(x_in[:, geo], cfg.smooth, axis=0, mode="nearest")
    for k, t in enumerate(ts):
        check_cancel(cancel)
        merged = merge(x_in_n, x_t)
        x0_n = predict_clean(denoise, merged, t, mcfg.window)
        x0 = x0_n.astype(np.float64) * std + mean
        w = t / mcfg.diffusion_steps
        guided = x0.copy()
        if t >= t_th:                            # geometric guidance: stay near the input
            guided[:, geo] = (1.0 - w) * target[:, geo] + w * x0[:, geo]
        else:                                    # foot-contact guidance: plant the feet
            if cfg.root_always:
                x0[:, ROOT_CHANNELS] = (1.0 - w) * target[:, ROOT_CHANNELS] + w * x0[:, ROOT_CHANNELS]
            guided = contact_guidance(x0, angle, contacts, w, mode, cfg.blend, levels)
        t_prev = ts[k + 1] if k + 1 < len(ts) else 0
        g_n = ((guided - mean) / std).astype(np.float32)
        noise = x_T
        if cfg.renoise == "ddim":           # the noise the model sees in x_t, as deterministic DDIM re-uses it
            noise = (merged - math.sqrt(abar[t]) * x0_n) / math.sqrt(max(1.0 - abar[t], 1e-8))
        x_t = (math.sqrt(abar[t_prev]) * g_n + math.sqrt(1.0 - abar[t_prev]) * noise).astype(np.float32)
        progress("frdm", k + 1, len(ts))
    return merge(x_in, guided)


