# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared by core and add-on tests: a tiny random compact weight set and a synthesised drum track."""
from pathlib import Path

import numpy as np


def write_tiny_compact_weight_set(dest: Path, seed: int = 1, retrieval: bool = False) -> Path:
    """A compact-family weight set with tiny random models (fast enough for tests on 2 CPU cores)."""
    from core_models.choreollama import GeneratorConfig
    from core_models.llama import LlamaConfig
    from core_models.retrieval import RetrievalConfig
    from core_models.tokenizer import TokenizerConfig
    from core_models.weights import random_weight_set

    tok = TokenizerConfig(nb_code=8, code_dim=16, output_emb_width=16, width=32, depth=2, dilation_growth_rate=3)
    gen = GeneratorConfig(llama=LlamaConfig(dim=48, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=12,
                                            intermediate=96, vocab_size=24), music_dim=7, music_fps=30.0,
                          music_len=384, code_dim=16, nb_code=8, dance_token_start=0, bridge_heads=2, d_state=4,
                          dt_rank=4)
    ret = RetrievalConfig(music_dim=7, latent=32, heads=4, ff=64, layers=2) if retrieval else None
    return random_weight_set(dest, "compact", tok, gen, ret, seed=seed)


# First lines of a subprocess script that must run as if torch were not installed: an import hook makes every
# ``import torch`` fail (``sys.modules["torch"] = None`` would also break scipy, which looks torch up there).
NO_TORCH_PRELUDE = """import importlib.abc, json, os, sys


class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)", name=name)


sys.meta_path.insert(0, NoTorch())
"""


def write_drum_track(path: Path, seconds: float, sr: int = 22050) -> Path:
    """120 bpm clicks over a low sine 'bass', as a WAV file."""
    import soundfile

    from core_models.audio import synth_click_track

    clicks = synth_click_track(120, seconds, sr=sr)
    bass = 0.3 * np.sin(2 * np.pi * 55 * np.arange(clicks.size) / sr).astype(np.float32)
    soundfile.write(path, clicks + bass, sr)
    return path
