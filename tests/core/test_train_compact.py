# SPDX-License-Identifier: GPL-3.0-or-later
"""The compact-family training pipeline end to end on a small synthetic dataset: every stage trains a few
steps, resumes, exports a weight set that loads strictly and generates."""
import json

import numpy as np
import pytest
import torch

from core_models.audio import beat_phase, rhythm_features, synth_accompaniment
from core_models.train import compact, compact_data
from motion_fixture import make_dance


def _dataset(path, clips=4, frames=420):
    parts = {"feats": [], "mirrored": [], "music": []}
    names, genres, lengths = [], [], []
    for i in range(clips):
        rec = compact_data.clip_record(make_dance(frames=frames, seed=i)[3], seed=i)
        for k in parts:
            parts[k].append(rec[k])
        names.append(f"synthetic/clip{i}.bvh")
        genres.append("Latin" if i % 2 else "Popular")
        lengths.append(rec["feats"].shape[0])
    np.savez(path, **{k: np.concatenate(v) for k, v in parts.items()}, names=np.array(names),
             genres=np.array(genres), lengths=np.array(lengths), starts=np.cumsum([0] + lengths[:-1]))
    return path


def test_synthesised_music_follows_the_motion_beats():
    from core_models.audio import music_beat_frames

    beats = np.arange(12, 400, 17.0)
    audio = synth_accompaniment(beats, 420, sr=15360, seed=3)
    found = music_beat_frames(audio, 15360)
    # every detected beat lies within 2 frames of a motion beat
    assert found.size >= 0.8 * beats.size
    assert np.abs(found[:, None] - beats[None]).min(axis=1).max() <= 2
    rhythm = rhythm_features(audio, 15360)
    assert rhythm.shape == (421, 7) and rhythm[:, 5].mean() == pytest.approx(30 * 60 / 17 / 120, rel=0.1)
    phase = beat_phase(np.array([10, 20, 30]), 35)
    assert phase[10] == 0 and phase[15] == pytest.approx(0.5) and phase[34] == pytest.approx(0.4)


def test_mirroring_swaps_sides():
    joints = make_dance(frames=20)[3]
    m = compact_data.mirror_joints(joints)
    assert np.allclose(m[:, 1, 0], -joints[:, 2, 0]) and np.allclose(m[:, 1, 1:], joints[:, 2, 1:])
    assert np.allclose(compact_data.mirror_joints(m), joints)


def test_all_stages_train_resume_export_and_generate(tmp_path):
    from core_models.generation import MusicFeatures, generate
    from core_models.weights import load_weight_set

    data = str(_dataset(tmp_path / "data.npz"))
    out = str(tmp_path / "run")
    common = ["--out", out, "--dataset", data, "--ckpt-every", "2"]
    assert compact.main(["tokenizer", *common, "--steps", "2", "--batch", "4"]) == 0
    assert compact.main(["tokenizer", *common, "--steps", "3", "--batch", "4"]) == 0      # resumes at 2
    log = (tmp_path / "run/tokenizer/train.log").read_text()
    assert "resumed from ckpt_0000002.pt" in log and "step 3 validation L1" in log
    assert compact.main(["generator", *common, "--steps", "2", "--batch", "2"]) == 0
    assert compact.main(["retrieval", *common, "--steps", "2", "--batch", "4"]) == 0
    dest = tmp_path / "set"
    assert compact.main(["export", "--out", out, "--dest", str(dest), "--fp16"]) == 0
    config = json.loads((dest / "config.json").read_text())
    assert config["family"] == "compact" and "CC BY-NC 4.0" in config["licence"]
    assert "Bandai" in config["training_data"] and config["retrieval"] is not None
    ws = load_weight_set(dest, device="cpu")
    assert ws.generator.llama.lm_head.weight.dtype == torch.float32
    music = np.random.default_rng(0).normal(size=(90, 7)).astype(np.float32)
    res = generate(MusicFeatures(music), "Latin", weights=ws, references=None)
    assert res.num_frames == 90 and np.isfinite(res.joints).all()
