# SPDX-License-Identifier: GPL-3.0-or-later
"""ONNX Runtime backend: export, parity with torch (tokens, joints, FRDM, retrieval), provider reporting,
bad exports, and generation + foot fix in a process where torch cannot be imported."""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
torch = pytest.importorskip("torch")

from generation_fixture import NO_TORCH_PRELUDE, write_drum_track  # noqa: E402
from motion_fixture import make_dance, sliding_stance  # noqa: E402
from core_models import footfix  # noqa: E402
from core_models.onnx_backend import OnnxBackendError, load_onnx_weight_set  # noqa: E402
from core_models.runtime.backends import load_frdm, load_generator, load_onnx_frdm  # noqa: E402
from core_models.runtime.files import record_file  # noqa: E402
from core_models.onnx_export import export_onnx  # noqa: E402
from core_models.generation import Runtime, Span, generate  # noqa: E402
from core_models.retrieval_search import top_k, windows  # noqa: E402
from core_models.weights import load_weight_set  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
COMPACT = REPO / "core_models" / "assets" / "compact"
FRDM = REPO / "core_models" / "assets" / "frdm"


def _exported(src: Path, dest: Path) -> Path:
    """The shipped set with an up-to-date ONNX export: the set itself when it has one, else a copy."""
    try:
        load_onnx_weight_set(src) if src == COMPACT else load_onnx_frdm(src)
        return src
    except (OnnxBackendError, ValueError):
        return export_onnx(src, dest, progress=lambda *_: None)


@pytest.fixture(scope="module")
def compact(tmp_path_factory):
    torch.set_num_threads(1)
    return _exported(COMPACT, tmp_path_factory.mktemp("onnx") / "compact")


@pytest.fixture(scope="module")
def frdm_set(tmp_path_factory):
    torch.set_num_threads(1)
    return _exported(FRDM, tmp_path_factory.mktemp("onnx") / "frdm")


@pytest.fixture(scope="module")
def music(tmp_path_factory):
    return write_drum_track(tmp_path_factory.mktemp("music") / "drums.wav", 9.0)


def _copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


def _rerecord(folder: Path, relative: str) -> None:
    record_file(folder, relative, "test")


def test_export_records_every_file_with_its_sha256_and_parity(compact):
    info = json.loads((compact / "onnx" / "export.json").read_text())
    manifest = json.loads((compact / "manifest.json").read_text())["files"]
    assert set(info["files"]) == {"generator_prefill.onnx", "generator_decode.onnx", "tokenizer_decoder.onnx",
                                  "tokenizer_encoder.onnx", "retrieval_music.onnx", "retrieval_motion.onnx"}
    for name in info["files"] + ["export.json"]:
        assert f"onnx/{name}" in manifest
    assert info["opset"] == 18
    assert max(v for k, v in info["max_abs_diff_vs_torch"].items() if "ids" not in k) < 1e-4
    assert info["source_sha256"]["generator.safetensors"] == manifest["generator.safetensors"]["sha256"]


def test_weights_float16_holds_exactly_are_stored_in_half_with_the_same_outputs(tmp_path):
    import onnx
    import onnxruntime as ort
    from core_models.onnx_export import store_weights_in_half

    net = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 32))
    with torch.no_grad():                        # the first layer as a float16 set stores it, the last not
        net[0].weight.copy_(net[0].weight.half().float())
    path = tmp_path / "net.onnx"
    torch.onnx.export(net.eval(), (torch.zeros(2, 64),), str(path), input_names=["x"], output_names=["y"],
                      dynamo=True, external_data=False)
    x = np.random.default_rng(0).standard_normal((2, 64)).astype(np.float32)
    before = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    size = path.stat().st_size
    saved = store_weights_in_half(path)
    assert saved == 64 * 128 * 2
    assert path.stat().st_size <= size - saved + 2048
    kinds = {i.name: i.data_type for i in onnx.load(str(path)).graph.initializer}
    assert sorted(kinds.values()).count(onnx.TensorProto.FLOAT16) == 1
    after = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_array_equal(after, before)
    assert store_weights_in_half(path) == 0                   # nothing left to halve


def test_compact_generation_same_tokens_and_joints_on_both_backends(compact, music):
    kw = dict(weights=compact, seed=7, references=None)
    a = generate(music, "Latin", runtime=Runtime("cpu", backend="torch"), **kw)
    b = generate(music, "Latin", runtime=Runtime("cpu", backend="onnx"), **kw)
    assert b.device == "onnxruntime CPUExecutionProvider" and a.device == "cpu"
    assert a.tokens.shape == b.tokens.shape and a.tokens.shape[0] > 60     # several windows (9 s of music)
    # Same tokens until the sampler meets a near-tie that float rounding (~1e-5 in the logits) decides
    # differently: with the shipped 240-token windows that is deep into the first window.
    same = (a.tokens == b.tokens).all(axis=1)
    first_difference = int(np.argmin(same)) if not same.all() else len(same)
    assert first_difference >= 30, first_difference
    if same.all():
        assert np.abs(a.joints - b.joints).max() < 1e-4
    c = generate(music, "Latin", runtime=Runtime("cpu", backend="onnx"), **{**kw, "seed": 8})
    assert not np.array_equal(b.tokens, c.tokens)                          # the seed matters


def test_retrieval_rankings_and_library_tokens_are_identical(compact):
    ws_t = load_weight_set(compact, "cpu")
    ws_o = load_onnx_weight_set(compact, "cpu")
    rng = np.random.default_rng(3)
    _, _, _, joints = make_dance(900, seed=2)
    from core_models.features import joints_to_features

    feats = joints_to_features(joints).astype(np.float32)                 # (899, 264) real motion features
    motion = windows(feats[:800], 384, 96)                                  # 5 windows of one dance
    motion = np.concatenate([motion, motion + rng.normal(0, 0.3, motion.shape).astype(np.float32)])
    music = windows(rng.normal(size=(1500, 7)).astype(np.float32), 384, 192)
    for ws in (ws_t, ws_o):
        assert ws.encode_music(music).shape == (music.shape[0], 64)
    emb_t, emb_o = ws_t.encode_motion(motion), ws_o.encode_motion(motion)
    assert np.abs(emb_t - emb_o).max() < 1e-4
    idx_t, _ = top_k(ws_t.encode_music(music), emb_t, 10)
    idx_o, _ = top_k(ws_o.encode_music(music), emb_o, 10)
    assert np.array_equal(idx_t, idx_o)
    norm = ((feats[:896] - ws_t.mean) / ws_t.std).astype(np.float32)
    assert np.array_equal(ws_t.encode_tokens(norm), ws_o.encode_tokens(norm))


def _skated(frames=150):
    return sliding_stance(frames)


def test_frdm_outputs_match_on_both_backends(frdm_set):
    w_t = footfix.load_frdm_weights(frdm_set, "cpu")
    w_o, notes = load_onnx_frdm(frdm_set, "cpu")
    assert w_o.device == "onnxruntime CPUExecutionProvider" and notes == []
    x = np.random.default_rng(0).normal(size=(3, w_t.cfg.window, w_t.cfg.dim)).astype(np.float32)
    t = np.array([900, 200, 5])
    assert np.abs(footfix.sampler.denoiser(w_t.model)(x, t) - w_o.model.denoise(x, t)).max() < 1e-4
    skated = _skated()
    a = footfix.fix_feet(skated, weights=frdm_set, steps=4, backend="torch", device="cpu", load_weights=load_frdm)
    b = footfix.fix_feet(skated, weights=frdm_set, steps=4, backend="onnx", device="cpu", load_weights=load_frdm)
    assert b.report["backend"] == "onnxruntime CPUExecutionProvider" and a.report["backend"] == "torch cpu"
    assert np.abs(a.joints - b.joints).max() < 1e-4
    assert np.abs(a.joints - skated).max() > 1e-3                          # the fix did something


def test_cuda_request_without_the_provider_is_reported(compact, music):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA; the CPU fallback note cannot be observed")
    res = generate(music, "Latin", weights=compact, references=None, span=Span(0.0, 3.0), runtime=Runtime(device="cuda", backend="onnx"))
    assert res.device == "onnxruntime CPUExecutionProvider"
    assert any("CUDA was requested" in n and "CPUExecutionProvider" in n for n in res.notes)


def test_damaged_onnx_file_is_named_and_torch_takes_over_visibly(compact, tmp_path, music):
    bad = _copy(compact, tmp_path / "bad")
    with open(bad / "onnx" / "generator_decode.onnx", "r+b") as f:
        f.seek(200)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(OnnxBackendError, match=r"onnx/generator_decode.onnx .*sha256.*export-onnx"):
        load_onnx_weight_set(bad)
    res = generate(music, "Latin", weights=bad, references=None, span=Span(0.0, 3.0), runtime=Runtime(device="cpu", backend="onnx"))
    assert res.device == "cpu"                                              # torch ran ...
    assert any("fell back to torch" in n and "generator_decode.onnx" in n for n in res.notes)   # ... and says so


def test_missing_or_stale_export_asks_for_export_onnx(compact, tmp_path):
    plain = _copy(compact, tmp_path / "plain")
    shutil.rmtree(plain / "onnx")
    with pytest.raises(OnnxBackendError, match="no ONNX export.*export-onnx --weights"):
        load_onnx_weight_set(plain)
    stale = _copy(compact, tmp_path / "stale")
    info = json.loads((stale / "onnx" / "export.json").read_text())
    info["source_sha256"]["generator.safetensors"] = "0" * 64             # exported from other weights
    (stale / "onnx" / "export.json").write_text(json.dumps(info))
    _rerecord(stale, "onnx/export.json")
    with pytest.raises(OnnxBackendError, match=r"exported from other weights \(generator.safetensors"):
        load_onnx_weight_set(stale)


def test_opset_the_runtime_cannot_load_is_explained(compact, tmp_path):
    import onnx

    future = _copy(compact, tmp_path / "future")
    path = future / "onnx" / "tokenizer_decoder.onnx"
    model = onnx.load(str(path))
    model.opset_import[0].version = 99                                     # far beyond any runtime
    onnx.save(model, str(path))
    _rerecord(future, "onnx/tokenizer_decoder.onnx")
    with pytest.raises(OnnxBackendError, match=r"cannot load onnx/tokenizer_decoder.onnx.*opset"):
        load_onnx_weight_set(future)


def test_unknown_backend_and_fp16_on_onnx_are_refused(compact):
    with pytest.raises(ValueError, match="unknown backend"):
        load_generator(compact, "tensorrt")
    with pytest.raises(ValueError, match="fp32"):
        load_generator(compact, "onnx", "cpu", "bf16")


def test_generate_and_fix_feet_run_where_torch_cannot_be_imported(compact, frdm_set, music, tmp_path):
    script = NO_TORCH_PRELUDE + textwrap.dedent(f"""
        sys.path.insert(0, {str(REPO / 'tests')!r})
        import numpy as np
        from core_models.generation import generate
        from core_models import footfix
        from core_models.runtime.backends import load_frdm
        from motion_fixture import sliding_stance
        res = generate({str(music)!r}, "Popular", weights={str(compact)!r}, seed=3, references=None)
        joints = sliding_stance(120)
        fix = footfix.fix_feet(joints, weights={str(frdm_set)!r}, steps=3, load_weights=load_frdm)
        print(json.dumps({{"device": res.device, "frames": res.num_frames, "tokens": res.tokens.tolist(),
                          "fix_backend": fix.report["backend"], "fix_method": fix.method,
                          "torch_loaded": "torch" in sys.modules}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["device"] == "onnxruntime CPUExecutionProvider" and got["frames"] == 270
    assert got["fix_backend"] == "onnxruntime CPUExecutionProvider" and got["fix_method"] == "frdm"
    assert got["torch_loaded"] is False
    ref = generate(music, "Popular", weights=compact, seed=3, references=None, runtime=Runtime(device="cpu", backend="torch"))
    assert np.array_equal(np.array(got["tokens"]), ref.tokens)             # same seed, same dance, no torch
