# SPDX-License-Identifier: GPL-3.0-or-later
"""Regenerate a range of a generated take (tiny random weight set, real audio decoding of a drum track):
outside the range every joint is the take's, inside it differs, the seams are smooth; key poses inside are
held; the CLI writes a new take and a report and refuses bad ranges without writing anything."""
import json

import numpy as np
import pytest

from core_models.cli import main
from core_models.editing import EditError, load_take, take_from_generation
from core_models.editing.regenerate import KeyPose, regenerate_range
from core_models.generation import Runtime, Span, generate
from generation_fixture import write_drum_track, write_tiny_compact_weight_set


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("regen")
    weights = write_tiny_compact_weight_set(root / "tiny", seed=2)
    music = write_drum_track(root / "drums.wav", 24.0)
    result = generate(str(music), "Popular", weights, span=Span(0.0, 24.0), seed=5, references=None,
                      runtime=Runtime(device="cpu", backend="torch"), allow_untrained_genre=True)
    return take_from_generation(result, {"weight_set": str(weights)}), music, weights


def test_regenerate_keeps_outside_and_changes_inside(setup):
    take, music, weights = setup
    new, report = regenerate_range(take, music, 8.0, 12.0, weights, backend="torch")
    s, e = report["range_frames"]
    assert 0 < s < e < take.num_frames and report["snapped_to"] in ("bars", "beats")
    assert abs(s / 30 - 8.0) < 1.1 and abs(e / 30 - 12.0) < 1.1
    before, after = take.joints(), new.joints()
    np.testing.assert_array_equal(after[:s], before[:s])
    np.testing.assert_array_equal(after[e:], before[e:])
    assert np.linalg.norm(after[s:e] - before[s:e], axis=-1).max() > 0.05
    assert report["seams"]["seam_jerk_ratio"] <= 1.5, report["seams"]
    assert new.edits[-1]["edit"] == "regenerate" and take.edits == []
    assert (new.tokens[s // 4 + 1:e // 4 - 1] != take.tokens[s // 4 + 1:e // 4 - 1]).any()


def test_regenerate_through_a_key_pose(setup):
    take, music, weights = setup
    other_frame, key_frame = 60, 300
    key = KeyPose(key_frame, take.rotations[other_frame], take.joints()[other_frame], "take:60")
    new, report = regenerate_range(take, music, 8.0, 12.0, weights, keys=[key], backend="torch")
    assert report["keys"][0]["error_m"] <= 0.03


def test_bad_ranges_are_refused(setup):
    take, music, weights = setup
    with pytest.raises(EditError, match="outside the music"):
        regenerate_range(take, music, 20.0, 30.0, weights, backend="torch")
    with pytest.raises(EditError, match="shorter than one beat"):
        regenerate_range(take, music, 8.0, 8.1, weights, backend="torch")
    with pytest.raises(EditError, match="whole take"):
        regenerate_range(take, music, 0.0, 24.0, weights, backend="torch")


def test_edit_command(setup, tmp_path, capsys):
    from core_models.editing import save_take

    take, music, weights = setup
    path = save_take(take, tmp_path / "take.npz")
    out, report = tmp_path / "new.npz", tmp_path / "r.json"
    assert main(["edit", str(path), "--music", str(music), "--regenerate", "8", "12", "--backend", "torch",
                 "--out", str(out), "--report", str(report)]) == 0
    r = json.loads(report.read_text())
    assert r["range_frames"][0] < r["range_frames"][1] and r["seams"]["seam_jerk_ratio"] <= 1.5
    assert load_take(out).edits[-1]["edit"] == "regenerate"
    assert main(["edit", str(path), "--repeat", "2", "5", "--at", "3", "--mirror", "--out",
                 str(tmp_path / "bad.npz")]) == 2
    assert "onto itself" in capsys.readouterr().err and not (tmp_path / "bad.npz").exists()
    assert main(["edit", str(path), "--key", f"{path}:10@9999", "--out", str(tmp_path / "bad.npz")]) == 2
    assert "outside the take" in capsys.readouterr().err and not (tmp_path / "bad.npz").exists()
    (tmp_path / "empty.json").write_text('{"points": []}')
    assert main(["edit", str(path), "--path", str(tmp_path / "empty.json"), "--out", str(tmp_path / "bad.npz")]) == 2
    assert "no points" in capsys.readouterr().err
