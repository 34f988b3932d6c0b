# SPDX-License-Identifier: GPL-3.0-or-later
"""Self-supervised FRDM training on clean mocap (Bandai Namco + CMU salsa from ``../shared/data``).

    python -m core_models.train.frdm --out runs/frdm [--max-steps 200000] [--device auto] [--threads 1]

The clean clips are the targets: each batch crops windows of clean motion, noises only the root, knee,
ankle and foot channels and learns to restore them from the untouched upper body (:func:`frdm_losses`).
The held-out clips of ``splits/frdm_split.json`` (in the repository, fixed) never enter training; they give
the validation loss here and the evaluation in ``benchmarks/fix_feet.py``.

Resumable: a checkpoint (model, optimiser, step, random state) is written every ``--ckpt-every`` steps into
``OUT/checkpoints`` (the last three are kept) and a usable weight set into ``OUT/weights`` at the same time;
running the same command again resumes from the latest checkpoint. Progress goes to ``OUT/train.log``.
Features of the corpus are computed once and cached in ``core_models.data.cache_dir()/frdm``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..data import mocap_files
from ..features import joints_to_features
from ..footfix.contacts import CONTACT_JOINTS, detect_contacts
from ..footfix.model import FRDMConfig, FRDMDenoiser, cosine_alpha_bar, save_frdm_weights
from ..footfix.representation import (FEATURE_INDEX, LOWER_CHANNELS, LOWER_POS, merge, ric_channels, rot_channels,
                                      vel_channels)
from ..rotations import sixd_to_matrix
from ..skeleton import T2M_RAW_OFFSETS

SPLIT_FILE = Path(__file__).resolve().parent / "splits" / "frdm_split.json"
CACHE_VERSION = 1
CORPORA = ("bandai", "cmu")
CMU_HELD_OUT_TAKES = ("14", "15")       # both partners of two salsa takes
BANDAI_HELD_OUT_EVERY = 20              # ~5 % of the Bandai clips, chosen by a hash of the name
EPSILON = 0.1                           # epsilon-insensitive consistency loss (paper Sec. 5.1), normalised units


# --- training losses -------------------------------------------------------------------------------------
def _roty_apply(angle, v):
    """Rotate (..., 3) vectors about +Y by ``angle`` (...,) radians (torch)."""
    c, s = torch.cos(angle), torch.sin(angle)
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    return torch.stack([c * x + s * z, y, -s * x + c * z], dim=-1)


_LEG_CHAINS = ((1, 4, 7, 10), (2, 5, 8, 11))      # hip, knee, ankle, toe


def frdm_losses(model, x0, yaw, contacts, mean, std, generator=None, epsilon: float = EPSILON,
                weights: dict | None = None, mask=None) -> dict:
    """Training losses for one batch of clean windows.

    x0: (B, W, 259) normalised clean motion; yaw: (B, W) accumulated root yaw a_t (half-angle, dim 1 of
    the 264-d features), needed to bring positions and rotations into one frame; contacts: (B, W, 4) float
    ankle/toe contacts of the clean motion (columns as :data:`CONTACT_JOINTS`; planted weights work too);
    mean, std: (259,) statistics; mask: (B, W) 1 for real frames, 0 for padding. Only the root/knee/ankle/foot channels
    are noised (the merge) and scored: reconstruction (MSE), the contact-weighted foot velocity loss (the
    velocity channels and the velocity implied by root + positions, both pushed to zero on contact frames),
    and the epsilon-insensitive consistency between the positions and the FK of the rotations.
    """
    w = {"recon": 1.0, "foot_vel": 1.0, "consistency": 1.0, **(weights or {})}
    cfg = model.cfg
    b = x0.shape[0]
    abar = torch.as_tensor(cosine_alpha_bar(cfg.diffusion_steps), dtype=x0.dtype, device=x0.device)
    t = torch.randint(1, cfg.diffusion_steps + 1, (b,), generator=generator, device="cpu").to(x0.device)
    noise = torch.randn(x0.shape, generator=generator, device="cpu").to(x0.device, x0.dtype)
    ab = abar[t][:, None, None]
    x_t = merge(x0, ab.sqrt() * x0 + (1 - ab).sqrt() * noise)
    pred = model(x_t, t)
    low = torch.as_tensor(LOWER_CHANNELS, device=x0.device)
    mask = torch.ones(x0.shape[:2], dtype=x0.dtype, device=x0.device) if mask is None else mask.to(x0.dtype)
    frames = mask.sum().clamp_min(1.0)
    recon = (((pred[..., low] - x0[..., low]) ** 2).mean(-1) * mask).sum() / frames

    den = pred * std + mean                                   # metres, radians, 6-D
    den0 = x0 * std + mean
    angle = 2.0 * yaw                                         # facing rotation angle about +Y
    # contact-weighted foot velocity: the velocity channels, and root step + position change
    cw = contacts.to(x0.dtype) * mask[..., None]
    vel_scale = std[torch.as_tensor(np.concatenate([vel_channels(j) for j in (7, 8, 10, 11)]))].mean()
    fv = x0.new_zeros(())
    # root step t -> t+1 is stored in the facing frame of frame t+1 (as in features.joints_to_features)
    step = _roty_apply(-angle[:, 1:], torch.stack([den[:, :-1, 2], torch.zeros_like(den[:, :-1, 2]),
                                                      den[:, :-1, 3]], dim=-1))
    for k, j in enumerate(CONTACT_JOINTS):
        c = cw[..., k]
        v = den[..., torch.as_tensor(vel_channels(j))]
        fv = fv + ((v / vel_scale) ** 2).sum(-1).mul(c).sum() / c.sum().clamp_min(1.0)
        p = _roty_apply(-angle, den[..., torch.as_tensor(ric_channels(j))])    # world minus root xz
        dp = p[:, 1:] - p[:, :-1] + step                      # world displacement t -> t+1
        fv = fv + ((dp / vel_scale) ** 2).sum(-1).mul(c[:, :-1]).sum() / c[:, :-1].sum().clamp_min(1.0)
    # consistency: bone vectors of the positions vs FK of the 6-D rotations, in the facing frame
    cons = x0.new_zeros(())
    r4 = 2.0 * angle                                          # the features' chains start from r * r
    pos_std = std[torch.as_tensor(LOWER_POS)].reshape(-1, 3).mean(0)
    raw = torch.as_tensor(T2M_RAW_OFFSETS, dtype=x0.dtype, device=x0.device)
    for chain in _LEG_CHAINS:
        m = sixd_to_matrix(merge(den0, den)[..., torch.as_tensor(rot_channels(chain[0]))])   # hip: input
        for parent, child in zip(chain[:-1], chain[1:]):
            m = m @ sixd_to_matrix(den[..., torch.as_tensor(rot_channels(child))])
            bone_pred = den[..., torch.as_tensor(ric_channels(child))] - \
                (den0 if parent == chain[0] else den)[..., torch.as_tensor(ric_channels(parent))]
            bone0 = den0[..., torch.as_tensor(ric_channels(child))] - den0[..., torch.as_tensor(ric_channels(parent))]
            length = bone0.norm(dim=-1).mean(dim=1, keepdim=True)        # the clip's bone length
            fk = _roty_apply(r4, (m @ raw[child])) * length[..., None]
            resid = ((fk - bone_pred) / pos_std).abs()
            cons = cons + (torch.relu(resid - epsilon).mean(-1) * mask).sum() / frames
    total = w["recon"] * recon + w["foot_vel"] * 0.05 * fv + w["consistency"] * cons
    return {"loss": total, "recon": recon.detach(), "foot_vel": fv.detach(), "consistency": cons.detach()}


# --- data ----------------------------------------------------------------------------------------------
def clip_name(corpus: str, path: Path) -> str:
    return f"{corpus}/{Path(path).name}"


def make_split(names: dict[str, list[str]]) -> dict:
    """The fixed held-out split (deterministic from the clip names)."""
    held = {"bandai": sorted(n for n in names.get("bandai", [])
                             if int(hashlib.sha1(n.encode()).hexdigest(), 16) % BANDAI_HELD_OUT_EVERY == 0),
            "cmu": sorted(n for n in names.get("cmu", []) if Path(n).stem.split("_")[1] in CMU_HELD_OUT_TAKES)}
    return {"description": "FRDM held-out clips: never used for training; used for validation and for "
                           "benchmarks/fix_feet.py",
            "rule": f"bandai: sha1(name) % {BANDAI_HELD_OUT_EVERY} == 0; cmu: takes {', '.join(CMU_HELD_OUT_TAKES)} "
                    "(both partners, subjects 60 and 61)",
            "held_out": held}


def load_split(create_from: dict[str, list[str]] | None = None) -> dict:
    if SPLIT_FILE.is_file():
        return json.loads(SPLIT_FILE.read_text())
    if create_from is None:
        raise FileNotFoundError(f"{SPLIT_FILE} is missing")
    split = make_split(create_from)
    SPLIT_FILE.parent.mkdir(parents=True, exist_ok=True)
    SPLIT_FILE.write_text(json.dumps(split, indent=1) + "\n")
    return split


def held_out_names() -> set[str]:
    split = load_split()
    return {n for names in split["held_out"].values() for n in names}


# --- the corpus, cached ---------------------------------------------------------------------------------
def _cache_path(corpus: str, files: list[Path]) -> Path:
    from ..data import cache_dir

    key = hashlib.sha1(("|".join(f"{f.name}:{f.stat().st_size}" for f in files) + f"|v{CACHE_VERSION}").encode())
    return cache_dir() / "frdm" / f"{corpus}_{key.hexdigest()[:12]}.npz"


def clip_arrays(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Clean joints (T, 22, 3) -> 264-d features (T-1, 264) and planted weights of the ankles/toes (T-1, 4)."""
    feats = joints_to_features(joints, target_skeleton=None)
    info = detect_contacts(joints)
    return feats, info.weights[:-1]


def load_corpus(corpus: str, log=print) -> dict | None:
    """{'names', 'feats' (N, 264) float32, 'weights' (N, 4) float16, 'starts', 'lengths'} or None if absent."""
    from ..io import load_body_clip

    files = mocap_files(corpus)
    if not files:
        return None
    path = _cache_path(corpus, files)
    if path.is_file():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    log(f"building the {corpus} feature cache ({len(files)} files) -> {path}")
    feats, weights, names, lengths = [], [], [], []
    t0 = time.time()
    for i, f in enumerate(files):
        try:
            clip = load_body_clip(f)
            x, w = clip_arrays(clip.joints)
        except ValueError as exc:            # a damaged file should not stop training
            log(f"  skipped {f.name}: {exc}")
            continue
        feats.append(x.astype(np.float32))
        weights.append(w.astype(np.float16))
        names.append(clip_name(corpus, f))
        lengths.append(len(x))
        if (i + 1) % 250 == 0:
            log(f"  {i + 1}/{len(files)} files, {time.time() - t0:.0f} s")
    lengths = np.array(lengths)
    data = {"names": np.array(names), "feats": np.concatenate(feats), "weights": np.concatenate(weights),
            "lengths": lengths, "starts": np.concatenate([[0], np.cumsum(lengths)[:-1]])}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **data)
    os.replace(tmp, path)
    return data


class WindowSampler:
    """Random windows of the training clips (clips shorter than a window are padded with their last frame
    and the padding is masked out of the losses)."""

    def __init__(self, clips: list[tuple[np.ndarray, np.ndarray]], window: int, mean, std, rng: np.random.Generator):
        self.clips = clips
        self.window = window
        self.mean, self.std = mean, std
        self.rng = rng
        sizes = np.array([max(1, len(f) - window + 1) for f, _ in clips], np.float64)
        self.p = sizes / sizes.sum()

    def _window(self, i: int, start: int | None = None):
        feats, w = self.clips[i]
        n = len(feats)
        if start is None:
            start = int(self.rng.integers(0, max(1, n - self.window + 1)))
        sl = slice(start, start + self.window)
        f, c = feats[sl], w[sl].astype(np.float32)
        mask = np.ones(len(f), np.float32)
        if len(f) < self.window:
            pad = self.window - len(f)
            f = np.concatenate([f, np.repeat(f[-1:], pad, 0)])
            c = np.concatenate([c, np.zeros((pad, 4), np.float32)])
            mask = np.concatenate([mask, np.zeros(pad, np.float32)])
        x = (f[:, FEATURE_INDEX] - self.mean) / self.std
        return x, f[:, 1], c, mask

    def batch(self, size: int, device):
        idx = self.rng.choice(len(self.clips), size=size, p=self.p)
        parts = [self._window(int(i)) for i in idx]
        return tuple(torch.as_tensor(np.stack(p), dtype=torch.float32, device=device) for p in zip(*parts))

    def fixed_batches(self, size: int, count: int, device):
        """Deterministic windows (the validation set): evenly spread over the clips."""
        out = []
        order = np.arange(len(self.clips))
        for b in range(count):
            parts = [self._window(int(order[(b * size + k) % len(order)]), start=0) for k in range(size)]
            out.append(tuple(torch.as_tensor(np.stack(p), dtype=torch.float32, device=device) for p in zip(*parts)))
        return out


# --- training ---------------------------------------------------------------------------------------------
class Logger:
    def __init__(self, path: Path, quiet: bool = False):
        self.path, self.quiet = path, quiet

    def __call__(self, msg: str):
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}"
        with open(self.path, "a") as f:
            f.write(line + "\n")
        if not self.quiet:
            print(line, flush=True)


def _checkpoints(out: Path) -> list[Path]:
    return sorted((out / "checkpoints").glob("ckpt_*.pt"))


def _lr(step: int, args) -> float:
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = min(1.0, (step - args.warmup) / max(1, args.max_steps - args.warmup))
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def save_checkpoint(out: Path, model, opt, step: int, rng: np.random.Generator, torch_gen: torch.Generator,
                    keep: int = 3) -> Path:
    folder = out / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"ckpt_{step:08d}.pt"
    tmp = folder / f".{path.name}.tmp"
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "cfg": model.cfg.to_dict(),
                "np_rng": json.dumps(rng.bit_generator.state), "torch_gen": torch_gen.get_state(),
                "torch_rng": torch.get_rng_state()}, tmp)          # dropout draws from the global generator
    os.replace(tmp, path)
    for old in _checkpoints(out)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def _evaluate(model, batches, mean_t, std_t, seed: int = 1234) -> dict:
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    sums: dict[str, float] = {}
    with torch.no_grad():
        for x, yaw, c, mask in batches:
            parts = frdm_losses(model, x, yaw, c, mean_t, std_t, generator=gen, mask=mask)
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v)
    model.train()
    return {k: v / max(1, len(batches)) for k, v in sums.items()}


def train(args, data: dict | None = None) -> Path:
    """Train (or resume) into ``args.out``; ``data`` replaces the shared corpora (tests): corpus ->
    {'names', 'feats', 'weights', 'lengths', 'starts'} as :func:`load_corpus` returns."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = Logger(out / "train.log", args.quiet)
    torch.set_num_threads(args.threads)
    from ..weights import resolve_device

    device = resolve_device(args.device)
    if data is None:
        data = {}
        for corpus in [c for c in args.corpora.split(",") if c]:
            d = load_corpus(corpus, log)
            if d is None:
                log(f"no {corpus} mocap found (see core_models/data.py); continuing without it")
                continue
            data[corpus] = d
    if not data:
        raise SystemExit("no training data: ../shared/data/mocap (or CHOREO_MOCAP_DIR) holds no mocap")
    split = load_split({c: [str(n) for n in d["names"]] for c, d in data.items()})
    held = {n for names in split["held_out"].values() for n in names}
    train_clips, val_clips, n_frames = [], [], 0
    for corpus, d in data.items():
        for name, s, n in zip(d["names"], d["starts"], d["lengths"]):
            item = (d["feats"][s:s + n], d["weights"][s:s + n])
            (val_clips if str(name) in held else train_clips).append(item)
            n_frames += 0 if str(name) in held else int(n)

    stats_path = out / "stats.npz"
    if stats_path.is_file():
        with np.load(stats_path) as z:
            mean, std = z["mean"], z["std"]
    else:
        allf = np.concatenate([f for f, _ in train_clips])[:, FEATURE_INDEX].astype(np.float64)
        mean, std = allf.mean(0), np.maximum(allf.std(0), args.min_std)
        np.savez(stats_path, mean=mean, std=std)

    ckpts = _checkpoints(out)
    rng = np.random.default_rng(args.seed)
    torch_gen = torch.Generator().manual_seed(args.seed)
    if ckpts and not args.fresh:
        state = torch.load(ckpts[-1], map_location="cpu", weights_only=True)
        cfg = FRDMConfig.from_dict(state["cfg"])
    else:
        state = None
        cfg = FRDMConfig(d_model=args.d_model, layers=args.layers, heads=args.heads, ff=args.ff,
                              window=args.window, dropout=args.dropout)
    torch.manual_seed(args.seed)
    model = FRDMDenoiser(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    step = 0
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step = int(state["step"])
        rng.bit_generator.state = json.loads(state["np_rng"])
        torch_gen.set_state(state["torch_gen"])
        if "torch_rng" in state:
            torch.set_rng_state(state["torch_rng"])
        log(f"resumed from {ckpts[-1].name} at step {step}")
    else:
        log(f"new run: {sum(p.numel() for p in model.parameters())} parameters, config {cfg.to_dict()}")
    log(f"data: {len(train_clips)} training clips ({n_frames} frames), {len(val_clips)} held-out clips; "
        f"device {device}, {args.threads} thread(s)")

    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=device)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=device)
    sampler = WindowSampler(train_clips, cfg.window, mean, std, rng)
    val = WindowSampler(val_clips or train_clips[:8], cfg.window, mean, std, np.random.default_rng(0))
    val_batches = val.fixed_batches(args.batch, args.val_batches, device)
    meta = {"training_data": {"corpora": {c: {"clips": int(len(d["names"])), "frames": int(d["lengths"].sum())}
                                          for c, d in data.items()},
                              "held_out_clips": len(val_clips), "split_file": "core_models/train/splits/frdm_split.json",
                              "sources": {"bandai": "Bandai-Namco-Research-Motiondataset 1+2 (CC BY-NC 4.0)",
                                          "cmu": "CMU Graphics Lab Motion Capture Database, subjects 60/61 "
                                                 "(mocap.cs.cmu.edu; NSF EIA-0196217)"}}}
    model.train()
    t_last, steps_since = time.time(), 0
    running: dict[str, float] = {}
    while step < args.max_steps:
        for g in opt.param_groups:
            g["lr"] = _lr(step, args)
        x, yaw, c, mask = sampler.batch(args.batch, device)
        parts = frdm_losses(model, x, yaw, c, mean_t, std_t, generator=torch_gen, mask=mask)
        opt.zero_grad(set_to_none=True)
        parts["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        steps_since += 1
        for k, v in parts.items():
            running[k] = running.get(k, 0.0) + float(v.detach())
        if step % args.log_every == 0:
            now = time.time()
            avg = " ".join(f"{k} {v / steps_since:.4f}" for k, v in running.items())
            log(f"step {step} {avg} lr {_lr(step, args):.2e} {steps_since / (now - t_last):.2f} steps/s")
            t_last, steps_since, running = now, 0, {}
        if step % args.ckpt_every == 0 or step == args.max_steps:
            ev = _evaluate(model, val_batches, mean_t, std_t)
            log(f"step {step} held-out " + " ".join(f"{k} {v:.4f}" for k, v in ev.items()))
            path = save_checkpoint(out, model, opt, step, rng, torch_gen)
            save_frdm_weights(out / "weights", model, mean, std,
                              {**meta, "step": step, "held_out_loss": round(ev["loss"], 5),
                               "trained_with": "python -m core_models.train.frdm"})
            log(f"checkpoint {path.name}; weight set {out / 'weights'}")
    return out / "weights"


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m core_models.train.frdm", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/frdm", help="run folder (checkpoints, log, weights)")
    p.add_argument("--corpora", default=",".join(CORPORA))
    p.add_argument("--max-steps", type=int, default=200_000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--window", type=int, default=90)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--ff", type=int, default=256)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--min-std", type=float, default=1e-3)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--ckpt-every", type=int, default=500)
    p.add_argument("--val-batches", type=int, default=4)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fresh", action="store_true", help="ignore existing checkpoints (they are kept)")
    p.add_argument("--quiet", action="store_true", help="log to the file only")
    return p.parse_args(argv)


def main(argv=None) -> int:
    train(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
