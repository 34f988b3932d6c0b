# SPDX-License-Identifier: GPL-3.0-or-later
"""The reference library on disk, retrieval with RetrievalNet, and references reaching generate()."""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from core_models.features import joints_to_features
from core_models.library import GENRES, TAXONOMY, Library, LibraryError, resolve_genre
from core_models.generation import MusicFeatures, generate
from core_models.weights import load_weight_set
from generation_fixture import write_tiny_compact_weight_set

DANCE = "dataset/Bandai-Namco-Research-Motiondataset-1/data/dataset-1_dance-short_normal_001.bvh"


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return load_weight_set(write_tiny_compact_weight_set(tmp_path_factory.mktemp("ws") / "c", retrieval=True),
                           device="cpu")


def _dance_joints(frames=600, seed=0):
    from motion_fixture import make_dance

    return make_dance(frames=frames, seed=seed)[3]


@pytest.fixture(scope="module")
def real_bvh(tmp_path_factory):
    from core_models.data import mocap_sample

    cmu = mocap_sample("cmu", ["cmu_salsa/61_11_scaled.bvh", "cmu_salsa/61_07_scaled.bvh"],
                       tmp_path_factory.mktemp("cmu"))
    bandai = mocap_sample("bandai", [DANCE, "dataset/Bandai-Namco-Research-Motiondataset-1/data/"
                                            "dataset-1_bye_feminine_001.bvh"], tmp_path_factory.mktemp("bandai"))
    if isinstance(cmu, str) or isinstance(bandai, str):
        pytest.skip(cmu if isinstance(cmu, str) else bandai)
    return cmu, bandai


def test_taxonomy_and_genre_names():
    assert GENRES == ("Ballet", "Popular", "Latin", "Modern", "Folk", "Classic")
    assert {"K-pop", "HipHop", "Jazz", "Locking", "Breaking"} <= set(TAXONOMY["Popular"])
    assert {"Chacha", "Rumba", "Samba"} <= set(TAXONOMY["Latin"]) and "Dai" in TAXONOMY["Folk"]
    assert resolve_genre("latin", "salsa") == ("Latin", "Salsa")
    with pytest.raises(LibraryError, match="unknown genre 'Polka'.*Ballet"):
        resolve_genre("Polka")
    with pytest.raises(LibraryError, match="unknown sub-genre 'Waltz' for Latin.*Chacha"):
        resolve_genre("Latin", "Waltz")


def test_round_trip_with_three_real_bvh_files(tmp_path, real_bvh, ws):
    (salsa_a, salsa_b), (dance, short) = real_bvh
    lib = Library.create(tmp_path / "lib")
    lib.add("CMU salsa 61_11", "Latin", "Salsa", path=salsa_a, licence="CMU mocap terms")
    lib.add("CMU salsa 61_07", "latin", "salsa", path=salsa_b, licence="CMU mocap terms")
    lib.add("Bandai dance-short", "Popular", "Dance", path=dance, licence="CC BY-NC 4.0")
    with pytest.raises(LibraryError, match="is 10.9 s long; a reference must cover one window of 12.8 s"):
        lib.add("Bandai bye", "Popular", path=short)
    with pytest.raises(LibraryError, match="already in the library"):
        lib.add("Bandai dance-short", "Popular", path=dance)

    again = Library(tmp_path / "lib")
    assert [c.name for c in again.clips()] == ["Bandai dance-short", "CMU salsa 61_07", "CMU salsa 61_11"]
    assert [c.name for c in again.clips("Latin")] == ["CMU salsa 61_07", "CMU salsa 61_11"]
    assert [c.name for c in again.clips("Latin", "Salsa")] == ["CMU salsa 61_07", "CMU salsa 61_11"]
    assert again.clips("Ballet") == [] and again.clips(text="bandai")[0].genre == "Popular"
    info = again.info("CMU salsa 61_11")
    assert info.licence == "CMU mocap terms" and info.subgenre == "Salsa" and info.source.endswith("61_11_scaled.bvh")
    assert info.frames == 526 and info.duration == pytest.approx(526 / 30)   # 527 frames -> 526 feature frames
    from core_models.io import load_body_clip

    expected = joints_to_features(load_body_clip(salsa_a).joints)
    assert np.allclose(again.features("CMU salsa 61_11"), expected, atol=1e-5)

    # derived data: tokens for the prefix and unit-length window embeddings, cached on disk
    d = again.derived(ws, "Bandai dance-short")
    frames = again.info("Bandai dance-short").frames
    assert d["tokens"].shape == (frames // 4, 3) and d["starts"][0] == 0 and d["starts"][-1] == frames - 384
    assert np.all(np.diff(d["starts"][:-1]) == 192) and 0 < d["starts"][-1] - d["starts"][-2] <= 192
    assert np.allclose(np.linalg.norm(d["embeddings"], axis=1), 1, atol=1e-5)
    assert len(list((tmp_path / "lib" / "derived").rglob("*.npz"))) == 1

    music = np.random.default_rng(0).normal(size=(700, 7)).astype(np.float32)
    first = again.retrieve(ws, music, "Latin", top_k=3)
    second = again.retrieve(ws, music, "Latin", top_k=3)
    assert len(first) == 3 and first == second                       # 700 frames: windows at 0, 192, 384
    assert all(m.name.startswith("CMU salsa") for row in first for m in row)
    assert all(a.score >= b.score for row in first for a, b in zip(row, row[1:]))

    provider = again.reference_provider(ws, "Latin", music)
    cond, prefix, refs = provider.for_window(1)
    assert cond.shape == (384, 264) and prefix.shape == (20, 3) and len(refs) == 4    # every Latin window
    assert [(r["name"], r["start"], r["score"]) for r in refs[:3]] == [(m.name, m.start, m.score) for m in first[1]]
    assert provider.references(1)[0].start == first[1][0].start

    again.remove("CMU salsa 61_07")
    assert [c.name for c in Library(tmp_path / "lib").clips("Latin")] == ["CMU salsa 61_11"]


def test_rag_condition_weights_sum_to_one(tmp_path, ws):
    lib = Library.create(tmp_path / "lib")
    clips = {f"clip{i}": _dance_joints(500, seed=i) for i in range(4)}
    for name, joints in clips.items():
        lib.add(name, "Modern", joints=joints)
    music = np.random.default_rng(1).normal(size=(400, 7)).astype(np.float32)
    provider = lib.reference_provider(ws, "Modern", music, top_k=4)
    refs = provider.references(0)
    cond, _, _ = provider.for_window(0)
    segs = [(lib.features(r.name)[r.start:r.start + 384] - ws.rag_mean) / ws.rag_std for r in refs]
    # (n - i) / sum weights: 4/10, 3/10, 2/10, 1/10 -- they sum to 1, so a constant input stays constant
    assert np.allclose(cond, sum(w * s for w, s in zip((0.4, 0.3, 0.2, 0.1), segs)), atol=1e-5)


def test_pinned_references_change_what_generate_uses(tmp_path, ws):
    lib = Library.create(tmp_path / "lib")
    for i in range(3):
        lib.add(f"ref{i}", "Folk", "Dai", joints=_dance_joints(450, seed=10 + i))
    music = np.random.default_rng(2).normal(size=(300, 7)).astype(np.float32)
    seen = []                                     # the condition the generator actually receives
    original = ws.generator.generate_window
    ws.generator.generate_window = lambda music, style, cond, *a, **k: (seen.append(cond.clone()),
                                                                        original(music, style, cond, *a, **k))[1]
    try:
        auto = generate(MusicFeatures(music), "Folk", weights=ws, library=lib, seed=1)
        pinned = generate(MusicFeatures(music), "Folk", weights=ws, library=lib, seed=1, references=["ref2"])
    finally:
        ws.generator.generate_window = original
    assert {r["name"] for r in pinned.references[0]["references"]} == {"ref2"}
    assert len(auto.references[0]["references"]) == 6       # two windows of each Folk clip
    assert len(seen) == 2 and (seen[0] - seen[1]).abs().max() > 0.1
    ref2 = [(lib.features("ref2")[s:s + 384] - ws.rag_mean) / ws.rag_std
            for s in (r["start"] for r in pinned.references[0]["references"])]
    assert np.allclose(seen[1][0].numpy(), (2 / 3) * ref2[0] + (1 / 3) * ref2[1], atol=1e-4)
    none = generate(MusicFeatures(music), "Folk", weights=ws, seed=1)
    assert "no reference library" in " ".join(none.notes)
    empty = generate(MusicFeatures(music), "Ballet", weights=ws, library=lib, seed=1)
    assert "no Ballet clips" in " ".join(empty.notes) and empty.references[0]["references"] == []


def test_missing_readonly_and_crashed_libraries(tmp_path):
    with pytest.raises(LibraryError, match="does not exist"):
        Library(tmp_path / "nope")
    lib = Library.create(tmp_path / "lib")
    lib.add("one", "Ballet", joints=_dance_joints(420))
    # a crash while adding: a temporary clip file and an orphan clip that the index never listed
    (tmp_path / "lib/clips/.two.npz.abc.tmp").write_bytes(b"partial")
    shutil.copy(tmp_path / "lib" / lib.info("one").file, tmp_path / "lib/clips/orphan.npz")
    reopened = Library(tmp_path / "lib")
    assert [c.name for c in reopened.clips()] == ["one"]               # the index is intact
    (tmp_path / "lib/library.json").write_text('{"format": "choreo-library", "clips": [')   # torn index
    with pytest.raises(LibraryError, match="damaged.*repair"):
        Library(tmp_path / "lib")
    repaired = Library.open_or_repair(tmp_path / "lib")
    assert [c.name for c in repaired.clips()] == ["one"]
    assert not list((tmp_path / "lib").rglob("*.tmp"))

    ro = tmp_path / "lib"
    if os.geteuid() == 0:                      # root ignores permission bits: make the folder immutable
        if subprocess.run(["chattr", "+i", str(ro / "clips")], capture_output=True).returncode:
            pytest.skip("cannot make a read-only folder here (chattr unavailable)")
    else:
        os.chmod(ro / "clips", 0o555)
    try:
        before = (ro / "library.json").read_bytes()
        with pytest.raises(LibraryError, match="read-only"):
            Library(ro).add("two", "Ballet", joints=_dance_joints(420))
        assert (ro / "library.json").read_bytes() == before
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(ro / "clips")])
        else:
            os.chmod(ro / "clips", 0o755)


def test_bad_clips_are_refused(tmp_path):
    lib = Library.create(tmp_path / "lib")
    with pytest.raises(LibraryError, match="not allowed"):
        lib.add("../escape", "Ballet", joints=_dance_joints(420))
    with pytest.raises(LibraryError, match="unknown genre"):
        lib.add("x", "Disco", joints=_dance_joints(420))
    with pytest.raises(LibraryError, match="12.8 s"):
        lib.add("x", "Ballet", joints=_dance_joints(100))
    bad = _dance_joints(420)
    bad[5, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        lib.add("x", "Ballet", joints=bad)
    assert len(Library(tmp_path / "lib")) == 0
    assert json.loads((tmp_path / "lib/library.json").read_text())["clips"] == []


def test_import_official_corpus_layout(tmp_path, ws):
    from core_models.library import import_official

    rng = np.random.default_rng(3)
    feats = tmp_path / "ft_balanced"
    toks = tmp_path / "tokens"
    feats.mkdir()
    toks.mkdir()
    names, embs = [], []
    for clip in ("Popular-HomeDance804", "Latin-Samba12", "Opera-Aria1", "Folk-NoFeatures"):
        for start in (0, 192):
            names.append(f"{clip}@{start}_{start + 384}")
            embs.append(rng.normal(size=32))
        if clip != "Folk-NoFeatures":
            np.save(feats / f"{clip}.npy", rng.normal(size=(600, 264)).astype(np.float32))
            local = rng.integers(0, 8, size=(150, 3))
            np.save(toks / f"{clip}.npy", (local + 4096 + np.arange(3) * 8).reshape(-1))   # 1-D absolute ids
    np.savez(tmp_path / "emb.npz", names=np.array(names), embeddings=np.array(embs, np.float32))
    (tmp_path / "styles.json").write_text(json.dumps({"Latin-Samba12": "Latin"}))
    lib = Library.create(tmp_path / "lib")
    report = import_official(lib, tmp_path / "emb.npz", feats, tmp_path / "styles.json", toks, ws)
    assert sorted(report["added"]) == ["Latin-Samba12", "Popular-HomeDance804"]
    assert "not one of the 6" in report["skipped"]["Opera-Aria1"]
    assert report["skipped"]["Folk-NoFeatures"] == "no feature file"
    d = lib.derived(ws, "Latin-Samba12")                  # the released embeddings, not recomputed ones
    e = np.array(embs[2:4])
    assert np.allclose(d["embeddings"], e / np.linalg.norm(e, axis=1, keepdims=True), atol=1e-6)
    assert list(d["starts"]) == [0, 192] and d["tokens"].shape == (150, 3) and d["tokens"].max() < 8
    assert lib.info("Popular-HomeDance804").genre == "Popular"


def test_cli_library_commands(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from core_models.io import write_bvh
    from core_models.io.bvh import bvh_from_rotations
    from core_models.skeleton import BODY_JOINT_NAMES
    from motion_fixture import make_dance

    rot, root, skel, _ = make_dance(frames=450)
    write_bvh(tmp_path / "move.bvh", bvh_from_rotations(list(BODY_JOINT_NAMES), list(skel.parents), skel.offsets,
                                                         rot, root, 1 / 30))
    repo = Path(__file__).resolve().parents[2]
    run = lambda *a: subprocess.run([sys.executable, "-m", "core_models", "library", *a], cwd=repo,
                                    capture_output=True, text=True, timeout=120)
    lib = str(tmp_path / "lib")
    assert run("create", lib).returncode == 0
    out = run("add", lib, str(tmp_path / "move.bvh"), "--genre", "Modern", "--subgenre", "Contemporary",
              "--licence", "CC0")
    assert out.returncode == 0 and "added move: Modern/Contemporary, 15.0 s" in out.stdout, out.stderr
    listed = json.loads(run("list", lib, "--json").stdout)
    assert listed == [{"name": "move", "genre": "Modern", "subgenre": "Contemporary", "seconds": 14.97,
                       "source": str(tmp_path / "move.bvh"), "licence": "CC0"}]
    bad = run("add", lib, str(tmp_path / "move.bvh"), "--genre", "Polka")
    assert bad.returncode == 2 and "unknown genre 'Polka'" in bad.stderr
    assert run("remove", lib, "--name", "move").returncode == 0
    assert json.loads(run("list", lib, "--json").stdout) == []
