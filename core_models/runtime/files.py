# SPDX-License-Identifier: GPL-3.0-or-later
"""The files of a weight-set folder, for every family: ``config.json``, ``manifest.json`` and atomic writes.

A weight set is a folder whose ``config.json`` names its family and whose ``manifest.json`` records the sha256
and size of every file. Two kinds share this layout:

    generator sets   family "official" or "compact", format :data:`FORMAT` (tokenizer, generator, stats...)
    FRDM sets        family "frdm" (the foot-fix denoiser and its statistics)

Everything that reads or writes such a folder (``weights``, ``weights_fetch.py``, the FRDM weight I/O, the
ONNX export and backend) goes through this module, so a config is read and checked in one place, and a folder
is never left half written. Nothing here imports torch, onnxruntime or a Choreo module other than
``safe_files``: this is the lowest layer of the runtime, importable from the standalone ``weights_fetch.py``.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

FORMAT = "choreo-weight-set"
FAMILIES = {
    # family: (generator music frontend, its feature size, its frames per second, retrieval query frontend)
    "official": ("muq", 1024, 25.0, "music55"),
    "compact": ("rhythm", 7, 30.0, "rhythm"),
}
FRDM_FAMILY = "frdm"
FILES = {"tokenizer": "tokenizer.safetensors", "generator": "generator.safetensors",
         "retrieval": "retrieval.safetensors", "stats": "stats.safetensors"}
MANIFEST = "manifest.json"
OFFICIAL_REPO = "huuuuuuuuu/InfiniteDance"     # the release repository a downloaded folder's manifest records
SHIPPED_ASSETS = Path(__file__).resolve().parents[1] / "assets"
_CHUNK = 1 << 20


class WeightSetError(ValueError):
    """A weight set or checkpoint that cannot be used; the message says what is wrong and what to do."""


# --------------------------------------------------------------------------------------------- config

def read_config(folder, kind: str = "generator", error: type[Exception] = WeightSetError) -> dict:
    """A weight-set folder's ``config.json``, checked for ``kind``: "generator" (family "official" or
    "compact" in the Choreo format), "frdm" (foot-fix weights) or "any" (either). ``error`` is the exception
    raised, so each caller reports in its own terms (the foot fix raises its ``FootFixError``)."""
    if kind not in ("generator", FRDM_FAMILY, "any"):
        raise ValueError(f"unknown weight-set kind '{kind}'; use 'generator', '{FRDM_FAMILY}' or 'any'")
    folder = Path(folder)
    path = folder / "config.json"
    if kind == "any":
        family = re.search(r'"family"\s*:\s*"([^"]*)"', path.read_text(errors="replace")) if path.is_file() else None
        kind = FRDM_FAMILY if family and family.group(1) == FRDM_FAMILY else "generator"
    if kind == FRDM_FAMILY:
        if not path.is_file():
            raise error(f"'{folder}' is not an FRDM weight set (no config.json); train one with "
                        "python -m core_models.train.frdm, or use method='ik_lock'")
    else:
        if not folder.is_dir():
            raise error(f"weight-set folder '{folder}' does not exist; set the weight set in the preferences "
                        "or pass --weights")
        if not path.is_file():
            raise error(f"'{folder}' has no config.json, so it is not a weight set. Official checkpoints must "
                        "be converted first: python weights_fetch.py convert official --src ... --dest ...")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise error(f"{path} is not valid JSON ({exc}); convert or download the weight set again") from exc
    if not isinstance(config, dict):
        raise error(f"{path} is not a weight-set config (a JSON object is expected); get the weight set again")
    family = config.get("family")
    if kind == FRDM_FAMILY:
        if family != FRDM_FAMILY:
            raise error(f"'{folder}' holds a '{family}' weight set, not FRDM foot-fix weights")
    elif config.get("format") != FORMAT or family not in FAMILIES:
        raise error(f"{path} is not a Choreo weight-set config (format {config.get('format')!r}, family "
                    f"{family!r}; known families: {', '.join(FAMILIES)})")
    return config


def weight_files(folder, config: dict, default: dict | None = None) -> dict:
    """The set's file names (config "files", else ``default``, else the generator's :data:`FILES`), each
    confined to the folder: a config that points outside it (``../x.safetensors``, an absolute path, a link
    out) is refused, never read."""
    from ..safe_files import OutsideFolderError, inside

    files = config.get("files", FILES if default is None else default)
    if not isinstance(files, dict):
        raise WeightSetError(f"config.json of '{folder}' has \"files\" of the wrong shape (an object of names is "
                             "expected); its config is damaged: download or convert the set again")
    for key, name in files.items():
        try:
            inside(folder, str(name))
        except OutsideFolderError as exc:
            raise WeightSetError(f"config.json of '{folder}' names its {key} file {name!r}, which is outside the "
                                 f"weight-set folder ({exc}); it is refused. Download or convert the set again") from exc
    return files


# ------------------------------------------------------------------------------------------- manifest

def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(folder: Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return {"files": {}}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise WeightSetError(f"{path} is not valid JSON ({exc}); delete it and run 'verify --rehash'") from exc


def write_manifest(folder: Path, manifest: dict) -> None:
    """Atomic: written next to the target and renamed over it."""
    folder = Path(folder)
    fd, tmp = tempfile.mkstemp(prefix=".manifest.", dir=folder)
    with os.fdopen(fd, "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
    os.replace(tmp, folder / MANIFEST)


def manifest_path(folder: Path, relative) -> Path:
    """A file a manifest lists, resolved; WeightSetError unless it lies inside ``folder`` (a manifest entry
    such as '../x' or an absolute path is never read or written)."""
    base = Path(folder).resolve()
    target = (base / str(relative)).resolve()
    if not str(relative) or base not in target.parents:
        raise WeightSetError(f"{Path(folder) / MANIFEST} lists '{relative}', which is outside {base}; refusing to "
                             "read it. The manifest is damaged or was tampered with: get the weight set again")
    return target


def record_file(folder: Path, relative: str, source: str) -> str:
    """Hash ``folder / relative`` into the manifest (with its size and where it came from); its sha256."""
    folder = Path(folder)
    manifest_path(folder, relative)
    digest = sha256_file(folder / relative)
    manifest = read_manifest(folder)
    manifest.setdefault("files", {})[relative] = {"sha256": digest, "size": (folder / relative).stat().st_size,
                                                  "source": source}
    write_manifest(folder, manifest)
    return digest


def record_files(folder: Path, names: Iterable[str], source: str, licence: str) -> None:
    """The manifest of a folder just written: every one of ``names`` hashed, and the set's licence."""
    for name in names:
        record_file(folder, name, source)
    manifest = read_manifest(folder)
    manifest["licence"] = licence
    write_manifest(folder, manifest)


def remedy(folder: Path) -> str:
    """How this folder's files are got again: downloaded official files, a converted set, a set that ships
    with the extension, or another set (trained or exported here)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    try:                             # the family, even from a damaged config.json
        found = re.search(r'"family"\s*:\s*"([^"]*)"', (folder / "config.json").read_text(errors="replace"))
        family = found.group(1) if found else ""
    except OSError:
        family = ""
    if manifest.get("repository") == OFFICIAL_REPO:
        return f"download it again: python weights_fetch.py download official --dest {folder}"
    if family == "official":
        return "convert it again: python weights_fetch.py convert official --src DOWNLOADS --dest " + str(folder)
    if SHIPPED_ASSETS in folder.resolve().parents:
        return ("this weight set ships with the extension and is not downloadable: reinstall the Choreo extension "
                "(in a checkout: git checkout -- the file)")
    if family in ("compact", FRDM_FAMILY):
        return ("this set was trained by Choreo and is not downloadable: copy it again from where it was trained or "
                "exported (the shipped compact and FRDM sets come back by reinstalling the extension)")
    return "restore it from where the set came from (train or export it again)"


def verify(folder: Path) -> list[str]:
    """Problems found (empty when every file of the manifest exists with its recorded sha256)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if not isinstance(manifest.get("files"), dict) or not manifest["files"]:
        return [f"{folder} has no {MANIFEST} (or it lists no files)"]
    problems = []
    fix = None
    for relative, info in sorted(manifest["files"].items()):
        try:
            path = manifest_path(folder, relative)
        except WeightSetError as exc:
            problems.append(f"outside the folder: {relative} ({exc})")
            continue
        if not isinstance(info, dict) or not isinstance(info.get("sha256"), str):
            problems.append(f"no sha256 recorded: {relative} (the manifest is damaged)")
        elif not path.is_file():
            fix = fix or remedy(folder)
            problems.append(f"missing: {relative} ({fix})")
        elif sha256_file(path) != info["sha256"]:
            fix = fix or remedy(folder)
            problems.append(f"sha256 mismatch: {relative} (file changed or corrupted; {fix})")
    return problems


def verify_weights(folder) -> list[str]:
    """Manifest problems of the files the torch backend reads: the ONNX export (under ``onnx/``) is checked
    by the ONNX backend when it loads it, so a damaged export never stops torch from running the set."""
    return [p for p in verify(folder) if ": onnx/" not in p]


def find_release_file(folder: Path, release_path: str) -> Path | None:
    """The release file in ``folder``: at its release path, else a file of the same name under the same
    parent folder name, else the only file of that name (never a guess among several, and never a bare
    'config.json', which several components have)."""
    direct = folder / release_path
    if direct.is_file():
        return direct
    rel = Path(release_path)
    hits = sorted(folder.rglob(rel.name))
    same_parent = [h for h in hits if h.parent.name == rel.parent.name]
    if same_parent:
        return same_parent[0]
    if len(hits) == 1 and rel.name != "config.json":
        return hits[0]
    return None



# ------------------------------------------------------------------------------------- atomic folders

@contextmanager
def atomic_folder(dest) -> Iterator[Path]:
    """Write a folder all or nothing: yields a temporary sibling of ``dest`` that replaces it only when the
    block finishes; an exception (or a crash) leaves the old folder, or none, never half of one."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        yield tmp
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
