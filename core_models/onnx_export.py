# SPDX-License-Identifier: GPL-3.0-or-later
"""Export a weight set's networks to ONNX (``python -m core_models export-onnx --weights DIR [--out DIR]``).

Compact ChoreoLLaMA sets get, under ``onnx/``:
    generator_prefill.onnx   music (1, M, music_dim), style (1,), cond (1, cond_len, 264) -> the music bridge
                             and the backbone over the window's music: last-position logits (1, vocab) and
                             the KV cache present_k / present_v (layers, 1, kv_heads, M, head_dim)
    generator_decode.onnx    ids (1, n), slots (n,), positions (n,), past_k, past_v -> logits of the last of
                             the n tokens and the cache grown by n (n = 1 per sampled token; the prefix
                             of a window goes through in one call)
    tokenizer_decoder.onnx   ids (1, L, Q) -> normalised features (1, 4 L, 264)
    tokenizer_encoder.onnx   normalised features (1, T, 264) -> ids (1, T / 4, Q) (library tokens)
    retrieval_music.onnx / retrieval_motion.onnx   (N, 384, d) windows -> (N, latent) unit embeddings
FRDM sets get ``onnx/frdm_denoiser.onnx``: x (B, window, 259), t (B,) -> predicted clean x.

Every batch, token and time axis the runtime varies is dynamic, so any song or clip length runs through
the same files. The band split of the music bridge (an rFFT mask over the window's fixed length) is
exported as the equivalent (M, M) matrices, which every ONNX runtime runs.
After writing, each file is run through onnxruntime and compared with torch on the same inputs; the
largest difference goes into ``onnx/export.json`` (with the opset and the sha256 of the safetensors the
files came from, so the runtime can tell a stale export), and every file into ``manifest.json``.
Weights that float16 holds exactly (a set stored in float16) are stored in float16 with a Cast to float32
(:func:`store_weights_in_half`): the files are half the size, the numbers the same.
Re-running replaces the previous export (idempotent).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .choreollama import band_split
from .llama import rope_inverse_frequencies
from .runtime.files import WeightSetError, read_config, read_manifest, record_file, write_manifest

OPSET = 18
ONNX_DIR = "onnx"
EXPORT_INFO = f"{ONNX_DIR}/export.json"
PARITY_LIMIT = 1e-3        # an export that differs more from torch than this is refused, never shipped


class _Backbone(nn.Module):
    """The LLaMA decoder with its KV cache as explicit inputs and outputs (stacked over layers)."""

    def __init__(self, llama):
        super().__init__()
        self.llama = llama
        self.register_buffer("inv_freq", rope_inverse_frequencies(llama.cfg), persistent=False)

    def forward(self, x, positions, past_k=None, past_v=None):
        cfg = self.llama.cfg
        b, s, _ = x.shape
        freqs = positions.float()[:, None] * self.inv_freq[None]
        emb = torch.cat([freqs, freqs], dim=-1)
        cos, sin = emb.cos(), emb.sin()
        rep = cfg.n_heads // cfg.n_kv_heads
        keys, values = [], []
        for i, layer in enumerate(self.llama.model.layers):
            attn = layer.self_attn
            h = layer.input_layernorm(x)
            q = attn.q_proj(h).view(b, s, cfg.n_heads, cfg.head_dim).transpose(1, 2)
            k = attn.k_proj(h).view(b, s, cfg.n_kv_heads, cfg.head_dim).transpose(1, 2)
            v = attn.v_proj(h).view(b, s, cfg.n_kv_heads, cfg.head_dim).transpose(1, 2)
            half = cfg.head_dim // 2
            q = q * cos + torch.cat([-q[..., half:], q[..., :half]], dim=-1) * sin
            k = k * cos + torch.cat([-k[..., half:], k[..., :half]], dim=-1) * sin
            if past_k is not None:
                k = torch.cat([past_k[i], k], dim=2)
                v = torch.cat([past_v[i], v], dim=2)
            keys.append(k)
            values.append(v)
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
            # Causal over absolute positions: a query at position p sees the keys at positions <= p.
            visible = torch.arange(k.shape[2], device=x.device)[None, :] <= positions[:, None]
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=visible[None, None])
            x = x + attn.o_proj(out.transpose(1, 2).reshape(b, s, -1))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        hidden = self.llama.model.norm(x)[:, -1]
        return F.linear(hidden, self.llama.lm_head.weight), torch.stack(keys), torch.stack(values)


class _Prefill(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model
        self.backbone = _Backbone(model.llama)
        m = model.cfg.music_len
        eye = torch.eye(m)[None]
        # band_split is linear in time for a fixed length: band i of x equals B_i @ x.
        self.register_buffer("bands", torch.stack([b[0] for b in band_split(eye, model.cfg.n_bins)]),
                             persistent=False)

    def forward(self, music, style, cond):
        model = self.model
        bridge = model.music_bridge
        cond = model.cond_projection(cond.transpose(1, 2)).transpose(1, 2)
        style_emb = model.style_embedding(style)
        x = torch.cat([music, style_emb[:, None].expand(-1, music.shape[1], -1), cond], dim=-1)
        outs = [bridge.universal_expert(bridge.input_proj(x))]
        outs += [expert(torch.matmul(self.bands[i], cond)) for i, expert in enumerate(bridge.specialized_experts)]
        embeds = bridge.fusion_proj(torch.cat(outs, dim=-1))
        positions = torch.arange(embeds.shape[1], device=embeds.device)
        return self.backbone(embeds, positions)


class _Decode(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model
        self.backbone = _Backbone(model.llama)

    def forward(self, ids, slots, positions, past_k, past_v):
        codes = self.model.codebooks[slots[None].expand_as(ids), ids]
        return self.backbone(self.model.dance_bridge(codes), positions, past_k, past_v)


class _TokenDecoder(nn.Module):
    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    def forward(self, ids):
        return self.tokenizer.decode_latent(self.tokenizer.quantizer.embed(ids))


class _TokenEncoder(nn.Module):
    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    def forward(self, x):
        z = self.tokenizer.encoder(x.transpose(1, 2)).transpose(1, 2)
        return self.tokenizer.quantizer.quantize(z)


class _Encoder(nn.Module):
    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, x):
        return F.normalize(self.encoder(x), dim=-1)


def _export(module, args, path: Path, input_names, output_names, dynamic: dict, opset: int) -> None:
    """torch.export-based exporter; ``dynamic`` maps input names to {axis: name}."""
    import logging
    import warnings

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    module = module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic, opset_version=opset, dynamo=True, external_data=False,
                          optimize=True, verbose=False)
    store_weights_in_half(path)


def store_weights_in_half(path: Path, min_elements: int = 1024) -> int:
    """Rewrite the ONNX file at ``path`` with each large float32 weight that float16 holds exactly (a set
    stored in float16: every weight) as a float16 initializer and a Cast back to float32: the same numbers in
    half the bytes (the runtime folds the Cast away when it loads the file). Returns the bytes saved."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    kept, casts, saved = [], [], 0
    for init in graph.initializer:
        arr = numpy_helper.to_array(init) if init.data_type == onnx.TensorProto.FLOAT else None
        if arr is None or arr.size < min_elements or not np.array_equal(arr.astype(np.float16).astype(np.float32), arr):
            kept.append(init)
            continue
        half = numpy_helper.from_array(arr.astype(np.float16), init.name + "__half")
        kept.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT,
                                      name=init.name + "__to_float"))
        saved += arr.nbytes // 2
    if not casts:
        return 0
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.save(model, str(path))
    return saved


def _session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _max_diff(path: Path, feeds: dict, expected) -> float:
    got = _session(path).run(None, feeds)
    expected = expected if isinstance(expected, (tuple, list)) else [expected]
    return max(float(np.abs(np.asarray(g, np.float64) - e.detach().double().numpy()).max()) if g.size else 0.0
               for g, e in zip(got, expected))


def _export_compact(ws, tmp: Path, opset: int) -> dict:
    gen, tok, cfg = ws.generator.float().eval(), ws.tokenizer.float().eval(), ws.generator.cfg
    gen.set_codebooks(torch.stack([tok.codebook(g) for g in range(cfg.num_quantizers)]))
    rng = np.random.default_rng(0)
    diffs = {}

    # Prefill: fixed window length, so no dynamic axis.
    music = torch.as_tensor(rng.standard_normal((1, cfg.music_len, cfg.music_dim)), dtype=torch.float32)
    cond = torch.as_tensor(rng.standard_normal((1, cfg.cond_len, cfg.cond_dim)), dtype=torch.float32)
    style = torch.tensor([1])
    prefill = _Prefill(gen)
    path = tmp / "generator_prefill.onnx"
    _export(prefill, (music, style, cond), path, ["music", "style", "cond"], ["logits", "present_k", "present_v"],
            {}, opset)
    with torch.no_grad():                                 # reference: the torch model's own code path
        embeds = gen.music_embeddings(music, style, cond)
        ref_logits = gen.llama.logits(gen.llama(embeds)[:, -1])
        out = prefill(music, style, cond)
    diffs["generator_prefill"] = max(_max_diff(path, {"music": music.numpy(), "style": style.numpy(),
                                                      "cond": cond.numpy()}, out),
                                     float((out[0] - ref_logits).abs().max()))

    # Decode: n new tokens after a cache of any length.
    decode = _Decode(gen)
    n, past = 4, cfg.music_len
    ids = torch.as_tensor(rng.integers(0, cfg.nb_code, (1, n)))
    slots = torch.arange(n) % cfg.num_quantizers
    positions = torch.arange(past, past + n)
    pk, pv = out[1], out[2]
    path = tmp / "generator_decode.onnx"
    _export(decode, (ids, slots, positions, pk, pv), path, ["ids", "slots", "positions", "past_k", "past_v"],
            ["logits", "present_k", "present_v"],
            {"ids": {1: "n"}, "slots": {0: "n"}, "positions": {0: "n"}, "past_k": {3: "past"},
             "past_v": {3: "past"}}, opset)
    with torch.no_grad():
        ref = decode(ids, slots, positions, pk, pv)
        full = gen.llama.logits(gen.llama(torch.cat([embeds, gen.embed_tokens(ids)], dim=1))[:, -1])
    one = (ids[:, :1], slots[:1], positions[:1], pk, pv)         # another length through the same file
    with torch.no_grad():
        ref_one = decode(*one)
    diffs["generator_decode"] = max(
        _max_diff(path, dict(zip(["ids", "slots", "positions", "past_k", "past_v"], [a.numpy() for a in
                                                                                       (ids, slots, positions, pk, pv)])), ref),
        _max_diff(path, dict(zip(["ids", "slots", "positions", "past_k", "past_v"], [a.numpy() for a in one])), ref_one),
        float((ref[0] - full).abs().max()))

    # Tokenizer.
    q = cfg.num_quantizers
    ids3 = torch.as_tensor(rng.integers(0, cfg.nb_code, (1, 7, q)))
    path = tmp / "tokenizer_decoder.onnx"
    _export(_TokenDecoder(tok), (ids3,), path, ["ids"], ["features"], {"ids": {1: "latents"}}, opset)
    with torch.no_grad():
        ref = tok.decode(ids3)
    diffs["tokenizer_decoder"] = _max_diff(path, {"ids": ids3.numpy()}, ref)
    with torch.no_grad():
        x = tok.decode(torch.as_tensor(rng.integers(0, cfg.nb_code, (1, 9, q))))      # realistic latents
    path = tmp / "tokenizer_encoder.onnx"
    _export(_TokenEncoder(tok), (x,), path, ["features"], ["ids"], {"features": {1: "frames"}}, opset)
    with torch.no_grad():
        ref_ids = tok.encode(x)
    got = _session(path).run(None, {"features": x.numpy()})[0]
    diffs["tokenizer_encoder_mismatched_ids"] = float((got != ref_ids.numpy()).mean())

    # RetrievalNet encoders (the library's windows are max_len frames; any number of windows).
    if ws.retrieval is not None:
        ret = ws.retrieval.float().eval()
        for name, encoder, dim in (("retrieval_music", ret.cond_encoder, ret.cfg.music_dim),
                                   ("retrieval_motion", ret.motion_encoder, ret.cfg.motion_dim)):
            xw = torch.as_tensor(rng.standard_normal((2, ret.cfg.max_len, dim)), dtype=torch.float32)
            path = tmp / f"{name}.onnx"
            _export(_Encoder(encoder), (xw,), path, ["windows"], ["embeddings"], {"windows": {0: "n"}}, opset)
            with torch.no_grad():
                ref = F.normalize(encoder(xw), dim=-1)
            diffs[name] = _max_diff(path, {"windows": xw.numpy()}, ref)
    return diffs


def _export_frdm(w, tmp: Path, opset: int) -> dict:
    model, cfg = w.model.float().eval(), w.cfg
    x = torch.as_tensor(np.random.default_rng(0).standard_normal((2, cfg.window, cfg.dim)), dtype=torch.float32)
    t = torch.tensor([700, 40])
    path = tmp / "frdm_denoiser.onnx"
    _export(model, (x, t), path, ["x", "t"], ["x0"], {"x": {0: "batch"}, "t": {0: "batch"}}, opset)
    with torch.no_grad():
        ref = model(x, t)
    x3 = torch.cat([x, x[:1]])                               # another batch size through the same file
    t3 = torch.tensor([700, 40, 3])
    with torch.no_grad():
        ref3 = model(x3, t3)
    return {"frdm_denoiser": max(_max_diff(path, {"x": x.numpy(), "t": t.numpy()}, ref),
                                 _max_diff(path, {"x": x3.numpy(), "t": t3.numpy()}, ref3))}


def _source_hashes(folder: Path) -> dict:
    files = read_manifest(folder).get("files", {})
    return {k: v["sha256"] for k, v in files.items() if k.endswith(".safetensors") and not k.startswith(ONNX_DIR)}


def export_onnx(weights, out=None, opset: int = OPSET, progress=print) -> Path:
    """Export the ONNX files of the weight set ``weights`` (compact ChoreoLLaMA or FRDM) into ``out``
    (default: the set itself; another folder receives a copy of the set first). Returns the folder."""
    import onnxruntime  # noqa: F401  (fail early: the export is checked with it)

    src = Path(weights)
    out = Path(out) if out else src
    family = read_config(src, "any")["family"]
    if family not in ("compact", "frdm"):
        raise WeightSetError(f"ONNX export covers the compact family and FRDM; '{src}' is family '{family}' (the "
                             "official set runs with torch)")
    if out.resolve() != src.resolve():
        if out.exists() and any(out.iterdir()):
            raise WeightSetError(f"'{out}' exists and is not empty; choose a new folder or export in place")
        shutil.copytree(src, out, ignore=shutil.ignore_patterns(ONNX_DIR))
        manifest = read_manifest(out)
        manifest["files"] = {k: v for k, v in manifest.get("files", {}).items() if not k.startswith(ONNX_DIR + "/")}
        write_manifest(out, manifest)
    torch_threads = torch.get_num_threads()
    tmp = Path(tempfile.mkdtemp(prefix=".onnx-export-", dir=out))
    try:
        progress(f"exporting {family} weight set '{out}' to ONNX (opset {opset})")
        if family == "frdm":
            from .footfix import load_frdm_weights as load_frdm
            diffs = _export_frdm(load_frdm(out, "cpu"), tmp, opset)
        else:
            from .weights import load_weight_set
            diffs = _export_compact(load_weight_set(out, "cpu", "fp32"), tmp, opset)
        worst = max(v for k, v in diffs.items() if not k.endswith("mismatched_ids"))
        if worst > PARITY_LIMIT or diffs.get("tokenizer_encoder_mismatched_ids", 0.0) > 0.0:
            raise WeightSetError(f"the ONNX export of '{out}' does not reproduce torch (differences {diffs}); it was "
                                 "not written")
        files = sorted(p.name for p in tmp.glob("*.onnx"))
        info = {"format": 1, "family": family, "opset": opset, "torch": torch.__version__,
                "onnxruntime_checked": __import__("onnxruntime").__version__, "files": files,
                "max_abs_diff_vs_torch": diffs, "source_sha256": _source_hashes(out)}
        (tmp / "export.json").write_text(json.dumps(info, indent=2))
        # Swap the new export in, then record it; an interrupted run leaves the old export or none.
        final = out / ONNX_DIR
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        manifest = read_manifest(out)
        manifest["files"] = {k: v for k, v in manifest.get("files", {}).items() if not k.startswith(ONNX_DIR + "/")}
        write_manifest(out, manifest)
        for name in files + ["export.json"]:
            record_file(out, f"{ONNX_DIR}/{name}", f"python -m core_models export-onnx (opset {opset})")
        progress(f"wrote {len(files)} ONNX files to {final}; largest difference from torch {worst:.2e}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        torch.set_num_threads(torch_threads)
    return out
