# SPDX-License-Identifier: GPL-3.0-or-later
"""`python -m core_models eval`: every row scored on real held-out mocap (skipped without ../shared)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core_models.data import mocap_dir
from generation_fixture import write_drum_track, write_tiny_compact_weight_set

REPO = Path(__file__).resolve().parents[2]
ROWS = ("model", "music zeroed", "real mocap", "model + feet")


@pytest.fixture(scope="module")
def shared_mocap():
    if mocap_dir("cmu") is None or mocap_dir("bandai") is None:
        pytest.skip("../shared/data/mocap is not available")


def test_eval_scores_model_baselines_and_foot_fixed_rows(tmp_path, shared_mocap):
    weights = write_tiny_compact_weight_set(tmp_path / "ws")
    tracks = [write_drum_track(tmp_path / f"drums{i}.wav", 6.0 + i) for i in range(2)]
    out = tmp_path / "table.json"
    run = subprocess.run([sys.executable, "-m", "core_models", "eval", "--weights", str(weights), "--music",
                          *map(str, tracks), "--seconds", "6", "--out", str(out)], cwd=REPO, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(out.read_text())
    assert tuple(result["rows"]) == ROWS and result["tracks"] == ["drums0.wav", "drums1.wav"]
    for name, row in result["rows"].items():
        assert len(row["bas_per_track"]) == 2, name
        assert 0.0 <= row["bas"] <= 1.0 and 0.0 <= row["fsr"] <= 1.0 and row["jitter"] > 0, (name, row)
        assert np.isfinite(row["div_k"]) and np.isfinite(row["fid_k"]), name
    assert 0.0 < result["clean_corpus_fsr"] < 1.0
    # the foot fix only ever moves root and legs: the same music, the same beats, a dance as long as the model's
    assert result["rows"]["model + feet"]["fsr"] <= result["rows"]["model"]["fsr"] + 0.05
    for name in ROWS:
        assert name in run.stdout
