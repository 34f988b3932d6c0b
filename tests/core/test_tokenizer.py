# SPDX-License-Identifier: GPL-3.0-or-later
"""RVQ-VAE tokenizer: checkpoint layout of the release, quantiser maths, decode wiring, token id conversion."""
import math

import numpy as np
import pytest
import torch

from core_models.tokenizer import (DANCE_TOKEN_START, RVQVAE, TokenizerConfig, absolute_to_local,
                                   expected_state_shapes, local_to_absolute)

TINY = dict(input_dim=264, nb_code=8, code_dim=16, output_emb_width=16, width=32, depth=2)


def _release_layout(w=1024, code=1024, nb=512, feat=264):
    """The key -> shape list of dance_vqvae.pth, written out from the reference independently of the code."""
    shapes = {}

    def conv(name, cout, cin, k):
        shapes[f"{name}.weight"] = (cout, cin, k)
        shapes[f"{name}.bias"] = (cout,)

    def resnet(name):
        for i in range(3):
            conv(f"{name}.model.{i}.conv1", w, w, 3)
            conv(f"{name}.model.{i}.conv2", w, w, 1)

    conv("encoder.model.0", w, feat, 3)
    for s in (2, 3):
        conv(f"encoder.model.{s}.0", w, w, 4)
        resnet(f"encoder.model.{s}.1")
    conv("encoder.model.4", code, w, 3)
    for dec, out in (("decoder", feat), ("vel_decoder", 2), ("rot_decoder", 128)):
        conv(f"{dec}.model.0", w, code, 3)
        for s in (2, 3):
            resnet(f"{dec}.model.{s}.0")
            conv(f"{dec}.model.{s}.2", w, w, 3)
        conv(f"{dec}.model.4", w, w, 3)
        conv(f"{dec}.model.6", out, w, 3)
    for g in range(3):
        shapes[f"quantizer.layers.{g}.codebook"] = (nb, code)
    return shapes


def test_full_size_state_dict_matches_release_layout():
    shapes = expected_state_shapes(TokenizerConfig())
    assert shapes == _release_layout()
    assert shapes["encoder.model.0.weight"] == (1024, 264, 3)
    assert shapes["decoder.model.6.weight"] == (264, 1024, 3)
    assert shapes["vel_decoder.model.6.weight"] == (2, 1024, 3)
    assert shapes["rot_decoder.model.6.weight"] == (128, 1024, 3)
    assert shapes["quantizer.layers.2.codebook"] == (512, 1024)
    quantizer_keys = sorted(k for k in shapes if k.startswith("quantizer."))
    assert quantizer_keys == [f"quantizer.layers.{g}.codebook" for g in range(3)]
    # The reference's parameter count (586 MB fp32) includes the codebooks.
    assert sum(math.prod(s) for s in shapes.values()) == 153_606_538


def test_optional_decoders_follow_flags():
    shapes = expected_state_shapes(TokenizerConfig(vel_decoder=False, rot_decoder=False))
    assert not any(k.startswith(("vel_decoder.", "rot_decoder.")) for k in shapes)
    assert set(shapes) == {k for k in _release_layout() if not k.startswith(("vel_decoder.", "rot_decoder."))}


def test_config_from_official_args_and_validation():
    args = {"nb_code": 512, "code_dim": 1024, "output_emb_width": 1024, "down_t": 2, "stride_t": 2,
            "width": 1024, "depth": 3, "dilation_growth_rate": 3, "vq_act": "relu", "vq_norm": None,
            "num_quantizers": 3, "shared_codebook": False, "quantize_dropout_prob": 0.2, "mu": 0.99,
            "vel_decoder": True, "rot_decoder": True, "dataname": "dance"}
    cfg = TokenizerConfig.from_dict(args)
    assert cfg == TokenizerConfig()
    assert TokenizerConfig.from_dict(cfg.to_dict()) == cfg
    assert TokenizerConfig.from_dict({**args, "vq_norm": "none", "dilation_growth_rate": 4}).dilation_growth_rate == 4
    for bad, word in (({"shared_codebook": True}, "shared_codebook"), ({"vq_norm": "LN"}, "vq_norm"),
                      ({"vq_act": "tanh"}, "vq_act"), ({"down_t": 0}, "down_t"), ({"stride_t": 2.0}, "stride_t"),
                      ({"code_dim": 512}, "code_dim")):
        with pytest.raises(ValueError, match=word):
            TokenizerConfig.from_dict({**args, **bad})


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return RVQVAE(TokenizerConfig(**TINY)).eval()


def test_encode_decode_shapes(tiny):
    assert tiny.frames_per_latent == 4
    x = torch.randn(2, 16, 264)
    with torch.no_grad():
        ids = tiny.encode(x)
        assert ids.shape == (2, 4, 3) and ids.dtype == torch.int64
        assert int(ids.min()) >= 0 and int(ids.max()) < 8
        y = tiny.decode(ids)
    assert y.shape == (2, 16, 264)
    with pytest.raises(ValueError, match="multiple of 4"):
        tiny.encode(torch.randn(1, 15, 264))
    with pytest.raises(ValueError, match=r"\[0, 8\)"):
        tiny.decode(torch.full((1, 2, 3), 8))


def test_quantize_recovers_ids_of_a_codebook_sum(tiny):
    # Well separated layers (scales 100, 10, 1) make the greedy residual search exact.
    gen = torch.Generator().manual_seed(1)
    for g, scale in enumerate((100.0, 10.0, 1.0)):
        tiny.codebook(g).copy_(torch.randn(8, 16, generator=gen) * scale)
    ids = torch.randint(0, 8, (3, 5, 3), generator=gen)
    z = tiny.embed_ids(ids)
    assert torch.allclose(z, sum(tiny.codebook(g)[ids[..., g]] for g in range(3)))
    assert torch.equal(tiny.quantize(z), ids)
    # encode = quantize(encoder output)
    x = torch.randn(1, 8, 264)
    with torch.no_grad():
        assert torch.equal(tiny.encode(x), tiny.quantize(tiny.encode_latent(x)))


def test_quantize_first_layer_is_nearest_code(tiny):
    z = torch.randn(1, 6, 16)
    ids = tiny.quantize(z)
    d = torch.cdist(z[0], tiny.codebook(0))
    assert torch.equal(ids[0, :, 0], d.argmin(-1))
    r = z[0] - tiny.codebook(0)[ids[0, :, 0]]
    assert torch.equal(ids[0, :, 1], torch.cdist(r, tiny.codebook(1)).argmin(-1))


def test_decode_takes_root_velocity_from_vel_decoder(tiny):
    ids = torch.randint(0, 8, (1, 3, 3), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = tiny.decode(ids)
        zc = tiny.embed_ids(ids).transpose(1, 2)
        v = tiny.vel_decoder(zc).transpose(1, 2)
        base = tiny.decoder(zc).transpose(1, 2)
    assert torch.allclose(y[..., 3:5], v)
    assert torch.allclose(y[..., :3], base[..., :3]) and torch.allclose(y[..., 5:], base[..., 5:])
    assert not torch.allclose(base[..., 3:5], v)


def test_decode_without_vel_decoder_is_plain_decoder():
    torch.manual_seed(0)
    m = RVQVAE(TokenizerConfig(**TINY, vel_decoder=False, rot_decoder=False)).eval()
    assert not hasattr(m, "vel_decoder")
    z = torch.randn(1, 2, 16)
    with torch.no_grad():
        assert torch.equal(m.decode_latent(z), m.decoder(z.transpose(1, 2)).transpose(1, 2))


def test_tiny_state_dict_round_trip_strict(tiny):
    other = RVQVAE(TokenizerConfig(**TINY)).eval()
    other.load_state_dict(tiny.state_dict(), strict=True)
    x = torch.randn(1, 8, 264)
    with torch.no_grad():
        assert torch.equal(other.decode(tiny.encode(x)), tiny.decode(tiny.encode(x)))


def test_absolute_local_round_trip_and_errors():
    local = np.array([[0, 511, 7], [3, 0, 511]])
    absolute = local_to_absolute(local)
    assert absolute.tolist() == [4096, 4608 + 511, 5120 + 7, 4099, 4608, 5120 + 511]
    assert DANCE_TOKEN_START == 4096
    assert np.array_equal(absolute_to_local(absolute), local)
    assert np.array_equal(absolute_to_local(absolute.reshape(1, -1)), local)   # flattened first
    with pytest.raises(ValueError, match="position 4"):
        absolute_to_local([4096, 4608, 5120, 4097, 4097, 5121])               # layer-1 slot holds a layer-0 id
    with pytest.raises(ValueError, match="multiple of 3"):
        absolute_to_local([4096, 4608])
    with pytest.raises(ValueError):
        local_to_absolute(np.array([[512, 0, 0]]))
    assert absolute_to_local([4096 + 2, 4096 + 8 + 3], nb_code=8, num_quantizers=2).tolist() == [[2, 3]]
