# SPDX-License-Identifier: GPL-3.0-or-later
"""weights_fetch.py against a real HTTP server on the loopback interface (no outside network)."""
import hashlib
import http.server
import os
import threading
from pathlib import Path

import pytest

import weights_fetch as wf

PAYLOAD = os.urandom(3 * wf.CHUNK + 12345)


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict = {}
    break_after: int | None = None
    ranges: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        data = self.files.get(self.path.split("/resolve/main/")[-1].lstrip("/"))
        if data is None:
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        type(self).ranges.append(rng)
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.break_after is not None:
            self.wfile.write(body[: self.break_after])
            self.wfile.flush()
            self.connection.shutdown(2)          # the connection drops mid-transfer
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    _Handler.files = {"AR/models/checkpoints/args.json": b'{"nb_code": 512}',
                      "AR/models/checkpoints/dance_vqvae.pth": PAYLOAD}
    _Handler.break_after = None
    _Handler.ranges = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/{wf.OFFICIAL_REPO}/resolve/main"
    httpd.shutdown()


FILES = "AR/models/checkpoints/args.json,AR/models/checkpoints/dance_vqvae.pth"


def test_download_records_sha256_and_verifies(tmp_path, server):
    paths = wf.download_official(tmp_path, FILES, base_url=server)
    assert [p.read_bytes() for p in paths] == [b'{"nb_code": 512}', PAYLOAD]
    manifest = wf.read_manifest(tmp_path)
    assert manifest["files"]["AR/models/checkpoints/dance_vqvae.pth"]["sha256"] == hashlib.sha256(PAYLOAD).hexdigest()
    assert "Non-Commercial" in manifest["licence"]
    assert wf.verify(tmp_path) == []
    (tmp_path / "AR/models/checkpoints/args.json").write_text("tampered")
    assert wf.verify(tmp_path) == ["sha256 mismatch: AR/models/checkpoints/args.json (file changed or corrupted; "
                                   f"download it again: python weights_fetch.py download official --dest {tmp_path})"]


def test_broken_connection_leaves_only_a_part_file_and_resumes(tmp_path, server):
    _Handler.break_after = wf.CHUNK + 10
    target = tmp_path / "AR/models/checkpoints/dance_vqvae.pth"
    with pytest.raises(wf.FetchError, match="run the same command again to resume"):
        wf.download_official(tmp_path, "AR/models/checkpoints/dance_vqvae.pth", base_url=server)
    assert not target.exists()
    part = target.with_name(target.name + ".part")
    assert part.stat().st_size == wf.CHUNK + 10
    _Handler.break_after = None
    wf.download_official(tmp_path, "AR/models/checkpoints/dance_vqvae.pth", base_url=server)
    assert target.read_bytes() == PAYLOAD and not part.exists()
    assert _Handler.ranges[-1] == f"bytes={wf.CHUNK + 10}-"          # resumed, not restarted


def test_offline_gives_a_clear_error_and_writes_nothing(tmp_path):
    with pytest.raises(wf.FetchError, match="are you offline"):
        wf.download_official(tmp_path, FILES, base_url="http://127.0.0.1:9/x")
    assert not (tmp_path / "AR/models/checkpoints/args.json").exists()
    with pytest.raises(wf.FetchError, match="online access is disabled"):
        wf.download_official(tmp_path, FILES, online=False)


def test_sha_mismatch_removes_the_partial_download(tmp_path, server):
    with pytest.raises(wf.FetchError, match="does not match"):
        wf.download_file(f"{server}/AR/models/checkpoints/args.json", tmp_path / "args.json",
                         expected_sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_from_dir_and_unknown_files(tmp_path):
    hand = tmp_path / "by_hand"
    hand.mkdir()
    (hand / "args.json").write_text("{}")
    dest = tmp_path / "set"
    paths = wf.download_official(dest, "AR/models/checkpoints/args.json", from_dir=hand)
    assert paths[0].read_text() == "{}" and wf.verify(dest) == []
    with pytest.raises(wf.FetchError, match="is not in"):
        wf.download_official(dest, "AR/models/checkpoints/dance_vqvae.pth", from_dir=hand)
    with pytest.raises(wf.FetchError, match="unknown release file"):
        wf.download_official(dest, "nope.bin", from_dir=hand)


def test_cli_list_and_verify(tmp_path, capsys):
    assert wf.main(["list"]) == 0
    assert "best_model_stage2.pt" in capsys.readouterr().out
    assert wf.main(["verify", str(tmp_path)]) == 1
