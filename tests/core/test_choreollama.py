# SPDX-License-Identifier: GPL-3.0-or-later
"""LLaMA backbone, Mamba scan, music bridge and window sampling of ChoreoLLaMA (tiny random models)."""
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core_models.choreollama import ChoreoLLaMA, GeneratorConfig, Mamba, associative_scan, band_split
from core_models.llama import Llama, LlamaConfig, rope_inverse_frequencies
from core_models.progress import Cancelled
from core_models.sampling import SamplingConfig


def tiny_llama(**kw):
    base = dict(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=16, intermediate=128, vocab_size=40)
    base.update(kw)
    return LlamaConfig(**base)


def tiny_generator(**kw):
    base = dict(llama=tiny_llama(vocab_size=4 + 8 * 3), music_dim=7, music_fps=30.0, music_len=24,
                dance_len=18, style_dim=4, cond_dim=264, cond_len=24, code_dim=16, nb_code=8,
                dance_token_start=4, bridge_heads=2, d_state=4, dt_rank=8)
    base.update(kw)
    return GeneratorConfig(**base)


def test_kv_cached_decoding_equals_full_forward():
    torch.manual_seed(0)
    model = Llama(tiny_llama()).eval()
    x = torch.randn(2, 21, 64)
    with torch.no_grad():
        full = model(x)
        model.setup_cache(2, 21)
        pre = model(x[:, :13], torch.arange(13))
        steps = [model(x[:, i:i + 1], torch.tensor([i])) for i in range(13, 21)]
        model.clear_cache()
    incremental = torch.cat([pre] + steps, dim=1)
    assert (incremental - full).abs().max().item() <= 1e-4
    # and the forward really is causal: changing a later input leaves earlier outputs alone
    y = x.clone()
    y[:, 15:] += 1.0
    with torch.no_grad():
        other = model(y)
    assert torch.allclose(other[:, :15], full[:, :15], atol=1e-6)
    assert not torch.allclose(other[:, 15:], full[:, 15:], atol=1e-3)


def test_llama3_rope_scaling_bands():
    cfg = LlamaConfig()
    inv = rope_inverse_frequencies(cfg)
    plain = 1.0 / (cfg.rope_theta ** (torch.arange(0, 64, 2, dtype=torch.float64) / 64))
    wavelen = 2 * torch.pi / plain
    high = wavelen < 8192 / 4            # short wavelengths are untouched
    low = wavelen > 8192 / 1             # long ones are divided by the factor
    assert torch.allclose(inv[high].double(), plain[high], rtol=1e-6)
    assert torch.allclose(inv[low].double(), plain[low] / 32, rtol=1e-6)
    mid = ~high & ~low
    assert mid.any() and (inv[mid].double() < plain[mid]).all() and (inv[mid].double() > plain[mid] / 32).all()


def test_grouped_query_attention_matches_repeated_kv_heads():
    torch.manual_seed(1)
    gqa = Llama(tiny_llama(n_kv_heads=2)).eval()
    mha = Llama(tiny_llama(n_kv_heads=4)).eval()
    sd = gqa.state_dict()
    for i in range(2):
        for name in ("k_proj", "v_proj"):
            w = sd[f"model.layers.{i}.self_attn.{name}.weight"].view(2, 16, 64)
            sd[f"model.layers.{i}.self_attn.{name}.weight"] = w.repeat_interleave(2, dim=0).reshape(64, 64)
    mha.load_state_dict(sd)
    x = torch.randn(1, 9, 64)
    with torch.no_grad():
        assert torch.allclose(gqa(x), mha(x), atol=1e-5)


def naive_selective_scan(mamba: Mamba, u):
    z, x, decay, inputs, c = mamba.ssm_inputs(u)
    h = torch.zeros_like(inputs[:, 0])
    ys = []
    for t in range(u.shape[1]):
        h = decay[:, t] * h + inputs[:, t]
        ys.append((h * c[:, t, None, :]).sum(-1) + x[:, t] * mamba.D)
    y = torch.stack(ys, dim=1)
    return mamba.out_proj(y * F.silu(z))


@pytest.mark.parametrize("length", [1, 5, 64, 320])
def test_mamba_scan_equals_naive_loop(length):
    torch.manual_seed(2)
    m = Mamba(32, d_state=8, d_conv=4, expand=2, dt_rank=4)
    with torch.no_grad():
        m.dt_proj.bias.uniform_(-3, 0.5)
        u = torch.randn(2, length, 32)
        assert (m(u) - naive_selective_scan(m, u)).abs().max().item() <= 1e-5


def test_mamba_is_causal():
    torch.manual_seed(3)
    m = Mamba(16, d_state=4, dt_rank=2)
    u = torch.randn(1, 30, 16)
    v = u.clone()
    v[:, 20:] = torch.randn(1, 10, 16)
    with torch.no_grad():
        assert torch.allclose(m(u)[:, :20], m(v)[:, :20], atol=1e-6)


def test_associative_scan_values():
    a = torch.tensor([[0.5, 0.5, 0.5, 0.5, 0.5]])
    b = torch.tensor([[1.0, 1.0, 1.0, 1.0, 1.0]])
    h = associative_scan(a, b)[0]
    assert torch.allclose(h, torch.tensor([1.0, 1.5, 1.75, 1.875, 1.9375]))


def test_band_split_official_bins_and_reconstruction():
    torch.manual_seed(4)
    x = torch.randn(1, 320, 3)
    low, high = band_split(x, 2)
    assert torch.allclose(low + high, x, atol=1e-5)
    spec_low = torch.fft.rfft(low, dim=1).abs().amax(dim=(0, 2))
    spec_high = torch.fft.rfft(high, dim=1).abs().amax(dim=(0, 2))
    assert spec_low[80:].max() < 1e-4 and spec_low[:80].min() > 0      # bins 0..79: f in [0, 7.5) Hz
    assert spec_high[:80].max() < 1e-4 and spec_high[80:].min() > 0


def _window_inputs(cfg, batch=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    music = torch.randn(batch, cfg.music_len, cfg.music_dim, generator=g)
    cond = torch.randn(batch, cfg.cond_len, cfg.cond_dim, generator=g)
    return music, torch.tensor([1] * batch), cond


def test_generate_window_reproducible_and_slot_ranges():
    torch.manual_seed(5)
    cfg = tiny_generator()
    model = ChoreoLLaMA(cfg).eval()
    model.set_codebooks(torch.randn(3, 8, 16))
    music, style, cond = _window_inputs(cfg, batch=2)
    prefix = torch.tensor([[1, 2, 3, 4, 5, 6]] * 2)
    s = SamplingConfig(temperature=1.0, top_k=5)
    a = model.generate_window(music, style, cond, prefix, 12, s, np.random.default_rng(42))
    b = model.generate_window(music, style, cond, prefix, 12, s, np.random.default_rng(42))
    c = model.generate_window(music, style, cond, prefix, 12, s, np.random.default_rng(43))
    assert a.shape == (2, 12) and torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() < 8
    assert model.llama.max_seq == 0           # the cache is released after the window


def test_generate_window_follows_the_logits_at_low_temperature():
    """With a near-greedy sampler the sampled ids are the argmax of a teacher-forced full forward."""
    torch.manual_seed(6)
    cfg = tiny_generator()
    model = ChoreoLLaMA(cfg).eval()
    model.set_codebooks(torch.randn(3, 8, 16))
    music, style, cond = _window_inputs(cfg)
    greedy = SamplingConfig(temperature=1e-4, top_k=1, repetition_penalty=1.0, max_repeat_slot0=10 ** 6,
                            max_repeat_other=10 ** 6, ngram_slot0=0)
    ids = model.generate_window(music, style, cond, None, 9, greedy)
    with torch.no_grad():
        logits = model(music, style, cond, ids)
    for i in range(9):
        lo, hi = cfg.slot_range(i % 3)
        expected = logits[0, cfg.music_len - 1 + i, lo:hi].argmax()
        assert ids[0, i].item() == expected.item()


def test_generate_window_cancel():
    cfg = tiny_generator()
    model = ChoreoLLaMA(cfg).eval()
    event = threading.Event()
    event.set()
    music, style, cond = _window_inputs(cfg)
    with pytest.raises(Cancelled):
        model.generate_window(music, style, cond, None, 96, SamplingConfig(), cancel=event)
    assert model.llama.max_seq == 0


def test_wrong_codebooks_are_rejected():
    model = ChoreoLLaMA(tiny_generator())
    with pytest.raises(ValueError, match="same weight set"):
        model.set_codebooks(torch.zeros(3, 8, 32))


def test_official_size_state_dict_names_and_parameter_counts():
    with torch.device("meta"):
        model = ChoreoLLaMA(GeneratorConfig())
    sd = model.state_dict()
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    assert shapes["llama.model.embed_tokens.weight"] == (5888, 2048)
    assert shapes["llama.lm_head.weight"] == (5888, 2048)
    assert shapes["llama.model.layers.15.self_attn.k_proj.weight"] == (512, 2048)
    assert shapes["music_bridge.input_proj.weight"] == (2048, 1352)
    assert shapes["music_bridge.specialized_experts.1.mamba.x_proj.weight"] == (160, 4096)
    assert shapes["music_bridge.universal_expert.transformer_attn.in_proj_weight"] == (6144, 2048)
    assert shapes["music_bridge.fusion_proj.weight"] == (2048, 6144)
    assert shapes["cond_projection.weight"] == (320, 384)
    assert shapes["style_embedding.weight"] == (6, 64)
    assert "codebooks" not in sd and not any("inv_freq" in k for k in sd)
    count = lambda prefix: sum(v.numel() for k, v in sd.items() if k.startswith(prefix))
    assert count("llama.") - 5888 * 2048 == 985_204_736       # lm_head is tied: counted once
    assert count("music_bridge.") == 150_325_248
    assert count("music_bridge.universal_expert.") == 47_425_536
    assert count("music_bridge.specialized_experts.0.") == 43_771_904
    assert count("music_bridge.universal_expert.mamba.") == 26_439_680
    assert count("dance_bridge.") == 6_295_552
