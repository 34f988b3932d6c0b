# SPDX-License-Identifier: GPL-3.0-or-later
"""Model sizes as plain dataclasses (no torch): the tokenizer, the LLaMA backbone, ChoreoLLaMA and RetrievalNet.

They live apart from the modules that build the networks so that a weight set can be read, and run through
ONNX Runtime, where torch is not installed. The network modules re-export them under their old names.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import numpy as np

ACTIVATIONS = ("relu", "silu", "gelu")       # tokenizer activations (tokenizer.py maps them to modules)

@dataclass
class LlamaConfig:
    dim: int = 2048
    n_layers: int = 16
    n_heads: int = 32
    n_kv_heads: int = 8
    head_dim: int = 64
    intermediate: int = 8192
    vocab_size: int = 5888
    norm_eps: float = 1e-5
    rope_theta: float = 500000.0
    # llama3 frequency scaling (None = plain RoPE)
    rope_scaling: dict | None = field(default_factory=lambda: {
        "rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192})
    tie_embeddings: bool = True

    def __post_init__(self):
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads ({self.n_heads}) must be a multiple of n_kv_heads ({self.n_kv_heads})")
        if self.head_dim % 2:
            raise ValueError(f"head_dim must be even for RoPE, got {self.head_dim}")

    @classmethod
    def from_hf(cls, hf: dict, vocab_size: int | None = None) -> "LlamaConfig":
        """From a Hugging Face ``config.json`` of a LLaMA model (the release ships Llama3.2-1B's)."""
        heads = hf["num_attention_heads"]
        return cls(dim=hf["hidden_size"], n_layers=hf["num_hidden_layers"], n_heads=heads,
                   n_kv_heads=hf.get("num_key_value_heads", heads),
                   head_dim=hf.get("head_dim") or hf["hidden_size"] // heads,
                   intermediate=hf["intermediate_size"], vocab_size=vocab_size or hf["vocab_size"],
                   norm_eps=hf.get("rms_norm_eps", 1e-5), rope_theta=hf.get("rope_theta", 10000.0),
                   rope_scaling=hf.get("rope_scaling"), tie_embeddings=hf.get("tie_word_embeddings", True))

    @classmethod
    def from_dict(cls, d: dict) -> "LlamaConfig":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})

    def to_dict(self) -> dict:
        return asdict(self)


GENRES = ("Ballet", "Popular", "Latin", "Modern", "Folk", "Classic")


@dataclass
class GeneratorConfig:
    llama: LlamaConfig = field(default_factory=LlamaConfig)
    music_dim: int = 1024          # MuQ (official) or 55 (compact: librosa features)
    music_fps: float = 25.0
    music_len: int = 320           # music frames per window
    dance_len: int = 288           # tokens per window
    style_dim: int = 64
    num_styles: int = 6
    cond_dim: int = 264            # retrieval condition: 264-d motion features
    cond_len: int = 384            # ... over 384 motion frames
    code_dim: int = 1024           # RVQ codebook vector size (dance-bridge input)
    nb_code: int = 512
    num_quantizers: int = 3
    dance_token_start: int = 4096  # first dance id in the LM vocabulary
    bridge_heads: int = 8          # music-bridge attention heads (the release constructs 8 whatever the width)
    bridge_hidden: int | None = None   # dance-bridge MLP hidden size (None: the LLaMA width, as released)
    n_bins: int = 2                # frequency-band experts
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    dt_rank: int = 128
    genres: tuple = GENRES

    def __post_init__(self):
        if isinstance(self.llama, dict):
            self.llama = LlamaConfig.from_dict(self.llama)
        self.genres = tuple(self.genres)
        if len(self.genres) != self.num_styles:
            raise ValueError(f"{len(self.genres)} genre names for {self.num_styles} styles")
        if self.dance_token_start + self.nb_code * self.num_quantizers > self.llama.vocab_size:
            raise ValueError(f"dance ids up to {self.dance_token_start + self.nb_code * self.num_quantizers} do "
                             f"not fit the LM vocabulary of {self.llama.vocab_size}")
        if self.bridge_heads < 1 or self.llama.dim % self.bridge_heads:
            raise ValueError(f"bridge_heads ({self.bridge_heads}) must divide the hidden size {self.llama.dim}")
        if self.bridge_hidden is None:
            self.bridge_hidden = self.llama.dim
        if self.bridge_hidden < 1:
            raise ValueError(f"bridge_hidden must be >= 1, got {self.bridge_hidden}")

    @classmethod
    def from_dict(cls, d: dict) -> "GeneratorConfig":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})

    def to_dict(self) -> dict:
        out = asdict(self)
        out["genres"] = list(self.genres)
        return out

    def slot_range(self, slot: int) -> tuple[int, int]:
        lo = self.dance_token_start + self.nb_code * slot
        return lo, lo + self.nb_code


def _flag(value) -> bool:
    # The official options parse vel_decoder/rot_decoder without a type, so any non-empty value (even the
    # string "False") built the sub-decoder; args.json written by those runs must be read the same way.
    return bool(value)


@dataclass
class TokenizerConfig:
    input_dim: int = 264
    nb_code: int = 512
    code_dim: int = 1024
    output_emb_width: int = 1024
    down_t: int = 2
    stride_t: int = 2
    width: int = 1024
    depth: int = 3
    dilation_growth_rate: int = 3
    vq_act: str = "relu"
    vq_norm: str | None = None
    num_quantizers: int = 3
    vel_decoder: bool = True
    rot_decoder: bool = True

    def __post_init__(self):
        for name in ("input_dim", "nb_code", "code_dim", "output_emb_width", "down_t", "stride_t", "width",
                     "depth", "dilation_growth_rate", "num_quantizers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"tokenizer config: {name} must be an integer >= 1, got {value!r}")
            setattr(self, name, int(value))
        act = str(self.vq_act).lower()
        if act not in ACTIVATIONS:
            raise ValueError(f"tokenizer config: vq_act must be one of {sorted(ACTIVATIONS)}, got {self.vq_act!r}")
        self.vq_act = act
        if self.vq_norm is not None and str(self.vq_norm).lower() not in ("none", ""):
            # The released model uses no normalisation; LN/BN variants would add keys we do not build.
            raise ValueError(f"tokenizer config: vq_norm {self.vq_norm!r} is not supported (only none)")
        self.vq_norm = None
        if self.code_dim != self.output_emb_width:
            raise ValueError(f"tokenizer config: code_dim ({self.code_dim}) must equal output_emb_width "
                             f"({self.output_emb_width}); the codebooks quantise the encoder output directly")
        self.vel_decoder = _flag(self.vel_decoder)
        self.rot_decoder = _flag(self.rot_decoder)

    @classmethod
    def from_dict(cls, d: dict) -> "TokenizerConfig":
        """Build from an official ``args.json`` dict (training-only keys such as mu are ignored)."""
        shared = d.get("shared_codebook", False)
        if shared and str(shared).strip().lower() not in ("false", "0", "none"):
            raise ValueError("tokenizer config: shared_codebook=true is not supported (the release has "
                             "one codebook per quantizer layer)")
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RetrievalConfig:
    motion_dim: int = 264
    music_dim: int = 55
    latent: int = 256
    heads: int = 4
    ff: int = 1024
    layers: int = 4
    max_len: int = 384
    dropout: float = 0.2

    def __post_init__(self):
        if self.latent % self.heads:
            raise ValueError(f"retrieval config: latent ({self.latent}) must be divisible by heads ({self.heads})")

    @classmethod
    def from_dict(cls, d: dict) -> "RetrievalConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def to_dict(self) -> dict:
        return asdict(self)
