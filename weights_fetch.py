# SPDX-License-Identifier: GPL-3.0-or-later
"""Choreo weights: list, download, verify and convert weight sets.

    python weights_fetch.py list
    python weights_fetch.py download official --dest DIR [--files inference] [--from-dir DIR] [--base-url URL]
    python weights_fetch.py verify DIR
    python weights_fetch.py convert official --src DIR --dest WEIGHT_SET_DIR [--bridge-heads N]

Standalone: importable by the add-on (it imports nothing from ``addon``) and runnable on its own. Downloads
are resumable (``<file>.part`` + HTTP Range), atomic (renamed into place only when complete) and recorded
with their sha256 in ``manifest.json``. The official files are under a non-commercial licence: the user
downloads them by choice; Choreo never redistributes them.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

try:                                      # inside the installed extension: a sibling of core_models
    from .core_models.runtime.files import (MANIFEST, OFFICIAL_REPO, find_release_file, read_manifest,
                                            record_file, sha256_file, verify, write_manifest)
except ImportError:                       # a checkout: run from the repository root
    from core_models.runtime.files import (MANIFEST, OFFICIAL_REPO, find_release_file, read_manifest,
                                           record_file, sha256_file, verify, write_manifest)

OFFICIAL_BASE_URL = f"https://huggingface.co/{OFFICIAL_REPO}/resolve/main"
OFFICIAL_LICENCE = "InfiniteDance Non-Commercial Research License (code, checkpoints, weights, data)"
CHUNK = 1 << 20


@dataclass(frozen=True)
class ReleaseFile:
    path: str          # path inside the release repository
    size_hint: str
    purpose: str
    needed_for_inference: bool
    remote: str | None = None     # full URL when the file lives outside the release repository
    sha256: str | None = None     # where the release publishes it (Hugging Face LFS oid); checked when set


MUQ_REPO = "OpenMuQ/MuQ-large-msd-iter"
MUQ_BASE_URL = f"https://huggingface.co/{MUQ_REPO}/resolve/main"


# The release's file map (reference infinitedance.md section 8); only what inference needs by default.
OFFICIAL_FILES = (
    ReleaseFile("AR/models/checkpoints/dance_vqvae.pth", "586 MB", "RVQ-VAE tokenizer (codebooks, decoders)", True),
    ReleaseFile("AR/models/checkpoints/args.json", "2 KB", "tokenizer hyper-parameters", True),
    ReleaseFile("AR/output/exp_m2d_infinitedance/best_model_stage2.pt", "2.15 GB", "ChoreoLLaMA (bf16)", True),
    ReleaseFile("AR/models/retrievalnet/retrievalnet_audio55_motion264.ckpt", "71 MB", "RetrievalNet", True),
    ReleaseFile("DATA/dance/alldata_new_joint_vecs264/meta/Mean.npy", "2 KB", "feature mean", True),
    ReleaseFile("DATA/dance/alldata_new_joint_vecs264/meta/Std.npy", "2 KB", "feature std", True),
    ReleaseFile("DATA/styles/all_style_map.json", "0.5 MB", "clip -> genre map", True),
    ReleaseFile("DATA/dance/retrievalnet_motion_embeddings.npz", "60 MB", "reference-library embeddings", True),
    ReleaseFile("Infinite_MotionTokens_512x1024_3layer_cleandata.tar.gz", "15 MB", "prefix tokens", True),
    ReleaseFile("AR/models/Llama3.2-1B/config.json", "1 KB", "LLaMA architecture", True),
    # MuQ music encoder (CC BY-NC 4.0), loaded by the muq package's from_pretrained from this folder.
    ReleaseFile("muq/config.json", "1 KB", "MuQ music encoder config", True, f"{MUQ_BASE_URL}/config.json"),
    ReleaseFile("muq/model.safetensors", "1.2 GB", "MuQ music encoder", True, f"{MUQ_BASE_URL}/model.safetensors"),
    ReleaseFile("alldata_new_joint_vecs264_ft_balanced.tar.gz", "8.7 GB", "RAG reference motions", False),
    ReleaseFile("DATA/dance/evaluation_features_train8235.npz", "4 MB", "FID/Div ground truth", False),
)


class FetchError(RuntimeError):
    """A download, verification or conversion problem; the message says what to do."""


def download_file(url: str, dest: Path, progress: Callable[[str, int, int], None] | None = None,
                  timeout: float = 30.0, expected_sha256: str | None = None) -> Path:
    """Download ``url`` to ``dest`` resumably and atomically; returns ``dest``.

    Bytes go to ``dest.part`` (resumed with an HTTP Range request when it exists); ``dest`` appears
    only once the download is complete (and matches ``expected_sha256`` when given).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:            # already complete
            response = None
        else:
            raise FetchError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        left = (f"the partial file {part} ({have} bytes) is kept, and a later run resumes it" if have else
                "nothing was written for this file")
        raise FetchError(f"cannot reach {url.split('/')[2] if '://' in url else url} ({exc}); are you offline? "
                         f"Download the files by hand and use --from-dir, or try again later; {left}") from exc
    if response is not None:
        with response:
            resumed = response.status == 206
            total = int(response.headers.get("Content-Length", "0") or 0) + (have if resumed else 0)
            mode = "ab" if resumed else "wb"
            done = have if resumed else 0
            try:
                with open(part, mode) as f:
                    while True:
                        block = response.read(CHUNK)
                        if not block:
                            break
                        f.write(block)
                        done += len(block)
                        if progress:
                            progress(dest.name, done, total)
            except (OSError, urllib.error.URLError) as exc:
                raise FetchError(f"{url}: the connection broke after {done} bytes ({exc}); {done} bytes are kept "
                                 f"in {part}: run the same command again to resume") from exc
            if total and done < total:
                raise FetchError(f"{url}: got {done} of {total} bytes; {done} bytes are kept in {part}: run the same "
                                 "command again to resume")
    if expected_sha256:
        actual = sha256_file(part)
        if actual != expected_sha256:
            part.unlink()
            raise FetchError(f"{dest.name}: sha256 {actual} does not match the expected {expected_sha256}; the "
                             "partial file was removed, download again")
    os.replace(part, dest)
    return dest


def _selected(files: str) -> list[ReleaseFile]:
    if files == "inference":
        return [f for f in OFFICIAL_FILES if f.needed_for_inference]
    if files == "all":
        return list(OFFICIAL_FILES)
    wanted = {p.strip() for p in files.split(",") if p.strip()}
    known = {f.path: f for f in OFFICIAL_FILES}
    unknown = sorted(wanted - set(known))
    if unknown:
        raise FetchError(f"unknown release file(s) {unknown}; see 'python weights_fetch.py list'")
    return [known[p] for p in sorted(wanted)]


def download_official(dest: Path, files: str = "inference", from_dir: Path | None = None,
                      base_url: str = OFFICIAL_BASE_URL, progress=None, online: bool = True) -> list[Path]:
    """Fetch (or copy from ``from_dir``) the official release files into ``dest``, recording sha256. A copied
    file is recorded only after it passes :func:`check_release_file` (its size against the release's, its
    structure, its sha256 where published); a download must match its Content-Length (and published sha256).
    On failure, folders this call created and left empty are removed again; what is kept (a resumable
    ``.part`` file) is named in the error."""
    dest = Path(dest)
    selected = _selected(files)
    created = _missing_parents(dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
        return _download_selected(dest, selected, from_dir, base_url, progress, online, created)
    except BaseException:
        _remove_empty(created)
        raise


def _missing_parents(path: Path) -> list[Path]:
    """``path`` and those of its parents that do not exist yet (deepest first)."""
    out = []
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        out.append(path)
        path = path.parent
    return out


def _remove_empty(folders: list[Path]) -> None:
    for folder in sorted(set(folders), key=lambda p: len(p.parts), reverse=True):
        try:
            folder.rmdir()                 # only when empty: a kept .part file keeps its folders
        except OSError:
            pass


def _download_selected(dest: Path, selected: list[ReleaseFile], from_dir, base_url, progress, online,
                       created: list[Path]) -> list[Path]:
    out = []
    for item in selected:
        target = dest / item.path
        if target.is_file() and item.path in read_manifest(dest).get("files", {}):
            out.append(target)
            continue
        if from_dir is not None:
            source = find_release_file(Path(from_dir), item.path)
            if source is None:
                raise FetchError(f"'{item.path}' is not in {from_dir} (looked for the release path and the bare "
                                 "file name); download it by hand or drop --from-dir")
            problem = check_release_file(source, item)
            if problem:
                raise FetchError(f"{source}: {problem}. It was not copied or recorded; fetch that file again (by "
                                 f"hand, or drop --from-dir to download it)")
            created += _missing_parents(target.parent)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".copying")
            try:
                shutil.copyfile(source, tmp)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
            record_file(dest, item.path, f"copied from {source}")
        else:
            if not online:
                raise FetchError("online access is disabled (Blender: Preferences > System > Network); enable it "
                                 "or download the files by hand and use --from-dir")
            url = item.remote if item.remote and base_url == OFFICIAL_BASE_URL else \
                f"{base_url.rstrip('/')}/{item.path}"
            created += _missing_parents(target.parent)
            download_file(url, target, progress, expected_sha256=item.sha256)   # complete: Content-Length
            record_file(dest, item.path, url)
        out.append(target)
    manifest = read_manifest(dest)
    manifest["licence"] = OFFICIAL_LICENCE
    manifest["repository"] = OFFICIAL_REPO
    write_manifest(dest, manifest)
    return out


_UNITS = {"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9}


def _hint_bytes(hint: str) -> float:
    number, unit = hint.split()
    return float(number) * _UNITS[unit.upper()]


def check_release_file(path: Path, item: ReleaseFile) -> str:
    """What is wrong with a file offered as release file ``item`` ("" when nothing): its sha256 where the
    release publishes one; its size against the release's (the published sizes are rounded, so a file of a
    megabyte or more is refused below half or above twice that); its structure where that is cheap to check
    (PyTorch .pt/.pth/.ckpt and .npz are zip archives whose directory sits at the end, a .npy header gives
    the exact size, JSON parses, gzip starts with its magic)."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        return "the file is empty (0 bytes)"
    if item.sha256:
        actual = sha256_file(path)
        if actual != item.sha256:
            return f"its sha256 {actual[:16]}... is not the release's {item.sha256[:16]}..."
        return ""
    expected = _hint_bytes(item.size_hint)
    if expected >= 1e6 and not 0.5 * expected <= size <= 2.0 * expected:
        return (f"it is {size / 1e6:.1f} MB but the release's {Path(item.path).name} is about {item.size_hint}"
                + (": it looks cut short (an interrupted download?)" if size < expected else ""))
    suffix = "".join(Path(item.path).suffixes[-2:]) if item.path.endswith(".tar.gz") else Path(item.path).suffix
    if suffix in (".pt", ".pth", ".ckpt", ".npz") and not zipfile.is_zipfile(path):
        return (f"it is not a complete {suffix} archive (a PyTorch checkpoint / npz is a zip file whose directory "
                "is at its end): it looks cut short or damaged")
    if suffix == ".npy":
        return _npy_problem(path, size)
    if suffix == ".json":
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            return f"it is not valid JSON ({exc}): cut short or damaged"
    if suffix in (".tar.gz", ".gz"):
        with open(path, "rb") as f:
            if f.read(2) != b"\x1f\x8b":
                return "it is not a gzip archive"
    return ""


def _npy_problem(path: Path, size: int) -> str:
    import ast

    try:
        with open(path, "rb") as f:
            head = f.read(10)
            if head[:6] != b"\x93NUMPY":
                return "it is not a .npy array"
            length = int.from_bytes(head[8:10], "little") if head[6] == 1 else int.from_bytes(
                head[8:10] + f.read(2), "little")
            header = ast.literal_eval(f.read(length).decode("latin1"))
            offset = f.tell()
        count = 1
        for n in header["shape"]:
            count *= int(n)
        itemsize = int(header["descr"][2:]) if header["descr"][1:2] in "fiuc" else 0
    except (ValueError, SyntaxError, KeyError, TypeError, IndexError) as exc:
        return f"its .npy header is damaged ({exc})"
    if itemsize and offset + count * itemsize != size:
        return f"it holds {size - offset} data bytes where its header promises {count * itemsize}: cut short or damaged"
    return ""


def _progress_printer(name: str, done: int, total: int, _last=[0.0]) -> None:
    now = time.monotonic()
    if now - _last[0] > 0.5 or (total and done >= total):
        _last[0] = now
        pct = f"{100 * done / total:5.1f} %" if total else f"{done / 1e6:.1f} MB"
        print(f"\r  {name}: {pct}", end="" if not total or done < total else "\n", file=sys.stderr, flush=True)


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="weights_fetch.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the official release files")
    p = sub.add_parser("download", help="download a weight family")
    p.add_argument("family", choices=["official"])
    p.add_argument("--dest", required=True, type=Path)
    p.add_argument("--files", default="inference", help="'inference' (default), 'all' or comma-separated paths")
    p.add_argument("--from-dir", type=Path, help="take files fetched by hand from this folder")
    p.add_argument("--base-url", default=OFFICIAL_BASE_URL, help="mirror of the release repository")
    p = sub.add_parser("verify", help="check every file of a folder against its manifest")
    p.add_argument("folder", type=Path)
    p = sub.add_parser("convert", help="official checkpoints -> a safetensors weight set")
    p.add_argument("family", choices=["official"])
    p.add_argument("--src", required=True, type=Path)
    p.add_argument("--dest", required=True, type=Path)
    p.add_argument("--bridge-heads", type=int, default=None, metavar="N",
                   help="music-bridge attention heads of the checkpoint (no tensor records them; default: the "
                        "release's 8)")
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        if args.command == "list":
            for f in OFFICIAL_FILES:
                mark = "inference" if f.needed_for_inference else "optional"
                print(f"{f.size_hint:>8}  {mark:9}  {f.path}  ({f.purpose})")
            print(f"licence: {OFFICIAL_LICENCE}")
        elif args.command == "download":
            paths = download_official(args.dest, args.files, args.from_dir, args.base_url, _progress_printer)
            print(f"{len(paths)} files in {args.dest} (sha256 recorded in {MANIFEST})")
        elif args.command == "verify":
            problems = verify(args.folder)
            for line in problems:
                print(line)
            if problems:
                return 1
            print(f"{args.folder}: every file matches {MANIFEST}")
        elif args.command == "convert":
            try:                                            # torch needed only here
                from .core_models.weights import convert_official     # inside the installed extension
            except ImportError:
                from core_models.weights import convert_official      # a checkout

            out = convert_official(args.src, args.dest, bridge_heads=args.bridge_heads)
            print(f"weight set written to {out}")
    except (FetchError, ValueError) as exc:      # ValueError: core_models.weights.WeightSetError on convert
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
