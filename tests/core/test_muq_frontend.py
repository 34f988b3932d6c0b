# SPDX-License-Identifier: GPL-3.0-or-later
"""The official family's 25 Hz MuQ frontend: frame counts, alignment with the 30 fps motion, chunking of long
songs, and (where the optional ``muq`` package imports) a randomly initialised MuQ run end to end.

Nothing is installed or downloaded here. The MuQ tests skip, saying why, where ``muq`` does not import. With this
project's torch 2.13 CPU build it cannot be installed cleanly: ``pip install muq==0.1.0`` pulls a CUDA torch 2.14;
pinning torch 2.13 gets torchaudio 2.11.1, the newest on the index, whose library needs CUDA torch's libc10_cuda
and fails to load; and muq 0.1.0 runs only with transformers 4.x (its conformer config is a plain EasyDict, which
transformers 5 rejects). The tests pass with muq 0.1.0, transformers 4.46.3 and a working torchaudio.
"""
import math

import numpy as np
import pytest

from core_models.audio import (MUQ_CHUNK_SECONDS, MUQ_FPS, MUQ_SAMPLE_RATE, MUQ_SINGLE_PASS_SECONDS, muq_chunks,
                               muq_features, muq_frame_count, synth_click_track)
from core_models.motion import MOTION_FPS

DURATIONS = [2.0, 31.0, 20 * 60.0]


@pytest.mark.parametrize("seconds", DURATIONS, ids=["2s", "31s", "20min"])
def test_frame_count_is_25_hz_and_aligned_with_the_motion(seconds):
    n = round(seconds * MUQ_SAMPLE_RATE)
    frames = muq_frame_count(n)
    assert frames == round(seconds * MUQ_FPS)                     # 50, 775, 30,000
    motion = round(seconds * MOTION_FPS)                          # 60, 930, 36,000
    assert frames * MOTION_FPS == motion * MUQ_FPS                # 10 music frames <-> 12 motion frames
    # music frame i starts at i / 25 s, the motion frame 6i/5 at the same instant
    i = np.arange(0, frames, 5)
    assert np.allclose(i / MUQ_FPS, (6 * i // 5) / MOTION_FPS)
    pieces = muq_chunks(n)
    assert pieces[0][0] == 0 and pieces[-1][1] == n and all(a[1] == b[0] for a, b in zip(pieces, pieces[1:]))
    assert sum(muq_frame_count(b - a) for a, b in pieces) == frames   # chunking never shifts a frame


def test_frame_count_of_partial_frames_rounds_up_like_muqs_convolutions():
    assert [muq_frame_count(n) for n in (0, 239, 240, 960, 961, 1199, 1200, 48000 + 480)] == [0, 0, 1, 1, 1, 1, 2, 51]


def test_songs_up_to_five_minutes_go_through_in_one_pass_longer_ones_in_bounded_pieces():
    five = MUQ_SINGLE_PASS_SECONDS * MUQ_SAMPLE_RATE
    assert muq_chunks(five) == [(0, five)]                         # as the release: the whole song at once
    n = 20 * 60 * MUQ_SAMPLE_RATE
    pieces = muq_chunks(n)
    assert len(pieces) == 10 and {b - a for a, b in pieces} == {MUQ_CHUNK_SECONDS * MUQ_SAMPLE_RATE}
    # a short tail joins the piece before it instead of going through MuQ alone
    tail = muq_chunks(five + 3 * MUQ_SAMPLE_RATE)
    assert [round((b - a) / MUQ_SAMPLE_RATE) for a, b in tail] == [120, 120, 63]
    assert all(a % 960 == 0 for a, _ in tail)
    longest = max(b - a for a, b in muq_chunks(round(5 * 3600 * MUQ_SAMPLE_RATE + 12345)))
    assert longest <= (MUQ_CHUNK_SECONDS + 10) * MUQ_SAMPLE_RATE     # memory: one piece, whatever the length


# ------------------------------------------------------------------------- with the muq package

def _muq():
    try:
        from muq import MuQ
    except Exception as exc:        # absent, or present but unable to import (torchaudio/transformers versions)
        pytest.skip(f"the optional muq package does not import here ({type(exc).__name__}: {exc})")
    return MuQ


def _config(tiny: bool) -> dict:
    """MuQ-large-msd-iter's architecture (the muq package's MuQConfig defaults: 128 mels, hop 240, 512 conv
    channels, a 12-layer 1024-wide conformer, 25 frames/s), or the same layout shrunk for a 20-minute song."""
    from transformers import Wav2Vec2ConformerConfig

    # the conformer's own settings (a plain dict, as in MuQ's config.json: no label maps)
    w2v2 = {k: v for k, v in Wav2Vec2ConformerConfig().to_dict().items() if not isinstance(v, dict)}
    cfg = {"label_rate": 25, "hop_length": 240, "n_mels": 128, "stat": {"melspec_2048_mean": 6.77,
                                                                        "melspec_2048_std": 19.0}}
    w2v2.update(num_attention_heads=16, intermediate_size=4096)     # the large model's 16 heads of 64, FFN 4096
    if tiny:
        w2v2.update(num_attention_heads=2, intermediate_size=32, conv_depthwise_kernel_size=3,
                    num_conv_pos_embeddings=16)
        cfg.update(conv_dim=4, encoder_dim=16, encoder_depth=1, codebook_size=16)
    cfg["w2v2_config"] = w2v2
    return cfg


def _model(tiny: bool):
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = _muq()(_config(tiny)).eval()
    lengths = []
    model.register_forward_pre_hook(lambda module, args: lengths.append(int(args[0].shape[-1])))
    return model, lengths


@pytest.mark.parametrize("seconds,tiny", [(2.0, False), (31.0, False), (20 * 60.0, True)], ids=["2s", "31s", "20min"])
def test_random_muq_end_to_end(seconds, tiny):
    model, lengths = _model(tiny)
    sr = MUQ_SAMPLE_RATE if seconds > 2 else 44100                  # also a resampled input
    audio = synth_click_track(123, seconds, sr=sr)
    feats = muq_features(audio, sr, model=model)
    n = round(seconds * MUQ_SAMPLE_RATE)
    assert feats.shape == (round(seconds * MUQ_FPS), 16 if tiny else 1024) and np.isfinite(feats).all()
    assert feats.shape[0] * MOTION_FPS == round(seconds * MOTION_FPS) * MUQ_FPS
    assert abs(sum(lengths) - n) <= 1          # every sample encoded once (resampling may add the odd sample)
    if seconds > MUQ_SINGLE_PASS_SECONDS:                          # chunked: bounded pieces
        assert len(lengths) == math.ceil(seconds / MUQ_CHUNK_SECONDS)
        assert max(lengths) <= (MUQ_CHUNK_SECONDS + 10) * MUQ_SAMPLE_RATE
    else:
        assert len(lengths) == 1


def test_random_muq_frames_follow_the_music_in_time():
    """A click at time t changes the features around frame 25 t and leaves frames long before it alone (the
    conformer attends to the whole piece, so only the convolutional front end is local: compare its output)."""
    model, _ = _model(tiny=True)
    quiet = np.full(4 * MUQ_SAMPLE_RATE, 1e-3, np.float32) * np.sin(np.arange(4 * MUQ_SAMPLE_RATE))
    loud = quiet.copy()
    at = 3 * MUQ_SAMPLE_RATE
    loud[at:at + 2400] += 0.8
    import torch

    def front(y):
        with torch.no_grad():
            mel = model.model.preprocessing(torch.from_numpy(y)[None], features=["melspec_2048"])
            return model.model.conv(model.model.normalize(mel)["melspec_2048"])[0].numpy()

    a, b = front(quiet), front(loud)
    assert a.shape[0] == muq_frame_count(len(quiet)) == 100
    changed = np.flatnonzero(np.abs(a - b).max(axis=1) > 1e-6)
    # 3 s is frame 75; the 0.1 s click, the 2048-sample STFT window and the convolutions spread it by a few
    assert changed.size and changed.min() >= 75 - 8 and changed.max() <= 75 + 8
