# SPDX-License-Identifier: GPL-3.0-or-later
"""Every GPU measurement in one call (well under 8 minutes on an H100/H200-class GPU); prints JSON.

    python benchmarks/gpu.py [--out results.json] [--budget-s 420] [--skip-compile]

Sections (each prints one JSON line as soon as it is done, and the whole document at the end, so a run cut
short still shows what it measured):
  device      name, memory, the memory bandwidth measured with a large device-to-device copy, and the nominal one
  official    LLaMA-3.2-1B backbone + music bridge at the release's sizes, random weights, bf16, static KV cache,
              on-device sampling: prefill_ms (music bridge + LLaMA over 320 + 60 positions), token_ms (one decode
              step incl. sampling), decode frames/s (4 motion frames per 3 tokens) and window frames/s (prefill
              included) at batch 1, 8 and 16; eager, then with the decode step compiled
              (torch.compile mode="reduce-overhead": a CUDA graph), peak memory
  bandwidth   bytes a decode step must read (LLaMA weights + the KV cache) and the frames/s that the measured
              bandwidth allows at batch 1; ratio = achieved / that limit
  agreement   the same seed on CPU (fp32, host sampler) and CUDA (fp32 and bf16, device sampler) on a small
              official-layout model: share of equal tokens
  compact     the shipped compact set on CUDA (torch), frames/s at batch 1 and 16; ONNX Runtime CUDA when
              onnxruntime-gpu is installed
  frdm        seconds for FRDM to fix 1,024 frames on CUDA (shipped weights, default steps)
The goals (issue 16): >= 2,000 frames/s at batch 1 in bf16, >= 20,000 frames/s in total at batch 16,
FRDM <= 0.1 s per 1,024 frames.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core_models.choreollama import ChoreoLLaMA, GeneratorConfig  # noqa: E402
from core_models.llama import LlamaConfig  # noqa: E402
from core_models.sampling import SamplingConfig  # noqa: E402

PREFIX = 60
NOMINAL_TBPS = {"H200": 4.8, "H100 SXM": 3.35, "H100 PCIe": 2.0, "H100": 3.35, "A100-SXM4-80GB": 2.04,
                "A100": 1.55, "L40S": 0.864, "A10G": 0.6, "RTX 4090": 1.01}
RESULTS: dict = {}
T0 = time.perf_counter()
DEV = "cuda"          # --smoke-cpu: every section on the CPU at tiny sizes, to check the script without a GPU
SMOKE = False


def emit(section: str, value) -> None:
    RESULTS[section] = value
    print(json.dumps({section: value}), flush=True)


def elapsed() -> float:
    return time.perf_counter() - T0


def sync():
    if DEV == "cuda":
        torch.cuda.synchronize()


def peak_gib():
    return round(torch.cuda.max_memory_allocated() / 2 ** 30, 2) if DEV == "cuda" else None


def official_config() -> GeneratorConfig:
    if SMOKE:
        return GeneratorConfig(llama=LlamaConfig(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=16,
                                                 intermediate=128), code_dim=16, d_state=4, dt_rank=4)
    return GeneratorConfig()


def device_info() -> dict:
    if DEV != "cuda":
        return {"name": "cpu (smoke run)", "copy_bandwidth_tbps": 0.01, "torch": torch.__version__}
    props = torch.cuda.get_device_properties(0)
    n = 1 << 28                                                 # 1 GiB of fp32
    a = torch.empty(n, device="cuda")
    b = torch.empty_like(a)
    b.copy_(a)
    sync()
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        b.copy_(a)
        sync()
        best = min(best, time.perf_counter() - t)
    del a, b
    torch.cuda.empty_cache()
    nominal = next((v for k, v in NOMINAL_TBPS.items() if k.lower() in props.name.lower()), None)
    return {"name": props.name, "memory_gib": round(props.total_memory / 2 ** 30, 1),
            "copy_bandwidth_tbps": round(2 * n * 4 / best / 1e12, 3),       # read + write
            "nominal_bandwidth_tbps": nominal, "torch": torch.__version__, "cuda": torch.version.cuda}


def build(cfg: GeneratorConfig, dtype, device=None, seed=0) -> ChoreoLLaMA:
    device = device or DEV
    torch.manual_seed(seed)
    with torch.device(device):
        model = ChoreoLLaMA(cfg)
        for p in model.parameters():
            if p.ndim >= 2:
                torch.nn.init.normal_(p, std=0.02)
        model.set_codebooks(torch.randn(cfg.num_quantizers, cfg.nb_code, cfg.code_dim))
    return model.to(dtype).eval()


def window_inputs(cfg: GeneratorConfig, batch: int, dtype, device=None, seed=0):
    device = device or DEV
    g = torch.Generator(device="cpu").manual_seed(seed)
    music = torch.randn(1, cfg.music_len, cfg.music_dim, generator=g).expand(batch, -1, -1)
    cond = torch.randn(1, cfg.cond_len, cfg.cond_dim, generator=g).expand(batch, -1, -1)
    prefix = torch.randint(0, cfg.nb_code, (1, PREFIX), generator=g).expand(batch, -1)
    return (music.to(device, dtype), torch.tensor([1] * batch, device=device), cond.to(device, dtype),
            prefix.to(device))


@torch.no_grad()
def time_windows(model, cfg, batch, dtype, tokens: int, repeats: int = 3) -> dict:
    """Fastest of ``repeats`` windows of 3 and of 3 + ``tokens`` new tokens; per-token = their difference."""
    music, style, cond, prefix = window_inputs(cfg, batch, dtype)
    sampling = SamplingConfig()
    seeds = list(range(batch))

    def run(n):
        best = float("inf")
        for _ in range(repeats):
            sync()
            t = time.perf_counter()
            model.generate_window(music, style, cond, prefix, n, sampling, seeds, sampler="device")
            sync()
            best = min(best, time.perf_counter() - t)
        return best

    run(3 + tokens)                                     # warm-up (kernels, compile, graph capture)
    short, full = run(3), run(3 + tokens)
    token_s = (full - short) / tokens
    window_tokens = cfg.dance_len - PREFIX
    window_s = short + token_s * (window_tokens - 3)
    if token_s <= 0:                                    # timing noise larger than the tokens (CPU smoke runs)
        return {"batch": batch, "prefill_ms": round(short * 1e3, 2), "token_ms": None,
                "decode_frames_per_s": None, "window_frames_per_s": None}
    return {"batch": batch, "prefill_ms": round(short * 1e3, 2), "token_ms": round(token_s * 1e3, 3),
            "decode_frames_per_s": round(batch * 4 / 3 / token_s, 1),
            "window_frames_per_s": round(batch * window_tokens * 4 / 3 / window_s, 1)}


def official(args) -> None:
    cfg = official_config()
    if DEV == "cuda":
        torch.cuda.reset_peak_memory_stats()
    model = build(cfg, torch.bfloat16)
    llama_params = sum(p.numel() for p in model.llama.parameters())
    rows = {}
    for batch in (1, 8, 16):
        rows[f"eager_b{batch}"] = time_windows(model, cfg, batch, torch.bfloat16, args.tokens)
        emit("official", {"dtype": "bf16", **rows, "peak_memory_gib": peak_gib()})
    if not args.skip_compile and elapsed() < args.budget_s * 0.45:
        try:
            t = time.perf_counter()
            model.compile_decode()
            for batch in (1, 16):
                rows[f"compiled_b{batch}"] = time_windows(model, cfg, batch, torch.bfloat16, args.tokens)
                model.llama.clear_cache()
            rows["compile_and_measure_s"] = round(time.perf_counter() - t, 1)
        except Exception as exc:                          # report, keep the eager numbers
            rows["compiled_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        finally:
            model.eager_decode()
    else:
        rows["compiled"] = "skipped (--skip-compile or time budget)"
    emit("official", {"dtype": "bf16", **rows, "peak_memory_gib": peak_gib()})

    # The memory-bandwidth limit of one decode step at batch 1: every LLaMA weight read once (the tied head
    # once, restricted to one slot's 512 rows, but count it whole), plus the KV cache of a full window.
    llama = cfg.llama
    kv = 2 * llama.n_layers * llama.n_kv_heads * (cfg.music_len + cfg.dance_len) * llama.head_dim * 2
    step_bytes = llama_params * 2 + kv
    bw = RESULTS["device"]["copy_bandwidth_tbps"] * 1e12
    limit_fps = bw / step_bytes * 4 / 3
    best = max((r["decode_frames_per_s"] or 0.0 for r in rows.values() if isinstance(r, dict) and r["batch"] == 1))
    emit("bandwidth", {"llama_params": llama_params, "bytes_per_step": step_bytes,
                       "limit_token_ms": round(step_bytes / bw * 1e3, 3), "limit_frames_per_s_b1": round(limit_fps, 1),
                       "best_frames_per_s_b1": best, "ratio": round(best / limit_fps, 3),
                       "goals": {"b1_frames_per_s": 2000, "b16_total_frames_per_s": 20000}})
    del model
    if DEV == "cuda":
        torch.cuda.empty_cache()


@torch.no_grad()
def agreement() -> None:
    """Same seed, CPU fp32 host sampler vs CUDA fp32 / bf16 device sampler, small official-layout model."""
    llama = LlamaConfig(dim=256, n_layers=4, n_heads=4, n_kv_heads=2, head_dim=64, intermediate=512,
                        vocab_size=4096 + 512 * 3 + 256)
    cfg = official_config() if SMOKE else GeneratorConfig(llama=llama, code_dim=64, d_state=8, dt_rank=16)
    out = {}
    cpu = build(cfg, torch.float32, "cpu")
    sampling = SamplingConfig()
    music, style, cond, prefix = window_inputs(cfg, 4, torch.float32, "cpu")
    ref = cpu.generate_window(music, style, cond, prefix, 96, sampling, [11, 12, 13, 14], sampler="host")
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        gpu = build(cfg, torch.float32, "cpu")
        gpu.load_state_dict(cpu.state_dict())
        gpu.set_codebooks(cpu.codebooks)
        gpu = gpu.to(DEV, dtype)
        m, s, c, p = (t.to(DEV) for t in (music, style, cond, prefix))
        toks = gpu.generate_window(m.to(dtype), s, c.to(dtype), p, 96, sampling, [11, 12, 13, 14], sampler="device")
        same = (toks.cpu() == ref)
        first = [int(r.nonzero()[0]) if r.any() else 96 for r in ~same]
        out[name] = {"equal_share": round(same.float().mean().item(), 3), "first_difference_per_take": first}
    emit("agreement", out)


@torch.no_grad()
def compact() -> None:
    from core_models.weights import load_weight_set

    out = {}
    ws = load_weight_set(REPO / "core_models/assets/compact", device=DEV, dtype="fp32")
    cfg = ws.generator.cfg
    for batch in (1, 16):
        music, style, cond, _ = window_inputs(cfg, batch, torch.float32)
        prefix = torch.randint(0, cfg.nb_code, (batch, 24), device=DEV)
        n = cfg.dance_len - 24
        ws.generator.generate_window(music, style, cond, prefix, n, SamplingConfig(), list(range(batch)))
        sync()
        t = time.perf_counter()
        for _ in range(3):
            ws.generator.generate_window(music, style, cond, prefix, n, SamplingConfig(), list(range(batch)))
        sync()
        out[f"torch_{DEV}_b{batch}_frames_per_s"] = round(3 * batch * n * 4 / 3 / (time.perf_counter() - t), 1)
    try:
        import onnxruntime as ort

        providers = ort.get_available_providers()
        out["onnxruntime_providers"] = providers
        if "CUDAExecutionProvider" in providers and DEV == "cuda":
            from core_models.onnx_backend import load_onnx_weight_set

            ows = load_onnx_weight_set(REPO / "core_models/assets/compact", device="cuda")
            rng = np.random.default_rng(0)
            m = rng.normal(size=(cfg.music_len, cfg.music_dim)).astype(np.float32)
            c = rng.normal(size=(cfg.cond_len, cfg.cond_dim)).astype(np.float32)
            n = cfg.dance_len - 24
            ows.sample_window(m, 1, c, np.zeros(24, np.int64), n, SamplingConfig(), rng)
            t = time.perf_counter()
            for _ in range(3):
                ows.sample_window(m, 1, c, np.zeros(24, np.int64), n, SamplingConfig(), rng)
            out["onnx_cuda_b1_frames_per_s"] = round(3 * n * 4 / 3 / (time.perf_counter() - t), 1)
            out["onnx_vs_torch_b1"] = round(out["onnx_cuda_b1_frames_per_s"] / out["torch_cuda_b1_frames_per_s"], 3)
        else:
            out["onnx_cuda"] = "onnxruntime-gpu not installed (no CUDAExecutionProvider)"
    except ImportError:
        out["onnx_cuda"] = "onnxruntime not installed"
    emit("compact", out)


def frdm_section() -> None:
    from core_models import footfix

    sys.path.insert(0, str(REPO / "tests"))
    from motion_fixture import make_dance          # a synthesised dance (the sampler's cost does not depend on it)

    joints = make_dance(frames=1024)[3]
    w = footfix.load_frdm_weights(REPO / "core_models/assets/frdm", DEV)
    footfix.fix_feet(joints, method="frdm", weights=w)                      # warm-up
    sync()
    times = []
    for _ in range(3):
        s = time.perf_counter()
        footfix.fix_feet(joints, method="frdm", weights=w)
        sync()
        times.append(time.perf_counter() - s)
    emit("frdm", {"frames": 1024, "seconds": round(float(np.median(times)), 4), "goal_s": 0.1})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--budget-s", type=float, default=420.0, help="time budget; later sections are skipped")
    parser.add_argument("--tokens", type=int, default=96, help="decode steps timed per window")
    parser.add_argument("--skip-compile", action="store_true")
    parser.add_argument("--smoke-cpu", action="store_true", help="check the script on the CPU at tiny sizes")
    args = parser.parse_args()
    global DEV, SMOKE
    if args.smoke_cpu:
        DEV, SMOKE, args.skip_compile, args.tokens = "cpu", True, True, min(args.tokens, 12)
    elif not torch.cuda.is_available():
        print(json.dumps({"error": "no CUDA device: this benchmark measures the GPU only"}))
        return 1
    sections = [("device", lambda: emit("device", device_info())), ("official", lambda: official(args)),
                ("agreement", agreement), ("compact", compact), ("frdm", frdm_section)]
    for name, fn in sections:
        if elapsed() > args.budget_s:
            emit(name, "skipped: time budget spent")
            continue
        try:
            fn()
        except Exception as exc:
            emit(name, {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc(limit=4)[-1500:]})
    RESULTS["total_s"] = round(elapsed(), 1)
    text = json.dumps(RESULTS, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
