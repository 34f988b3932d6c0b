# SPDX-License-Identifier: GPL-3.0-or-later
"""Weight sets: a folder with ``config.json``, safetensors files and ``manifest.json`` (sha256 per file).

    config.json             family ("official" | "compact"), sizes of every model, music frontend,
                            licence, source, training data
    tokenizer.safetensors   RVQ-VAE (names of the official ``dance_vqvae.pth``)
    generator.safetensors   ChoreoLLaMA (names of ``best_model_stage2.pt``; the tied head is stored once)
    retrieval.safetensors   RetrievalNet (optional; official names without Lightning's ``model.``)
    stats.safetensors       mean/std of the 264-d features (decoding) and rag_mean/rag_std (retrieval)
    manifest.json           sha256 and size of every file

Runtime loading reads safetensors only. ``convert_official`` turns the release's pickled checkpoints into
such a folder with ``torch.load(weights_only=True)`` (no pickled code ever runs) and strict key and shape
checks; every size is inferred from the tensors (and the release's config files), so the same code
converts the released sizes and small checkpoints of the same layout.
"""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Sizes only: torch and the network modules are imported inside the functions that build networks, so a
# weight set's config can be read (and run through ONNX Runtime, see onnx_backend.py) without torch.
from .configs import GENRES, GeneratorConfig, LlamaConfig, RetrievalConfig, TokenizerConfig
from .runtime.files import (FAMILIES, FILES, FORMAT, WeightSetError, atomic_folder, find_release_file, read_config,
                            record_files, verify_weights, weight_files)
OFFICIAL_LICENCE = "InfiniteDance Non-Commercial Research License (code, checkpoints, weights, data)"
TIED_HEAD = "llama.lm_head.weight"


# ----------------------------------------------------------------------------------------------- checks

def check_state_dict(state: dict, expected: dict[str, tuple], what: str, source) -> None:
    """Strict key and shape check with a message that lists what is missing, extra or mis-shaped."""
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if tuple(state[k].shape) != tuple(expected[k]))
    if not (missing or extra or wrong):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
    if extra:
        parts.append(f"{len(extra)} unexpected (e.g. {', '.join(extra[:3])})")
    if wrong:
        parts.append(f"{len(wrong)} with the wrong shape (e.g. " + ", ".join(
            f"{k}: {list(state[k].shape)} instead of {list(expected[k])}" for k in wrong[:3]) + ")")
    raise WeightSetError(f"{source} does not match the {what} layout: {'; '.join(parts)}. Is it the right file, "
                         "complete and from the same release? Download or convert it again")


def _shapes(model: torch.nn.Module) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _meta_shapes(build) -> dict[str, tuple]:
    import torch

    with torch.device("meta"):
        return _shapes(build())


# ---------------------------------------------------------------------------------- reading pickles

class _Opaque(dict):
    """Stand-in for non-tensor objects in a checkpoint (Lightning hyper-parameters, enums...): it records
    their state and never runs their code."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def __setstate__(self, state):
        self["__state__"] = state


def load_pickled_checkpoint(path: Path) -> dict:
    """``torch.load(weights_only=True)``; classes outside torch's safe list (Lightning's bookkeeping objects)
    are read as inert :class:`_Opaque` dicts, so no pickled code can run."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise WeightSetError(f"checkpoint '{path}' does not exist")
    stubs = []
    for _ in range(32):
        try:
            with torch.serialization.safe_globals(stubs):
                return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as exc:       # torch raises UnpicklingError or RuntimeError depending on the format
            found = re.search(r"GLOBAL ([\w.]+)", str(exc))
            if found is None or any(name == found.group(1) for _, name in stubs):
                raise WeightSetError(f"cannot read checkpoint '{path}': {str(exc).splitlines()[0]}. The file may "
                                     "be truncated or corrupted; download it again") from exc
            stubs.append((_Opaque, found.group(1)))
    raise WeightSetError(f"'{path}' holds too many unknown object types to be a weights checkpoint")


# ------------------------------------------------------------------------------ inferring configs

def tokenizer_config_from(state: dict, args: dict) -> TokenizerConfig:
    cfg = TokenizerConfig.from_dict({**args,
                                     "input_dim": int(state["encoder.model.0.weight"].shape[1]),
                                     "width": int(state["encoder.model.0.weight"].shape[0]),
                                     "vel_decoder": any(k.startswith("vel_decoder.") for k in state),
                                     "rot_decoder": any(k.startswith("rot_decoder.") for k in state)})
    return cfg


OFFICIAL_BRIDGE_HEADS = 8     # the release constructs the music bridge's attention with 8 heads at any width


def generator_config_from(state: dict, tok: TokenizerConfig, llama_hf: dict | None,
                          music_fps: float = 25.0, bridge_heads: int | None = None) -> GeneratorConfig:
    """Sizes of a ChoreoLLaMA checkpoint, each read from the tensor that fixes it; what the tensors cannot tell
    comes from the release: LLaMA head size and RoPE settings from its config.json (head size 64 and the
    llama3 RoPE of LLaMA-3.2 without one), music-bridge heads from its constructor (8, unless given).

    A tensor whose shape contradicts the others is refused with its key and shape named."""
    def shape(key):
        if key not in state:
            raise WeightSetError(f"the generator checkpoint has no '{key}'; it is not a ChoreoLLaMA checkpoint")
        return tuple(state[key].shape)

    def refuse(key, why):
        raise WeightSetError(f"the generator checkpoint's '{key}' has shape {list(shape(key))}: {why}; it is not "
                             "a ChoreoLLaMA checkpoint of the release's layout")

    emb, q_key, k_key = ("llama.model.embed_tokens.weight", "llama.model.layers.0.self_attn.q_proj.weight",
                         "llama.model.layers.0.self_attn.k_proj.weight")
    if len(shape(emb)) != 2:
        refuse(emb, "expected (vocabulary, width)")
    vocab, dim = shape(emb)
    layers = len({k.split(".")[3] for k in state if k.startswith("llama.model.layers.")})
    q_rows, kv_rows = shape(q_key)[0], shape(k_key)[0]
    if llama_hf:
        try:
            hf = LlamaConfig.from_hf(llama_hf, vocab_size=vocab)
        except (KeyError, TypeError, ValueError) as exc:
            raise WeightSetError(f"the LLaMA config.json cannot be read as a LLaMA config ({exc!r})") from exc
        if hf.dim != dim or hf.n_layers != layers:
            raise WeightSetError(f"the LLaMA config.json (hidden {hf.dim}, {hf.n_layers} layers) does not match the "
                                 f"checkpoint ('{emb}' {list(shape(emb))}, {layers} layers)")
        base = hf
    else:   # LLaMA-3.2 conventions: head size 64, llama3 RoPE of the release
        base = LlamaConfig(dim=dim, n_layers=layers, n_heads=1, n_kv_heads=1, head_dim=64, vocab_size=vocab)
    head_dim = base.head_dim
    if q_rows % head_dim:
        refuse(q_key, f"not a whole number of {head_dim}-wide attention heads")
    if kv_rows % head_dim or (q_rows // head_dim) % (kv_rows // head_dim or 1) or not kv_rows:
        refuse(k_key, f"not a whole number of {head_dim}-wide key/value heads dividing the "
                      f"{q_rows // head_dim} query heads")
    try:
        llama = LlamaConfig(dim=dim, n_layers=layers, n_heads=q_rows // head_dim, n_kv_heads=kv_rows // head_dim,
                            head_dim=head_dim, intermediate=shape("llama.model.layers.0.mlp.gate_proj.weight")[0],
                            vocab_size=vocab, norm_eps=base.norm_eps, rope_theta=base.rope_theta,
                            rope_scaling=base.rope_scaling, tie_embeddings=base.tie_embeddings)
    except ValueError as exc:
        raise WeightSetError(f"the generator checkpoint's LLaMA sizes are inconsistent: {exc}") from exc

    num_styles, style_dim = shape("style_embedding.weight")
    music_len, cond_len = shape("cond_projection.weight")
    n_bins = len({k.split(".")[2] for k in state if k.startswith("music_bridge.specialized_experts.")})
    cond_dim = shape("music_bridge.specialized_experts.0.proj.weight")[1] if n_bins else tok.input_dim
    in_proj = "music_bridge.input_proj.weight"
    bridge_width, bridge_in = shape(in_proj)
    if bridge_width != dim:      # the release builds the music bridge at the LLaMA width (its output_dim)
        refuse(in_proj, f"the music bridge must be as wide as the LLaMA ({dim})")
    music_dim = bridge_in - style_dim - cond_dim
    if music_dim < 1:
        refuse(in_proj, f"its {bridge_in} inputs leave no room for music after the {style_dim}-d style and the "
                        f"{cond_dim}-d retrieval condition")
    mamba = "music_bridge.universal_expert.mamba."
    d_inner, d_state = shape(mamba + "A_log")
    if d_inner % dim:
        refuse(mamba + "A_log", f"its inner size is not a whole multiple of the width {dim}")
    fc1 = "dance_bridge.fc1.weight"
    bridge_hidden, code_dim = shape(fc1)
    if code_dim != tok.code_dim:
        refuse(fc1, f"its input must be the tokenizer's {tok.code_dim}-d codebook vectors (the generator and the "
                    "tokenizer come from different releases)")
    heads = OFFICIAL_BRIDGE_HEADS if bridge_heads is None else int(bridge_heads)
    if heads < 1 or dim % heads:
        raise WeightSetError(f"{heads} music-bridge attention heads do not divide the bridge width {dim} ('{in_proj}' "
                             f"{list(shape(in_proj))}); the release uses {OFFICIAL_BRIDGE_HEADS}: pass the count the "
                             "checkpoint was trained with (--bridge-heads N)")
    special = vocab - tok.nb_code * tok.num_quantizers
    try:
        return GeneratorConfig(
            llama=llama, music_dim=music_dim,
            music_fps=music_fps, music_len=music_len, dance_len=288, style_dim=style_dim, num_styles=num_styles,
            cond_dim=cond_dim, cond_len=cond_len, code_dim=code_dim, nb_code=tok.nb_code,
            num_quantizers=tok.num_quantizers,
            # The release's vocabulary: 4096 music placeholders, the dance ids, then 256 specials.
            dance_token_start=4096 if special >= 4096 + 256 else max(0, special - 256),
            bridge_heads=heads, bridge_hidden=bridge_hidden, n_bins=n_bins, d_state=d_state,
            d_conv=shape(mamba + "conv1d.weight")[2], expand=d_inner // dim,
            dt_rank=shape(mamba + "dt_proj.weight")[1],
            genres=GENRES if num_styles == len(GENRES) else tuple(f"style{i}" for i in range(num_styles)))
    except ValueError as exc:
        raise WeightSetError(f"the generator checkpoint's sizes are inconsistent ('{emb}' {list(shape(emb))}): "
                             f"{exc}") from exc


def retrieval_config_from(state: dict) -> RetrievalConfig:
    motion_in = state["motion_encoder.proj_in.weight"]
    return RetrievalConfig(motion_dim=int(motion_in.shape[1]),
                           music_dim=int(state["cond_encoder.proj_in.weight"].shape[1]),
                           latent=int(motion_in.shape[0]),
                           ff=int(state["motion_encoder.blocks.0.ffn.linear1.weight"].shape[0]),
                           layers=len({k.split(".")[2] for k in state if k.startswith("motion_encoder.blocks.")}),
                           max_len=int(state["motion_encoder.embedding"].shape[0]))


# ------------------------------------------------------------------------------------ saving

def _contiguous(state: dict) -> dict:
    return {k: v.detach().contiguous() for k, v in state.items()}


def write_weight_set(dest, config: dict, tokenizer_state: dict, generator_state: dict,
                     stats: dict[str, np.ndarray], retrieval_state: dict | None = None,
                     extra_files: dict[str, Path] | None = None) -> Path:
    """Write a complete weight-set folder atomically (a crash leaves the old folder or none, never half).

    ``extra_files``: relative name in the set -> file to copy in (e.g. the MuQ encoder under ``muq/``)."""
    import torch
    from safetensors.torch import save_file

    generator_state = dict(generator_state)
    if config["generator"]["llama"].get("tie_embeddings", True):
        generator_state.pop(TIED_HEAD, None)      # safetensors stores shared tensors once
    with atomic_folder(dest) as tmp:
        save_file(_contiguous(tokenizer_state), tmp / FILES["tokenizer"])
        save_file(_contiguous(generator_state), tmp / FILES["generator"])
        save_file({k: torch.tensor(np.asarray(v)) for k, v in stats.items()}, tmp / FILES["stats"])   # copies: no sharing
        files = ["tokenizer", "generator", "stats"]
        if retrieval_state is not None:
            save_file(_contiguous(retrieval_state), tmp / FILES["retrieval"])
            files.append("retrieval")
        config = dict(config, format=FORMAT, files={k: FILES[k] for k in files})
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        for relative, source in (extra_files or {}).items():
            (tmp / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, tmp / relative)
        record_files(tmp, [FILES[k] for k in files] + ["config.json"] + sorted(extra_files or {}),
                     config.get("source", "choreo"), config.get("licence", ""))
    return Path(dest)


def _find(src: Path, release_path: str, required: bool = True) -> Path | None:
    hit = find_release_file(src, release_path)
    if hit is None and required:
        raise WeightSetError(f"'{Path(release_path).name}' (release path {release_path}) is not in {src}; download "
                             "it with 'python weights_fetch.py download official' or copy it there")
    return hit


def convert_official(src, dest, bridge_heads: int | None = None) -> Path:
    """Official release files in ``src`` (release layout or loose files) -> a weight-set folder ``dest``.

    ``bridge_heads``: attention heads of the music bridge, which no tensor records (default: the release's 8);
    the value is written to the set's config.json, which loading reads."""
    import torch

    from .choreollama import ChoreoLLaMA
    from .retrieval import RetrievalNet, strip_lightning_prefix
    from .tokenizer import RVQVAE

    src = Path(src)
    if not src.is_dir():
        raise WeightSetError(f"source folder '{src}' does not exist")
    # Tokenizer: {'net': state_dict} + args.json.
    vq_path = _find(src, "AR/models/checkpoints/dance_vqvae.pth")
    args_path = _find(src, "AR/models/checkpoints/args.json")
    try:
        args = json.loads(args_path.read_text())
    except json.JSONDecodeError as exc:
        raise WeightSetError(f"{args_path} is not valid JSON ({exc}); download it again") from exc
    vq = load_pickled_checkpoint(vq_path)
    if not isinstance(vq, dict) or "net" not in vq:
        raise WeightSetError(f"{vq_path} is not a tokenizer checkpoint (expected a dict with 'net')")
    tok_state = dict(vq["net"])
    if "encoder.model.0.weight" not in tok_state:
        raise WeightSetError(f"{vq_path}: 'net' holds no 'encoder.model.0.weight'; not an RVQ-VAE checkpoint")
    try:
        tok_cfg = tokenizer_config_from(tok_state, args)
    except ValueError as exc:
        raise WeightSetError(f"{args_path}: {exc}") from exc
    check_state_dict(tok_state, _meta_shapes(lambda: RVQVAE(tok_cfg)), "RVQ-VAE tokenizer", vq_path)
    if not tok_cfg.vel_decoder:
        raise WeightSetError(f"{vq_path} has no vel_decoder weights; the release decodes the root velocity with it")

    # Generator: flat state dict, LLaMA head counts from the release's Llama3.2-1B config.json.
    lm_path = _find(src, "AR/output/exp_m2d_infinitedance/best_model_stage2.pt")
    lm_state = load_pickled_checkpoint(lm_path)
    if not isinstance(lm_state, dict) or not lm_state or not all(isinstance(v, torch.Tensor) for v in lm_state.values()):
        raise WeightSetError(f"{lm_path} is not a flat state dict of tensors")
    hf_path = _find(src, "AR/models/Llama3.2-1B/config.json", required=False)
    try:
        hf = json.loads(hf_path.read_text()) if hf_path else None
    except json.JSONDecodeError as exc:
        raise WeightSetError(f"{hf_path} is not valid JSON ({exc}); download it again") from exc
    gen_cfg = generator_config_from(lm_state, tok_cfg, hf, FAMILIES["official"][2], bridge_heads)
    check_state_dict(lm_state, _meta_shapes(lambda: ChoreoLLaMA(gen_cfg)), "ChoreoLLaMA generator", lm_path)
    if gen_cfg.llama.tie_embeddings and not torch.equal(lm_state["llama.model.embed_tokens.weight"],
                                                         lm_state[TIED_HEAD]):
        raise WeightSetError(f"{lm_path}: lm_head and embed_tokens differ although the config ties them")

    # RetrievalNet (optional): Lightning checkpoint, weights under 'state_dict' with the 'model.' prefix.
    ret_state, ret_cfg = None, None
    ret_path = _find(src, "AR/models/retrievalnet/retrievalnet_audio55_motion264.ckpt", required=False)
    if ret_path is not None:
        ckpt = load_pickled_checkpoint(ret_path)
        if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
            raise WeightSetError(f"{ret_path} is not a Lightning checkpoint (no 'state_dict')")
        try:
            ret_state = strip_lightning_prefix(dict(ckpt["state_dict"]))
        except ValueError as exc:
            raise WeightSetError(f"{ret_path}: {exc}") from exc
        ret_cfg = retrieval_config_from(ret_state)
        check_state_dict(ret_state, _meta_shapes(lambda: RetrievalNet(ret_cfg)), "RetrievalNet", ret_path)

    mean = np.load(_find(src, "DATA/dance/alldata_new_joint_vecs264/meta/Mean.npy"), allow_pickle=False)
    std = np.load(_find(src, "DATA/dance/alldata_new_joint_vecs264/meta/Std.npy"), allow_pickle=False)
    rag_mean_p = _find(src, "alldata_new_joint_vecs264_ft_balanced/meta/Mean.npy", required=False)
    rag_std_p = _find(src, "alldata_new_joint_vecs264_ft_balanced/meta/Std.npy", required=False)
    rag_mean = np.load(rag_mean_p) if rag_mean_p and "ft_balanced" in str(rag_mean_p) else mean
    rag_std = np.load(rag_std_p) if rag_std_p and "ft_balanced" in str(rag_std_p) else std
    for name, arr in (("Mean", mean), ("Std", std), ("RAG Mean", rag_mean), ("RAG Std", rag_std)):
        if arr.shape != (tok_cfg.input_dim,) or not np.isfinite(arr).all():
            raise WeightSetError(f"{name}.npy has shape {arr.shape} (or non-finite values); expected "
                                 f"({tok_cfg.input_dim},)")
    if (std <= 0).any():
        raise WeightSetError("Std.npy has zero or negative entries; the features cannot be de-normalised")

    config = {
        "family": "official", "name": "InfiniteDance (official release)",
        "music_frontend": FAMILIES["official"][0], "retrieval_frontend": FAMILIES["official"][3],
        "motion_fps": 30.0,
        "licence": OFFICIAL_LICENCE, "source": f"converted from the official release files in {src}",
        "training_data": "InfiniteDance corpus (InfiniteDance, AIST++, FineDance, Motorica); see the release",
        "tokenizer": tok_cfg.to_dict(), "generator": gen_cfg.to_dict(),
        "retrieval": ret_cfg.to_dict() if ret_cfg else None,
        "notes": ([] if hf else ["LLaMA head size assumed (64): no Llama config.json was found"]) + [
            f"music-bridge attention: {gen_cfg.bridge_heads} heads (" + (
                "the release's constructor" if bridge_heads is None else "set with --bridge-heads") + ")"],
    }
    stats = {"mean": mean.astype(np.float64), "std": std.astype(np.float64),
             "rag_mean": rag_mean.astype(np.float64), "rag_std": rag_std.astype(np.float64)}
    # The MuQ music encoder (separate repository, CC BY-NC 4.0) travels with the set when it was downloaded.
    muq = {name: _find(src, name, required=False) for name in ("muq/config.json", "muq/model.safetensors")}
    extra = muq if all(muq.values()) else {}
    if not extra:
        config["notes"].append("MuQ encoder not found in the source: put OpenMuQ/MuQ-large-msd-iter in the set's "
                               "muq/ folder or set CHOREO_MUQ_DIR before generating from audio")
    return write_weight_set(dest, config, tok_state, lm_state, stats, ret_state, extra)


# ------------------------------------------------------------------------------------ loading

class WeightSetInfo:
    """What every loaded weight set (torch ``WeightSet``, ``onnx_backend.OnnxWeightSet``) derives from its
    config, generator sizes and tokenizer."""

    @property
    def family(self) -> str:
        return self.config["family"]

    @property
    def genres(self) -> tuple:
        return self.generator.cfg.genres

    @property
    def trained_genres(self) -> dict[str, float]:
        """Genre -> minutes of dance the generator was trained on; empty when the set does not say (the
        official release, older sets), in which case every genre counts as trained."""
        return {str(g): float(m) for g, m in (self.config.get("trained_genres") or {}).items()}

    @property
    def music_frontend(self) -> str:
        return self.config["music_frontend"]

    @property
    def music_fps(self) -> float:
        return self.generator.cfg.music_fps

    @property
    def query_frontend(self) -> str:
        """Music features that RetrievalNet's music encoder reads (30 fps)."""
        return self.config.get("retrieval_frontend") or FAMILIES[self.family][3]

    @property
    def frames_per_latent(self) -> int:
        return self.tokenizer.frames_per_latent

    @property
    def decode_smoothing_frames(self) -> float:
        """Gaussian sigma (frames) over the decoded features; 0 (the official release, older sets) keeps the
        decoder's output as it is. The compact tokenizer's frames tremble (jitter three times real dance's)
        and one frame of smoothing takes that out without moving a beat."""
        return float(self.config.get("decode_smoothing_frames", 0.0))

    def decode_features(self, local: np.ndarray) -> np.ndarray:
        """(L, Q) local ids -> (L * frames_per_latent, 264) features in their own units (float64)."""
        from .features import denormalize_features, smooth_over_time

        features = denormalize_features(np.asarray(self.decode_tokens(local), np.float64), self.mean, self.std)
        return smooth_over_time(features, self.decode_smoothing_frames)


@dataclass
class WeightSet(WeightSetInfo):
    path: Path
    config: dict
    tokenizer: RVQVAE
    generator: ChoreoLLaMA
    retrieval: RetrievalNet | None
    mean: np.ndarray
    std: np.ndarray
    rag_mean: np.ndarray
    rag_std: np.ndarray
    device: torch.device
    dtype: torch.dtype
    notes: list = field(default_factory=list)
    music_mean: np.ndarray | None = None     # optional normalisation of the music features
    music_std: np.ndarray | None = None

    # The numpy interface every backend offers (onnx_backend.OnnxWeightSet has the same methods): the
    # pipeline and the library call these and never touch tensors.
    backend = "torch"

    def sample_window(self, music: np.ndarray, style: int, cond: np.ndarray, prefix: np.ndarray | None,
                      new_tokens: int, sampling, rng, cancel=None, on_token=None) -> np.ndarray:
        """One window's new slot-local ids (new_tokens,) for music (music_len, music_dim), cond (cond_len, 264)
        and a prefix of local ids (P,) or None."""
        import torch

        dev = self.device
        to_t = lambda a: torch.as_tensor(np.ascontiguousarray(a))[None].to(dev, self.dtype)   # noqa: E731
        new = self.generator.generate_window(
            to_t(music), torch.tensor([int(style)], device=dev), to_t(cond),
            None if prefix is None or prefix.size == 0 else torch.as_tensor(prefix)[None].to(dev),
            new_tokens, sampling, rng, cancel, on_token)
        return new[0].cpu().numpy()

    def decode_tokens(self, local: np.ndarray) -> np.ndarray:
        """(L, Q) local ids -> (L * frames_per_latent, 264) normalised features (float32)."""
        import torch

        with torch.no_grad():
            return self.tokenizer.decode(torch.as_tensor(local)[None].to(self.device))[0].float().cpu().numpy()

    def encode_tokens(self, norm: np.ndarray) -> np.ndarray:
        """(T, 264) normalised features, T a multiple of frames_per_latent -> (T / fpl, Q) local ids."""
        import torch

        with torch.no_grad():
            x = torch.as_tensor(np.asarray(norm, np.float32), device=self.device)[None]
            return self.tokenizer.encode(x)[0].cpu().numpy()

    def _encode(self, encoder, windows: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return encoder(torch.as_tensor(np.asarray(windows, np.float32), device=self.device)).float().cpu().numpy()

    def encode_music(self, windows: np.ndarray) -> np.ndarray:
        """RetrievalNet music embeddings (N, latent) of (N, 384, music_dim) query windows."""
        return self._encode(self.retrieval.encode_music, windows)

    def encode_motion(self, windows: np.ndarray) -> np.ndarray:
        """RetrievalNet motion embeddings (N, latent) of (N, 384, 264) motion windows."""
        return self._encode(self.retrieval.encode_motion, windows)


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise WeightSetError("device 'cuda' was requested but no CUDA GPU is available to torch; choose 'cpu' or "
                             "'auto'")
    return device


def resolve_dtype(dtype, device: torch.device) -> torch.dtype:
    import torch

    if dtype in (None, "auto"):
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
             "fp16": torch.float16, "float16": torch.float16}
    if dtype not in names:
        raise WeightSetError(f"unknown precision '{dtype}'; use fp32, bf16 or fp16")
    return names[dtype]


def model_bytes(gen_cfg: GeneratorConfig, tok_cfg: TokenizerConfig, dtype: torch.dtype, batch: int = 1) -> int:
    """Device memory the models of a set need to generate ``batch`` takes: the generator in ``dtype`` (its tied
    head counted once), the tokenizer in fp32, and the KV cache of one window, from sizes alone."""
    import torch

    from .choreollama import ChoreoLLaMA
    from .tokenizer import RVQVAE

    with torch.device("meta"):
        gen, tok = ChoreoLLaMA(gen_cfg), RVQVAE(tok_cfg)
    width = torch.empty((), dtype=dtype).element_size()
    gen_params = sum(p.numel() for p in gen.parameters())            # parameters() yields a tied tensor once
    llama = gen_cfg.llama
    window = gen_cfg.music_len + gen_cfg.dance_len
    kv = 2 * llama.n_layers * batch * llama.n_kv_heads * window * llama.head_dim * width
    return gen_params * width + sum(p.numel() for p in tok.parameters()) * 4 + kv


def check_device_memory(gen_cfg: GeneratorConfig, tok_cfg: TokenizerConfig, device: torch.device,
                        dtype: torch.dtype, batch: int = 1, headroom: float = 1.25) -> None:
    """Refuse a CUDA device without room for the models (plus ``headroom`` for activations) before anything is
    read: a clear message instead of an out-of-memory error halfway through loading."""
    import torch

    if device.type != "cuda":
        return
    need = model_bytes(gen_cfg, tok_cfg, dtype, batch) * headroom
    free, total = torch.cuda.mem_get_info(device)
    if need > free:
        gib = 1 << 30
        raise WeightSetError(f"the weight set needs about {need / gib:.1f} GiB of GPU memory in "
                             f"{str(dtype).replace('torch.', '')}, but {torch.cuda.get_device_name(device)} has "
                             f"{free / gib:.1f} GiB free of {total / gib:.1f} GiB; close other GPU programs, choose "
                             "bf16, or run on the CPU")


def _load_safetensors(path: Path, what: str) -> dict:
    from safetensors.torch import load_file

    if not path.is_file():
        raise WeightSetError(f"{what} file '{path}' is missing; the weight set is incomplete, download or convert it "
                             "again")
    try:
        return load_file(str(path))
    except Exception as exc:        # safetensors raises its own error types for truncated/corrupt headers
        raise WeightSetError(f"{what} file '{path}' cannot be read ({exc}); it is truncated or corrupted, download "
                             "or convert the weight set again") from exc


def _load_module(module: torch.nn.Module, state: dict, what: str, source, tied: bool = False) -> None:
    expected = _shapes(module)
    if tied:
        state = dict(state)
        if "llama.model.embed_tokens.weight" in state:
            state[TIED_HEAD] = state["llama.model.embed_tokens.weight"]
    check_state_dict(state, expected, what, source)
    module.load_state_dict(state, strict=True)


def load_weight_set(folder, device="auto", dtype=None, verify: bool = True) -> WeightSet:
    """Load a weight-set folder strictly onto ``device`` in ``dtype`` (default: bf16 on CUDA, fp32 on CPU).

    With ``verify`` every file is checked against the sha256 of ``manifest.json`` first, so a corrupted
    download is reported as such instead of as a strange model.
    """
    import torch

    from .choreollama import ChoreoLLaMA
    from .retrieval import RetrievalNet
    from .tokenizer import RVQVAE

    folder = Path(folder)
    config = read_config(folder)
    # Everything that can refuse the set cheaply comes before reading (or hashing) any weights.
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    frontend, music_dim, music_fps, _ = FAMILIES[config["family"]]
    try:
        gen_cfg = GeneratorConfig.from_dict(config["generator"])
        tok_cfg = TokenizerConfig.from_dict(config["tokenizer"])
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightSetError(f"{folder / 'config.json'} holds inconsistent model sizes ({exc}); convert or download "
                             "the weight set again") from exc
    if config.get("music_frontend") != frontend or gen_cfg.music_dim != music_dim:
        raise WeightSetError(f"weight set '{folder}' says family '{config['family']}' but its generator expects "
                             f"{gen_cfg.music_dim}-d '{config.get('music_frontend')}' music features (the family "
                             f"uses {music_dim}-d '{frontend}'); it is of the wrong family or its config is damaged")
    check_device_memory(gen_cfg, tok_cfg, device, dtype)
    if verify:
        problems = verify_weights(folder)
        if problems:
            raise WeightSetError(f"weight set '{folder}' failed verification: {'; '.join(problems[:3])}. Download or "
                                 "convert it again")

    files = weight_files(folder, config)
    tokenizer = RVQVAE(tok_cfg)
    _load_module(tokenizer, _load_safetensors(folder / files["tokenizer"], "tokenizer"), "RVQ-VAE tokenizer",
                 folder / files["tokenizer"])
    with torch.device("meta"):
        generator = ChoreoLLaMA(gen_cfg)
    generator = generator.to_empty(device="cpu")
    gen_state = _load_safetensors(folder / files["generator"], "generator")
    _load_module(generator, gen_state, "ChoreoLLaMA generator", folder / files["generator"],
                 tied=gen_cfg.llama.tie_embeddings)
    if gen_cfg.llama.tie_embeddings:
        generator.llama.lm_head.weight = generator.llama.model.embed_tokens.weight
    retrieval = None
    if config.get("retrieval") and "retrieval" in files:
        retrieval = RetrievalNet(RetrievalConfig.from_dict(config["retrieval"]))
        _load_module(retrieval, _load_safetensors(folder / files["retrieval"], "retrieval"), "RetrievalNet",
                     folder / files["retrieval"])
        retrieval = retrieval.to(device).eval()
    stats = {k: v.numpy().astype(np.float64) for k, v in _load_safetensors(folder / files["stats"], "stats").items()}
    for key in ("mean", "std"):
        if key not in stats or stats[key].shape != (tok_cfg.input_dim,):
            raise WeightSetError(f"stats file of '{folder}' lacks a ({tok_cfg.input_dim},) '{key}'")
    # The tokenizer decodes in fp32 (a small share of the time; its convolutions lose accuracy in bf16).
    tokenizer = tokenizer.to(device).eval()
    generator = generator.to(device=device, dtype=dtype).eval()
    generator.set_codebooks(torch.stack([tokenizer.codebook(g) for g in range(tok_cfg.num_quantizers)]))
    return WeightSet(folder, config, tokenizer, generator, retrieval, stats["mean"], stats["std"],
                     stats.get("rag_mean", stats["mean"]), stats.get("rag_std", stats["std"]), device, dtype,
                     list(config.get("notes", [])), stats.get("music_mean"), stats.get("music_std"))


def compact_configs() -> tuple[TokenizerConfig, GeneratorConfig, RetrievalConfig]:
    """Sizes of the compact family: small enough to ship (tens of MB) and to sample on a laptop CPU.

    Music is the 7 rhythm features of ``audio.rhythm_features`` at 30 fps (onset, beat, beat phase, tempo:
    they transfer from synthesised to real music). Sized to train on 2 CPU cores within hours: 96-token
    windows (4.3 s, 128 music frames), a 3-layer 128-wide backbone.
    The token vocabulary holds only the dance ids (no music placeholders or specials).
    """
    # 256-wide with 256-d codes: at 128 the autoencoder alone (no quantisation) was 9 cm off in the root frame
    # on its own training dance and kept decoded hands at the chest (benchmarks/tokenizer.py).
    tokenizer = TokenizerConfig(nb_code=256, code_dim=256, output_emb_width=256, width=256, depth=2,
                                dilation_growth_rate=3, rot_decoder=False)
    llama = LlamaConfig(dim=128, n_layers=3, n_heads=4, n_kv_heads=2, head_dim=32, intermediate=384,
                        vocab_size=256 * 3, rope_theta=10000.0, rope_scaling=None)
    # 96-token windows (4.3 s: the length of a typical training clip) with 128 music frames each.
    generator = GeneratorConfig(llama=llama, music_dim=7, music_fps=30.0, music_len=128, dance_len=96,
                                style_dim=16, cond_len=128, code_dim=256, nb_code=256, dance_token_start=0,
                                bridge_heads=4, n_bins=2, d_state=8, d_conv=4, expand=1, dt_rank=8)
    retrieval = RetrievalConfig(music_dim=7, latent=64, heads=4, ff=256, layers=2, dropout=0.1)
    return tokenizer, generator, retrieval


def random_weight_set(dest, family: str = "compact", tokenizer: TokenizerConfig | None = None,
                      generator: GeneratorConfig | None = None, retrieval: RetrievalConfig | None = None,
                      seed: int = 0, name: str = "random") -> Path:
    """A weight set of randomly initialised models (tests, speed benchmarks, the start of training)."""
    import torch

    from .choreollama import ChoreoLLaMA
    from .retrieval import RetrievalNet
    from .tokenizer import RVQVAE

    frontend, music_dim, music_fps, query = FAMILIES[family]
    tokenizer = tokenizer or TokenizerConfig()
    generator = generator or GeneratorConfig(music_dim=music_dim, music_fps=music_fps)
    torch.manual_seed(seed)
    tok = RVQVAE(tokenizer)
    gen = ChoreoLLaMA(generator)
    for p in gen.parameters():            # small weights keep random logits in a sane range
        if p.ndim >= 2:
            torch.nn.init.normal_(p, std=0.02)
    ret = RetrievalNet(retrieval) if retrieval else None
    rng = np.random.default_rng(seed)
    stats = {"mean": rng.normal(0, 0.1, tokenizer.input_dim), "std": rng.uniform(0.5, 1.5, tokenizer.input_dim)}
    stats.update(rag_mean=stats["mean"], rag_std=stats["std"])
    config = {"family": family, "name": name, "music_frontend": frontend, "retrieval_frontend": query,
              "motion_fps": 30.0,
              "licence": "GPL-3.0-or-later (random weights, no training data)", "source": "random initialisation",
              "training_data": "none", "tokenizer": tokenizer.to_dict(), "generator": generator.to_dict(),
              "retrieval": retrieval.to_dict() if retrieval else None}
    return write_weight_set(dest, config, tok.state_dict(), gen.state_dict(), stats,
                            ret.state_dict() if ret else None)
