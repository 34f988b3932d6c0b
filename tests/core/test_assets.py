# SPDX-License-Identifier: GPL-3.0-or-later
"""The weight sets and starter library shipped inside the extension: intact, licensed, usable offline."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import weights_fetch
from core_models.library import Library, LibraryError, weight_set_key
from core_models.generation import GenerationError, generate
from core_models.starter_library import SHIPPED_LIBRARY_DIR, LibraryStack, open_libraries, shipped_library
from core_models.weights import load_weight_set
from generation_fixture import write_drum_track

ASSETS = Path(__file__).resolve().parents[2] / "core_models" / "assets"


def test_shipped_files_match_their_manifests_and_fit_the_budget():
    for name in ("compact", "frdm"):
        assert weights_fetch.verify(ASSETS / name) == [], name
        config = json.loads((ASSETS / name / "config.json").read_text())
        assert "CC BY-NC 4.0" in config["licence"] and config["training_data"]
    total = sum(p.stat().st_size for p in ASSETS.rglob("*") if p.is_file())
    assert total <= 60 * 1024 * 1024, f"{total / 2 ** 20:.1f} MB shipped"


def test_only_the_weight_sets_and_the_cmu_starter_library_are_shipped():
    assert sorted(p.name for p in ASSETS.iterdir()) == ["compact", "frdm", "library"]
    lib = shipped_library()
    assert lib is not None and lib.read_only and len(lib) >= 40
    for clip in lib.clips():
        # CMU data only (usable in products), credited on every clip; no Bandai Namco (non-commercial) clip
        assert clip.source.startswith("CMU mocap") and "mocap.cs.cmu.edu" in clip.licence
        assert "NSF EIA-0196217" in clip.licence and "bandai" not in clip.source.lower()
        with np.load(SHIPPED_LIBRARY_DIR / clip.file) as data:
            assert data["features"].dtype == np.float16
    genres = {c.genre for c in lib.clips()}
    assert {"Popular", "Latin", "Modern", "Folk"} <= genres


def test_the_compact_set_records_its_genres_and_the_library_has_its_derived_data():
    ws = load_weight_set(ASSETS / "compact", device="cpu")
    trained = ws.trained_genres
    assert set(trained) == {"Popular", "Latin", "Modern", "Folk"} and all(m > 1.0 for m in trained.values())
    key = weight_set_key(ws)
    lib = shipped_library()
    for clip in lib.clips():                         # nothing to compute at first use
        assert (SHIPPED_LIBRARY_DIR / "derived" / key).is_dir()
        d = lib.derived(ws, clip.name)
        assert d["embeddings"].shape[0] == len(d["starts"]) and d["tokens"].shape[1] == 3


def test_the_compact_set_smooths_its_decoded_features_and_the_dance_trembles_less():
    """The compact tokenizer's frames tremble (jitter about twice real dance's); the set's config asks for 2
    frames of Gaussian smoothing of the decoded features, applied by every decode path (Generate, Regenerate)."""
    from scipy.ndimage import gaussian_filter1d

    from core_models.features import denormalize_features, features_to_joints
    from core_models.metrics import jitter

    ws = load_weight_set(ASSETS / "compact", device="cpu")
    assert ws.decode_smoothing_frames == 2.0
    clip = shipped_library().clips()[0].name
    local = shipped_library().derived(ws, clip)["tokens"][:40]
    raw = denormalize_features(ws.decode_tokens(local).astype(np.float64), ws.mean, ws.std)
    smoothed = ws.decode_features(local)
    np.testing.assert_allclose(smoothed, gaussian_filter1d(raw, 2.0, axis=0, mode="nearest"), atol=1e-9)
    assert jitter(features_to_joints(smoothed)) < 0.7 * jitter(features_to_joints(raw))
    unsmoothed = dict(ws.config, decode_smoothing_frames=0.0)
    ws.config = unsmoothed
    np.testing.assert_array_equal(ws.decode_features(local), raw)


def test_the_shipped_library_is_read_only():
    lib = shipped_library()
    name = lib.clips()[0].name
    with pytest.raises(LibraryError, match="read-only"):
        lib.remove(name)
    with pytest.raises(LibraryError, match="read-only"):
        lib.add("x", "Popular", features=np.zeros((400, 264), np.float32))
    assert name in shipped_library()


def test_generate_retrieves_from_the_starter_library_on_a_fresh_install(tmp_path):
    music = write_drum_track(tmp_path / "drums.wav", 14.0)
    result = generate(str(music), "Latin", weights=ASSETS / "compact", library=open_libraries(), seed=3)
    assert result.num_frames == 420 and np.isfinite(result.joints).all()
    refs = [r["name"] for w in result.references for r in w["references"]]
    assert refs and all(r.startswith("CMU ") for r in refs)
    assert any("starter library" in n for n in result.notes)
    with pytest.raises(GenerationError, match="not trained on Ballet.*Popular"):
        generate(str(music), "Ballet", weights=ASSETS / "compact", seed=3)
    ballet = generate(str(music), "Ballet", weights=ASSETS / "compact", seed=3, references=None,
                      allow_untrained_genre=True)
    assert any("not a trained genre" in n for n in ballet.notes)


def test_a_damaged_starter_library_gives_notes_not_crashes(tmp_path):
    copy = tmp_path / "library"
    shutil.copytree(SHIPPED_LIBRARY_DIR, copy)
    clips = Library(copy).clips("Latin")
    (copy / clips[0].file).unlink()                                  # a clip file removed
    edited = copy / clips[1].file
    edited.write_bytes(edited.read_bytes()[:200])                   # another cut short
    stack = LibraryStack([Library(copy, read_only=True)])
    assert any("missing" in n for n in stack.notes)
    music = write_drum_track(tmp_path / "drums.wav", 14.0)
    result = generate(str(music), "Latin", weights=ASSETS / "compact", library=stack, seed=3)
    assert np.isfinite(result.joints).all() and result.num_frames == 420
    assert any("missing" in n for n in result.notes)
