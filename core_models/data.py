# SPDX-License-Identifier: GPL-3.0-or-later
"""Locating the shared real data (mocap archives, music) used for training, evaluation and real-data tests.

The data never lives in the repository. By default it is ``../shared/data`` beside the checkout
(override with ``CHOREO_DATA_DIR``); mocap archives are extracted once into a cache folder
(``CHOREO_CACHE``, default ``~/.cache/choreo``), or taken as-is from ``CHOREO_MOCAP_DIR``.
"""
from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ARCHIVES = {"bandai": "bandai_namco_bvh.tar.xz", "cmu": "cmu_salsa_bvh.tar.xz", "cmu_dance": "cmu_dance_bvh.tar.xz"}
# The folder inside each archive that holds its BVH files.
ARCHIVE_FOLDERS = {"bandai": "dataset", "cmu": "cmu_salsa", "cmu_dance": "cmu_dance"}


def _shared_data_path() -> Path:
    return Path(os.environ.get("CHOREO_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))


def shared_data_dir() -> Path | None:
    path = _shared_data_path()
    return path if path.is_dir() else None


def cache_dir() -> Path:
    return Path(os.environ.get("CHOREO_CACHE", Path.home() / ".cache" / "choreo"))


def _extract_once(archive: Path, dest: Path) -> Path:
    """Extract ``archive`` into ``dest`` atomically (a crash leaves no half-extracted folder)."""
    if (dest / ".complete").exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".", dir=dest.parent))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        (tmp / ".complete").write_text(archive.name)
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def mocap_dir(corpus: str) -> Path | None:
    """Folder holding the BVH files of ``corpus`` ('bandai', 'cmu' or 'cmu_dance'), or None when absent."""
    if corpus not in ARCHIVES:
        raise ValueError(f"unknown corpus '{corpus}'; choose one of {sorted(ARCHIVES)}")
    override = os.environ.get("CHOREO_MOCAP_DIR")
    if override:
        root = Path(override)
    else:
        data = shared_data_dir()
        archive = data / "mocap" / ARCHIVES[corpus] if data else None
        if archive is None or not archive.is_file():
            return None
        root = _extract_once(archive, cache_dir() / "mocap" / corpus)
    sub = root / ARCHIVE_FOLDERS[corpus]
    return sub if sub.is_dir() else None


def _extract_members(archive: Path, members: list[str], dest: Path) -> bool:
    """Extract just ``members`` of ``archive`` into ``dest``; False when the archive lacks some of them."""
    want = set(members)
    if not want:
        return True
    with tarfile.open(archive, "r:xz") as tar:
        for m in tar:                                  # the wanted members come early: stop once found
            if m.name in want and m.isfile():
                tar.extract(m, dest, filter="data") if hasattr(tarfile, "data_filter") else tar.extract(m, dest)
                want.discard(m.name)
                if not want:
                    return True
    return False


def mocap_sample(corpus: str, relative_names: list[str], extract_to: Path) -> list[Path] | str:
    """A few named BVH files of ``corpus`` without extracting the whole archive (for tests).

    ``relative_names`` are relative to the archive's root (e.g. ``cmu_salsa/61_11_scaled.bvh``).
    They are looked up under ``CHOREO_MOCAP_DIR`` when it is set (and only there), else in a complete
    extraction made earlier by :func:`mocap_dir`, else just those members are extracted from the archive
    into ``extract_to``. Returns the paths, or a human-readable reason when the data is absent.
    """
    if corpus not in ARCHIVES:
        raise ValueError(f"unknown corpus '{corpus}'; choose one of {sorted(ARCHIVES)}")
    names = list(relative_names)

    def found(root: Path) -> list[Path] | None:
        paths = [root / n for n in names]
        return paths if all(p.is_file() for p in paths) else None

    override = os.environ.get("CHOREO_MOCAP_DIR")
    if override:
        paths = found(Path(override))
        return paths if paths is not None else f"{corpus} mocap files not found under CHOREO_MOCAP_DIR={override}"
    cached = cache_dir() / "mocap" / corpus
    if (cached / ".complete").exists() and (paths := found(cached)) is not None:
        return paths
    archive = _shared_data_path() / "mocap" / ARCHIVES[corpus]
    if not archive.is_file():
        return f"no {corpus} mocap data (set CHOREO_MOCAP_DIR or CHOREO_DATA_DIR, or provide {archive})"
    if (paths := found(Path(extract_to))) is not None:
        return paths
    if _extract_members(archive, names, Path(extract_to)):
        return [Path(extract_to) / n for n in names]
    return f"{archive} lacks {', '.join(names)}"


def mocap_files(corpus: str) -> list[Path]:
    folder = mocap_dir(corpus)
    return sorted(folder.rglob("*.bvh")) if folder else []


def music_files() -> list[Path]:
    data = shared_data_dir()
    return sorted((data / "music").glob("*.ogg")) if data else []
