# SPDX-License-Identifier: GPL-3.0-or-later
"""`python -m core_models eval`: windows of every row scored against held-out real dance (skipped without
../shared)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core_models.data import mocap_dir
from core_models.evaluate import windows_of
from generation_fixture import write_drum_track

REPO = Path(__file__).resolve().parents[2]
ROWS = ("model", "model + foot fix", "music zeroed", "held-out real", "training real")
COMPACT = REPO / "core_models" / "assets" / "compact"


@pytest.fixture(scope="module")
def shared_mocap():
    if mocap_dir("cmu_dance") is None or mocap_dir("cmu") is None:
        pytest.skip("../shared/data/mocap is not available")


def test_windows_cover_the_dance_with_their_own_beats():
    joints = np.zeros((30 * 12, 22, 3))
    wins = windows_of(joints, np.array([10, 80, 160, 300]))
    assert len(wins) == 3                                   # 0-5 s, 2.5-7.5 s, 5-10 s (7.5-12.5 s is cut short)
    assert [w.shape[0] for w, _ in wins] == [150] * 3
    assert [b.tolist() for _, b in wins] == [[10, 80], [5, 85], [10]]


def test_eval_scores_every_row_over_windows(tmp_path, shared_mocap):
    tracks = [write_drum_track(tmp_path / f"drums{i}.wav", 12.0 + i) for i in range(2)]
    out = tmp_path / "table.json"
    run = subprocess.run([sys.executable, "-m", "core_models", "eval", "--weights", str(COMPACT), "--music",
                          *map(str, tracks), "--seconds", "12", "--seeds", "0", "--genre", "Latin",
                          "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["genres"] == ["Latin"] and result["reference_windows"] >= 40
    rows = result["rows"]["Latin"]
    assert tuple(rows) == ROWS
    for name, row in rows.items():
        assert row["windows"] >= 6, name
        assert 0.0 <= row["bas"] <= 1.0 and 0.0 <= row["fsr"] <= 1.0 and row["jitter"] > 0, (name, row)
        assert np.isfinite(row["div_k"]) and row["travel_m_per_min"] >= 0, name
        assert ("fid_k" in row) == (name != "held-out real")
        if "fid_k" in row:
            assert np.isfinite(row["fid_k"]) and row["fid_k"] < 1e4, (name, row["fid_k"])   # readable
    assert rows["model"]["fk_error_m_max"] <= 0.05
    assert 0.0 < result["clean_dance_fsr"] < 1.0
    for name in ROWS:
        assert name in run.stdout
