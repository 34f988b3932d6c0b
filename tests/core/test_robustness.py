# SPDX-License-Identifier: GPL-3.0-or-later
"""Nothing lost, nothing outside its folder: the library under concurrency and damage, honest checks of audio,
options and downloads, and a seeded fuzz test that damages BVH files, audio files and library indexes.

Every case runs the real component (libsndfile decoding, the BVH reader, the library on disk, the CLI,
weights_fetch against a loopback HTTP server); nothing under test is mocked.
"""
import hashlib
import http.server
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

import weights_fetch as wf
from core_models import cli
from core_models.audio import AudioFileError, load_audio
from core_models.io import UnsupportedFormatError, load_body_clip, write_bvh
from core_models.io.bvh import BvhError, bvh_from_rotations
from core_models.io.retarget import RetargetError
from core_models.runtime.files import WeightSetError
from core_models.library import WINDOW, Library, LibraryError
from core_models.safe_files import FileLock, OutsideFolderError, inside
from core_models.skeleton import BODY_JOINT_NAMES
from motion_fixture import make_dance

REPO = Path(__file__).resolve().parents[2]
SR = 22050


def _bvh(path: Path, frames: int = 420, seed: int = 0) -> Path:
    rot, root, skel, _ = make_dance(frames=frames, seed=seed)
    write_bvh(path, bvh_from_rotations(list(BODY_JOINT_NAMES), list(skel.parents), skel.offsets, rot, root, 1 / 30))
    return path


def _features(seed: int, frames: int = WINDOW + 6) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(frames, 264)).astype(np.float32)


def _song(seconds: float = 60.0, seed: int = 0) -> np.ndarray:
    """A minute of 'music' that compresses like music (a gliding tone over noise), not like silence."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * 220 * t * (1 + 0.1 * np.sin(t))) + 0.1 * rng.standard_normal(t.size)).astype(
        np.float32)


def _cut(src: Path, dest: Path, share: float = 0.1) -> Path:
    data = src.read_bytes()
    dest.write_bytes(data[: int(len(data) * share)])
    return dest


def _cli(capsys, *argv) -> tuple[int, str, str]:
    """The CLI in this process: an exception escaping ``main`` (a raw traceback for the user) fails the test."""
    rc = cli.main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def _run_cli(*argv, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core_models", *argv], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def _folder_state(folder: Path) -> dict:
    """Every file below ``folder`` with its sha256 (what a test checks stays untouched)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


@pytest.fixture
def guarded(tmp_path):
    """A library folder with sentinel files next to it; ``check()`` asserts nothing outside it changed."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "decoy.txt").write_text("keep me\n")
    np.savez(outside / "decoy.npz", features=_features(99))
    lib_dir = outside / "lib"
    before = _folder_state(outside)

    def check():
        after = {k: v for k, v in _folder_state(outside).items() if not k.startswith("lib/")}
        assert after == {k: v for k, v in before.items() if not k.startswith("lib/")}

    return lib_dir, check


# ------------------------------------------------------------------------------------- library: confinement

def test_an_index_entry_outside_the_folder_is_refused_never_followed(guarded, capsys):
    lib_dir, check = guarded
    lib = Library.create(lib_dir)
    lib.add("move", "Modern", features=_features(1))
    index = json.loads((lib_dir / "library.json").read_text())
    for bad in ("../decoy.txt", "../decoy.npz", str(lib_dir.parent / "decoy.txt"), "clips/../../decoy.txt",
                "library.json"):
        index["clips"][0]["file"] = bad
        (lib_dir / "library.json").write_text(json.dumps(index))
        with pytest.raises(LibraryError, match=r"is outside clips/ .*will not read, write or delete it.*library repair"):
            Library(lib_dir)
        rc, _, err = _cli(capsys, "library", "remove", str(lib_dir), "--name", "move")
        assert rc == 2 and "outside clips/" in err and "repair" in err
        check()
    # repair rebuilds the index from the clip files: the clip comes back, the decoys stay as they were
    rc, out, _ = _cli(capsys, "library", "repair", str(lib_dir))
    assert rc == 0 and "rebuilt the index, which was damaged" in out and "1 clips indexed" in out
    assert [c.file for c in Library(lib_dir).clips()] == [lib.info("move").file]
    Library(lib_dir).remove("move")
    check()
    # a link inside clips/ that leads outside is neither indexed, followed nor deleted by repair
    os.symlink(lib_dir.parent / "decoy.npz", lib_dir / "clips" / "link.npz")
    _, done = Library.repair_at(lib_dir)
    assert any("ignored link.npz: not a plain file" in d for d in done) and (lib_dir / "clips/link.npz").is_symlink()
    check()


def test_confinement_helper_refuses_every_way_out(tmp_path):
    root = tmp_path / "lib"
    (root / "clips").mkdir(parents=True)
    assert inside(root, "clips/a.npz", "clips") == root / "clips" / "a.npz"
    for bad in ("../x", "/etc/passwd", "clips/../../x", "clips", "clips/../library.json", "", "a\x00b"):
        with pytest.raises(OutsideFolderError):
            inside(root, bad, "clips")
    os.symlink(tmp_path, root / "clips" / "up")
    with pytest.raises(OutsideFolderError, match="outside"):
        inside(root, "clips/up/x.npz", "clips")


def test_a_weight_set_manifest_entry_outside_the_folder_is_refused(tmp_path):
    ws = tmp_path / "set"
    ws.mkdir()
    (tmp_path / "secret.bin").write_bytes(b"not yours")
    (ws / "config.json").write_text("{}")
    wf.record_file(ws, "config.json", "test")
    manifest = wf.read_manifest(ws)
    manifest["files"]["../secret.bin"] = {"sha256": "0" * 64, "size": 9, "source": "tampered"}
    wf.write_manifest(ws, manifest)
    problems = wf.verify(ws)
    assert len(problems) == 1 and problems[0].startswith("outside the folder: ../secret.bin")
    with pytest.raises(WeightSetError, match="outside"):         # the manifest helpers live in runtime.files
        wf.record_file(ws, "../secret.bin", "test")
    assert (tmp_path / "secret.bin").read_bytes() == b"not yours"


# ------------------------------------------------------------------------------------- library: concurrency

def test_four_concurrent_adds_keep_every_clip_and_readers_never_see_half_an_index(tmp_path):
    lib_dir = tmp_path / "lib"
    Library.create(lib_dir)
    files = [_bvh(tmp_path / f"c{i}.bvh", seed=i) for i in range(4)]
    seen, errors, stop = [], [], threading.Event()

    def reader():
        while not stop.is_set():
            try:
                seen.append(len(Library(lib_dir)))
            except Exception as exc:          # a torn index would show here
                errors.append(repr(exc))

    thread = threading.Thread(target=reader)
    thread.start()
    procs = [subprocess.Popen([sys.executable, "-m", "core_models", "library", "add", str(lib_dir), str(f),
                               "--genre", "Modern"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for f in files]
    outs = [p.communicate(timeout=300) for p in procs]
    stop.set()
    thread.join()
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outs
    assert sorted(c.name for c in Library(lib_dir).clips()) == ["c0", "c1", "c2", "c3"]
    assert len(list((lib_dir / "clips").glob("*.npz"))) == 4            # no orphans
    assert errors == [] and seen and set(seen) <= {0, 1, 2, 3, 4} and seen == sorted(seen)


def test_the_writer_lock_excludes_a_second_writer(tmp_path):
    lock = tmp_path / ".library.lock"
    order = []
    with FileLock(lock):
        other = threading.Thread(target=lambda: (FileLock(lock).__enter__(), order.append("second")))
        other.start()
        time.sleep(0.3)
        order.append("first done")
    other.join(10)
    assert order == ["first done", "second"]


# ---------------------------------------------------------------------------------- library: damaged indexes

DAMAGED_INDEXES = {
    "a list": ("[]", "holds a JSON list where an object"),
    "clips not a list": ('{"format": "choreo-library", "version": 1, "clips": {}}', '"clips" is a JSON object'),
    "entry missing fields": (None, "lacks sha256, added"),
    "entry of the wrong type": (None, "frames is 'many', not a int"),
    "torn": ('{"format": "choreo-library", "clips": [', "not valid JSON"),
    "not utf-8": (b"\xff\xfe\x00garbage", "not valid JSON"),
}


@pytest.mark.parametrize("case", list(DAMAGED_INDEXES))
def test_damaged_index_is_named_and_repair_rebuilds_it(guarded, tmp_path, capsys, case):
    lib_dir, check = guarded
    lib = Library.create(lib_dir)
    for i in range(2):
        lib.add(f"clip {i}", "Latin", "Salsa", features=_features(i), licence="CC0")
    added = {c.name: c.added for c in lib.clips()}
    text, message = DAMAGED_INDEXES[case]
    if text is None:
        index = json.loads((lib_dir / "library.json").read_text())
        if case == "entry missing fields":
            del index["clips"][1]["sha256"], index["clips"][1]["added"]
        else:
            index["clips"][0]["frames"] = "many"
        text = json.dumps(index)
    (lib_dir / "library.json").write_bytes(text if isinstance(text, bytes) else text.encode())
    for argv in (("list",), ("add", str(_bvh(tmp_path / "new.bvh")), "--genre", "Modern"),
                 ("remove", "--name", "clip 0")):
        rc, _, err = _cli(capsys, "library", argv[0], str(lib_dir), *argv[1:])
        assert rc == 2 and message in err and "library repair" in err and "Traceback" not in err, (argv, err)
    assert len(list((lib_dir / "clips").glob("*.npz"))) == 2          # nothing added or removed meanwhile
    rc, out, _ = _cli(capsys, "library", "repair", str(lib_dir))
    assert rc == 0 and "rebuilt the index, which was damaged" in out and "2 clips indexed" in out
    repaired = Library(lib_dir)
    assert [(c.name, c.genre, c.subgenre, c.licence, c.frames) for c in repaired.clips()] == [
        ("clip 0", "Latin", "Salsa", "CC0", WINDOW + 6), ("clip 1", "Latin", "Salsa", "CC0", WINDOW + 6)]
    if case in ("entry of the wrong type",):                  # dates kept where the old entry still had them
        assert repaired.info("clip 1").added == added["clip 1"]
    check()


def test_repair_moves_a_damaged_clip_aside_and_never_deletes_one(tmp_path):
    lib = Library.create(tmp_path / "lib")
    lib.add("good", "Folk", features=_features(1))
    lib.add("torn", "Folk", features=_features(2))
    torn = tmp_path / "lib" / lib.info("torn").file
    torn.write_bytes(torn.read_bytes()[:1000])
    with pytest.raises(LibraryError, match="cannot be read.*repair"):
        Library(tmp_path / "lib").features("torn")
    done = Library.repair_at(tmp_path / "lib")[1]
    assert any(d.startswith(f"moved aside {torn.name} as {torn.with_suffix('.damaged').name}: unreadable")
               for d in done)
    assert torn.with_suffix(".damaged").stat().st_size == 1000 and [c.name for c in Library(tmp_path / "lib").clips()] \
        == ["good"]


def test_leftover_temporary_files_are_removed_by_the_next_writer(tmp_path):
    lib = Library.create(tmp_path / "lib")
    leftovers = [tmp_path / "lib/.library.json.abc123.tmp", tmp_path / "lib/clips/.x-1.npz.def456.tmp"]
    for p in leftovers:
        p.write_bytes(b"")                                   # what a killed add leaves
    Library(tmp_path / "lib")                                # a reader leaves them alone
    assert all(p.exists() for p in leftovers)
    lib.add("next", "Ballet", features=_features(3))
    assert not any(p.exists() for p in leftovers)
    assert sorted(p.name for p in (tmp_path / "lib").rglob("*") if p.is_file()) == sorted([
        ".library.lock", lib.info("next").file.split("/")[1], "library.json"])


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        lib = Library.create(tmp_path / "lib")
        lib.add("shared", "Modern", features=_features(4))
    finally:
        os.umask(old)
    for rel in ("library.json", lib.info("shared").file, ".library.lock"):
        assert stat.S_IMODE((tmp_path / "lib" / rel).stat().st_mode) == mode, rel


def test_duplicates_by_name_case_and_content_are_reported_and_replace_exists(tmp_path, capsys):
    move = _bvh(tmp_path / "move.bvh")
    shutil.copy(move, tmp_path / "Move.bvh")
    lib = str(tmp_path / "lib")
    assert _cli(capsys, "library", "create", lib)[0] == 0
    assert _cli(capsys, "library", "add", lib, str(move), "--genre", "Modern")[0] == 0
    rc, _, err = _cli(capsys, "library", "add", lib, str(tmp_path / "Move.bvh"), "--genre", "Modern")
    assert rc == 2 and "a clip named 'Move' is already in the library ('move': names are compared ignoring case)" \
        in err and "--replace" in err
    rc, _, err = _cli(capsys, "library", "add", lib, str(move), "--name", "copy", "--genre", "Modern")
    assert rc == 2 and "'copy' has the same motion as 'move', already in the library (sha256 " in err
    rc, out, _ = _cli(capsys, "library", "add", lib, str(tmp_path / "Move.bvh"), "--genre", "Latin", "--replace")
    assert rc == 0 and "added Move: Latin/-" in out
    listed = json.loads(_cli(capsys, "library", "list", lib, "--json")[1])
    assert [(c["name"], c["genre"]) for c in listed] == [("Move", "Latin")]
    assert len(list(Path(lib, "clips").glob("*.npz"))) == 1          # the replaced clip's file is gone


# ----------------------------------------------------------------------------------------- audio and options

@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("songs")
    y = _song()
    out = {}
    for fmt in ("ogg", "wav", "flac", "mp3"):
        path = folder / f"song.{fmt}"
        try:
            soundfile.write(path, y, SR, format=fmt.upper())
        except (soundfile.LibsndfileError, TypeError, ValueError):
            continue                                  # libsndfile without MP3 support
        out[fmt] = path
    return out


@pytest.mark.parametrize("fmt, why", [("ogg", "last Ogg page is incomplete or lacks the end-of-stream mark"),
                                      ("wav", "header says 60.0 s"), ("flac", "header says 60.0 s"),
                                      ("mp3", "header says 60.0 s")])
def test_a_truncated_song_is_named_not_danced_to(songs, tmp_path, fmt, why):
    if fmt not in songs:
        pytest.skip(f"this libsndfile cannot write {fmt}")
    samples, sr = load_audio(songs[fmt])
    assert sr == SR and abs(samples.size / sr - 60.0) < 0.1
    cut = _cut(songs[fmt], tmp_path / f"cut.{fmt}")
    with pytest.raises(AudioFileError, match=rf"is cut short: .*{why}.*only \d+\.\d s decode.*get the complete file"):
        load_audio(cut)


@pytest.mark.parametrize("name, content, what", [
    ("notes.mp3", b"hello, this is not music\n" * 20, "a text file (it starts with 'hello, this is not music')"),
    ("dance.wav", None, "a BVH motion file"),
    ("page.ogg", b"<!DOCTYPE html><html><body>404</body></html>", "a web page or XML document"),
    ("photo.flac", b"\x89PNG\r\n\x1a\n" + bytes(200), "a PNG image"),
    ("noise.mp3", bytes(range(1, 255)) * 8, "not a recognised audio file (it starts with bytes 01 02 03"),
])
def test_non_audio_input_says_what_the_file_is(tmp_path, name, content, what):
    path = tmp_path / name
    if content is None:
        _bvh(path, frames=5)
    else:
        path.write_bytes(content)
    with pytest.raises(AudioFileError, match="cannot be decoded") as err:
        load_audio(path)
    assert what in str(err.value) and "WAV, FLAC, OGG or MP3" in str(err.value)
    assert "possibly a pipe" not in str(err.value) and "fallback" not in str(err.value)


@pytest.mark.parametrize("argv, message", [
    (["--start", "5", "--end", "3"], "--end 3 s is before --start 5 s: the end of the music span must come after"),
    (["--start", "4", "--end", "4"], "--end 4 s is at --start 4 s"),
    (["--start", "-1"], "--start -1 s: the start of the music span must be 0 s or later"),
    (["--temperature", "100"], "--temperature must be above 0 and at most 2 (default 0.8"),
    (["--temperature", "0"], "--temperature must be above 0 and at most 2"),
    (["--top-p", "1.5"], "--top-p must be above 0 and at most 1 (default 0.95), got 1.5"),
    (["--top-k", "0"], "--top-k must be a whole number >= 1"),
])
def test_generate_option_checks_say_what_is_wrong(tmp_path, capsys, argv, message):
    rc, out, err = _cli(capsys, "generate", "--music", str(tmp_path / "m.wav"), "--weights", str(tmp_path),
                        "--out", str(tmp_path / "o.bvh"), *argv)
    assert rc == 2 and err.strip() == f"error: {err.strip()[7:]}" and message in err, err
    assert not (tmp_path / "o.bvh").exists()


def test_info_on_a_one_frame_clip_speaks_the_users_words(tmp_path, capsys):
    one = _bvh(tmp_path / "pose.bvh", frames=1)
    rc, out, err = _cli(capsys, "info", str(one))
    assert rc == 0 and "FSR         n/a (the clip is a single pose of 1 frame: foot skating needs motion)" in out
    assert "foot_skating_ratio" not in out + err
    rc, out, _ = _cli(capsys, "info", str(one), "--json")
    assert rc == 0 and json.loads(out)["fsr"] is None and json.loads(out)["frames"] == 1


# ------------------------------------------------------------------------------------------------ downloads

class _Server(http.server.BaseHTTPRequestHandler):
    body = b""
    break_after = None

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body[: self.break_after])
        self.wfile.flush()
        self.connection.shutdown(2)


def test_offline_download_tells_the_truth_and_leaves_no_empty_folders(tmp_path):
    dest = tmp_path / "new" / "official"
    with pytest.raises(wf.FetchError, match="are you offline") as err:
        wf.download_official(dest, "AR/models/checkpoints/dance_vqvae.pth", base_url="http://127.0.0.1:9/x")
    assert ".part" not in str(err.value) and "nothing was written for this file" in str(err.value)
    assert list(tmp_path.iterdir()) == []                           # not even 'new/'
    # a broken download keeps its .part file (resumable) and says so, with its size
    _Server.body, _Server.break_after = os.urandom(300_000), 100_000
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Server)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with pytest.raises(wf.FetchError, match=r"100000 bytes are kept in .*dance_vqvae\.pth\.part"):
            wf.download_official(dest, "AR/models/checkpoints/dance_vqvae.pth",
                                 base_url=f"http://127.0.0.1:{httpd.server_address[1]}")
    finally:
        httpd.shutdown()
    part = dest / "AR/models/checkpoints/dance_vqvae.pth.part"
    assert part.stat().st_size == 100_000
    with pytest.raises(wf.FetchError) as err:
        wf.download_official(dest, "AR/models/checkpoints/dance_vqvae.pth", base_url="http://127.0.0.1:9/x")
    assert f"the partial file {part} (100000 bytes) is kept" in str(err.value)


def _sparse(path: Path, size: int, head: bytes = b"") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)
    return path


def test_from_dir_checks_sizes_and_structure_before_recording(tmp_path):
    hand, dest = tmp_path / "by_hand", tmp_path / "set"
    vqvae = "AR/models/checkpoints/dance_vqvae.pth"
    _sparse(hand / "dance_vqvae.pth", 58_600_000, b"PK\x03\x04")               # the first 10 % of 586 MB
    with pytest.raises(wf.FetchError, match=r"it is 58\.6 MB but the release's dance_vqvae\.pth is about 586 MB: it "
                                            r"looks cut short .*not copied or recorded"):
        wf.download_official(dest, vqvae, from_dir=hand)
    _sparse(hand / "dance_vqvae.pth", 586_000_000, b"PK\x03\x04")              # the right size, no zip directory
    with pytest.raises(wf.FetchError, match=r"not a complete \.pth archive"):
        wf.download_official(dest, vqvae, from_dir=hand)
    assert not dest.exists()                                                    # nothing copied, nothing recorded
    mean = hand / "Mean.npy"
    np.save(mean, np.zeros(264, np.float32))
    mean.write_bytes(mean.read_bytes()[:-100])
    with pytest.raises(wf.FetchError, match=r"holds 956 data bytes where its header promises 1056"):
        wf.download_official(dest, "DATA/dance/alldata_new_joint_vecs264/meta/Mean.npy", from_dir=hand)
    np.save(mean, np.zeros(264, np.float32))
    wf.download_official(dest, "DATA/dance/alldata_new_joint_vecs264/meta/Mean.npy", from_dir=hand)
    assert list(wf.read_manifest(dest)["files"]) == ["DATA/dance/alldata_new_joint_vecs264/meta/Mean.npy"]
    known = wf.ReleaseFile("x/args.json", "2 KB", "test", True, sha256=hashlib.sha256(b"{}").hexdigest())
    (hand / "args.json").write_text("{}")
    assert wf.check_release_file(hand / "args.json", known) == ""
    (hand / "args.json").write_text("{ }")
    assert wf.check_release_file(hand / "args.json", known).startswith("its sha256 ")


def test_verify_of_the_shipped_set_does_not_offer_a_download(tmp_path):
    shipped = REPO / "core_models" / "assets" / "compact"
    assert wf.verify(shipped) == []
    from core_models.runtime.files import remedy

    advice = remedy(shipped)
    assert "ships with the extension and is not downloadable: reinstall the Choreo extension" in advice
    assert "download" not in advice.replace("not downloadable", "")
    copy = tmp_path / "compact"
    shutil.copytree(shipped, copy, ignore=shutil.ignore_patterns("onnx", "*.safetensors"))
    (copy / "config.json").write_text((copy / "config.json").read_text() + " ")
    problems = wf.verify(copy)
    assert "sha256 mismatch: config.json (file changed or corrupted; this set was trained by Choreo and is not " \
           "downloadable" in problems[0] and all("download it again" not in p for p in problems)


# ---------------------------------------------------------------------------------------------------- fuzz

OUR_ERRORS = (BvhError, UnsupportedFormatError, RetargetError, AudioFileError, LibraryError, FileNotFoundError)


def _damage(data: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    kind = rng.choice(["truncate", "flip", "flip-head", "digit", "zero-run", "splice", "drop-line"])
    data = bytearray(data)
    n = len(data)
    if kind == "digit":                              # a digit for another: text formats stay well formed
        digits = [i for i in rng.integers(0, n, size=64) if 48 <= data[i] <= 57][:8]
        for i in digits:
            data[i] = 48 + int(rng.integers(0, 10))
        return kind, bytes(data)
    if kind == "truncate":
        return kind, bytes(data[: int(rng.integers(0, n))])
    if kind in ("flip", "flip-head"):
        span = min(n, 256) if kind == "flip-head" else n
        for i in rng.integers(0, span, size=int(rng.integers(1, 24))):
            data[i] = int(rng.integers(0, 256))
        return kind, bytes(data)
    if kind == "zero-run":
        a = int(rng.integers(0, n))
        data[a:a + int(rng.integers(1, 4096))] = bytes(min(n - a, 4096))
        return kind, bytes(data[:n])
    if kind == "splice":
        a, b = sorted(int(x) for x in rng.integers(0, n, size=2))
        return kind, bytes(data[:a] + data[b:] + data[a:b])
    lines = bytes(data).split(b"\n")
    del lines[int(rng.integers(0, len(lines)))]
    return kind, b"\n".join(lines)


_WRONG_SHAPES = [
    lambda d: [], lambda d: None, lambda d: "clips", lambda d: 42, lambda d: {**d, "clips": {}},
    lambda d: {**d, "clips": [1, 2]}, lambda d: {**d, "clips": d["clips"] + d["clips"][:1]},
    lambda d: {**d, "version": "1"}, lambda d: {**d, "version": 99}, lambda d: {**d, "format": "other"},
    lambda d: {**d, "clips": [{k: v for k, v in c.items() if k != "frames"} for c in d["clips"]]},
    lambda d: {**d, "clips": [{**c, "frames": -3} for c in d["clips"]]},
    lambda d: {**d, "clips": [{**c, "fps": "fast"} for c in d["clips"]]},
    lambda d: {**d, "clips": [{**c, "name": None} for c in d["clips"]]},
    lambda d: {**d, "clips": [{**c, "file": "../decoy.txt"} for c in d["clips"]]},
    lambda d: {**d, "clips": [{**c, "file": "../decoy.npz"} for c in d["clips"]]},
    lambda d: {**d, "clips": [{**c, "file": "clips/../../decoy.npz"} for c in d["clips"]]},
    lambda d: {**d, "clips": [{**c, "extra": 1} for c in d["clips"]]},
    lambda d: {**d, "clips": [{**c, "genre": "Polka"} for c in d["clips"]]},
]


def _fuzz_bvh(path: Path, original: bytes, rng) -> str:
    kind, data = _damage(original, rng)
    path.write_bytes(data)
    try:
        clip = load_body_clip(path)
    except OUR_ERRORS as exc:
        assert str(exc).strip(), kind
        return "refused"
    assert clip.joints.ndim == 3 and clip.joints.shape[1:] == (22, 3) and np.isfinite(clip.joints).all(), kind
    return "valid"


def _fuzz_audio(path: Path, original: bytes, rng) -> str:
    kind, data = _damage(original, rng)
    path.write_bytes(data)
    try:
        samples, sr = load_audio(path)
    except OUR_ERRORS as exc:
        assert str(exc).strip(), kind
        return "refused"
    assert not (kind == "truncate" and len(data) < 0.5 * len(original)), f"{path.suffix} cut to {len(data)} bytes"
    assert sr > 0 and samples.ndim == 1 and samples.size > 0 and np.isfinite(samples).all(), kind
    return "valid"


def _fuzz_library(lib_dir: Path, pristine: Path, names: set, rng, capsys) -> str:
    shutil.rmtree(lib_dir, ignore_errors=True)
    shutil.copytree(pristine, lib_dir)
    index = lib_dir / "library.json"
    original = index.read_bytes()
    if rng.random() < 0.5:
        damage = _WRONG_SHAPES[int(rng.integers(len(_WRONG_SHAPES)))](json.loads(original))
        index.write_text(json.dumps(damage))
    else:
        index.write_bytes(_damage(original, rng)[1])
    if rng.random() < 0.2:                                        # and a clip file torn as well
        clip = sorted((lib_dir / "clips").glob("*.npz"))[int(rng.integers(3))]
        clip.write_bytes(_damage(clip.read_bytes(), rng)[1])
    outcome = "refused"
    removed = set()
    try:
        lib = Library(lib_dir)
        [c.name for c in lib.clips()]
        outcome = "valid"
        victim = sorted(names)[int(rng.integers(len(names)))]
        if victim in lib:
            lib.remove(victim)
            removed.add(victim)
    except LibraryError as exc:
        assert "repair" in str(exc) or "newer Choreo" in str(exc) or "no clip named" in str(exc), str(exc)
    for action in ("list", "repair", "list"):                     # the CLI: an error message, never a traceback
        rc, _, err = _cli(capsys, "library", action, str(lib_dir))
        assert rc in (0, 2) and "Traceback" not in err
    repaired = Library(lib_dir)
    files = {p.name for p in (lib_dir / "clips").iterdir()}
    # never a clip lost: every clip is indexed again, or its damaged file is kept aside
    for name in names - removed:
        assert name in repaired or any(f.endswith((".damaged", ".duplicate")) for f in files), (name, files)
    return outcome


def test_fuzz_damaged_bvh_audio_and_library_indexes(guarded, tmp_path, capsys):
    """Seeded and bounded: 150 damaged BVH files, 180 damaged audio files (WAV, FLAC, Ogg), 90 damaged
    library indexes (bytes and wrong shapes); each gives a clear error of ours or a valid result, no file
    outside the library changes, no clip is lost."""
    lib_dir, check = guarded
    rng = np.random.default_rng(20240615)
    bvh_path = tmp_path / "fuzz.bvh"
    bvh = _bvh(tmp_path / "seed.bvh", frames=40).read_bytes()
    audio = []
    for fmt in ("wav", "flac", "ogg"):
        path = tmp_path / f"seed.{fmt}"
        soundfile.write(path, _song(2.0, seed=1), SR, format=fmt.upper())
        audio.append((fmt, path.read_bytes()))
    pristine = tmp_path / "pristine"
    lib = Library.create(pristine)
    for i in range(3):
        lib.add(f"clip {i}", "Popular", features=_features(10 + i))
    names = {c.name for c in lib.clips()}
    outcomes = {"bvh": {}, "audio": {}, "library": {}}
    t0 = time.perf_counter()
    for i in range(150):
        r = _fuzz_bvh(bvh_path, bvh, rng)
        outcomes["bvh"][r] = outcomes["bvh"].get(r, 0) + 1
    for i in range(180):
        fmt, data = audio[i % 3]
        r = _fuzz_audio(tmp_path / f"fuzz.{fmt}", data, rng)
        outcomes["audio"][r] = outcomes["audio"].get(r, 0) + 1
    for i in range(90):
        r = _fuzz_library(lib_dir, pristine, names, rng, capsys)
        outcomes["library"][r] = outcomes["library"].get(r, 0) + 1
        check()
    elapsed = time.perf_counter() - t0
    print(f"fuzz: 420 cases in {elapsed:.1f} s: {outcomes}")
    # both outcomes happen for every kind: the damage is real, and harmless damage still reads
    assert all(len(v) == 2 for v in outcomes.values()), outcomes


def test_a_weight_set_config_naming_files_outside_its_folder_is_refused(tmp_path):
    from core_models.weights import WeightSetError, load_weight_set

    shipped = Path(__file__).resolve().parents[2] / "core_models" / "assets" / "compact"
    copy = tmp_path / "sets" / "compact"
    shutil.copytree(shipped, copy)
    secret = tmp_path / "sets" / "secret.safetensors"
    shutil.copy(copy / "generator.safetensors", secret)
    config = json.loads((copy / "config.json").read_text())
    config["files"] = {"tokenizer": "tokenizer.safetensors", "generator": "../secret.safetensors",
                       "retrieval": "retrieval.safetensors", "stats": "stats.safetensors"}
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightSetError, match="generator file '../secret.safetensors', which is outside"):
        load_weight_set(copy, "cpu", verify=False)
    config["files"] = ["generator.safetensors"]
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightSetError, match="wrong shape"):
        load_weight_set(copy, "cpu", verify=False)


@pytest.mark.parametrize("bpm,halved", [(90, False), (128, False), (220, True), (240, True)])
def test_a_fast_song_tracked_at_half_tempo_gets_a_note(tmp_path, bpm, halved):
    from core_models.audio import synth_click_track
    from core_models.generation import generate

    music = tmp_path / "clicks.wav"
    soundfile.write(music, synth_click_track(bpm, 12.0), 22050)
    shipped = Path(__file__).resolve().parents[2] / "core_models" / "assets" / "compact"
    res = generate(str(music), "Latin", weights=shipped, references=None, seed=0)
    notes = [n for n in res.notes if "beat tracker found" in n]
    assert bool(notes) == halved, res.notes
    if halved:
        doubled = float(notes[0].split("probably ")[1].split(" bpm")[0])
        assert abs(doubled - bpm) / bpm < 0.05                          # names the song's real tempo
