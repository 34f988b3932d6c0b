# SPDX-License-Identifier: GPL-3.0-or-later
"""Train the compact weight family on the shared mocap: dataset, tokenizer, ChoreoLLaMA, RetrievalNet, export.

    python -m core_models.train.compact data                      # features + synthesised music, cached
    python -m core_models.train.compact tokenizer --out runs/compact [--steps N]
    python -m core_models.train.compact generator --out runs/compact [--steps N]
    python -m core_models.train.compact retrieval --out runs/compact [--steps N]
    python -m core_models.train.compact export --out runs/compact --dest core_models/assets/compact

Data: every BVH clip of ../shared/data/mocap (Bandai Namco: everyday motion and one dance, labelled
Popular; CMU salsa: Latin) -> canonical body -> 264-d features at 30 fps, plus a left/right mirrored copy.
No paired music+dance corpus is within reach, so each clip gets music made for it: its kinematic beats
(local minima of joint speed) drive a synthesised drum-and-bass track (``audio.synth_accompaniment``) whose
rhythm features (onset, beat, beat phase, tempo: ``audio.rhythm_features``) are what the model hears.
Those features describe pulse, not timbre, so they carry over to real recordings.

Split: the FRDM held-out clips are the test set; CMU take 13 and ~5 % of the Bandai clips (by name hash)
validate; the rest trains (``splits/motion_split.json``, written once and kept in the repository).
Every stage is resumable (checkpoints under OUT/<stage>/), logs to OUT/<stage>/train.log, runs on CPU or
CUDA. Licence of the result: CC BY-NC 4.0 (follows from the Bandai Namco data).
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
import torch.nn.functional as F

from ..audio import rhythm_features, synth_accompaniment
from ..data import cache_dir, mocap_files
from ..features import FEATURE_DIM, feature_stats, joints_to_features
from ..metrics import motion_beats
from ..skeleton import BODY_JOINT_NAMES, mirror_index

SPLIT_FILE = Path(__file__).resolve().parent / "splits" / "motion_split.json"
CACHE_VERSION = 3
SYNTH_SR = 15360                     # = 30 fps x 512: the music features' own analysis rate
GENRE_OF = {"cmu": "Latin", "bandai": "Popular"}
LICENCE = "CC BY-NC 4.0 (follows from the Bandai Namco Research Motion Dataset used in training)"
TRAINING_DATA = ("Bandai Namco Research Motion Dataset 1+2 (CC BY-NC 4.0, 3,076 clips, labelled Popular) and CMU "
                 "mocap subjects 60/61 salsa (CMU database terms, labelled Latin), mirrored; music synthesised "
                 "from each clip's kinematic beats")


# ------------------------------------------------------------------------------------------------ data

def _clip_name(corpus: str, path: Path) -> str:
    return f"{corpus}/{path.name}"


def motion_split(names: list[str] | None = None) -> dict:
    """The fixed train / validation / test split (created from ``names`` once, then read from the repo)."""
    if SPLIT_FILE.is_file():
        return json.loads(SPLIT_FILE.read_text())
    if names is None:
        raise FileNotFoundError(f"{SPLIT_FILE} is missing; run 'python -m core_models.train.compact data'")
    from .frdm import held_out_names

    test = held_out_names()
    val = {n for n in names if n not in test and (
        (n.startswith("cmu/") and Path(n).stem.split("_")[1] == "13") or
        (n.startswith("bandai/") and int(hashlib.sha1(n.encode()).hexdigest(), 16) % 20 == 1))}
    split = {"description": "compact family split: test = the FRDM held-out clips, never trained on",
             "rule": "test: core_models/train/splits/frdm_split.json; validation: CMU take 13 and "
                     "sha1(name) % 20 == 1 of the Bandai clips; train: the rest",
             "test": sorted(n for n in names if n in test), "validation": sorted(val),
             "train": sorted(n for n in names if n not in test and n not in val)}
    SPLIT_FILE.parent.mkdir(parents=True, exist_ok=True)
    SPLIT_FILE.write_text(json.dumps(split, indent=1) + "\n")
    return split


def mirror_joints(joints: np.ndarray) -> np.ndarray:
    """Left/right mirror image: x negated, left and right joints swapped."""
    out = joints[:, mirror_index(BODY_JOINT_NAMES)].copy()
    out[..., 0] *= -1
    return out


def clip_record(joints: np.ndarray, seed: int) -> dict:
    """Features of a clip and its mirror, its beats and the rhythm features of music synthesised on them."""
    beats = motion_beats(joints) if joints.shape[0] >= 3 else np.zeros(0, np.int64)
    audio = synth_accompaniment(beats, joints.shape[0], sr=SYNTH_SR, seed=seed)
    music = rhythm_features(audio, SYNTH_SR) if beats.size else np.zeros((joints.shape[0], 7), np.float32)
    feats = joints_to_features(joints).astype(np.float32)
    mirrored = joints_to_features(mirror_joints(joints)).astype(np.float32)
    t = feats.shape[0]
    music = np.concatenate([music, np.zeros((max(0, t - music.shape[0]), music.shape[1]), np.float32)])[:t]
    return {"feats": feats, "mirrored": mirrored, "music": music.astype(np.float32), "beats": beats}


def build_dataset(log=print, override: str | None = None) -> Path:
    """All clips -> one cached .npz (features, mirrored features, music, offsets, names, genres).

    ``override``: a dataset file of the same format to use instead (tests, your own data)."""
    if override:
        return Path(override)
    from ..io import load_body_clip

    files = [(c, p) for c in ("bandai", "cmu") for p in mocap_files(c)]
    if not files:
        raise FileNotFoundError("no mocap found: ../shared/data/mocap (or CHOREO_MOCAP_DIR) is needed for training")
    key = hashlib.sha1(("|".join(f"{p.name}:{p.stat().st_size}" for _, p in files) + f"v{CACHE_VERSION}").encode())
    path = cache_dir() / "compact" / f"dataset_{key.hexdigest()[:12]}.npz"
    if path.is_file():
        return path
    motion_split([_clip_name(c, p) for c, p in files])
    parts = {"feats": [], "mirrored": [], "music": []}
    names, genres, lengths = [], [], []
    t0 = time.time()
    for i, (corpus, p) in enumerate(files):
        joints = load_body_clip(p).joints
        if joints.shape[0] < 17:                      # too short to hold even a few latents
            continue
        rec = clip_record(joints, seed=i)
        for k in parts:
            parts[k].append(rec[k])
        names.append(_clip_name(corpus, p))
        genres.append(GENRE_OF[corpus])
        lengths.append(rec["feats"].shape[0])
        if (i + 1) % 200 == 0:
            log(f"  {i + 1}/{len(files)} clips, {time.time() - t0:.0f} s")
    data = {k: np.concatenate(v) for k, v in parts.items()}
    lengths = np.array(lengths)
    data.update(names=np.array(names), genres=np.array(genres), lengths=lengths,
                starts=np.concatenate([[0], np.cumsum(lengths)[:-1]]))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **data)
    os.replace(tmp, path)
    log(f"dataset: {len(names)} clips, {int(lengths.sum())} frames -> {path}")
    return path


class Corpus:
    """The cached dataset, split into clips; normalised with statistics of the training clips."""

    def __init__(self, path: Path, stats: dict | None = None):
        with np.load(path) as z:
            d = {k: z[k] for k in z.files}
        split = motion_split()
        self.names = [str(n) for n in d["names"]]
        part = {n: "train" for n in split["train"]} | {n: "validation" for n in split["validation"]} | \
            {n: "test" for n in split["test"]}
        self.clips = []
        for i, name in enumerate(self.names):
            s, n = int(d["starts"][i]), int(d["lengths"][i])
            self.clips.append({"name": name, "genre": str(d["genres"][i]), "part": part.get(name, "train"),
                               "feats": d["feats"][s:s + n], "mirrored": d["mirrored"][s:s + n],
                               "music": d["music"][s:s + n]})
        if stats is None:
            mean, std = feature_stats([c["feats"] for c in self.clips if c["part"] == "train"] +
                                      [c["mirrored"] for c in self.clips if c["part"] == "train"], min_std=1e-3)
            stats = {"mean": mean, "std": std}
        self.mean, self.std = stats["mean"], stats["std"]

    def part(self, name: str) -> list[dict]:
        return [c for c in self.clips if c["part"] == name]

    def normalised(self, feats: np.ndarray) -> np.ndarray:
        return ((feats - self.mean) / self.std).astype(np.float32)


# --------------------------------------------------------------------------------------------- common

class Log:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.f = open(path, "a", buffering=1)

    def __call__(self, msg: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}"
        print(line, flush=True)
        self.f.write(line + "\n")


def _latest(folder: Path) -> Path | None:
    ckpts = sorted(folder.glob("ckpt_*.pt"))
    return ckpts[-1] if ckpts else None


def _save(folder: Path, step: int, **state) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".ckpt_{step:07d}.pt.tmp"
    torch.save({"step": step, **state}, tmp)
    os.replace(tmp, folder / f"ckpt_{step:07d}.pt")
    for old in sorted(folder.glob("ckpt_*.pt"))[:-2]:
        old.unlink()


def _resume(folder: Path, model, opt, device, log) -> dict | None:
    """Model and optimiser from the latest checkpoint of ``folder`` (our own files); the whole state."""
    ck = _latest(folder)
    if ck is None:
        return None
    state = torch.load(ck, map_location=device, weights_only=False)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    log(f"resumed from {ck.name}")
    return state


def _cosine_lr(step: int, total: int, base: float, warmup: int = 200) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


def _device(name: str) -> torch.device:
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else ("cpu" if name == "auto" else name))


# ------------------------------------------------------------------------------------------ tokenizer

def _tokenizer_batch(clips, corpus: Corpus, batch: int, frames: int, rng) -> np.ndarray:
    out = np.zeros((batch, frames, FEATURE_DIM), np.float32)
    long_clips = [c for c in clips if c["feats"].shape[0] >= frames]
    for b in range(batch):
        c = long_clips[rng.integers(len(long_clips))]
        src = c["mirrored"] if rng.random() < 0.5 else c["feats"]
        s = rng.integers(0, src.shape[0] - frames + 1)
        out[b] = corpus.normalised(src[s:s + frames])
    return out


def quantize_train(model, z: torch.Tensor, ema: list[dict], decay: float = 0.99):
    """Residual quantisation with straight-through gradients; codebooks follow an EMA of their assigned
    encoder outputs and codes unused for a while are reset to random encoder outputs."""
    residual = z
    quantized = torch.zeros_like(z)
    commit = z.new_zeros(())
    used = []
    flat_z = z.reshape(-1, z.shape[-1])
    for g, layer in enumerate(model.quantizer.layers):
        r = residual.reshape(-1, z.shape[-1])
        if not ema[g].get("initialised"):          # codes start on real residuals, not random vectors
            with torch.no_grad():
                pick = r[torch.randint(0, r.shape[0], (layer.codebook.shape[0],), device=r.device)].detach()
                layer.codebook.copy_(pick)
                ema[g]["sum"].copy_(pick)
            ema[g]["initialised"] = True
        idx = layer.nearest(r.detach())
        q = layer.codebook[idx]
        commit = commit + F.mse_loss(r, q.detach())
        with torch.no_grad():
            onehot = F.one_hot(idx, layer.codebook.shape[0]).type_as(r)
            ema[g]["count"].mul_(decay).add_(onehot.sum(0), alpha=1 - decay)
            ema[g]["sum"].mul_(decay).add_(onehot.t() @ r.detach(), alpha=1 - decay)
            n = ema[g]["count"].sum()
            count = (ema[g]["count"] + 1e-5) / (n + layer.codebook.shape[0] * 1e-5) * n
            layer.codebook.copy_(ema[g]["sum"] / count[:, None])
            dead = ema[g]["count"] < 0.5               # unused for ~70 steps: move to a live residual
            if dead.any():
                pick = flat_z[torch.randint(0, flat_z.shape[0], (int(dead.sum()),), device=z.device)].detach()
                layer.codebook[dead] = pick
                ema[g]["sum"][dead] = pick
                ema[g]["count"][dead] = 1.0
        used.append(idx.unique().numel())
        quantized = quantized + q.reshape(z.shape)
        residual = residual - q.reshape(z.shape).detach()
    return z + (quantized - z).detach(), commit, used


def train_tokenizer(args) -> None:
    from ..tokenizer import RVQVAE
    from ..weights import compact_configs

    out = Path(args.out) / "tokenizer"
    log = Log(out / "train.log")
    device = _device(args.device)
    torch.set_num_threads(args.threads)
    corpus = Corpus(build_dataset(log, args.dataset))
    np.savez(out / "stats.npz", mean=corpus.mean, std=corpus.std)
    cfg = compact_configs()[0]
    torch.manual_seed(0)
    model = RVQVAE(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=0.0)
    ema = [{"count": torch.ones(cfg.nb_code, device=device), "sum": layer.codebook.detach().clone()}
           for layer in model.quantizer.layers]
    step, rng = 0, np.random.default_rng(0)
    if (state := _resume(out, model, opt, device, log)) is not None:
        ema, step, rng = state["ema"], state["step"], state["rng"]
    train = corpus.part("train")
    val = corpus.part("validation") or train
    frames = args.window
    t0 = time.time()
    while step < args.steps:
        for group in opt.param_groups:
            group["lr"] = _cosine_lr(step, args.steps, args.lr)
        x = torch.as_tensor(_tokenizer_batch(train, corpus, args.batch, frames, rng), device=device)
        z = model.encode_latent(x)
        zq, commit, used = quantize_train(model, z, ema)
        y = model.decode_latent(zq)
        recon = F.smooth_l1_loss(y, x)
        vel = F.smooth_l1_loss(y[:, 1:] - y[:, :-1], x[:, 1:] - x[:, :-1])
        root = F.smooth_l1_loss(y[..., :5], x[..., :5])
        loss = recon + 0.5 * vel + 0.5 * root + 0.02 * commit
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 50 == 0:
            log(f"step {step} loss {loss.item():.4f} recon {recon.item():.4f} vel {vel.item():.4f} "
                f"commit {commit.item():.4f} codes used {used} {step / (time.time() - t0):.2f} it/s")
        if step % args.ckpt_every == 0 or step == args.steps:
            with torch.no_grad():
                xv = torch.as_tensor(_tokenizer_batch(val, corpus, 64, frames, np.random.default_rng(1)), device=device)
                err = F.l1_loss(model(xv), xv).item()
            log(f"step {step} validation L1 (normalised) {err:.4f}")
            _save(out, step, model=model.state_dict(), opt=opt.state_dict(), ema=ema, rng=rng)


# ------------------------------------------------------------------------------------------ generator

def load_tokenizer(out: Path, device):
    from ..tokenizer import RVQVAE
    from ..weights import compact_configs

    ck = _latest(out / "tokenizer")
    if ck is None:
        raise FileNotFoundError(f"no tokenizer checkpoint in {out / 'tokenizer'}: train the tokenizer first")
    model = RVQVAE(compact_configs()[0]).to(device)
    model.load_state_dict(torch.load(ck, map_location=device, weights_only=False)["model"])
    with np.load(out / "tokenizer" / "stats.npz") as z:
        stats = {"mean": z["mean"], "std": z["std"]}
    return model.eval(), stats


def tokenize_corpus(corpus: Corpus, tokenizer, device) -> None:
    """Adds 'tokens' and 'tokens_mirrored' (L, 3) to every clip."""
    fpl = tokenizer.frames_per_latent
    with torch.no_grad():
        for c in corpus.clips:
            for key, out in (("feats", "tokens"), ("mirrored", "tokens_mirrored")):
                usable = c[key].shape[0] // fpl * fpl
                x = torch.as_tensor(corpus.normalised(c[key][:usable]), device=device)[None]
                c[out] = tokenizer.encode(x)[0].cpu().numpy() if usable else np.zeros((0, 3), np.int64)


def _generator_batch(clips, corpus: Corpus, cfg, batch: int, rng, cond_drop: float = 0.5):
    """Music (B, M, 7), style (B,), condition (B, 384, 264), tokens (B, n) local ids, mask (B, n)."""
    from ..choreollama import GENRES

    m, n_tok = cfg.music_len, cfg.dance_len
    lat = n_tok // 3
    music = np.zeros((batch, m, cfg.music_dim), np.float32)
    cond = np.zeros((batch, cfg.cond_len, FEATURE_DIM), np.float32)
    tokens = np.zeros((batch, n_tok), np.int64)
    mask = np.zeros((batch, n_tok), np.float32)
    style = np.zeros(batch, np.int64)
    usable = [c for c in clips if c["tokens"].shape[0] >= 4]
    for b in range(batch):
        c = usable[rng.integers(len(usable))]
        mirrored = rng.random() < 0.5
        toks = c["tokens_mirrored" if mirrored else "tokens"]
        feats = c["mirrored" if mirrored else "feats"]
        s = int(rng.integers(0, max(1, toks.shape[0] - lat + 1)))
        seg = toks[s:s + lat].reshape(-1)
        tokens[b, :seg.size] = seg
        mask[b, :seg.size] = 1.0
        mus = c["music"][4 * s:4 * s + m]
        music[b, :mus.shape[0]] = mus
        style[b] = GENRES.index(c["genre"])
        if rng.random() >= cond_drop:              # a reference: another stretch of the same dance
            r = int(rng.integers(0, max(1, feats.shape[0] - cfg.cond_len + 1)))
            ref = feats[r:r + cfg.cond_len]
            cond[b] = corpus.normalised(ref[np.arange(cfg.cond_len) % ref.shape[0]])
    return music, style, cond, tokens, mask


def train_generator(args) -> None:
    from ..choreollama import ChoreoLLaMA
    from ..weights import compact_configs

    out = Path(args.out)
    log = Log(out / "generator" / "train.log")
    device = _device(args.device)
    torch.set_num_threads(args.threads)
    tokenizer, stats = load_tokenizer(out, device)
    corpus = Corpus(build_dataset(log, args.dataset), stats)
    tokenize_corpus(corpus, tokenizer, device)
    cfg = compact_configs()[1]
    torch.manual_seed(0)
    model = ChoreoLLaMA(cfg).to(device)
    for p in model.parameters():
        if p.ndim >= 2:
            torch.nn.init.normal_(p, std=0.02)
    model.set_codebooks(torch.stack([tokenizer.codebook(g) for g in range(3)]).detach())
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95))
    step, rng = 0, np.random.default_rng(0)
    folder = out / "generator"
    if (state := _resume(folder, model, opt, device, log)) is not None:
        step, rng = state["step"], state["rng"]
    train = corpus.part("train")
    val = corpus.part("validation") or train
    t0, start_step = time.time(), step
    while step < args.steps:
        for group in opt.param_groups:
            group["lr"] = _cosine_lr(step, args.steps, args.lr)
        music, style, cond, tokens, mask = (torch.as_tensor(a, device=device) for a in
                                            _generator_batch(train, corpus, cfg, args.batch, rng))
        logits = model(music, style, cond, tokens)[:, cfg.music_len - 1:-1]
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1), reduction="none")
        loss = (ce * mask.reshape(-1)).sum() / mask.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 25 == 0:
            log(f"step {step} loss {loss.item():.4f} {(step - start_step) / (time.time() - t0):.2f} it/s")
        if step % args.ckpt_every == 0 or step == args.steps:
            with torch.no_grad():
                vm, vs, vc, vt, vk = (torch.as_tensor(a, device=device) for a in
                                      _generator_batch(val, corpus, cfg, 16, np.random.default_rng(1)))
                vl = model(vm, vs, vc, vt)[:, cfg.music_len - 1:-1]
                vce = F.cross_entropy(vl.reshape(-1, vl.shape[-1]), vt.reshape(-1), reduction="none")
                acc = ((vl.argmax(-1) == vt).float() * vk).sum() / vk.sum()
            log(f"step {step} validation loss {(vce * vk.reshape(-1)).sum().item() / vk.sum().item():.4f} "
                f"top-1 {acc.item():.3f}")
            _save(folder, step, model=model.state_dict(), opt=opt.state_dict(), rng=rng)


# ------------------------------------------------------------------------------------------ retrieval

def _retrieval_batch(clips, corpus: Corpus, batch: int, window: int, rng):
    music = np.zeros((batch, window, 7), np.float32)
    motion = np.zeros((batch, window, FEATURE_DIM), np.float32)
    for b in range(batch):
        c = clips[rng.integers(len(clips))]
        feats = c["mirrored"] if rng.random() < 0.5 else c["feats"]
        s = int(rng.integers(0, max(1, feats.shape[0] - window + 1)))
        idx = s + np.arange(window) % max(1, min(window, feats.shape[0] - s))
        motion[b] = feats[idx]                         # raw features, as the release feeds its motion encoder
        music[b] = c["music"][idx]
    return music, motion


def train_retrieval(args) -> None:
    from ..retrieval import RetrievalNet
    from ..weights import compact_configs

    out = Path(args.out) / "retrieval"
    log = Log(out / "train.log")
    device = _device(args.device)
    torch.set_num_threads(args.threads)
    corpus = Corpus(build_dataset(log, args.dataset))
    cfg = compact_configs()[2]
    torch.manual_seed(0)
    model = RetrievalNet(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=2e-5)
    step, rng = 0, np.random.default_rng(0)
    if (state := _resume(out, model, opt, device, log)) is not None:
        step, rng = state["step"], state["rng"]
    train = [c for c in corpus.part("train") if c["feats"].shape[0] >= 64]
    val = [c for c in corpus.part("validation") if c["feats"].shape[0] >= 64] or train
    t0, start_step = time.time(), step
    while step < args.steps:
        for group in opt.param_groups:
            group["lr"] = _cosine_lr(step, args.steps, args.lr, warmup=100)
        music, motion = (torch.as_tensor(a, device=device) for a in
                         _retrieval_batch(train, corpus, args.batch, cfg.max_len, rng))
        a, b = model.encode_music(music), model.encode_motion(motion)
        logits = model.logit_scale.exp().clamp(max=100) * a @ b.t()
        target = torch.arange(a.shape[0], device=device)
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
        step += 1
        if step % 25 == 0:
            log(f"step {step} loss {loss.item():.4f} {(step - start_step) / (time.time() - t0):.2f} it/s")
        if step % args.ckpt_every == 0 or step == args.steps:
            model.eval()
            with torch.no_grad():
                vm, vx = (torch.as_tensor(x, device=device) for x in
                          _retrieval_batch(val, corpus, 64, cfg.max_len, np.random.default_rng(1)))
                sim = model.encode_music(vm) @ model.encode_motion(vx).t()
                top1 = (sim.argmax(1) == torch.arange(64, device=device)).float().mean().item()
            model.train()
            log(f"step {step} validation music->motion top-1 of 64: {top1:.3f}")
            _save(out, step, model=model.state_dict(), opt=opt.state_dict(), rng=rng)


# ------------------------------------------------------------------------------------------ export

def export(args) -> Path:
    """The trained stages -> a compact weight set (safetensors + config + manifest) at ``args.dest``."""
    from ..choreollama import ChoreoLLaMA
    from ..retrieval import RetrievalNet
    from ..weights import compact_configs, write_weight_set

    out = Path(args.out)
    tok_cfg, gen_cfg, ret_cfg = compact_configs()
    tokenizer, stats = load_tokenizer(out, "cpu")
    gen_ck = _latest(out / "generator")
    if gen_ck is None:
        raise FileNotFoundError(f"no generator checkpoint in {out / 'generator'}")
    generator = ChoreoLLaMA(gen_cfg)
    generator.load_state_dict(torch.load(gen_ck, map_location="cpu", weights_only=False)["model"])
    ret_ck = _latest(out / "retrieval")
    retrieval_state = None
    if ret_ck is not None:
        model = RetrievalNet(ret_cfg)
        model.load_state_dict(torch.load(ret_ck, map_location="cpu", weights_only=False)["model"])
        retrieval_state = model.state_dict()
    half = lambda sd: {k: v.half() if v.is_floating_point() and args.fp16 else v for k, v in sd.items()}
    config = {"family": "compact", "name": "Choreo compact", "music_frontend": "rhythm",
              "retrieval_frontend": "rhythm", "motion_fps": 30.0, "licence": LICENCE,
              "source": f"trained by Choreo: tokenizer {_latest(out / 'tokenizer').name}, generator {gen_ck.name}"
                        + (f", retrieval {ret_ck.name}" if ret_ck else ""),
              "training_data": TRAINING_DATA,
              "music_features": "rhythm features at 30 fps: onset strength, smoothed onset, beat one-hot, sin/cos of "
                                "the beat phase, tempo / 120 bpm, tempogram bin 0 (core_models/audio.py)",
              "retrieval_motion_input": "raw",
              "tokenizer": tok_cfg.to_dict(), "generator": gen_cfg.to_dict(),
              "retrieval": ret_cfg.to_dict() if ret_ck else None}
    return write_weight_set(args.dest, config, half(tokenizer.state_dict()), half(generator.state_dict()),
                            {"mean": stats["mean"], "std": stats["std"], "rag_mean": stats["mean"],
                             "rag_std": stats["std"]}, half(retrieval_state) if retrieval_state else None)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m core_models.train.compact", description=__doc__.split("\n")[0])
    ap.add_argument("stage", choices=["data", "tokenizer", "generator", "retrieval", "export"])
    ap.add_argument("--out", default="runs/compact")
    ap.add_argument("--dest", default="core_models/assets/compact")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--window", type=int, default=64, help="tokenizer training window (frames)")
    ap.add_argument("--ckpt-every", type=int, default=250)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--fp16", action="store_true", help="export: store weights in float16 (half the size)")
    ap.add_argument("--dataset", help="a dataset .npz of the cached format instead of ../shared/data")
    args = ap.parse_args(argv)
    defaults = {"tokenizer": (6000, 64, 1e-3), "generator": (6000, 8, 5e-4), "retrieval": (2000, 32, 3e-4)}
    if args.stage in defaults:
        steps, batch, lr = defaults[args.stage]
        args.steps, args.batch, args.lr = args.steps or steps, args.batch or batch, args.lr or lr
    if args.stage == "data":
        build_dataset(override=args.dataset)
    elif args.stage == "tokenizer":
        train_tokenizer(args)
    elif args.stage == "generator":
        train_generator(args)
    elif args.stage == "retrieval":
        train_retrieval(args)
    else:
        print(f"weight set written to {export(args)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
