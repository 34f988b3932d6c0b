# SPDX-License-Identifier: GPL-3.0-or-later
"""ChoreoLLaMA generation speed; prints JSON (and writes benchmarks/results/generate.json).

Random weights (speed does not depend on the values). For each configuration:
  prefill_s          one window's prefill: music bridge + LLaMA over [music ; 60 prefix tokens]
  token_ms           per-token latency of the KV-cached decode step incl. sampling (batch 1)
  frames_per_s       motion frames per second of sampling (4 frames = 3 tokens; one prefill per 228 tokens)
  baseline_token_ms  the same step without a KV cache (the whole window recomputed per token), measured in
                     the same run; ratio = baseline_token_ms / token_ms
  pipeline           (compact only) generate() end to end on 60 s of music features: frames/s incl. decoding
                     and IK
Configurations: "official" (LLaMA-3.2-1B backbone, MuQ bridge, 3x512x1024 RVQ) and "compact" (the shipped
family's sizes), on CPU; on CUDA when available (official in bf16, the goal is >= 1,000 frames/s at batch 1).

Usage: python benchmarks/generate.py [--tokens N] [--threads N] [--skip-official]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core_models.choreollama import ChoreoLLaMA, GeneratorConfig  # noqa: E402
from core_models.sampling import SamplingConfig, sample_slot  # noqa: E402
from core_models.weights import compact_configs, random_weight_set  # noqa: E402

PREFIX = 60


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def build(cfg: GeneratorConfig, device, dtype) -> ChoreoLLaMA:
    torch.manual_seed(0)
    with torch.device(device):
        model = ChoreoLLaMA(cfg)
    for p in model.parameters():
        if p.ndim >= 2:
            torch.nn.init.normal_(p, std=0.02)
    model = model.to(dtype).eval()
    model.set_codebooks(torch.randn(cfg.num_quantizers, cfg.nb_code, cfg.code_dim, device=device))
    return model


@torch.no_grad()
def measure(cfg: GeneratorConfig, device, dtype, tokens: int, baseline_tokens: int, repeats: int = 3) -> dict:
    model = build(cfg, device, dtype)
    g = np.random.default_rng(0)              # the shared numpy sampler's random stream
    music = torch.randn(1, cfg.music_len, cfg.music_dim, device=device, dtype=dtype)
    cond = torch.randn(1, cfg.cond_len, cfg.cond_dim, device=device, dtype=dtype)
    style = torch.tensor([1], device=device)
    prefix = torch.randint(0, cfg.nb_code, (1, PREFIX), device=device)
    sampling = SamplingConfig()
    # warm-up (allocator, kernels)
    model.generate_window(music, style, cond, prefix, 6, sampling, g)
    _sync(device)

    def timed(n: int) -> float:
        """Fastest of a few windows of n new tokens (the difference of two single runs can go negative when
        the prefill alone varies by more than the tokens take, as the official size's does on a CPU)."""
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            model.generate_window(music, style, cond, prefix, n, sampling, g)
            _sync(device)
            best = min(best, time.perf_counter() - t)
        return best

    prefill = timed(1)                                                        # prefill + first sample
    token_s = max(timed(1 + tokens) - prefill, 1e-9) / tokens

    # Baseline: no KV cache, the whole window so far recomputed for every token.
    embeds = torch.cat([model.music_embeddings(music, style, cond), model.embed_tokens(prefix)], dim=1)
    history = torch.zeros(1, 0, dtype=torch.long, device=device)
    _sync(device)
    t = time.perf_counter()
    for i in range(baseline_tokens):
        lo, hi = cfg.slot_range(i % 3)
        logits = model.llama.logits(model.llama(embeds)[:, -1], lo, hi)
        tok = torch.as_tensor(sample_slot(logits.float().cpu().numpy(), history.cpu().numpy(), i % 3, sampling, g),
                              device=device)
        embeds = torch.cat([embeds, model.dance_bridge(model.codebooks[i % 3][tok])[:, None]], dim=1)
    _sync(device)
    baseline_s = (time.perf_counter() - t) / baseline_tokens

    new_per_window = cfg.dance_len - PREFIX
    window_s = prefill + new_per_window * token_s
    frames_per_s = new_per_window / cfg.num_quantizers * 4 / window_s
    params = sum(p.numel() for p in model.parameters())
    del model
    return {"params": params, "device": str(device), "dtype": str(dtype).replace("torch.", ""), "batch": 1,
            "prefill_s": round(prefill, 4), "token_ms": round(1000 * token_s, 3),
            "tokens_per_s": round(1 / token_s, 1), "frames_per_s": round(frames_per_s, 1),
            "baseline_token_ms": round(1000 * baseline_s, 3), "kv_cache_speedup": round(baseline_s / token_s, 2),
            "measured_tokens": tokens}


def pipeline_compact(seconds: float = 60.0) -> dict:
    from core_models.generation import MusicFeatures, generate
    from core_models.weights import load_weight_set

    tok, gen, ret = compact_configs()
    with tempfile.TemporaryDirectory() as tmp:
        ws = load_weight_set(random_weight_set(Path(tmp) / "compact", "compact", tok, gen, ret), device="cpu")
        music = np.random.default_rng(0).normal(size=(int(seconds * 30), 7)).astype(np.float32)
        res = generate(MusicFeatures(music), "Popular", weights=ws, references=None)
    t = res.timings
    return {"seconds_of_music": seconds, "frames": res.num_frames, "generate_s": round(t["generate_s"], 3),
            "decode_s": round(t["decode_s"], 3), "ik_s": round(t["ik_s"], 3),
            "frames_per_s_sampling_and_decoding": round(t["frames_per_s"], 1),
            "frames_per_s_end_to_end": round(res.num_frames / (t["generate_s"] + t["decode_s"] + t["ik_s"]), 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=48, help="decode steps timed per configuration")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--skip-official", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    _, compact, _ = compact_configs()
    official = GeneratorConfig()
    cpu = torch.device("cpu")
    out = {"machine": {"platform": platform.platform(), "cpu_threads": torch.get_num_threads(),
                       "torch": torch.__version__, "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available()
                       else None}, "results": {}}
    out["results"]["compact_cpu_fp32"] = measure(compact, cpu, torch.float32, args.tokens, 12)
    out["results"]["compact_pipeline_cpu"] = pipeline_compact()
    if not args.skip_official:
        out["results"]["official_cpu_fp32"] = measure(official, cpu, torch.float32, max(12, args.tokens // 4), 2, repeats=2)
    if torch.cuda.is_available():
        gpu = torch.device("cuda")
        out["results"]["compact_cuda_fp32"] = measure(compact, gpu, torch.float32, args.tokens * 4, 24)
        out["results"]["official_cuda_bf16"] = measure(official, gpu, torch.bfloat16, args.tokens * 4, 24)
        out["results"]["official_cuda_bf16"]["goal_frames_per_s"] = 1000
    text = json.dumps(out, indent=2)
    print(text)
    (REPO / "benchmarks" / "results").mkdir(exist_ok=True)
    (REPO / "benchmarks" / "results" / "generate.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
