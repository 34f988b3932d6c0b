# SPDX-License-Identifier: GPL-3.0-or-later
"""Official-layout checkpoints -> weights_fetch.py convert -> strict load -> generate; compact family on audio."""
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

import weights_fetch
from core_models.audio import synth_click_track
from core_models.choreollama import ChoreoLLaMA, GeneratorConfig
from core_models.llama import LlamaConfig
from core_models.generation import GenerationError, Job, MusicFeatures, Runtime, Span, generate, sampling_with
from core_models.references import Reference, rag_condition, rank_weights
from core_models.progress import Cancelled
from core_models.retrieval import RetrievalConfig, RetrievalNet
from core_models.tokenizer import RVQVAE, TokenizerConfig
from core_models.weights import WeightSetError, load_weight_set
from generation_fixture import write_drum_track

TOK = TokenizerConfig(nb_code=8, code_dim=16, output_emb_width=16, width=32, depth=2, dilation_growth_rate=3)
HF_LLAMA = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "head_dim": 16, "intermediate_size": 96, "vocab_size": 128256, "rms_norm_eps": 1e-5,
            "rope_theta": 500000.0, "tie_word_embeddings": True,
            "rope_scaling": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 8192}}


def official_generator_config():
    vocab = 4096 + 8 * 3 + 256               # the release's layout: placeholders, dance ids, specials
    return GeneratorConfig(llama=LlamaConfig.from_hf(HF_LLAMA, vocab_size=vocab), music_dim=1024, music_fps=25.0,
                           code_dim=16, nb_code=8, bridge_heads=1, d_state=4, dt_rank=8)


def write_official_release(root, tamper=None, retrieval=None):
    """Tiny random checkpoints in the exact official file layouts and formats."""
    torch.manual_seed(0)
    (root / "AR/models/checkpoints").mkdir(parents=True)
    args = {k: v for k, v in TOK.to_dict().items() if k != "input_dim"}
    args.update(mu=0.99, quantize_dropout_prob=0.2, shared_codebook=False, dataname="dance")
    (root / "AR/models/checkpoints/args.json").write_text(json.dumps(args))
    torch.save({"net": RVQVAE(TOK).state_dict()}, root / "AR/models/checkpoints/dance_vqvae.pth")
    gen = ChoreoLLaMA(official_generator_config())
    state = {k: v.to(torch.bfloat16) for k, v in gen.state_dict().items()}     # the release is bf16
    if tamper:
        tamper(state)
    (root / "AR/output/exp_m2d_infinitedance").mkdir(parents=True)
    torch.save(state, root / "AR/output/exp_m2d_infinitedance/best_model_stage2.pt")
    (root / "AR/models/Llama3.2-1B").mkdir(parents=True)
    (root / "AR/models/Llama3.2-1B/config.json").write_text(json.dumps(HF_LLAMA))
    ret = RetrievalNet(retrieval or RetrievalConfig(latent=32, heads=4, ff=64, layers=2))
    (root / "AR/models/retrievalnet").mkdir(parents=True)
    torch.save({"epoch": 7, "global_step": 100, "state_dict": {f"model.{k}": v for k, v in ret.state_dict().items()},
                "hyper_parameters": {"lr": 1e-4}},
               root / "AR/models/retrievalnet/retrievalnet_audio55_motion264.ckpt")
    (root / "muq").mkdir()                         # MuQ encoder files are copied into the set unchanged
    (root / "muq/config.json").write_text(json.dumps({"label_rate": 25}))
    (root / "muq/model.safetensors").write_bytes(b"muq-weights")
    meta = root / "DATA/dance/alldata_new_joint_vecs264/meta"
    meta.mkdir(parents=True)
    rng = np.random.default_rng(0)
    np.save(meta / "Mean.npy", rng.normal(0, 0.1, 264))
    np.save(meta / "Std.npy", rng.uniform(0.05, 0.5, 264))
    return gen, ret


@pytest.fixture(scope="module")
def official_set(tmp_path_factory):
    src = tmp_path_factory.mktemp("release")
    gen, ret = write_official_release(src)
    dest = tmp_path_factory.mktemp("sets") / "official"
    assert weights_fetch.main(["convert", "official", "--src", str(src), "--dest", str(dest)]) == 0
    return dest, gen, ret


def test_convert_writes_a_verified_safetensors_set(official_set):
    dest, gen, ret = official_set
    names = sorted(p.name for p in dest.iterdir())
    assert names == ["config.json", "generator.safetensors", "manifest.json", "muq", "retrieval.safetensors",
                     "stats.safetensors", "tokenizer.safetensors"]
    assert weights_fetch.verify(dest) == []
    assert "muq/model.safetensors" in weights_fetch.read_manifest(dest)["files"]
    assert (dest / "muq/model.safetensors").read_bytes() == b"muq-weights"
    cfg = json.loads((dest / "config.json").read_text())
    assert cfg["family"] == "official" and cfg["music_frontend"] == "muq"
    g = cfg["generator"]
    assert (g["llama"]["dim"], g["llama"]["n_heads"], g["llama"]["n_kv_heads"], g["llama"]["vocab_size"]) == \
        (64, 4, 2, 4376)
    assert (g["dance_token_start"], g["music_len"], g["cond_len"], g["n_bins"], g["dt_rank"]) == (4096, 320, 384, 2, 8)
    assert cfg["tokenizer"]["width"] == 32 and cfg["retrieval"]["latent"] == 32 and cfg["retrieval"]["layers"] == 2


def test_loaded_set_equals_the_checkpoint(official_set):
    dest, gen, ret = official_set
    ws = load_weight_set(dest, device="cpu")
    sd = ws.generator.state_dict()
    for k, v in gen.state_dict().items():
        assert torch.equal(sd[k], v.to(torch.bfloat16).float()), k
    assert ws.generator.llama.lm_head.weight is ws.generator.llama.model.embed_tokens.weight
    for k, v in ret.state_dict().items():
        assert torch.equal(ws.retrieval.state_dict()[k], v)
    assert torch.equal(ws.generator.codebooks[2], ws.tokenizer.codebook(2))


def test_official_family_generates_for_any_duration(official_set):
    dest, _, _ = official_set
    ws = load_weight_set(dest, device="cpu")
    rng = np.random.default_rng(1)
    for seconds in (2.0, 15.48, 31.0):
        muq = rng.normal(size=(int(seconds * 25), 1024)).astype(np.float32)
        res = generate(MusicFeatures(muq), "latin", weights=ws, seed=3)
        assert res.num_frames == round(seconds * 30) == res.features.shape[0] == res.motion.num_frames
        assert res.joints.shape == (res.num_frames, 22, 3) and np.isfinite(res.joints).all()
        assert res.motion.skeleton.num_joints == 55 and res.genre == "Latin"
        assert res.tokens.shape[1] == 3 and res.tokens.min() >= 0 and res.tokens.max() < 8
    again = generate(MusicFeatures(muq), "Latin", weights=ws, seed=3)
    assert np.array_equal(again.tokens, res.tokens)
    other = generate(MusicFeatures(muq), "Latin", weights=ws, seed=4)
    assert not np.array_equal(other.tokens, res.tokens)


def test_official_window_mode_reproduces_release_lengths(official_set):
    dest, _, _ = official_set
    ws = load_weight_set(dest, device="cpu")
    muq = np.random.default_rng(2).normal(size=(25 * 60, 1024)).astype(np.float32)
    res = generate(MusicFeatures(muq), "Popular", weights=ws, window_mode="official", seed=1)
    assert res.tokens.shape[0] * 3 == 288 + 192 * 5            # six windows, the tail is left out as released
    assert res.num_frames == res.tokens.shape[0] * 4 and len(res.references) == 6


def test_conversion_rejects_missing_extra_and_misshaped_keys(tmp_path):
    def drop(state):
        del state["music_bridge.universal_expert.mamba.D"]

    def extra(state):
        state["music_bridge.gate.weight"] = torch.zeros(2, 2)

    def shape(state):
        state["dance_bridge.fc2.bias"] = torch.zeros(65)

    for i, (tamper, words) in enumerate(((drop, "1 missing"), (extra, "1 unexpected"), (shape, "wrong shape"))):
        src = tmp_path / f"src{i}"
        write_official_release(src, tamper)
        with pytest.raises(WeightSetError, match=words):
            from core_models.weights import convert_official
            convert_official(src, tmp_path / f"out{i}")
        assert not (tmp_path / f"out{i}").exists()
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(f".out{i}")]   # nothing half-written
    assert weights_fetch.main(["convert", "official", "--src", str(src), "--dest", str(tmp_path / "x")]) == 2


def test_truncated_and_corrupted_weight_sets(official_set, tmp_path):
    import shutil

    dest, _, _ = official_set
    copy = tmp_path / "copy"
    shutil.copytree(dest, copy)
    data = (copy / "generator.safetensors").read_bytes()
    (copy / "generator.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightSetError, match="failed verification.*sha256 mismatch: generator"):
        load_weight_set(copy, device="cpu")
    with pytest.raises(WeightSetError, match="truncated or corrupted"):
        load_weight_set(copy, device="cpu", verify=False)
    with pytest.raises(WeightSetError, match="no config.json"):
        load_weight_set(tmp_path, device="cpu")


def test_truncated_pickled_checkpoint_is_a_clear_error(tmp_path):
    src = tmp_path / "src"
    write_official_release(src)
    path = src / "AR/models/checkpoints/dance_vqvae.pth"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(WeightSetError, match="truncated or corrupted"):
        from core_models.weights import convert_official
        convert_official(src, tmp_path / "out")


@pytest.fixture(scope="module")
def compact_set(tmp_path_factory):
    from generation_fixture import write_tiny_compact_weight_set

    return write_tiny_compact_weight_set(tmp_path_factory.mktemp("sets") / "compact")


@pytest.fixture(scope="module")
def drum_track(tmp_path_factory):
    from generation_fixture import write_drum_track

    return write_drum_track(tmp_path_factory.mktemp("music") / "drums.wav", 9.37)


def test_compact_family_generates_from_an_audio_file(compact_set, drum_track):
    seen = []
    res = generate(str(drum_track), "Popular", weights=compact_set, seed=7, runtime=Runtime(device="cpu"), job=Job(progress=lambda stage, done, total: seen.append((stage, done, total))))
    assert res.num_frames == round(9.37 * 30) and res.end_s == pytest.approx(9.37, abs=1e-3)
    part = generate(str(drum_track), "Popular", weights=compact_set, span=Span(1.5, 5.0), runtime=Runtime(device="cpu"))
    assert part.num_frames == round(3.5 * 30) and part.start_s == 1.5
    stages = [s for s, _, _ in seen]
    assert stages[0] == "load weights" and stages[-1] == "done" and "generate" in stages
    gen_steps = [(d, t) for s, d, t in seen if s == "generate"]
    assert gen_steps[-1][0] == gen_steps[-1][1] and all(a[0] <= b[0] for a, b in zip(gen_steps, gen_steps[1:]))
    assert set(res.timings) >= {"music_features_s", "generate_s", "decode_s", "ik_s", "total_s", "frames_per_s"}


def test_pinned_references_reach_the_generator(compact_set):
    ws = load_weight_set(compact_set, device="cpu")
    rng = np.random.default_rng(3)
    music = rng.normal(size=(300, 7)).astype(np.float32)
    refs = [Reference("a", rng.normal(size=(400, 264)), tokens=rng.integers(0, 8, (100, 3))),
            Reference("b", rng.normal(size=(200, 264)))]
    none = generate(MusicFeatures(music), "Folk", weights=ws, references=None, seed=5)
    pinned = generate(MusicFeatures(music), "Folk", weights=ws, references=refs, seed=5)
    assert [r["name"] for r in pinned.references[0]["references"]] == ["a", "b"]
    assert none.references[0]["references"] == []
    assert not np.array_equal(none.tokens, pinned.tokens)
    cond = rag_condition(refs, ws.rag_mean, ws.rag_std)
    assert cond.shape == (384, 264)
    expected = (2 / 3) * (refs[0].features[:384] - ws.rag_mean) / ws.rag_std + \
        (1 / 3) * (refs[1].features[np.arange(384) % 200] - ws.rag_mean) / ws.rag_std
    assert np.allclose(cond, expected, atol=1e-5)
    assert np.allclose(rank_weights(10), np.arange(10, 0, -1) / 55) and rank_weights(4).sum() == pytest.approx(1)


def test_bad_input_is_rejected_clearly(compact_set, drum_track, tmp_path):
    ws = load_weight_set(compact_set, device="cpu")
    music = np.random.default_rng(0).normal(size=(200, 7)).astype(np.float32)
    with pytest.raises(GenerationError, match="unknown genre 'Polka'.*Ballet, Popular"):
        generate(MusicFeatures(music), "Polka", weights=ws)
    silent = tmp_path / "silence.wav"
    soundfile.write(silent, np.zeros(22050 * 5, np.float32), 22050)
    with pytest.raises(GenerationError, match="silent"):
        generate(str(silent), weights=ws)
    short = tmp_path / "short.wav"
    soundfile.write(short, synth_click_track(120, 0.5, 22050), 22050)
    with pytest.raises(GenerationError, match=r"0\.50 s.*at least 2 s"):
        generate(str(short), weights=ws)
    with pytest.raises(GenerationError, match="outside the music"):
        generate(str(drum_track), weights=ws, span=Span(30.0, None))
    with pytest.raises(GenerationError, match="top_p"):
        generate(MusicFeatures(music), weights=ws, sampling=sampling_with(top_p=1.5))
    with pytest.raises(GenerationError, match="official.*25 Hz"):
        generate(MusicFeatures(music), weights=ws, window_mode="official")
    event = threading.Event()
    event.set()
    with pytest.raises(Cancelled):
        generate(MusicFeatures(music), weights=ws, job=Job(cancel=event))


def test_wrong_family_is_rejected(compact_set, tmp_path):
    import shutil

    import weights_fetch as wf

    copy = tmp_path / "mislabelled"
    shutil.copytree(compact_set, copy)
    cfg = json.loads((copy / "config.json").read_text())
    cfg["family"] = "official"
    (copy / "config.json").write_text(json.dumps(cfg))
    wf.record_file(copy, "config.json", "test")
    with pytest.raises(WeightSetError, match="wrong family"):
        load_weight_set(copy, device="cpu")


def test_cli_generate_writes_bvh_npz_and_report(compact_set, drum_track, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from core_models.io.bvh import read_bvh

    repo = Path(__file__).resolve().parents[2]
    run = lambda *a: subprocess.run([sys.executable, "-m", "core_models", "generate", *a], cwd=repo,
                                    capture_output=True, text=True, timeout=300)
    out = run("--music", str(drum_track), "--genre", "Modern", "--weights", str(compact_set), "--out",
              str(tmp_path / "dance.bvh"), "--report", str(tmp_path / "r.json"), "--end", "4", "--seed", "9")
    assert out.returncode == 0, out.stderr
    clip = read_bvh(tmp_path / "dance.bvh")
    assert clip.num_frames == 120 and abs(clip.fps - 30) < 1e-6 and len(clip.names) >= 55
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["frames"] == 120 and report["genre"] == "Modern" and report["seed"] == 9
    out = run("--music", str(drum_track), "--weights", str(compact_set), "--out", str(tmp_path / "dance.npz"),
              "--end", "3", "--quiet")
    assert out.returncode == 0, out.stderr
    data = np.load(tmp_path / "dance.npz")
    assert data["rotations"].shape == (90, 55, 4) and data["joints"].shape == (90, 22, 3)
    bad = run("--music", str(drum_track), "--weights", str(compact_set), "--out", str(tmp_path / "x.bvh"),
              "--genre", "Polka")
    assert bad.returncode == 2 and "unknown genre" in bad.stderr and not (tmp_path / "x.bvh").exists()
    bad = run("--music", str(tmp_path / "nope.wav"), "--weights", str(compact_set), "--out", str(tmp_path / "y.bvh"))
    assert bad.returncode == 2 and "does not exist" in bad.stderr


def _fk_check(joints):
    from core_models.features import joints_to_features
    from core_models.generation import features_to_motion

    feats = joints_to_features(joints)
    decoded, motion, err, _ = features_to_motion(feats, on_stage=False)
    assert motion.skeleton.num_joints == 55 and motion.rotations.shape == (feats.shape[0], 55, 4)
    fk = motion.joints()[:, :22]
    assert np.linalg.norm(fk - decoded, axis=-1).max() == pytest.approx(err)
    assert err < 0.01
    return err


def test_decoded_features_arrive_as_smplx_rotations_within_1cm(dance):
    _fk_check(dance[3])


def test_real_mocap_features_arrive_as_smplx_rotations_within_1cm(mocap):
    from core_models.io import load_body_clip

    for kind in ("bandai", "cmu"):
        if isinstance(mocap[kind], str):          # the conftest's reason why the real data is absent
            pytest.skip(mocap[kind])
    for path in mocap["bandai"][:2] + mocap["cmu"][:1]:
        _fk_check(load_body_clip(path).joints[:600])


def test_twenty_minute_song_keeps_memory_bounded(compact_set):
    """36,000 frames: every window's KV cache stays window-sized and the output has every frame."""
    ws = load_weight_set(compact_set, device="cpu")
    sizes = []
    setup = ws.generator.llama.setup_cache

    def recording_setup(batch, max_seq, **kw):
        sizes.append(max_seq)
        return setup(batch, max_seq, **kw)

    ws.generator.llama.setup_cache = recording_setup
    music = np.random.default_rng(4).normal(size=(20 * 60 * 30, 7)).astype(np.float32)
    res = generate(MusicFeatures(music), "Ballet", weights=ws, references=None, sampling=sampling_with(top_k=4))
    assert res.num_frames == 36000 and np.isfinite(res.joints).all()
    assert len(sizes) >= 36000 * 3 // 4 // 288 and max(sizes) <= 384 + 288


def test_bf16_generation_on_cpu_matches_the_frame_count(compact_set):
    music = np.random.default_rng(5).normal(size=(200, 7)).astype(np.float32)
    res = generate(MusicFeatures(music), "Popular", weights=compact_set, runtime=Runtime(device="cpu", dtype="bf16"))
    assert res.dtype == "bfloat16" and res.num_frames == 200 and np.isfinite(res.joints).all()


def test_full_size_retrievalnet_converts_and_loads_strictly(tmp_path):
    src = tmp_path / "src"
    _, ret = write_official_release(src, retrieval=RetrievalConfig())           # the released sizes
    assert sum(p.numel() for p in ret.parameters()) == 6_202_625
    from core_models.weights import convert_official

    ws = load_weight_set(convert_official(src, tmp_path / "set"), device="cpu")
    assert ws.config["retrieval"] == RetrievalConfig().to_dict() | {"dropout": ws.config["retrieval"]["dropout"]}
    x = torch.randn(2, 384, 264)
    with torch.no_grad():
        a, b = ws.retrieval.encode_motion(x), ret.eval().encode_motion(x)
    assert torch.allclose(a, b, atol=1e-6) and torch.allclose(a.norm(dim=1), torch.ones(2), atol=1e-5)


# --------------------------------------------------------------------------- the shipped compact set dances

SHIPPED = Path(__file__).resolve().parents[2] / "core_models" / "assets" / "compact"


@pytest.mark.parametrize("genre,seed", [("Popular", 0), ("Latin", 1), ("Folk", 2), ("Modern", 3)])
def test_generated_dances_are_keyed_true_on_stage_and_on_the_floor(tmp_path, genre, seed):
    """Every trained genre of the shipped set: the SMPL-X rotations reproduce the dance's joints within 2 cm,
    no foot goes below the floor, and the dancer stays within a few metres of its start."""
    from core_models.metrics import root_travel

    music = write_drum_track(tmp_path / "drums.wav", 30.0)
    res = generate(str(music), genre, weights=SHIPPED, seed=seed, references=None)
    assert res.fk_error_m <= 0.02
    fk = res.motion.joints()[:, :22]
    assert np.linalg.norm(fk - res.joints, axis=-1).max() == pytest.approx(res.fk_error_m)
    assert res.joints[:, [7, 8, 10, 11], 1].min() >= -1e-6
    assert root_travel(res.joints)["max_distance_m"] <= 4.0
    assert set(res.stage) == {"stage_shift_max_m", "floor_lift_max_m", "decoder_stretch_m"}


def test_a_long_song_keeps_the_dancer_on_stage(tmp_path):
    """Three minutes: drift adds up window after window, the stage keeps it within the corpus range."""
    from core_models.metrics import root_travel

    music = write_drum_track(tmp_path / "long.wav", 180.0)
    res = generate(str(music), "Popular", weights=SHIPPED, seed=5, references=None)
    travel = root_travel(res.joints)
    assert res.num_frames == 5400 and travel["max_distance_m"] <= 4.0
    assert travel["travel_m_per_min"] <= 45.0                       # the dance corpus: 1-42 m per minute
    assert res.fk_error_m <= 0.02


def test_music_shorter_than_one_window_still_dances(tmp_path):
    music = write_drum_track(tmp_path / "short.wav", 3.0)
    res = generate(str(music), "Latin", weights=SHIPPED, seed=0, references=None)
    assert res.num_frames == 90 and np.isfinite(res.joints).all() and res.fk_error_m <= 0.02
    with pytest.raises(GenerationError, match="at least 2 s"):
        generate(str(write_drum_track(tmp_path / "tiny.wav", 1.0)), "Latin", weights=SHIPPED, references=None)


def test_a_span_that_ends_before_it_starts_is_named(tmp_path):
    music = write_drum_track(tmp_path / "drums.wav", 8.0)
    with pytest.raises(GenerationError, match=r"end of the music span \(3 s\) is not after its start \(5 s\)"):
        generate(str(music), "Latin", weights=SHIPPED, references=None, span=Span(5.0, 3.0))
