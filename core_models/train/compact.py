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
Those features describe pulse, not timbre, so they carry over to real recordings. The dataset, its cache and
its splits are :mod:`core_models.train.compact_data`'s; this module trains and exports.

Split: the FRDM held-out clips are the test set; CMU take 13 and ~5 % of the Bandai clips (by name hash)
validate; the rest trains (``splits/motion_split.json``, written once and kept in the repository).
Every stage is resumable (checkpoints under OUT/<stage>/), logs to OUT/<stage>/train.log, runs on CPU or
CUDA. Licence of the result: CC BY-NC 4.0 (follows from the Bandai Namco data).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..features import FEATURE_DIM, RIC
from .compact_data import Corpus, build_dataset

LICENCE = "CC BY-NC 4.0 (follows from the Bandai Namco Research Motion Dataset used in training)"
TRAINING_DATA = ("generator and RetrievalNet: dance only -- CMU mocap dance takes (Indian dance, breakdance, modern, "
                 "charleston / lindy hop, lambada, salsa, Michael-Jackson-styled, chicken dance, twist) with the "
                 "genres of their clips.tsv, CMU subjects 60/61 salsa (Latin) and the Bandai Namco dance clip "
                 "(Popular, CC BY-NC 4.0); mirrored and time-warped x0.8-1.25; tokenizer: the same plus every "
                 "Bandai Namco Research Motion Dataset 1+2 clip (CC BY-NC 4.0). Music synthesised from each "
                 "clip's kinematic beats. CMU data: mocap.cs.cmu.edu, created with funding from NSF EIA-0196217")



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

def _tokenizer_batch(clips, corpus: Corpus, batch: int, frames: int, rng, dance_share: float = 0.5) -> np.ndarray:
    """Windows of normalised features; ``dance_share`` of them from dance clips (the rest from any clip)."""
    out = np.zeros((batch, frames, FEATURE_DIM), np.float32)
    long_clips = [c for c in clips if c["feats"].shape[0] >= frames]
    dance = [c for c in long_clips if c["purpose"] == "dance"] or long_clips
    for b in range(batch):
        pool = dance if rng.random() < dance_share else long_clips
        c = pool[rng.integers(len(pool))]
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


def root_local_joints(x: torch.Tensor, mean, std) -> torch.Tensor:
    """(..., 264) normalised features -> (..., 22, 3) joints in the root's facing frame (root at height y)."""
    x = x * torch.as_tensor(std, dtype=x.dtype, device=x.device) + torch.as_tensor(mean, dtype=x.dtype, device=x.device)
    root = torch.zeros_like(x[..., :3])
    root[..., 1] = x[..., 0]
    return torch.cat([root[..., None, :], x[..., 5:5 + 63].reshape(*x.shape[:-1], 21, 3)], dim=-2)


def bone_length_loss(pred: torch.Tensor, target: torch.Tensor, mean, std) -> torch.Tensor:
    """Mean |bone length| difference in metres between decoded and true (normalised) features.

    Every training clip is retargeted to one skeleton, so true bone lengths are constant; penalising the
    decoder's deviation keeps decoded joints rigid enough for SMPL-X rotations to reproduce them."""
    from ..skeleton import default_skeleton

    parents = torch.as_tensor(default_skeleton(body_only=True).parents[1:])

    def joints(x):
        return root_local_joints(x, mean, std)

    def lengths(j):
        return (j[..., 1:, :] - j[..., parents, :]).norm(dim=-1)

    return (lengths(joints(pred)) - lengths(joints(target))).abs().mean()


def initial_weight_set(path: str | None):
    """A weight set to start training from (the shipped compact set, say), or None."""
    if not path:
        return None
    from ..weights import load_weight_set

    return load_weight_set(path, device="cpu", dtype="fp32")


def train_tokenizer(args) -> None:
    from ..tokenizer import RVQVAE
    from ..weights import compact_configs

    out = Path(args.out) / "tokenizer"
    log = Log(out / "train.log")
    device = _device(args.device)
    torch.set_num_threads(args.threads)
    init = initial_weight_set(args.init)
    stats = None if init is None else {"mean": init.mean, "std": init.std}
    corpus = Corpus(build_dataset(log, args.dataset), stats)
    np.savez(out / "stats.npz", mean=corpus.mean, std=corpus.std)
    cfg = compact_configs()[0]
    torch.manual_seed(0)
    model = RVQVAE(cfg).to(device)
    if init is not None:                       # fine-tune: keep the codebooks (and the Mean/Std) it has
        model.load_state_dict(init.tokenizer.state_dict())
        log(f"initialised from {args.init}")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=0.0)
    ema = [{"count": torch.ones(cfg.nb_code, device=device), "sum": layer.codebook.detach().clone(),
            "initialised": init is not None} for layer in model.quantizer.layers]
    step, rng = 0, np.random.default_rng(0)
    if (state := _resume(out, model, opt, device, log)) is not None:
        ema, step, rng = state["ema"], state["step"], state["rng"]
    train = corpus.part("train")
    val = corpus.part("validation", "dance", warped=False) or train
    frames = args.window
    t0 = time.time()
    while step < args.steps:
        for group in opt.param_groups:
            group["lr"] = _cosine_lr(step, args.steps, args.lr)
        x = torch.as_tensor(_tokenizer_batch(train, corpus, args.batch, frames, rng, args.dance_share), device=device)
        z = model.encode_latent(x)
        zq, commit, used = quantize_train(model, z, ema)
        y = model.decode_latent(zq)
        recon = F.smooth_l1_loss(y, x)
        vel = F.smooth_l1_loss(y[:, 1:] - y[:, :-1], x[:, 1:] - x[:, :-1])
        root = F.smooth_l1_loss(y[..., :5], x[..., :5])
        bones = bone_length_loss(y, x, corpus.mean, corpus.std)
        joints = F.smooth_l1_loss(y[..., RIC], x[..., RIC])        # what the keyed armature is fitted to
        loss = recon + 0.5 * vel + 0.5 * root + args.ric_weight * joints + 0.02 * commit + args.bone_weight * bones
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 50 == 0:
            log(f"step {step} loss {loss.item():.4f} recon {recon.item():.4f} vel {vel.item():.4f} "
                f"bones {bones.item() * 100:.2f} cm commit {commit.item():.4f} codes used {used} "
                f"{step / (time.time() - t0):.2f} it/s")
        if step % args.ckpt_every == 0 or step == args.steps:
            with torch.no_grad():
                xv = torch.as_tensor(_tokenizer_batch(val, corpus, 64, frames, np.random.default_rng(1)), device=device)
                yv = model(xv)
                err = F.l1_loss(yv, xv).item()
                bone_err = bone_length_loss(yv, xv, corpus.mean, corpus.std).item()
            log(f"step {step} validation L1 (normalised) {err:.4f} bone length error {bone_err * 100:.2f} cm")
            _save(out, step, model=model.state_dict(), opt=opt.state_dict(), ema=ema, rng=rng)


def rigidity_loss(pred: torch.Tensor, target: torch.Tensor, mean, std) -> torch.Tensor:
    """Root-mean-square difference (metres) of every distance that a rigid body keeps -- the bones and, at
    the pelvis and the chest, the distances between the joints of each cluster -- between decoded and true
    features. Squared, so the worst frames count most: they decide how far the keyed armature is off."""
    from ..skeleton import default_skeleton

    skel = default_skeleton(body_only=True)
    pairs = [(skel.parents[j], j) for j in range(1, skel.num_joints)]
    for j in range(skel.num_joints):
        members = [j] + skel.children(j)
        if len(members) >= 3:
            pairs += [(a, b) for i, a in enumerate(members) for b in members[i + 1:] if (a, b) not in pairs]
    a_idx = torch.as_tensor([a for a, _ in pairs])
    b_idx = torch.as_tensor([b for _, b in pairs])

    def distances(x):
        j = root_local_joints(x, mean, std)
        return (j[..., b_idx, :] - j[..., a_idx, :]).norm(dim=-1)

    return ((distances(pred) - distances(target)) ** 2).mean().sqrt()


def train_decoder(args) -> None:
    """Fine-tune only the tokenizer's decoders for rigid output (encoder and codebooks frozen, so every token
    keeps its meaning and a generator trained on the tokens stays valid). Saved as the next tokenizer
    checkpoint."""
    from ..tokenizer import RVQVAE
    from ..weights import compact_configs

    out = Path(args.out) / "tokenizer"
    log = Log(out / "train.log")
    device = _device(args.device)
    torch.set_num_threads(args.threads)
    ck = _latest(out)
    if ck is None:
        raise FileNotFoundError(f"no tokenizer checkpoint in {out}: train the tokenizer first")
    state = torch.load(ck, map_location=device, weights_only=False)
    model = RVQVAE(compact_configs()[0]).to(device)
    model.load_state_dict(state["model"])
    with np.load(out / "stats.npz") as z:
        corpus = Corpus(build_dataset(log, args.dataset), {"mean": z["mean"], "std": z["std"]})
    decoders = [m for m in (model.decoder, getattr(model, "vel_decoder", None)) if m is not None]
    for p in model.parameters():
        p.requires_grad_(False)
    params = [p for m in decoders for p in m.parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.99))
    train = corpus.part("train")
    val = corpus.part("validation", "dance", warped=False) or train
    rng = np.random.default_rng(int(state["step"]))
    first = int(state["step"])
    log(f"decoder fine-tune from {ck.name} for {args.steps} steps (rigidity weight {args.bone_weight})")
    t0 = time.time()
    for k in range(1, args.steps + 1):
        for group in opt.param_groups:
            group["lr"] = _cosine_lr(k, args.steps, args.lr, warmup=50)
        x = torch.as_tensor(_tokenizer_batch(train, corpus, args.batch, args.window, rng, args.dance_share),
                            device=device)
        with torch.no_grad():
            zq = model.quantizer.embed(model.encode(x))
        y = model.decode_latent(zq)
        recon = F.smooth_l1_loss(y, x)
        vel = F.smooth_l1_loss(y[:, 1:] - y[:, :-1], x[:, 1:] - x[:, :-1])
        rigid = rigidity_loss(y, x, corpus.mean, corpus.std)
        loss = recon + 0.5 * vel + args.bone_weight * rigid
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if k % 50 == 0:
            log(f"decoder step {k} loss {loss.item():.4f} recon {recon.item():.4f} rigidity {rigid.item() * 100:.2f} "
                f"cm {k / (time.time() - t0):.2f} it/s")
        if k % args.ckpt_every == 0 or k == args.steps:
            with torch.no_grad():
                xv = torch.as_tensor(_tokenizer_batch(val, corpus, 64, args.window, np.random.default_rng(1)),
                                     device=device)
                yv = model(xv)
                log(f"decoder step {k} validation L1 (normalised) {F.l1_loss(yv, xv).item():.4f} rigidity "
                    f"{rigidity_loss(yv, xv, corpus.mean, corpus.std).item() * 100:.2f} cm")
            _save(out, first + k, model=model.state_dict(), opt=state["opt"], ema=state["ema"], rng=state["rng"])


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


def tokenize_corpus(corpus: Corpus, tokenizer, device, purpose: str | None = None) -> None:
    """Adds 'tokens' and 'tokens_mirrored' (L, 3) to every clip (of ``purpose``, when given)."""
    fpl = tokenizer.frames_per_latent
    with torch.no_grad():
        for c in corpus.clips:
            if purpose is not None and c["purpose"] != purpose:
                continue
            for key, out in (("feats", "tokens"), ("mirrored", "tokens_mirrored")):
                usable = c[key].shape[0] // fpl * fpl
                x = torch.as_tensor(corpus.normalised(c[key][:usable]), device=device)[None]
                c[out] = tokenizer.encode(x)[0].cpu().numpy() if usable else np.zeros((0, 3), np.int64)


def clip_weights(clips: list[dict]) -> np.ndarray:
    """Sampling probabilities: by length within a genre, genres by the square root of their length (a genre
    of one long dancer does not drown the others, a short genre is still seen)."""
    frames = np.array([c["feats"].shape[0] for c in clips], np.float64)
    genres = [c["genre"] for c in clips]
    per_genre = {g: frames[[x == g for x in genres]].sum() for g in set(genres)}
    w = np.array([f / per_genre[g] * np.sqrt(per_genre[g]) for f, g in zip(frames, genres)])
    return w / w.sum()


def generator_config(window_tokens: int):
    """The compact generator with ``window_tokens`` dance tokens (and 4/3 as many music frames) per window."""
    from dataclasses import replace

    from ..weights import compact_configs

    cfg = compact_configs()[1]
    if window_tokens % 3:
        raise ValueError(f"window tokens must be a multiple of 3 (one latent = 3 tokens), got {window_tokens}")
    frames = window_tokens // 3 * 4
    return replace(cfg, dance_len=window_tokens, music_len=frames, cond_len=frames)


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
    weights = clip_weights(usable)
    for b in range(batch):
        c = usable[rng.choice(len(usable), p=weights)]
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

    out = Path(args.out)
    log = Log(out / "generator" / "train.log")
    device = _device(args.device)
    torch.set_num_threads(args.threads)
    tokenizer, stats = load_tokenizer(out, device)
    corpus = Corpus(build_dataset(log, args.dataset), stats)
    tokenize_corpus(corpus, tokenizer, device, purpose="dance")
    cfg = generator_config(args.window_tokens)
    torch.manual_seed(0)
    model = ChoreoLLaMA(cfg).to(device)
    for p in model.parameters():
        if p.ndim >= 2:
            torch.nn.init.normal_(p, std=0.02)
    if (init := initial_weight_set(args.init)) is not None:
        state = init.generator.state_dict()
        resized = [k for k, v in state.items() if k in model.state_dict() and model.state_dict()[k].shape != v.shape]
        model.load_state_dict({k: v for k, v in state.items() if k not in resized}, strict=False)
        if "cond_projection.weight" in resized:    # another window length: start as a plain time resampling
            with torch.no_grad():
                src = torch.linspace(0, cfg.cond_len - 1, cfg.music_len)
                lo = src.floor().long().clamp(max=cfg.cond_len - 2)
                frac = src - lo
                weight = torch.zeros(cfg.music_len, cfg.cond_len)
                weight[torch.arange(cfg.music_len), lo] = 1 - frac
                weight[torch.arange(cfg.music_len), lo + 1] += frac
                model.cond_projection.weight.copy_(weight)
                model.cond_projection.bias.zero_()
        log(f"initialised from {args.init}" + (f" (resized for the window: {', '.join(resized)})" if resized else ""))
    minutes = corpus.minutes_by_genre("train")
    log(f"window {cfg.dance_len} tokens ({cfg.music_len / 30:.1f} s); dance minutes per genre (train, before "
        f"augmentation): {minutes}")
    model.set_codebooks(torch.stack([tokenizer.codebook(g) for g in range(3)]).detach())
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95))
    step, rng = 0, np.random.default_rng(0)
    folder = out / "generator"
    if (state := _resume(folder, model, opt, device, log)) is not None:
        step, rng = state["step"], state["rng"]
    train = corpus.part("train", "dance")
    val = corpus.part("validation", "dance", warped=False) or train
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
            _save(folder, step, model=model.state_dict(), opt=opt.state_dict(), rng=rng, config=cfg.to_dict(),
                  minutes=minutes)


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
    if (init := initial_weight_set(args.init)) is not None and init.retrieval is not None:
        model.load_state_dict(init.retrieval.state_dict())
        log(f"initialised from {args.init}")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=2e-5)
    step, rng = 0, np.random.default_rng(0)
    if (state := _resume(out, model, opt, device, log)) is not None:
        step, rng = state["step"], state["rng"]
    train = [c for c in corpus.part("train", "dance") if c["feats"].shape[0] >= 64]
    val = [c for c in corpus.part("validation", "dance", warped=False) if c["feats"].shape[0] >= 64] or train
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
    gen_state = torch.load(gen_ck, map_location="cpu", weights_only=False)
    if "config" in gen_state:                  # the window length it was trained with
        gen_cfg = type(gen_cfg).from_dict(gen_state["config"])
    generator = ChoreoLLaMA(gen_cfg)
    generator.load_state_dict(gen_state["model"])
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
              # Genres the generator was trained on, with minutes of original dance in each (before mirroring
              # and tempo augmentation); generate() refuses the others unless asked.
              "trained_genres": gen_state.get("minutes", {}),
              # Decoded features are smoothed over this many frames (a Gaussian): the decoder's frame-to-frame
              # noise otherwise doubles the jitter of real dance (2 frames: Latin jitter 27.7 -> 14.9, FID-k
              # 256 -> 204, BAS within 0.005).
              "decode_smoothing_frames": args.decode_smoothing,
              "tokenizer": tok_cfg.to_dict(), "generator": gen_cfg.to_dict(),
              "retrieval": ret_cfg.to_dict() if ret_ck else None}
    return write_weight_set(args.dest, config, half(tokenizer.state_dict()), half(generator.state_dict()),
                            {"mean": stats["mean"], "std": stats["std"], "rag_mean": stats["mean"],
                             "rag_std": stats["std"]}, half(retrieval_state) if retrieval_state else None)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m core_models.train.compact", description=__doc__.split("\n")[0])
    ap.add_argument("stage", choices=["data", "tokenizer", "decoder", "generator", "retrieval", "export"])
    ap.add_argument("--out", default="runs/compact")
    ap.add_argument("--dest", default="core_models/assets/compact")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--window", type=int, default=64, help="tokenizer training window (frames)")
    ap.add_argument("--window-tokens", type=int, default=240, help="generator window (dance tokens; 3 per latent)")
    ap.add_argument("--init", help="a weight-set folder to start from (fine-tuning), e.g. core_models/assets/compact")
    ap.add_argument("--dance-share", type=float, default=0.7, help="tokenizer: share of windows from dance clips")
    ap.add_argument("--ric-weight", type=float, default=1.0,
                    help="tokenizer: extra weight of the root-relative joint positions (the pose the armature shows)")
    ap.add_argument("--bone-weight", type=float, default=1.0,
                    help="tokenizer: weight of the bone-length loss (m); the decoder stage's rigidity weight")
    ap.add_argument("--ckpt-every", type=int, default=250)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--decode-smoothing", type=float, default=2.0,
                    help="export: Gaussian smoothing (frames) of the decoded features, recorded in the set's config")
    ap.add_argument("--fp16", action="store_true", help="export: store weights in float16 (half the size)")
    ap.add_argument("--dataset", help="a dataset .npz of the cached format instead of ../shared/data")
    args = ap.parse_args(argv)
    # the shipped set's recipe (tokenizer 5,000 steps; generator 1,750: its validation loss rises after)
    defaults = {"tokenizer": (5000, 64, 1e-3), "decoder": (1000, 64, 2e-4), "generator": (1750, 8, 5e-4), "retrieval": (2000, 32, 3e-4)}
    if args.stage in defaults:
        steps, batch, lr = defaults[args.stage]
        args.steps, args.batch, args.lr = args.steps or steps, args.batch or batch, args.lr or lr
    if args.stage == "data":
        build_dataset(override=args.dataset)
    elif args.stage == "tokenizer":
        train_tokenizer(args)
    elif args.stage == "decoder":
        train_decoder(args)
    elif args.stage == "generator":
        train_generator(args)
    elif args.stage == "retrieval":
        train_retrieval(args)
    else:
        print(f"weight set written to {export(args)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
