# SPDX-License-Identifier: GPL-3.0-or-later
"""Official-layout ChoreoLLaMA checkpoints of sizes the release never used convert, load strictly and decode
exactly like a plain reference written here from the same tensors.

The reference below is deliberately naive: every matrix product spelled out, attention per head with an
explicit causal mask, the Mamba recurrence as a Python loop over time, no KV cache (each greedy step recomputes
the whole sequence). It is written from the release's documented arithmetic (reference infinitedance.md
sections 3.3-3.7), not from our modules, so it checks the converter's size inference, the strict loader, the
llama3 RoPE frequencies and the fused, cached production path all at once.
"""
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import weights_fetch
from core_models.llama import LlamaConfig, rope_inverse_frequencies
from core_models.sampling import SamplingConfig
from core_models.tokenizer import RVQVAE, TokenizerConfig
from core_models.weights import WeightSetError, convert_official, load_weight_set

# Sizes: the LLaMA is 64 wide (the music bridge therefore too) with 8 music-bridge heads as the release builds
# them; the dance bridge's hidden size is its own (48 or 96), never the width.
W, HEADS, KV_HEADS, HEAD_DIM, LAYERS, INTER = 64, 4, 2, 16, 2, 96
NB, Q, CODE = 8, 3, 16
VOCAB = 4096 + NB * Q + 256
STYLE, STYLES, MUSIC, COND, MUSIC_LEN, COND_LEN = 16, 6, 1024, 264, 320, 384
D_STATE, D_CONV, EXPAND, DT_RANK = 4, 4, 2, 4
D_INNER = EXPAND * W
TOK = TokenizerConfig(nb_code=NB, code_dim=CODE, output_emb_width=CODE, width=32, depth=2, dilation_growth_rate=3)
HF_LLAMA = {"hidden_size": W, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
            "num_key_value_heads": KV_HEADS, "head_dim": HEAD_DIM, "intermediate_size": INTER, "vocab_size": 128256,
            "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": True,
            "rope_scaling": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 8192}}
GREEDY = SamplingConfig(temperature=1e-4, top_k=1, repetition_penalty=1.0, max_repeat_slot0=10 ** 6,
                        max_repeat_other=10 ** 6, ngram_slot0=0)
EXPERTS = ["music_bridge.universal_expert."] + [f"music_bridge.specialized_experts.{i}." for i in range(2)]


# ------------------------------------------------------------------------------- the release's layout

def official_state(bridge_hidden: int, seed: int = 0) -> dict:
    """A flat state dict with the key names and shapes of ``best_model_stage2.pt`` at the sizes above."""
    g = torch.Generator().manual_seed(seed)

    def lin(out, inp, scale=1.0):
        return torch.randn(out, inp, generator=g) * (scale / math.sqrt(inp))

    def vec(n, std=0.1, mean=0.0):
        return mean + std * torch.randn(n, generator=g)

    s = {}
    emb = torch.randn(VOCAB, W, generator=g) * 0.5
    s["llama.model.embed_tokens.weight"] = emb
    s["llama.lm_head.weight"] = emb                                   # tied, stored twice like the release
    for i in range(LAYERS):
        p = f"llama.model.layers.{i}."
        s[p + "self_attn.q_proj.weight"] = lin(HEADS * HEAD_DIM, W, 2.0)
        s[p + "self_attn.k_proj.weight"] = lin(KV_HEADS * HEAD_DIM, W, 2.0)
        s[p + "self_attn.v_proj.weight"] = lin(KV_HEADS * HEAD_DIM, W)
        s[p + "self_attn.o_proj.weight"] = lin(W, HEADS * HEAD_DIM)
        s[p + "mlp.gate_proj.weight"] = lin(INTER, W)
        s[p + "mlp.up_proj.weight"] = lin(INTER, W)
        s[p + "mlp.down_proj.weight"] = lin(W, INTER)
        s[p + "input_layernorm.weight"] = vec(W, mean=1.0)
        s[p + "post_attention_layernorm.weight"] = vec(W, mean=1.0)
    s["llama.model.norm.weight"] = vec(W, mean=1.0)
    s["music_bridge.input_proj.weight"] = lin(W, MUSIC + STYLE + COND)
    s["music_bridge.input_proj.bias"] = vec(W)
    for e in EXPERTS:
        s[e + "proj.weight"] = lin(W, W if "universal" in e else COND)
        s[e + "proj.bias"] = vec(W)
        s[e + "transformer_attn.in_proj_weight"] = lin(3 * W, W, 1.5)
        s[e + "transformer_attn.in_proj_bias"] = vec(3 * W)
        s[e + "transformer_attn.out_proj.weight"] = lin(W, W)
        s[e + "transformer_attn.out_proj.bias"] = vec(W)
        m = e + "mamba."
        s[m + "in_proj.weight"] = lin(2 * D_INNER, W)
        s[m + "conv1d.weight"] = torch.randn(D_INNER, 1, D_CONV, generator=g) * 0.5
        s[m + "conv1d.bias"] = vec(D_INNER)
        s[m + "x_proj.weight"] = lin(DT_RANK + 2 * D_STATE, D_INNER)
        s[m + "dt_proj.weight"] = lin(D_INNER, DT_RANK)
        s[m + "dt_proj.bias"] = torch.empty(D_INNER).uniform_(-4.0, -1.0, generator=g)
        s[m + "A_log"] = torch.log(torch.arange(1, D_STATE + 1, dtype=torch.float32)).repeat(D_INNER, 1) + \
            0.1 * torch.randn(D_INNER, D_STATE, generator=g)
        s[m + "D"] = vec(D_INNER, mean=1.0)
        s[m + "out_proj.weight"] = lin(W, D_INNER)
        s[e + "norm.weight"] = vec(W, mean=1.0)
        s[e + "norm.bias"] = vec(W)
    s["music_bridge.fusion_proj.weight"] = lin(W, 3 * W)
    s["music_bridge.fusion_proj.bias"] = vec(W)
    s["dance_bridge.fc1.weight"] = lin(bridge_hidden, CODE)
    s["dance_bridge.fc1.bias"] = vec(bridge_hidden)
    s["dance_bridge.fc2.weight"] = lin(W, bridge_hidden)
    s["dance_bridge.fc2.bias"] = vec(W)
    s["style_embedding.weight"] = torch.randn(STYLES, STYLE, generator=g)
    s["cond_projection.weight"] = lin(MUSIC_LEN, COND_LEN)
    s["cond_projection.bias"] = vec(MUSIC_LEN)
    s["style_classifier.weight"] = lin(STYLES, W)
    s["style_classifier.bias"] = vec(STYLES)
    return s


def write_release(root, state: dict, dtype=torch.float32) -> dict:
    """The release's files around ``state``; returns the codebooks (Q, NB, CODE) the tokenizer file holds."""
    torch.manual_seed(0)
    (root / "AR/models/checkpoints").mkdir(parents=True)
    args = {k: v for k, v in TOK.to_dict().items() if k != "input_dim"}
    args.update(mu=0.99, quantize_dropout_prob=0.2, shared_codebook=False)
    (root / "AR/models/checkpoints/args.json").write_text(json.dumps(args))
    vq = RVQVAE(TOK).state_dict()
    for g in range(Q):                    # codebook vectors of the size real codes have
        vq[f"quantizer.layers.{g}.codebook"] = torch.randn(NB, CODE)
    torch.save({"net": vq}, root / "AR/models/checkpoints/dance_vqvae.pth")
    stored = {k: v.to(dtype) for k, v in state.items()}
    stored["llama.lm_head.weight"] = stored["llama.model.embed_tokens.weight"]
    (root / "AR/output/exp_m2d_infinitedance").mkdir(parents=True)
    torch.save(stored, root / "AR/output/exp_m2d_infinitedance/best_model_stage2.pt")
    (root / "AR/models/Llama3.2-1B").mkdir(parents=True)
    (root / "AR/models/Llama3.2-1B/config.json").write_text(json.dumps(HF_LLAMA))
    meta = root / "DATA/dance/alldata_new_joint_vecs264/meta"
    meta.mkdir(parents=True)
    rng = np.random.default_rng(0)
    np.save(meta / "Mean.npy", rng.normal(0, 0.1, 264))
    np.save(meta / "Std.npy", rng.uniform(0.05, 0.5, 264))
    return torch.stack([vq[f"quantizer.layers.{g}.codebook"] for g in range(Q)])


# --------------------------------------------------------------------------------- plain reference

def rms_norm(x, w, eps=1e-5):
    return w * (x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps))


def layer_norm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def softmax(x):
    e = torch.exp(x - x.max(-1, keepdim=True).values)
    return e / e.sum(-1, keepdim=True)


def silu(x):
    return x / (1 + torch.exp(-x))


def gelu(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def softplus(x):
    return torch.log1p(torch.exp(x))


def ref_mha(P, prefix, x, heads):
    """torch's packed MultiheadAttention, bidirectional, written out: (T, D) -> (T, D)."""
    t, d = x.shape
    qkv = x @ P[prefix + "in_proj_weight"].T + P[prefix + "in_proj_bias"]
    q, k, v = qkv[:, :d], qkv[:, d:2 * d], qkv[:, 2 * d:]
    hd = d // heads
    out = torch.zeros(t, d)
    for h in range(heads):
        cols = slice(h * hd, (h + 1) * hd)
        att = softmax(q[:, cols] @ k[:, cols].T / math.sqrt(hd))
        out[:, cols] = att @ v[:, cols]
    return out @ P[prefix + "out_proj.weight"].T + P[prefix + "out_proj.bias"]


def ref_mamba(P, m, u):
    """Mamba v1 over u (T, D) with the recurrence as a loop over time."""
    t = u.shape[0]
    xz = u @ P[m + "in_proj.weight"].T
    x, z = xz[:, :D_INNER], xz[:, D_INNER:]
    w, b = P[m + "conv1d.weight"][:, 0], P[m + "conv1d.bias"]      # causal depthwise conv, left padding
    conv = torch.zeros_like(x)
    for i in range(t):
        acc = b.clone()
        for j in range(D_CONV):
            src = i - (D_CONV - 1) + j
            if src >= 0:
                acc = acc + w[:, j] * x[src]
        conv[i] = acc
    x = silu(conv)
    dbc = x @ P[m + "x_proj.weight"].T
    dt_raw, bm, cm = dbc[:, :DT_RANK], dbc[:, DT_RANK:DT_RANK + D_STATE], dbc[:, DT_RANK + D_STATE:]
    dt = softplus(dt_raw @ P[m + "dt_proj.weight"].T + P[m + "dt_proj.bias"])
    a = -torch.exp(P[m + "A_log"])
    h = torch.zeros(D_INNER, D_STATE)
    y = torch.zeros(t, D_INNER)
    for i in range(t):
        h = torch.exp(dt[i][:, None] * a) * h + (dt[i] * x[i])[:, None] * bm[i][None, :]
        y[i] = h @ cm[i] + P[m + "D"] * x[i]
    return (y * silu(z)) @ P[m + "out_proj.weight"].T


def ref_expert(P, e, x, heads):
    h = x @ P[e + "proj.weight"].T + P[e + "proj.bias"]
    a = ref_mha(P, e + "transformer_attn.", h, heads)
    return ref_mamba(P, e + "mamba.", layer_norm(a, P[e + "norm.weight"], P[e + "norm.bias"])) + a


def ref_bands(c):
    """The condition split along time at bin frequencies k * 30 / T into [0, 7.5) and [7.5, 15] Hz."""
    t = c.shape[0]
    spec = torch.fft.rfft(c.double(), dim=0)
    f = torch.arange(spec.shape[0], dtype=torch.float64) * 30.0 / t
    low = (f < 7.5)[:, None]
    return [torch.fft.irfft(spec * low, n=t, dim=0).float(), torch.fft.irfft(spec * ~low, n=t, dim=0).float()]


def ref_music_bridge(P, music, style, cond, heads):
    c = (cond.T @ P["cond_projection.weight"].T + P["cond_projection.bias"]).T          # (MUSIC_LEN, COND)
    s = P["style_embedding.weight"][style][None].expand(MUSIC_LEN, -1)
    x = torch.cat([music, s, c], dim=1)
    outs = [ref_expert(P, EXPERTS[0], x @ P["music_bridge.input_proj.weight"].T + P["music_bridge.input_proj.bias"],
                       heads)]
    outs += [ref_expert(P, EXPERTS[1 + i], band, heads) for i, band in enumerate(ref_bands(c))]
    return torch.cat(outs, dim=1) @ P["music_bridge.fusion_proj.weight"].T + P["music_bridge.fusion_proj.bias"]


def ref_dance_bridge(P, codes):
    h = gelu(codes @ P["dance_bridge.fc1.weight"].T + P["dance_bridge.fc1.bias"])
    return h @ P["dance_bridge.fc2.weight"].T + P["dance_bridge.fc2.bias"]


def ref_inv_freq():
    """Hugging Face's llama3 RoPE frequencies, in float32 as the release computes them."""
    rs = HF_LLAMA["rope_scaling"]
    inv = 1.0 / (HF_LLAMA["rope_theta"] ** (torch.arange(0, HEAD_DIM, 2, dtype=torch.int64).float() / HEAD_DIM))
    old, lo, hi, factor = (rs["original_max_position_embeddings"], rs["low_freq_factor"], rs["high_freq_factor"],
                           rs["factor"])
    wavelen = 2 * math.pi / inv
    out = torch.where(wavelen > old / lo, inv / factor, inv)
    smooth = (old / wavelen - lo) / (hi - lo)
    smoothed = (1 - smooth) * out / factor + smooth * out
    medium = ~(wavelen < old / hi) * ~(wavelen > old / lo)
    return torch.where(medium, smoothed, out)


def ref_llama(P, e):
    """Causal LLaMA over input embeddings e (S, W), no cache: logits (S, VOCAB)."""
    s = e.shape[0]
    freqs = torch.arange(s).float()[:, None] * ref_inv_freq()[None]
    cos, sin = torch.cat([freqs, freqs], 1).cos(), torch.cat([freqs, freqs], 1).sin()

    def rope(x):                                  # (S, HEAD_DIM), "rotate half" pairing
        half = HEAD_DIM // 2
        return x * cos + torch.cat([-x[:, half:], x[:, :half]], 1) * sin

    causal = torch.full((s, s), float("-inf")).triu(1)
    x = e
    for i in range(LAYERS):
        p = f"llama.model.layers.{i}."
        h = rms_norm(x, P[p + "input_layernorm.weight"])
        q, k, v = (h @ P[p + f"self_attn.{n}_proj.weight"].T for n in "qkv")
        heads = []
        for hq in range(HEADS):
            kv = hq // (HEADS // KV_HEADS)            # grouped-query attention
            qh = rope(q[:, hq * HEAD_DIM:(hq + 1) * HEAD_DIM])
            kh = rope(k[:, kv * HEAD_DIM:(kv + 1) * HEAD_DIM])
            att = softmax(qh @ kh.T / math.sqrt(HEAD_DIM) + causal)
            heads.append(att @ v[:, kv * HEAD_DIM:(kv + 1) * HEAD_DIM])
        x = x + torch.cat(heads, 1) @ P[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, P[p + "post_attention_layernorm.weight"])
        x = x + (silu(h @ P[p + "mlp.gate_proj.weight"].T) * (h @ P[p + "mlp.up_proj.weight"].T)) @ \
            P[p + "mlp.down_proj.weight"].T
    return rms_norm(x, P["llama.model.norm.weight"]) @ P["llama.lm_head.weight"].T


def ref_greedy(P, codebooks, music_vectors, n):
    """Greedy slot-restricted decoding, the whole sequence recomputed for every token."""
    ids = []
    for i in range(n):
        dance = [ref_dance_bridge(P, codebooks[j % Q, t])[None] for j, t in enumerate(ids)]
        logits = ref_llama(P, torch.cat([music_vectors] + dance, 0))[-1]
        lo = 4096 + NB * (i % Q)
        ids.append(int(torch.argmax(logits[lo:lo + NB])))
    return ids


def window_inputs(seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(MUSIC_LEN, MUSIC, generator=g), 2, torch.randn(COND_LEN, COND, generator=g)


# ------------------------------------------------------------------------------------------- tests

def test_rope_frequencies_are_the_releases_float32_values():
    cfg = LlamaConfig(head_dim=64)                       # the release's llama3 settings
    ours = rope_inverse_frequencies(cfg)
    assert ours.dtype == torch.float32
    rs = cfg.rope_scaling
    inv = 1.0 / (cfg.rope_theta ** (torch.arange(0, 64, 2, dtype=torch.int64).float() / 64))
    wavelen = 2 * math.pi / inv
    scaled = torch.where(wavelen > rs["original_max_position_embeddings"], inv / rs["factor"], inv)
    smooth = (8192 / wavelen - 1.0) / 3.0
    medium = ~(wavelen < 8192 / 4) * ~(wavelen > 8192)
    hf = torch.where(medium, (1 - smooth) * scaled / 32 + smooth * scaled, scaled)
    assert torch.equal(ours, hf)                          # bit for bit
    # the same formula in float64, rounded at the end, differs (by float32 rounding steps) in 12 of the 32 values
    inv64 = 1.0 / (cfg.rope_theta ** (torch.arange(0, 64, 2, dtype=torch.float64) / 64))
    wl64 = 2 * math.pi / inv64
    sc64 = torch.where(wl64 > 8192, inv64 / 32, inv64)
    sm64 = (8192 / wl64 - 1.0) / 3.0
    f64 = torch.where((wl64 >= 8192 / 4) & (wl64 <= 8192), (1 - sm64) * sc64 / 32 + sm64 * sc64, sc64).float()
    assert (f64 != ours).sum().item() == 12
    assert torch.allclose(f64, ours, rtol=1e-6, atol=0)


@pytest.mark.parametrize("dtype,bridge_hidden", [(torch.float32, 48), (torch.bfloat16, 96)],
                         ids=["fp32-hidden48", "bf16-hidden96"])
def test_official_layout_converts_loads_and_decodes_like_the_reference(tmp_path, dtype, bridge_hidden, capsys):
    torch.set_num_threads(1)
    state = official_state(bridge_hidden)
    codebooks = write_release(tmp_path / "release", state, dtype)
    P = {k: v.to(dtype).float() for k, v in state.items()}          # what the release computes with
    dest = tmp_path / "set"
    assert weights_fetch.main(["convert", "official", "--src", str(tmp_path / "release"), "--dest", str(dest)]) == 0
    config = json.loads((dest / "config.json").read_text())
    gen = config["generator"]
    assert (gen["bridge_heads"], gen["bridge_hidden"], gen["llama"]["dim"]) == (8, bridge_hidden, W)
    assert any("8 heads (the release's constructor)" in n for n in config["notes"])
    ws = load_weight_set(dest, device="cpu")
    model = ws.generator
    assert model.music_bridge.universal_expert.transformer_attn.num_heads == 8
    assert tuple(model.dance_bridge.fc1.weight.shape) == (bridge_hidden, CODE)
    for k, v in P.items():                                           # loaded strictly, values unchanged
        assert torch.equal(model.state_dict()[k], v), k
    assert torch.equal(model.codebooks, codebooks)

    music, style, cond = window_inputs()
    with torch.no_grad():
        ours_music = model.music_embeddings(music[None], torch.tensor([style]), cond[None])[0]
    ref_music = ref_music_bridge(P, music, style, cond, heads=8)
    n = 24
    ref_ids = ref_greedy(P, codebooks, ref_music, n)
    ids = ws.sample_window(music.numpy(), style, cond.numpy(), None, n, GREEDY, 0)
    local = torch.tensor(ref_ids)
    slots = torch.arange(n) % Q
    with torch.no_grad():
        ours_dance = model.embed_tokens(local[None])[0]
        ours_logits = model(music[None], torch.tensor([style]), cond[None], local[None])[0]
    ref_dance = ref_dance_bridge(P, codebooks[slots, local])
    ref_logits = ref_llama(P, torch.cat([ref_music, ref_dance], 0))
    bridge_diff = max((ours_music - ref_music).abs().max().item(), (ours_dance - ref_dance).abs().max().item())
    logit_diff = (ours_logits - ref_logits).abs().max().item()
    same = ids.tolist() == ref_ids
    with capsys.disabled():
        print(f"\nparity {str(dtype).replace('torch.', '')} file, dance-bridge hidden {bridge_hidden}, width {W}, "
              f"8 bridge heads: max|bridges| diff {bridge_diff:.2e}, max|logits| diff {logit_diff:.2e} (logits up to "
              f"{ref_logits.abs().max().item():.1f}), greedy tokens equal: {'yes' if same else 'no'}")
    assert ref_music.abs().max() > 0.5 and ref_logits.abs().max() > 1.0     # the comparison is not of zeros
    assert bridge_diff <= 2e-5 and logit_diff <= 2e-4
    assert same, (ids.tolist(), ref_ids)


def test_bridge_heads_option_is_recorded_and_read_back(tmp_path):
    torch.set_num_threads(1)
    state = official_state(48, seed=3)
    write_release(tmp_path / "release", state)
    dest = tmp_path / "set"
    assert weights_fetch.main(["convert", "official", "--src", str(tmp_path / "release"), "--dest", str(dest),
                               "--bridge-heads", "4"]) == 0
    config = json.loads((dest / "config.json").read_text())
    assert config["generator"]["bridge_heads"] == 4
    assert any("4 heads (set with --bridge-heads)" in n for n in config["notes"])
    ws = load_weight_set(dest, device="cpu")
    assert all(m.num_heads == 4 for m in ws.generator.modules() if isinstance(m, torch.nn.MultiheadAttention))
    music, style, cond = window_inputs(seed=4)
    with torch.no_grad():
        ours = ws.generator.music_embeddings(music[None], torch.tensor([style]), cond[None])[0]
    assert (ours - ref_music_bridge(state, music, style, cond, heads=4)).abs().max().item() <= 2e-5
    # the head count matters: the same tensors with the release's 8 heads give another bridge output
    assert (ours - ref_music_bridge(state, music, style, cond, heads=8)).abs().max().item() > 1e-3


def _release_with(tmp_path, change):
    state = official_state(48, seed=5)
    change(state)
    write_release(tmp_path / "release", state)
    return tmp_path / "release"


@pytest.mark.parametrize("change,words", [
    (lambda s: s.update({"dance_bridge.fc2.weight": torch.zeros(W + 1, 48)}),
     r"dance_bridge\.fc2\.weight: \[65, 48\] instead of \[64, 48\]"),
    (lambda s: s.update({"dance_bridge.fc1.weight": torch.zeros(48, CODE + 2)}),
     r"'dance_bridge\.fc1\.weight' has shape \[48, 18\]: its input must be the tokenizer's 16-d codebook"),
    (lambda s: s.update({"music_bridge.input_proj.weight": torch.zeros(W * 2, MUSIC + STYLE + COND)}),
     r"'music_bridge\.input_proj\.weight' has shape \[128, 1304\]: the music bridge must be as wide as the LLaMA"),
    (lambda s: s.update({"llama.model.layers.0.self_attn.q_proj.weight": torch.zeros(HEADS * HEAD_DIM + 8, W)}),
     r"'llama\.model\.layers\.0\.self_attn\.q_proj\.weight' has shape \[72, 64\]: not a whole number of 16-wide"),
    (lambda s: s.update({"music_bridge.universal_expert.mamba.A_log": torch.zeros(W + 3, D_STATE)}),
     r"'music_bridge\.universal_expert\.mamba\.A_log' has shape \[67, 4\]"),
    (lambda s: s.update({"llama.model.layers.1.mlp.up_proj.weight": torch.zeros(INTER + 1, W)}),
     r"llama\.model\.layers\.1\.mlp\.up_proj\.weight: \[97, 64\] instead of \[96, 64\]"),
], ids=["fc2-out", "fc1-in", "bridge-width", "q-heads", "mamba-inner", "mlp"])
def test_unexpected_sizes_are_refused_naming_key_and_shape(tmp_path, change, words):
    src = _release_with(tmp_path, change)
    with pytest.raises(WeightSetError, match=words):
        convert_official(src, tmp_path / "set")
    assert not (tmp_path / "set").exists()


def test_bridge_heads_that_do_not_divide_the_width_are_refused(tmp_path, capsys):
    src = _release_with(tmp_path, lambda s: None)
    assert weights_fetch.main(["convert", "official", "--src", str(src), "--dest", str(tmp_path / "set"),
                               "--bridge-heads", "3"]) == 2
    err = capsys.readouterr().err
    assert "3 music-bridge attention heads do not divide the bridge width 64" in err
    assert "'music_bridge.input_proj.weight' [64, 1304]" in err and "--bridge-heads N" in err
    assert not (tmp_path / "set").exists()


def test_other_consistent_sizes_convert(tmp_path):
    """A wider MLP, another style size and a deeper state convert as long as the tensors agree."""
    def change(s):
        s["llama.model.layers.0.mlp.gate_proj.weight"] = torch.randn(INTER * 2, W) * 0.1
        for i in range(LAYERS):
            p = f"llama.model.layers.{i}.mlp."
            s[p + "gate_proj.weight"], s[p + "up_proj.weight"] = torch.randn(160, W) * 0.1, torch.randn(160, W) * 0.1
            s[p + "down_proj.weight"] = torch.randn(W, 160) * 0.1
        s["style_embedding.weight"] = torch.randn(STYLES, 8)
        s["music_bridge.input_proj.weight"] = torch.randn(W, MUSIC + 8 + COND) * 0.03

    ws = load_weight_set(convert_official(_release_with(tmp_path, change), tmp_path / "set"), device="cpu")
    cfg = ws.generator.cfg
    assert (cfg.llama.intermediate, cfg.style_dim, cfg.music_dim, cfg.bridge_hidden) == (160, 8, MUSIC, 48)


def test_cuda_without_a_gpu_is_refused_before_any_weights_are_read(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    dest = convert_official(_release_with(tmp_path, lambda s: None), tmp_path / "set")
    (dest / "generator.safetensors").write_bytes(b"")      # would fail verification if it were read
    with pytest.raises(WeightSetError, match="device 'cuda' was requested but no CUDA GPU is available"):
        load_weight_set(dest, device="cuda")
