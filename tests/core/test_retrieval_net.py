# SPDX-License-Identifier: GPL-3.0-or-later
"""RetrievalNet: checkpoint key layout, linear attention maths, embeddings, windowing and top-k."""
import math

import numpy as np
import pytest
import torch

from core_models.retrieval import (LinearSelfAttention, RetrievalConfig, RetrievalNet, TransEncoder,
                                   expected_state_shapes, strip_lightning_prefix, top_k, window_starts, windows)

TINY = RetrievalConfig(latent=16, heads=2, ff=32, layers=2, max_len=24, dropout=0.2)


def test_full_size_layout_and_param_count():
    shapes = expected_state_shapes(RetrievalConfig())
    assert sum(math.prod(s) for s in shapes.values()) == 6_202_625
    assert shapes["logit_scale"] == ()
    assert shapes["motion_encoder.proj_in.weight"] == (256, 264)
    assert shapes["cond_encoder.proj_in.weight"] == (256, 55)
    expected = {"logit_scale"}
    for enc in ("motion_encoder", "cond_encoder"):
        expected |= {f"{enc}.{n}" for n in ("embedding", "cls_token", "proj_in.weight", "proj_in.bias",
                                            "proj_out.weight", "proj_out.bias")}
        for i in range(4):
            for mod in ("sa_block.norm", "sa_block.query", "sa_block.key", "sa_block.value",
                        "ffn.linear1", "ffn.linear2", "ffn.norm"):
                expected |= {f"{enc}.blocks.{i}.{mod}.weight", f"{enc}.blocks.{i}.{mod}.bias"}
    assert set(shapes) == expected
    assert shapes["motion_encoder.embedding"] == (384, 256) and shapes["cond_encoder.cls_token"] == (256,)
    assert shapes["cond_encoder.blocks.3.ffn.linear1.weight"] == (1024, 256)


def test_logit_scale_init():
    assert RetrievalNet(TINY).logit_scale.item() == pytest.approx(math.log(1 / 0.07))


def test_linear_attention_matches_explicit_formula():
    torch.manual_seed(0)
    att = LinearSelfAttention(8, 2)
    x = torch.randn(1, 5, 8)
    h = att.norm(x)
    q, k, v = att.query(h)[0], att.key(h)[0], att.value(h)[0]
    expected = []
    for t in range(5):
        heads = []
        for hd in range(2):
            sl = slice(4 * hd, 4 * hd + 4)
            qt = torch.softmax(q[t, sl], 0)                  # over the head's channels
            kk = torch.softmax(k[:, sl], 0)                  # over time
            ctx = sum(torch.outer(kk[s], v[s, sl]) for s in range(5))
            heads.append(qt @ ctx)
        expected.append(torch.cat(heads))
    assert torch.allclose(att(x)[0], x[0] + torch.stack(expected), atol=1e-6)


def test_cls_token_takes_part_in_time_softmax():
    # With an all-true mask the result equals no mask; masking a frame changes the CLS output.
    torch.manual_seed(0)
    enc = TransEncoder(6, latent=16, heads=2, ff=32, layers=2, max_len=10).eval()
    x = torch.randn(1, 4, 6)
    with torch.no_grad():
        out = enc(x)
        assert torch.allclose(out, enc(x, torch.ones(1, 4, dtype=torch.bool)))
        masked = enc(x, torch.tensor([[True, True, True, False]]))
        assert torch.allclose(masked, enc(x[:, :3]), atol=1e-5)   # padding is invisible
    assert not torch.allclose(out, masked)


def test_embeddings_unit_length_and_shapes():
    torch.manual_seed(0)
    net = RetrievalNet(TINY).eval()
    with torch.no_grad():
        m = net.encode_motion(torch.randn(3, 24, 264))
        a = net.encode_music(torch.randn(2, 20, 55))
        single = net.encode_music(torch.randn(20, 55))
    assert m.shape == (3, 16) and a.shape == (2, 16) and single.shape == (16,)
    assert torch.allclose(m.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(a.norm(dim=-1), torch.ones(2), atol=1e-5)
    with pytest.raises(ValueError, match="max_len"):
        net.encode_music(torch.randn(1, 25, 55))


def test_eval_is_deterministic_and_rankings_repeat():
    torch.manual_seed(0)
    net = RetrievalNet(TINY).eval()
    corpus_x = torch.randn(10, 24, 264)
    query_x = torch.randn(3, 24, 55)
    with torch.no_grad():
        corpus = net.encode_motion(corpus_x).numpy()
        r1 = top_k(net.encode_music(query_x).numpy(), corpus, 4)
        r2 = top_k(net.encode_music(query_x.clone()).numpy(), corpus, 4)
    assert np.array_equal(r1[0], r2[0]) and np.array_equal(r1[1], r2[1])
    # A corpus entry ranks itself first against its own embedding.
    idx, scores = top_k(corpus, corpus, 1)
    assert idx[:, 0].tolist() == list(range(10)) and np.allclose(scores, 1.0, atol=1e-5)


def test_state_dict_loads_after_prefix_strip():
    torch.manual_seed(0)
    src = RetrievalNet(TINY)
    lightning = {f"model.{k}": v for k, v in src.state_dict().items()}
    dst = RetrievalNet(TINY)
    dst.load_state_dict(strip_lightning_prefix(lightning), strict=True)
    assert torch.equal(dst.cond_encoder.cls_token, src.cond_encoder.cls_token)
    assert set(strip_lightning_prefix({"model.a": 1, "other": 2})) == {"a"}
    with pytest.raises(ValueError, match="model."):
        strip_lightning_prefix({"a": 1})


def test_window_starts():
    assert window_starts(100) == [0]
    assert window_starts(384) == [0]
    assert window_starts(385) == [0, 192]
    assert window_starts(576) == [0, 192]
    assert window_starts(577) == [0, 192, 384]
    assert window_starts(1000, window=10, stride=5)[-1] == 990
    with pytest.raises(ValueError):
        window_starts(0)


def test_windows_tile_short_tail():
    feats = np.arange(10 * 2, dtype=np.float32).reshape(10, 2)
    w = windows(feats, window=4, stride=3)
    assert w.shape == (3, 4, 2)                      # starts 0, 3, 6 (6 + 4 reaches the end)
    assert np.array_equal(w[1], feats[3:7])
    assert np.array_equal(w[2], feats[6:10])
    short = windows(feats[:3], window=7, stride=3)
    assert short.shape == (1, 7, 2)
    assert np.array_equal(short[0, :, 0], feats[[0, 1, 2, 0, 1, 2, 0], 0])
    tail = windows(feats, window=6, stride=5)        # starts 0, 5; the second has 5 frames
    assert np.array_equal(tail[1], feats[[5, 6, 7, 8, 9, 5]])


def test_top_k_order_ties_and_clamp():
    corpus = np.array([[1, 0], [0, 1], [1, 0], [1, 1], [-1, 0]], dtype=np.float32)
    idx, scores = top_k(np.array([[2.0, 0.0]]), corpus, 4)
    assert idx.tolist() == [[0, 2, 3, 1]]                 # tie 0/2 broken by lower index
    assert np.allclose(scores, [[1, 1, math.sqrt(0.5), 0]])
    idx, scores = top_k(np.array([[0.0, 1.0], [-1.0, 0.0]]), corpus, 10)
    assert idx.shape == (2, 5) and idx[0, 0] == 1 and idx[1, 0] == 4
    assert np.all(np.diff(scores, axis=1) <= 0)
