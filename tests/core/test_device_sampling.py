# SPDX-License-Identifier: GPL-3.0-or-later
"""The torch sampler (no host round trip per token) against the numpy one, and several takes in one pass.

Run here on the CPU: the device path is the same torch code on CUDA, where it avoids a host sync per token.
"""
import numpy as np
import pytest
import torch

from core_models import device_sampling
from core_models.choreollama import ChoreoLLaMA, GeneratorConfig
from core_models.llama import LlamaConfig
from core_models.sampling import SamplingConfig, sample_slot

CONFIGS = [SamplingConfig(), SamplingConfig(temperature=1.3, top_k=40, top_p=0.7, max_repeat_slot0=2,
                                            max_repeat_other=3, ngram_slot0=2, boost_max_distinct=3),
           SamplingConfig(top_k=1), SamplingConfig(top_p=1.0, repetition_penalty=1.0, ngram_slot0=0)]


@pytest.mark.parametrize("cfg", CONFIGS, ids=["release", "strict", "greedy", "plain"])
def test_torch_sampler_draws_what_the_numpy_sampler_draws(cfg):
    rng = np.random.default_rng(0)
    vocab, batch = 24, 7
    for trial in range(40):
        slot = trial % 3
        n = int(rng.integers(0, 30))
        logits = rng.normal(0, 3, (batch, vocab)).astype(np.float32)
        logits[0, :5] = logits[0, 5]                                          # ties
        history = rng.integers(0, 4 if trial % 2 else vocab, (batch, n))      # repetitive or varied
        if n >= 6:
            history[1, -6:] = 3                                               # triggers the temperature boost
        seed = 1000 + trial
        expected = sample_slot(logits, history, slot, cfg, np.random.default_rng(seed))
        u = torch.as_tensor(np.random.default_rng(seed).random(batch))
        got = device_sampling.sample_slot(torch.as_tensor(logits), torch.as_tensor(history), slot, cfg, u)
        assert got.dtype == torch.int64 and got.tolist() == expected.tolist(), (trial, n, slot)


def test_every_id_banned_draws_uniformly_like_the_numpy_sampler():
    cfg = SamplingConfig(max_repeat_other=1)
    history = np.tile(np.arange(8), (3, 1))                 # every id of the slot seen: all banned
    logits = np.zeros((3, 8), np.float32)
    expected = sample_slot(logits, history, 1, cfg, np.random.default_rng(4))
    got = device_sampling.sample_slot(torch.zeros(3, 8), torch.as_tensor(history), 1, cfg,
                                      torch.as_tensor(np.random.default_rng(4).random(3)))
    assert got.tolist() == expected.tolist()


def tiny_model(seed=0):
    torch.manual_seed(seed)
    llama = LlamaConfig(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=16, intermediate=128,
                        vocab_size=4 + 8 * 3)
    cfg = GeneratorConfig(llama=llama, music_dim=7, music_fps=30.0, music_len=24, dance_len=30, style_dim=4,
                          cond_dim=264, cond_len=24, code_dim=16, nb_code=8, dance_token_start=4, bridge_heads=8,
                          bridge_hidden=40, d_state=4, dt_rank=8)
    model = ChoreoLLaMA(cfg).eval()
    for p in model.parameters():
        if p.ndim >= 2:
            torch.nn.init.normal_(p, std=0.3)
    model.set_codebooks(torch.randn(3, 8, 16))
    return model


def inputs(batch, seed=1):
    g = torch.Generator().manual_seed(seed)
    music = torch.randn(1, 24, 7, generator=g).expand(batch, -1, -1)
    cond = torch.randn(1, 24, 264, generator=g).expand(batch, -1, -1)
    return music, torch.tensor([2] * batch), cond


def test_device_and_host_samplers_give_the_same_window():
    model = tiny_model()
    music, style, cond = inputs(3)
    prefix = torch.tensor([[1, 2, 3, 4, 5, 6]] * 3)
    host = model.generate_window(music, style, cond, prefix, 24, SamplingConfig(), 42, sampler="host")
    device = model.generate_window(music, style, cond, prefix, 24, SamplingConfig(), 42, sampler="device")
    assert torch.equal(host, device)
    assert len({tuple(r) for r in host.tolist()}) > 1          # the rows draw different numbers of one stream


@pytest.mark.parametrize("sampler", ["host", "device"])
def test_takes_batched_in_one_pass_equal_the_single_takes(sampler):
    model = tiny_model()
    seeds = [5, 9, 5]
    music, style, cond = inputs(3)
    batched = model.generate_window(music, style, cond, None, 24, SamplingConfig(), seeds, sampler=sampler)
    one, _, _ = inputs(1)
    singles = [model.generate_window(one, style[:1], cond[:1], None, 24, SamplingConfig(), s, sampler=sampler)[0]
               for s in seeds]
    assert [r.tolist() for r in batched] == [s.tolist() for s in singles]
    assert batched[0].tolist() == batched[2].tolist() != batched[1].tolist()
    with pytest.raises(ValueError, match="2 random streams for a batch of 3"):
        model.generate_window(music, style, cond, None, 3, SamplingConfig(), [1, 2], sampler=sampler)


def test_a_kept_cache_decodes_like_a_fresh_one():
    model = tiny_model()
    music, style, cond = inputs(2)
    fresh = model.generate_window(music, style, cond, None, 21, SamplingConfig(), 3)
    assert model.llama.max_seq == 0
    model.keep_cache = True                       # what compile_decode() sets: one full-length cache reused
    try:
        kept = [model.generate_window(music, style, cond, None, 21, SamplingConfig(), 3) for _ in range(2)]
        assert model.llama.max_seq == 24 + 30
    finally:
        model.keep_cache = False
        model.llama.clear_cache()
    assert torch.equal(kept[0], fresh) and torch.equal(kept[1], fresh)
