# SPDX-License-Identifier: GPL-3.0-or-later
"""The reference library on disk: genre-tagged dance clips, their tokens and retrieval embeddings.

Layout of a library folder::

    library.json                  index: format, version, one entry per clip (name, genre, sub-genre, fps,
                                  frames, source, licence, file, sha256, added)
    clips/<name>.npz              264-d features (de-normalised, 30 fps) + the clip's metadata as JSON
    derived/<key>/<name>.npz      per weight set (key = hash of its tokenizer and RetrievalNet files):
                                  RVQ tokens (L, 3) and window embeddings (W, D) with their start frames

Adding a clip is atomic: the clip file is written under a temporary name and renamed into place, then the
index is replaced by a complete new copy (``os.replace``), so a reader sees the old index or the new one,
never half of one. Writers (add, remove, repair) hold an exclusive lock on ``.library.lock`` in the folder
(``fcntl.flock`` on Linux and macOS, ``msvcrt.locking`` on Windows) and re-read the index under it, so
concurrent adds from several processes never lose one another; the next writer removes temporary leftovers
of a killed one. Every path the library reads, writes or deletes is resolved and must stay inside the
folder (clip files inside ``clips/``); an index entry pointing elsewhere is refused, never followed. A
damaged index (torn JSON, wrong shape, entries missing fields) is reported with a pointer to ``repair``,
which rebuilds the index from the clip files' own metadata whatever the index holds, moving unreadable
files aside (never deleting a clip). Files are created with the modes the umask allows (as ``open`` would),
and a clip whose motion (sha256 of its features) is already in the library is refused, naming the clip.
Derived data is a cache: missing or stale entries are recomputed when a weight set first needs them.
"""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import re
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .features import FEATURE_DIM, joints_to_features
from .motion import MOTION_FPS
from .progress import ProgressFn, check_cancel, no_progress
from .references import (TOP_K, WINDOW, LibraryReferences, Match, ReferenceSourceError, compute_derived,
                         library_references, prepare_derived, retrieve_references)
from .safe_files import FileLock, LockTimeout, OutsideFolderError, atomic_write, inside, remove_leftovers

FORMAT = "choreo-library"
VERSION = 1

# The paper's genre taxonomy: 6 classes and their sub-genres (plus Swing, Lambada and Indian, which the
# shipped CMU dance takes hold).
TAXONOMY = {
    "Ballet": ("Ballet", "Contemporary Ballet", "Classical Ballet"),
    "Popular": ("K-pop", "HipHop", "Jazz", "Locking", "Popping", "Breaking", "House", "Krump", "Waacking",
                "Urban", "Street Jazz", "Disco", "Dance", "Swing"),
    "Latin": ("Chacha", "Rumba", "Samba", "Salsa", "Tango", "Paso Doble", "Jive", "Bachata", "Lambada"),
    "Modern": ("Modern", "Contemporary", "Lyrical", "Improvisation"),
    "Folk": ("Dai", "Mongol", "Dunhuang", "Miao", "Tibetan", "Korean", "Uyghur", "Yi", "Hmong", "Folk", "Indian"),
    "Classic": ("Chinese Classical", "Han Tang", "Shen Yun", "Kun", "Classical"),
}
GENRES = tuple(TAXONOMY)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.,()+-]{0,119}$")


class LibraryError(ReferenceSourceError):
    """A library problem; the message says what is wrong and what to do."""


def resolve_genre(genre: str, subgenre: str | None = None) -> tuple[str, str]:
    """Canonical (genre, sub-genre) spelling; unknown names are errors that list the known ones."""
    for g, subs in TAXONOMY.items():
        if str(genre).strip().lower() == g.lower():
            if not subgenre:
                return g, ""
            for s in subs:
                if str(subgenre).strip().lower() == s.lower():
                    return g, s
            raise LibraryError(f"unknown sub-genre '{subgenre}' for {g}; choose one of {', '.join(subs)}")
    raise LibraryError(f"unknown genre '{genre}'; choose one of {', '.join(GENRES)}")


@dataclass
class ClipInfo:
    name: str
    genre: str
    subgenre: str
    frames: int
    source: str
    licence: str
    file: str
    sha256: str
    added: str
    fps: float = MOTION_FPS
    content_sha256: str = ""

    @property
    def duration(self) -> float:
        return self.frames / self.fps


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_sha256(features: np.ndarray) -> str:
    """The motion's identity: sha256 of its float32 features (the same clip under any name or file)."""
    return hashlib.sha256(np.ascontiguousarray(features, dtype=np.float32).tobytes()).hexdigest()


def weight_set_key(ws) -> str:
    """Derived data depends on the tokenizer and RetrievalNet weights: key them by their recorded hashes."""
    from .runtime.files import FILES

    manifest = json.loads((Path(ws.path) / "manifest.json").read_text())["files"]
    parts = [manifest.get(FILES[k], {}).get("sha256", "") for k in ("tokenizer", "retrieval")]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


INDEX = "library.json"
LOCK = ".library.lock"
_TYPES = {"name": str, "genre": str, "subgenre": str, "frames": int, "source": str, "licence": str, "file": str,
          "sha256": str, "added": str}
_OPTIONAL = {"fps": (int, float), "content_sha256": str}
_STALE_TEMP_S = 600.0        # temporary files of derived-data writes (done without the lock) older than this


class Library:
    """A library folder. ``Library.create(path)`` makes a new one; ``Library(path)`` opens an existing one."""

    def __init__(self, path, _create: bool = False, read_only: bool = False):
        self.path = Path(path)
        self.read_only = bool(read_only)     # e.g. the starter library inside the extension: never written
        self.notes: list[str] = []
        self._clips: dict[str, ClipInfo] = {}
        self._features: dict[str, np.ndarray] = {}
        self._derived_memo: dict[tuple, dict] = {}
        if _create:
            return
        if not self.path.is_dir():
            raise LibraryError(f"library folder '{self.path}' does not exist; create it with "
                               "'python -m core_models library create DIR' or choose another folder")
        if not (self.path / INDEX).is_file():
            raise LibraryError(f"'{self.path}' has no {INDEX}, so it is not a Choreo library"
                               + (f"; if it was one, {self._repair_hint()}" if (self.path / "clips").is_dir() else ""))
        self._clips = self._read_index()
        missing = [n for n, c in self._clips.items() if not (self.path / c.file).is_file()]
        for name in missing:
            self.notes.append(f"clip '{name}' is listed but its file is missing; it is ignored")
            del self._clips[name]

    def _repair_hint(self) -> str:
        return f"run 'python -m core_models library repair {self.path}' (or Library > Repair in Blender) to rebuild " \
               "the index from the clip files"

    def _damaged(self, what: str) -> LibraryError:
        exc = LibraryError(f"{self.path / INDEX} is damaged: {what}. Nothing was changed; {self._repair_hint()}")
        exc.what = what
        return exc

    def _read_index(self) -> dict[str, ClipInfo]:
        """The index as it is on disk now, checked entry by entry (LibraryError naming the problem)."""
        index = self.path / INDEX
        try:
            raw = index.read_bytes()             # one read of a file that is only ever replaced whole
        except OSError as exc:
            raise LibraryError(f"cannot read {index} ({exc.strerror or exc})") from exc
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise self._damaged(f"it is not valid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise self._damaged(f"it holds a JSON {_json_kind(data)} where an object with \"format\" and "
                                "\"clips\" belongs")
        if data.get("format") != FORMAT:
            raise LibraryError(f"{index} is not a Choreo library index (format {data.get('format')!r}); "
                               f"{self._repair_hint()}")
        version = data.get("version", 0)
        if not isinstance(version, int):
            raise self._damaged(f"its version is {version!r}, not a whole number")
        if version > VERSION:
            raise LibraryError(f"{index} was written by a newer Choreo (version {version}); update Choreo")
        entries = data.get("clips", [])
        if not isinstance(entries, list):
            raise self._damaged(f"\"clips\" is a JSON {_json_kind(entries)}, not a list of clip entries")
        clips: dict[str, ClipInfo] = {}
        for k, entry in enumerate(entries):
            info = self._entry(k, entry)
            if info.name in clips:
                raise self._damaged(f"clip '{info.name}' is listed twice")
            clips[info.name] = info
        return clips

    def _entry(self, k: int, entry) -> ClipInfo:
        if not isinstance(entry, dict):
            raise self._damaged(f"clip entry {k + 1} is a JSON {_json_kind(entry)}, not an object")
        label = f"clip entry {k + 1}" + (f" ('{entry['name']}')" if isinstance(entry.get("name"), str) else "")
        missing = [f for f in _TYPES if f not in entry]
        if missing:
            raise self._damaged(f"{label} lacks {', '.join(missing)}")
        for field, kind in {**_TYPES, **_OPTIONAL}.items():
            value = entry.get(field, 0 if field == "fps" else "")
            if not isinstance(value, kind) or isinstance(value, bool):
                raise self._damaged(f"{label}: {field} is {value!r}, not a {getattr(kind, '__name__', 'number')}")
        fps = entry.get("fps", MOTION_FPS)
        if entry["frames"] < 1 or not np.isfinite(fps) or fps <= 0:
            raise self._damaged(f"{label}: frames {entry['frames']} / fps {fps} are not positive")
        try:
            self._clip_path(entry["file"])
        except LibraryError as exc:
            raise self._damaged(f"{label}: {exc}") from None
        known = {f: entry[f] for f in (*_TYPES, *_OPTIONAL) if f in entry}
        return ClipInfo(**known)

    def _clip_path(self, file: str) -> Path:
        """A clip file of the index, resolved; refused unless it is inside the library's clips/ folder."""
        try:
            return inside(self.path, file, "clips")
        except OutsideFolderError as exc:
            raise LibraryError(f"its file {exc}, so the library will not read, write or delete it") from None

    def _inside(self, relative) -> Path:
        try:
            return inside(self.path, relative)
        except OutsideFolderError as exc:
            raise LibraryError(f"refusing a path outside the library: {exc}; {self._repair_hint()}") from None

    # --------------------------------------------------------------------------------- creation

    @classmethod
    def create(cls, path, exist_ok: bool = False) -> "Library":
        path = Path(path)
        if (path / INDEX).is_file():
            if exist_ok:
                return cls(path)
            raise LibraryError(f"'{path}' already holds a library")
        try:
            (path / "clips").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LibraryError(f"cannot create the library folder '{path}' ({exc.strerror or exc})") from exc
        lib = cls(path, _create=True)
        with lib._writing():
            if not (path / INDEX).is_file():      # another process may have created it meanwhile
                lib._write_index()
            else:
                lib._clips = lib._read_index()
        return lib

    @contextlib.contextmanager
    def _writing(self):
        """The writer lock, with the temporary leftovers of interrupted writers removed under it (every
        index and clip write happens under the lock, so any such file now is a leftover)."""
        self._check_writable()
        try:
            lock = FileLock(self.path / LOCK)
            lock.__enter__()
        except LockTimeout as exc:
            raise LibraryError(f"{exc}: another Choreo is writing this library; try again when it is done") from exc
        except OSError as exc:
            raise LibraryError(f"cannot lock the library folder '{self.path}' ({exc.strerror or exc}); copy the "
                               "library somewhere writable or fix its permissions") from exc
        try:
            yield [f"removed leftover {p.relative_to(self.path)}" for p in self._clean_leftovers()]
        finally:
            lock.__exit__(None, None, None)

    def _clean_leftovers(self) -> list[Path]:
        removed = remove_leftovers(self.path) + remove_leftovers(self.path / "clips")
        for folder in (self.path / "derived").glob("*/"):
            removed += remove_leftovers(folder, older_than_s=_STALE_TEMP_S)
        return removed

    def _write_index(self) -> None:
        data = {"format": FORMAT, "version": VERSION,
                "clips": [asdict(c) for c in sorted(self._clips.values(), key=lambda c: c.name.lower())]}
        atomic_write(self.path / INDEX, lambda f: f.write(json.dumps(data, indent=1).encode()))

    def _check_writable(self) -> None:
        """Probe by creating a file (permission bits alone say nothing for root or read-only mounts)."""
        if self.read_only:
            raise LibraryError(f"the library '{self.path}' is read-only (the starter library that ships with "
                               "Choreo); add clips to your own library (Preferences > Reference library)")
        for folder in (self.path, self.path / "clips"):
            if not folder.exists():
                continue
            try:
                fd, tmp = tempfile.mkstemp(prefix=".probe.", dir=folder)
                os.close(fd)
                os.unlink(tmp)
            except OSError as exc:
                raise LibraryError(f"the library folder '{folder}' is read-only ({exc.strerror or exc}); copy the "
                                   "library somewhere writable or fix its permissions") from exc

    # ---------------------------------------------------------------------------------- queries

    def __len__(self) -> int:
        return len(self._clips)

    def describe(self) -> str:
        """Where references come from, for reports."""
        return f"the library {self.path} ({len(self)} clips)"

    def __contains__(self, name: str) -> bool:
        return name in self._clips

    def clips(self, genre: str | None = None, subgenre: str | None = None, text: str | None = None) -> list[ClipInfo]:
        """Clips sorted by name, optionally filtered by genre, sub-genre and a name substring."""
        out = list(self._clips.values())
        if genre:
            g, s = resolve_genre(genre, subgenre)
            out = [c for c in out if c.genre == g and (not s or c.subgenre == s)]
        if text:
            out = [c for c in out if text.lower() in c.name.lower()]
        return sorted(out, key=lambda c: c.name.lower())

    def info(self, name: str) -> ClipInfo:
        if name not in self._clips:
            raise LibraryError(f"no clip named '{name}' in {self.path}")
        return self._clips[name]

    def features(self, name: str) -> np.ndarray:
        """(T, 264) de-normalised features of a clip."""
        info = self.info(name)
        if name not in self._features:
            self._features[name] = self._load_features(info)
        return self._features[name]

    def _load_features(self, info: ClipInfo) -> np.ndarray:
        path = self._clip_path(info.file)
        try:
            with np.load(path, allow_pickle=False) as data:
                features = np.asarray(data["features"], dtype=np.float64)
        except Exception as exc:                 # torn zip, missing array, not an npz at all
            raise LibraryError(f"clip '{info.name}': its file {info.file} cannot be read ({type(exc).__name__}: "
                               f"{exc}); {self._repair_hint()} (damaged files are moved aside)") from exc
        if features.ndim != 2 or features.shape[1] != FEATURE_DIM or not np.isfinite(features).all():
            raise LibraryError(f"clip '{info.name}': {info.file} holds features of shape {features.shape} (or "
                               f"non-finite values), not (T, {FEATURE_DIM}); {self._repair_hint()}")
        return features

    def joints(self, name: str) -> np.ndarray:
        from .features import features_to_joints

        return features_to_joints(self.features(name))

    # ---------------------------------------------------------------------------------- editing

    def add(self, name: str, genre: str, subgenre: str | None = None, *, features: np.ndarray | None = None,
            joints: np.ndarray | None = None, path=None, source: str | None = None, licence: str = "unknown",
            replace: bool = False, storage: str = "float32", **load_kwargs) -> ClipInfo:
        """Add a clip from a motion file (``path``: BVH or SMPL-X .npz/.pkl), joints (T, 22, 3) at 30 fps or
        de-normalised features (T, 264). Atomic and safe against concurrent writers; a clip shorter than one
        window, a name already taken (names are compared ignoring case) and a motion already in the library
        under another name are refused. ``replace`` replaces the clip of that name. ``storage``: "float32" or
        "float16" (half the size on disk, about 1e-3 relative precision: enough for references)."""
        if storage not in ("float32", "float16"):
            raise LibraryError(f"storage must be float32 or float16, got {storage!r}")
        name = str(name).strip()
        if not _NAME.match(name):
            raise LibraryError(f"clip name '{name}' is not allowed: use letters, digits, spaces and _ . , ( ) + - "
                               "(at most 120 characters, starting with a letter or digit)")
        genre, subgenre = resolve_genre(genre, subgenre)
        if not replace:
            self._check_name_free(name)
        given = sum(x is not None for x in (features, joints, path))
        if given != 1:
            raise LibraryError("give exactly one of features, joints or path")
        if path is not None:
            from .io import load_body_clip

            clip = load_body_clip(path, **load_kwargs)
            joints = clip.joints
            source = source or str(path)
        if joints is not None:
            joints = np.asarray(joints, dtype=np.float64)
            if joints.ndim != 3 or joints.shape[1:] != (22, 3):
                raise LibraryError(f"joints must be (T, 22, 3) at 30 fps, got {joints.shape}")
            if joints.shape[0] < 2:
                raise LibraryError(f"clip '{name}' has {joints.shape[0]} frame(s); a reference needs at least "
                                   f"{WINDOW + 1}")
            features = joints_to_features(joints)
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != FEATURE_DIM:
            raise LibraryError(f"features must be (T, {FEATURE_DIM}), got {features.shape}")
        if not np.isfinite(features).all():
            raise LibraryError(f"clip '{name}' has NaN or infinite features")
        if features.shape[0] < WINDOW:
            raise LibraryError(f"clip '{name}' is {features.shape[0] / MOTION_FPS:.1f} s long; a reference must cover "
                               f"one window of {WINDOW / MOTION_FPS:.1f} s ({WINDOW} frames at 30 fps)")
        features = features.astype(storage).astype(np.float32) if storage != "float32" else features
        content = content_sha256(features)
        meta = {"name": name, "genre": genre, "subgenre": subgenre, "source": source or "array",
                "licence": licence, "fps": MOTION_FPS, "content_sha256": content}
        with self._writing():
            self._clips = self._read_index()          # what other writers added meanwhile counts
            replaced = [c for c in self._clips.values() if c.name.lower() == name.lower()]
            if replaced and not replace:
                self._check_name_free(name)
            self._check_not_duplicate(name, content)
            (self.path / "clips").mkdir(exist_ok=True)
            file = f"clips/{_file_stem(name)}.npz"
            target = self._clip_path(file)
            stored = features.astype(storage)
            atomic_write(target, lambda f: np.savez(f, features=stored, meta=np.array(json.dumps(meta))))
            info = ClipInfo(name=name, genre=genre, subgenre=subgenre, frames=int(features.shape[0]),
                            source=meta["source"], licence=licence, file=file, sha256=_sha256(target),
                            added=_now(), content_sha256=content)
            for old in replaced:
                del self._clips[old.name]
            self._clips[name] = info
            try:
                self._write_index()
            except BaseException:
                if not any(old.file == file for old in replaced):
                    target.unlink(missing_ok=True)
                self._clips = self._read_index()
                raise
            for old in replaced:                   # the index no longer lists them: their files can go
                if old.file != file:
                    self._unlink_clip_files(old)
        self._features.pop(name, None)
        return info

    def _check_name_free(self, name: str) -> None:
        for other in self._clips.values():
            if other.name.lower() == name.lower():
                same = "" if other.name == name else f" ('{other.name}': names are compared ignoring case)"
                raise LibraryError(f"a clip named '{name}' is already in the library{same}; choose another name, or "
                                   "replace it (python -m core_models library add ... --replace)")

    def _check_not_duplicate(self, name: str, content: str) -> None:
        for other in self._clips.values():
            if other.name.lower() == name.lower():
                continue
            if (other.content_sha256 or self._content_of(other)) == content:
                raise LibraryError(f"'{name}' has the same motion as '{other.name}', already in the library "
                                   f"(sha256 {content[:12]}... of the features); it was not added again. Remove "
                                   f"'{other.name}' first to keep it under the new name")

    def _content_of(self, info: ClipInfo) -> str:
        """Content hash of a clip indexed before content hashes were recorded ("" when unreadable)."""
        try:
            return content_sha256(self._load_features(info).astype(np.float32))
        except LibraryError:
            return ""

    def _unlink_clip_files(self, info: ClipInfo) -> None:
        self._clip_path(info.file).unlink(missing_ok=True)
        for derived in (self.path / "derived").glob(f"*/{_file_stem(info.name)}.npz"):
            self._inside(derived.relative_to(self.path)).unlink(missing_ok=True)

    def remove(self, name: str) -> None:
        self.info(name)
        with self._writing():
            self._clips = self._read_index()
            info = self.info(name)
            self._clip_path(info.file)                 # refused before anything changes
            del self._clips[name]
            self._write_index()                        # the index first: a crash leaves only an orphan file
            self._unlink_clip_files(info)
        self._features.pop(name, None)

    def repair(self) -> list[str]:
        """Rebuild the index from the clip files (their own metadata), whatever the index holds; drop
        temporary leftovers of a crash; move unreadable clip files aside (``.damaged``, never deleted);
        returns what was done."""
        with self._writing() as removed:
            done = list(removed)
            (self.path / "clips").mkdir(exist_ok=True)
            previous = self._previous_entries()
            try:
                self._read_index()
            except LibraryError as exc:
                done.append(f"rebuilt the index, which was damaged: {getattr(exc, 'what', exc)}")
            clips: dict[str, ClipInfo] = {}
            for file in sorted((self.path / "clips").glob("*.npz")):
                if file.is_symlink() or not file.is_file():      # a link could lead outside: never followed
                    done.append(f"ignored {file.name}: not a plain file (a link or a folder); it is left as it is")
                    continue
                problem, info = self._clip_from_file(file, previous)
                twin = next((c for c in clips.values() if info is not None and c.name.lower() == info.name.lower()),
                            None)
                if twin is not None:
                    problem = f"it holds the clip '{info.name}', which {twin.file} holds too"
                if problem:
                    aside = file.with_suffix(".duplicate" if "holds too" in problem else ".damaged")
                    file.rename(aside)
                    done.append(f"moved aside {file.name} as {aside.name}: {problem}")
                    continue
                clips[info.name] = info
            known = set(previous)
            done += [f"indexed {n}" for n in sorted(set(clips) - known)]
            done += [f"dropped missing {n}" for n in sorted(known - set(clips))]
            self._clips, self._features = clips, {}
            self._write_index()
        return done

    def _previous_entries(self) -> dict[str, dict]:
        """Whatever usable entries the current index holds (for their dates), however damaged it is."""
        try:
            data = json.loads((self.path / INDEX).read_bytes().decode("utf-8"))
            entries = data.get("clips", []) if isinstance(data, dict) else []
            return {e["name"]: e for e in entries if isinstance(e, dict) and isinstance(e.get("name"), str)}
        except (OSError, ValueError, AttributeError, TypeError):
            return {}

    def _clip_from_file(self, file: Path, previous: dict) -> tuple[str, ClipInfo | None]:
        try:
            with np.load(file, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                features = np.asarray(data["features"])
        except Exception as exc:            # unreadable: a damaged file is moved aside, never deleted
            return f"unreadable ({type(exc).__name__}: {exc})", None
        if not isinstance(meta, dict) or not all(isinstance(meta.get(k), str) for k in
                                                 ("name", "genre", "subgenre", "source", "licence")):
            return "its metadata lacks name, genre, sub-genre, source or licence", None
        if features.ndim != 2 or features.shape[1] != FEATURE_DIM or features.shape[0] < 1:
            return f"its features have shape {features.shape}, not (T, {FEATURE_DIM})", None
        if not _NAME.match(meta["name"]):
            return f"its clip name {meta['name']!r} is not allowed", None
        try:
            genre, subgenre = resolve_genre(meta["genre"], meta["subgenre"] or None)
        except LibraryError as exc:
            return str(exc), None
        added = previous.get(meta["name"], {}).get("added")
        return "", ClipInfo(name=meta["name"], genre=genre, subgenre=subgenre, frames=int(features.shape[0]),
                            source=meta["source"], licence=meta["licence"], file=f"clips/{file.name}",
                            sha256=_sha256(file), added=added if isinstance(added, str) else _now(),
                            content_sha256=content_sha256(features))

    @classmethod
    def repair_at(cls, path) -> tuple["Library", list[str]]:
        """Repair the library in ``path`` whatever its index holds (torn, of the wrong shape, missing);
        returns the repaired library and what was done."""
        path = Path(path)
        if not path.is_dir():
            raise LibraryError(f"library folder '{path}' does not exist")
        if not (path / INDEX).is_file() and not (path / "clips").is_dir():
            raise LibraryError(f"'{path}' has neither {INDEX} nor clips/, so it is not a Choreo library (nothing "
                               "to repair); create one with 'python -m core_models library create DIR'")
        lib = cls(path, _create=True)
        return lib, lib.repair()

    @classmethod
    def open_or_repair(cls, path) -> "Library":
        """Open the library; when its index is damaged or missing (but clips/ is there), repair it first."""
        try:
            return cls(path)
        except LibraryError:
            if not (Path(path) / "clips").is_dir():
                raise
            lib, lib.notes = cls.repair_at(path)
            return lib

    # --------------------------------------------------------------------------- derived data

    def _derived_path(self, ws, name: str) -> Path:
        return self._inside(Path("derived") / weight_set_key(ws) / f"{_file_stem(name)}.npz")

    def derived(self, ws, name: str, progress: ProgressFn | None = None) -> dict:
        """Tokens (L, Q), window starts (W,) and window embeddings (W, D) of a clip for weight set ``ws``
        (computed once and cached under derived/; a damaged cache file is computed again)."""
        path = self._derived_path(ws, name)
        info = self.info(name)
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as data:
                    if str(data["clip_sha256"]) == info.sha256:
                        return {k: data[k] for k in ("tokens", "starts", "embeddings")}
            except Exception:                  # a torn cache file: recompute and replace it
                self.notes.append(f"derived data of '{name}' was damaged; computed again")
        memo_key = (weight_set_key(ws), name, info.sha256)
        if self.read_only:                       # never written: computed once per process
            if memo_key not in self._derived_memo:
                self._derived_memo[memo_key] = compute_derived(ws, self.features(name))
            return self._derived_memo[memo_key]
        out = compute_derived(ws, self.features(name))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda f: np.savez(f, clip_sha256=np.array(info.sha256), **out))
        except OSError:
            self.notes.append("the library is read-only: derived data is computed but not cached")
        return out

    def prepare(self, ws, names: Sequence[str] | None = None, progress: ProgressFn | None = None,
                cancel: threading.Event | None = None) -> None:
        prepare_derived(self, ws, names, progress, cancel)

    # ------------------------------------------------------------------------------- retrieval

    def retrieve(self, ws, query: np.ndarray, genre: str | None = None, top_k: int = TOP_K,
                 names: Sequence[str] | None = None) -> list[list[Match]]:
        """:func:`core_models.references.retrieve_references` over this library."""
        return retrieve_references(self, ws, query, genre, top_k, names)

    def reference_provider(self, ws, genre: str, query: np.ndarray, top_k: int = TOP_K,
                           pinned: Sequence[str] | None = None) -> LibraryReferences:
        """What ``generation.generate`` asks for: references per window, retrieved from this library (among
        the clips of ``genre``, or among the ``pinned`` clips whatever their genre)."""
        return library_references(self, ws, genre, query, top_k, pinned)


def _json_kind(value) -> str:
    return {dict: "object", list: "list", str: "string", bool: "true/false", type(None): "null"}.get(
        type(value), "number")


def _file_stem(name: str) -> str:
    """A file name for a clip name (names may hold spaces and punctuation; the hash keeps them unique)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60]
    return f"{safe}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


# ----------------------------------------------------------------------------------- builders

def import_official(lib: Library, embeddings_npz, features_dir, style_map=None, tokens_dir=None, ws=None,
                    licence: str = "InfiniteDance Non-Commercial Research License",
                    progress: ProgressFn | None = None, cancel: threading.Event | None = None) -> dict:
    """Add the official corpus (``retrievalnet_motion_embeddings.npz`` + the released 264-d features) to a
    library. Genres come from ``all_style_map.json`` (clip -> genre) or a ``Genre-`` name prefix; with the
    official weight set ``ws`` the released embeddings and 3-layer prefix tokens become its derived data.
    Returns counts of added and skipped clips with reasons."""
    from .tokenizer import absolute_to_local

    progress = progress or no_progress
    with np.load(embeddings_npz, allow_pickle=False) as data:
        names = [str(n) for n in data["names"]]
        embeddings = np.asarray(data["embeddings"], np.float32)
    embeddings /= np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    styles = json.loads(Path(style_map).read_text()) if style_map else {}
    windows: dict[str, list[tuple[int, int]]] = {}
    for row, entry in enumerate(names):
        clip, _, span = entry.partition("@")
        start, _, _ = span.partition("_")
        windows.setdefault(clip, []).append((int(start), row))
    added, skipped = [], {}
    for i, (clip, rows) in enumerate(sorted(windows.items())):
        check_cancel(cancel)
        progress("import", i, len(windows))
        genre = styles.get(clip) or clip.split("-", 1)[0]
        if genre not in GENRES:
            skipped[clip] = f"genre '{genre}' is not one of the 6"
            continue
        feature_file = Path(features_dir) / f"{clip}.npy"
        if not feature_file.is_file():
            skipped[clip] = "no feature file"
            continue
        features = np.load(feature_file, allow_pickle=False)
        name = clip[:120]
        try:
            info = lib.add(name, genre, features=features, source=f"InfiniteDance release: {clip}", licence=licence,
                           replace=True)
        except LibraryError as exc:
            skipped[clip] = str(exc)
            continue
        added.append(name)
        if ws is not None and tokens_dir is not None and (Path(tokens_dir) / f"{clip}.npy").is_file():
            cfg = ws.generator.cfg
            tokens = absolute_to_local(np.load(Path(tokens_dir) / f"{clip}.npy").reshape(-1), cfg.nb_code,
                                       cfg.num_quantizers)
            rows = sorted(rows)
            derived = {"tokens": tokens.astype(np.int16), "starts": np.array([s for s, _ in rows], np.int64),
                       "embeddings": embeddings[[r for _, r in rows]]}
            path = lib._derived_path(ws, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda f: np.savez(f, clip_sha256=np.array(info.sha256), **derived))
    progress("import", len(windows), len(windows))
    return {"added": added, "skipped": skipped}
