# SPDX-License-Identifier: GPL-3.0-or-later
"""The weight sets and starter library shipped inside the extension: intact, licensed, usable offline."""
import json
from pathlib import Path

import numpy as np
import pytest

import weights_fetch
from core_models.library import Library
from core_models.pipeline import generate
from core_models.weights import load_weight_set
from generation_fixture import write_drum_track

ASSETS = Path(__file__).resolve().parents[2] / "core_models" / "assets"


def test_shipped_files_match_their_manifests_and_fit_the_budget():
    for name in ("compact", "frdm"):
        assert weights_fetch.verify(ASSETS / name) == [], name
        config = json.loads((ASSETS / name / "config.json").read_text())
        assert "CC BY-NC 4.0" in config["licence"] and config["training_data"]
    total = sum(p.stat().st_size for p in ASSETS.rglob("*") if p.is_file())
    assert total <= 50 * 1024 * 1024, f"{total / 2 ** 20:.1f} MB shipped"


def test_no_data_from_outside_the_project_is_shipped():
    assert sorted(p.name for p in ASSETS.iterdir()) == ["compact", "frdm"]


def test_compact_set_generates_from_audio_with_the_starter_library(tmp_path):
    from core_models.library import build_starter

    ws = load_weight_set(ASSETS / "compact", device="cpu")
    assert ws.family == "compact" and ws.retrieval is not None
    report = build_starter(tmp_path / "library", max_seconds=20)
    if not report["added"]:
        pytest.skip(f"no shared mocap for the starter library: {report['skipped']}")
    library = Library(tmp_path / "library")
    assert len(library.clips("Latin", "Salsa")) >= 20 and library.clips("Popular")
    assert all(c.licence and c.source for c in library.clips())
    music = write_drum_track(tmp_path / "drums.wav", 6.0)
    result = generate(str(music), "Latin", weights=ws, library=library, seed=3)
    assert result.num_frames == 180 and np.isfinite(result.joints).all()
    assert result.references[0]["references"] and result.notes == []
