# SPDX-License-Identifier: GPL-3.0-or-later
"""The reference library on disk: genre-tagged dance clips, their tokens and retrieval embeddings.

Layout of a library folder::

    library.json                  index: format, version, one entry per clip (name, genre, sub-genre, fps,
                                  frames, source, licence, file, sha256, added)
    clips/<name>.npz              264-d features (de-normalised, 30 fps) + the clip's metadata as JSON
    derived/<key>/<name>.npz      per weight set (key = hash of its tokenizer and RetrievalNet files):
                                  RVQ tokens (L, 3) and window embeddings (W, D) with their start frames

Adding a clip is atomic: the clip file is written under a temporary name and renamed into place, then the
index is replaced by a complete new copy (``os.replace``). A crash leaves either the old library or the
new one; at worst an orphan clip file that the index does not list (ignored, removed by ``repair``).
Derived data is a cache: missing or stale entries are recomputed when a weight set first needs them.
"""
from __future__ import annotations

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
from .progress import ProgressFn, check_cancel, no_progress

FORMAT = "choreo-library"
VERSION = 1
WINDOW = 384          # frames per reference window (12.8 s at 30 fps), the RAG condition's length
STRIDE = 192
FPS = 30.0

# The paper's genre taxonomy: 6 classes and their sub-genres.
TAXONOMY = {
    "Ballet": ("Ballet", "Contemporary Ballet", "Classical Ballet"),
    "Popular": ("K-pop", "HipHop", "Jazz", "Locking", "Popping", "Breaking", "House", "Krump", "Waacking",
                "Urban", "Street Jazz", "Disco", "Dance"),
    "Latin": ("Chacha", "Rumba", "Samba", "Salsa", "Tango", "Paso Doble", "Jive", "Bachata"),
    "Modern": ("Modern", "Contemporary", "Lyrical", "Improvisation"),
    "Folk": ("Dai", "Mongol", "Dunhuang", "Miao", "Tibetan", "Korean", "Uyghur", "Yi", "Hmong", "Folk"),
    "Classic": ("Chinese Classical", "Han Tang", "Shen Yun", "Kun", "Classical"),
}
GENRES = tuple(TAXONOMY)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.,()+-]{0,119}$")


class LibraryError(ValueError):
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
    fps: float = FPS

    @property
    def duration(self) -> float:
        return self.frames / self.fps


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _atomic_bytes(path: Path, write) -> None:
    """Write through ``write(file_object)`` to a temporary sibling, fsync, rename over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weight_set_key(ws) -> str:
    """Derived data depends on the tokenizer and RetrievalNet weights: key them by their recorded hashes."""
    from .weights import FILES

    manifest = json.loads((Path(ws.path) / "manifest.json").read_text())["files"]
    parts = [manifest.get(FILES[k], {}).get("sha256", "") for k in ("tokenizer", "retrieval")]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


class Library:
    """A library folder. ``Library.create(path)`` makes a new one; ``Library(path)`` opens an existing one."""

    def __init__(self, path, _create: bool = False):
        self.path = Path(path)
        self.notes: list[str] = []
        if _create:
            return
        if not self.path.is_dir():
            raise LibraryError(f"library folder '{self.path}' does not exist; create it with "
                               "'python -m core_models library create DIR' or choose another folder")
        index = self.path / "library.json"
        if not index.is_file():
            raise LibraryError(f"'{self.path}' has no library.json, so it is not a Choreo library")
        try:
            data = json.loads(index.read_text())
        except json.JSONDecodeError as exc:
            raise LibraryError(f"{index} is damaged ({exc}); run 'python -m core_models library repair "
                               f"{self.path}' to rebuild it from the clip files") from exc
        if data.get("format") != FORMAT:
            raise LibraryError(f"{index} is not a Choreo library index (format {data.get('format')!r})")
        if data.get("version", 0) > VERSION:
            raise LibraryError(f"{index} was written by a newer Choreo (version {data['version']}); update Choreo")
        self._clips = {c["name"]: ClipInfo(**c) for c in data.get("clips", [])}
        missing = [n for n, c in self._clips.items() if not (self.path / c.file).is_file()]
        for name in missing:
            self.notes.append(f"clip '{name}' is listed but its file is missing; it is ignored")
            del self._clips[name]
        self._features: dict[str, np.ndarray] = {}

    # --------------------------------------------------------------------------------- creation

    @classmethod
    def create(cls, path, exist_ok: bool = False) -> "Library":
        path = Path(path)
        if (path / "library.json").is_file():
            if exist_ok:
                return cls(path)
            raise LibraryError(f"'{path}' already holds a library")
        try:
            (path / "clips").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LibraryError(f"cannot create the library folder '{path}' ({exc.strerror or exc})") from exc
        lib = cls(path, _create=True)
        lib._clips, lib._features = {}, {}
        lib._write_index()
        return lib

    def _write_index(self) -> None:
        data = {"format": FORMAT, "version": VERSION,
                "clips": [asdict(c) for c in sorted(self._clips.values(), key=lambda c: c.name.lower())]}
        self._check_writable()
        _atomic_bytes(self.path / "library.json", lambda f: f.write(json.dumps(data, indent=1).encode()))

    def _check_writable(self) -> None:
        """Probe by creating a file (permission bits alone say nothing for root or read-only mounts)."""
        for folder in (self.path, self.path / "clips"):
            if not folder.exists():
                continue
            try:
                fd, tmp = tempfile.mkstemp(prefix=".probe.", suffix=".tmp", dir=folder)
                os.close(fd)
                os.unlink(tmp)
            except OSError as exc:
                raise LibraryError(f"the library folder '{folder}' is read-only ({exc.strerror or exc}); copy the "
                                   "library somewhere writable or fix its permissions") from exc

    # ---------------------------------------------------------------------------------- queries

    def __len__(self) -> int:
        return len(self._clips)

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
            with np.load(self.path / info.file, allow_pickle=False) as data:
                self._features[name] = data["features"].astype(np.float64)
        return self._features[name]

    def joints(self, name: str) -> np.ndarray:
        from .features import features_to_joints

        return features_to_joints(self.features(name))

    # ---------------------------------------------------------------------------------- editing

    def add(self, name: str, genre: str, subgenre: str | None = None, *, features: np.ndarray | None = None,
            joints: np.ndarray | None = None, path=None, source: str | None = None, licence: str = "unknown",
            replace: bool = False, **load_kwargs) -> ClipInfo:
        """Add a clip from a motion file (``path``: BVH or SMPL-X .npz/.pkl), joints (T, 22, 3) at 30 fps or
        de-normalised features (T, 264). Atomic; a clip shorter than one window is refused."""
        name = str(name).strip()
        if not _NAME.match(name):
            raise LibraryError(f"clip name '{name}' is not allowed: use letters, digits, spaces and _ . , ( ) + - "
                               "(at most 120 characters, starting with a letter or digit)")
        genre, subgenre = resolve_genre(genre, subgenre)
        if name in self._clips and not replace:
            raise LibraryError(f"a clip named '{name}' is already in the library; choose another name or replace it")
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
            raise LibraryError(f"clip '{name}' is {features.shape[0] / FPS:.1f} s long; a reference must cover one "
                               f"window of {WINDOW / FPS:.1f} s ({WINDOW} frames at 30 fps)")
        self._check_writable()
        (self.path / "clips").mkdir(exist_ok=True)
        file = f"clips/{_file_stem(name)}.npz"
        meta = {"name": name, "genre": genre, "subgenre": subgenre, "source": source or "array",
                "licence": licence, "fps": FPS}
        _atomic_bytes(self.path / file, lambda f: np.savez(f, features=features, meta=np.array(json.dumps(meta))))
        info = ClipInfo(name=name, genre=genre, subgenre=subgenre, frames=int(features.shape[0]),
                        source=meta["source"], licence=licence, file=file, sha256=_sha256(self.path / file),
                        added=_now())
        previous = self._clips.get(name)
        self._clips[name] = info
        try:
            self._write_index()
        except BaseException:
            if previous is None:
                del self._clips[name]
                (self.path / file).unlink(missing_ok=True)
            else:
                self._clips[name] = previous
            raise
        self._features.pop(name, None)
        return info

    def remove(self, name: str) -> None:
        info = self.info(name)
        self._check_writable()
        del self._clips[name]
        self._write_index()                            # the index first: a crash leaves only an orphan file
        (self.path / info.file).unlink(missing_ok=True)
        for derived in (self.path / "derived").glob(f"*/{_file_stem(name)}.npz"):
            derived.unlink(missing_ok=True)
        self._features.pop(name, None)

    def repair(self) -> list[str]:
        """Rebuild the index from the clip files (their own metadata), drop temporary leftovers of a crash
        and orphan files; returns what was done."""
        self._check_writable()
        done = []
        for tmp in list(self.path.rglob(".*.tmp")):
            tmp.unlink(missing_ok=True)
            done.append(f"removed leftover {tmp.relative_to(self.path)}")
        clips = {}
        for file in sorted((self.path / "clips").glob("*.npz")):
            try:
                with np.load(file, allow_pickle=False) as data:
                    meta = json.loads(str(data["meta"]))
                    frames = int(data["features"].shape[0])
            except Exception as exc:            # unreadable: a damaged file is moved aside, never deleted
                file.rename(file.with_suffix(".damaged"))
                done.append(f"moved aside unreadable {file.name} ({exc})")
                continue
            info = self._clips.get(meta["name"]) if hasattr(self, "_clips") else None
            clips[meta["name"]] = ClipInfo(name=meta["name"], genre=meta["genre"], subgenre=meta["subgenre"],
                                           frames=frames, source=meta["source"], licence=meta["licence"],
                                           file=f"clips/{file.name}", sha256=_sha256(file),
                                           added=info.added if info else _now())
        known = set(getattr(self, "_clips", {}))
        done += [f"indexed {n}" for n in sorted(set(clips) - known)]
        done += [f"dropped missing {n}" for n in sorted(known - set(clips))]
        self._clips, self._features = clips, {}
        self._write_index()
        return done

    @classmethod
    def open_or_repair(cls, path) -> "Library":
        try:
            return cls(path)
        except LibraryError:
            if not (Path(path) / "clips").is_dir():
                raise
            lib = cls(path, _create=True)
            lib._clips, lib._features = {}, {}
            lib.repair()
            return lib

    # --------------------------------------------------------------------------- derived data

    def _derived_path(self, ws, name: str) -> Path:
        return self.path / "derived" / weight_set_key(ws) / f"{_file_stem(name)}.npz"

    def derived(self, ws, name: str, progress: ProgressFn | None = None) -> dict:
        """Tokens (L, Q), window starts (W,) and window embeddings (W, D) of a clip for weight set ``ws``
        (computed once and cached under derived/)."""
        path = self._derived_path(ws, name)
        info = self.info(name)
        if path.is_file():
            with np.load(path, allow_pickle=False) as data:
                if str(data["clip_sha256"]) == info.sha256:
                    return {k: data[k] for k in ("tokens", "starts", "embeddings")}
        out = compute_derived(ws, self.features(name))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _atomic_bytes(path, lambda f: np.savez(f, clip_sha256=np.array(info.sha256), **out))
        except OSError:
            self.notes.append("the library is read-only: derived data is computed but not cached")
        return out

    def prepare(self, ws, names: Sequence[str] | None = None, progress: ProgressFn | None = None,
                cancel: threading.Event | None = None) -> None:
        progress = progress or no_progress
        names = list(names) if names is not None else [c.name for c in self.clips()]
        for i, name in enumerate(names):
            check_cancel(cancel)
            progress("library", i, len(names))
            self.derived(ws, name)
        progress("library", len(names), len(names))

    # ------------------------------------------------------------------------------- retrieval

    def retrieve(self, ws, query: np.ndarray, genre: str | None = None, top_k: int = 10,
                 names: Sequence[str] | None = None) -> list[list["Match"]]:
        """For each 384-frame window of the music (stride 192) the ``top_k`` best reference windows of ``genre``
        (or of ``names``) by cosine similarity of RetrievalNet embeddings, best first. ``query``: the music's
        features for RetrievalNet (``pipeline.query_features``: 55-d official, rhythm compact) at 30 fps."""
        from .retrieval_search import top_k as cosine_top_k
        from .retrieval_search import windows

        if ws.retrieval is None:
            raise LibraryError(f"weight set '{ws.path}' has no RetrievalNet; automatic references need one "
                               "(pin references instead)")
        pool = self.clips(genre) if names is None else [self.info(n) for n in names]
        if not pool:
            raise LibraryError(f"the library has no {genre or ''} clips to retrieve from".replace("  ", " "))
        keys, embs = [], []
        for c in pool:
            d = self.derived(ws, c.name)
            keys += [(c.name, int(s)) for s in d["starts"]]
            embs.append(d["embeddings"])
        query = windows(np.asarray(query, np.float32), WINDOW, STRIDE)
        q = ws.encode_music(query)
        idx, scores = cosine_top_k(q, np.concatenate(embs), top_k)
        return [[Match(*keys[j], float(s)) for j, s in zip(row, srow)] for row, srow in zip(idx, scores)]

    def reference_provider(self, ws, genre: str, query: np.ndarray, top_k: int = 10,
                           pinned: Sequence[str] | None = None) -> "LibraryReferences":
        """What ``pipeline.generate`` asks for: references per window, retrieved from this library (among
        the clips of ``genre``, or among the ``pinned`` clips whatever their genre)."""
        return LibraryReferences(self, ws, self.retrieve(ws, query, None if pinned else genre, top_k, pinned))


@dataclass(frozen=True)
class Match:
    name: str
    start: int
    score: float


class LibraryReferences:
    """References per generation window from retrieval results (query window k covers 6.4 k s onwards)."""

    def __init__(self, library: Library, ws, matches: list[list[Match]]):
        from .pipeline import StaticReferences

        self.library, self.ws, self.matches = library, ws, matches
        self._cache: dict[int, StaticReferences] = {}

    def references(self, retrieval_index: int):
        from .pipeline import Reference

        row = self.matches[min(max(retrieval_index, 0), len(self.matches) - 1)]
        return [Reference(m.name, self.library.features(m.name), self.library.derived(self.ws, m.name)["tokens"],
                          genre=self.library.info(m.name).genre, score=m.score, start=m.start) for m in row]

    def for_window(self, retrieval_index: int):
        from .pipeline import StaticReferences, prefix_tokens

        if retrieval_index not in self._cache:
            cfg = self.ws.generator.cfg
            self._cache[retrieval_index] = StaticReferences(self.references(retrieval_index), self.ws.rag_mean,
                                                            self.ws.rag_std, cfg.cond_len, prefix_tokens(cfg.dance_len))
        return self._cache[retrieval_index].for_window(retrieval_index)


def compute_derived(ws, features: np.ndarray) -> dict:
    """RVQ tokens of the whole clip and RetrievalNet embeddings of its 384-frame windows (stride 192)."""
    fpl = ws.frames_per_latent
    usable = features.shape[0] // fpl * fpl
    norm = ((features[:usable] - ws.mean) / ws.std).astype(np.float32)
    tokens = ws.encode_tokens(norm)
    # Whole windows every STRIDE frames, plus one that ends with the clip so its end is reachable too.
    last = features.shape[0] - WINDOW
    starts = list(range(0, last + 1, STRIDE))
    if starts[-1] != last:
        starts.append(last)
    embeddings = np.zeros((len(starts), 0), np.float32)
    if ws.retrieval is not None:
        segs = np.stack([features[s:s + WINDOW] for s in starts]).astype(np.float32)
        if ws.config.get("retrieval_motion_input", "raw") == "normalised":
            segs = ((segs - ws.rag_mean) / ws.rag_std).astype(np.float32)
        embeddings = ws.encode_motion(segs)
    return {"tokens": tokens.astype(np.int16), "starts": np.asarray(starts, np.int64), "embeddings": embeddings}


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
            _atomic_bytes(path, lambda f: np.savez(f, clip_sha256=np.array(info.sha256), **derived))
    progress("import", len(windows), len(windows))
    return {"added": added, "skipped": skipped}


STARTER_SOURCES = {
    # corpus: (genre, sub-genre, licence, which files)
    "cmu": ("Latin", "Salsa", "CMU Graphics Lab Motion Capture Database terms (free for research and in products; "
            "do not resell the data). Data from mocap.cs.cmu.edu, created with funding from NSF EIA-0196217",
            lambda p: True),
    "bandai": ("Popular", "Dance", "CC BY-NC 4.0 (Bandai Namco Research Motion Dataset; Kobayashi et al. 2023)",
               lambda p: "_dance-" in p.name),
}


def build_starter(dest, max_seconds: float = 60.0, progress: ProgressFn | None = None,
                  cancel: threading.Event | None = None) -> dict:
    """The starter library from ../shared/data/mocap: CMU salsa (Latin/Salsa) and the Bandai Namco dance
    clips (Popular/Dance), each with its source and licence. Clips longer than ``max_seconds`` are cut."""
    from . import data
    from .io import load_body_clip

    progress = progress or no_progress
    lib = Library.create(dest, exist_ok=True)
    report = {"added": [], "skipped": {}}
    jobs = []
    for corpus, (genre, sub, licence, wanted) in STARTER_SOURCES.items():
        files = [p for p in data.mocap_files(corpus) if wanted(p)]
        if not files:
            report["skipped"][corpus] = "corpus not found (../shared/data/mocap or CHOREO_MOCAP_DIR)"
        jobs += [(corpus, genre, sub, licence, p) for p in files]
    for i, (corpus, genre, sub, licence, path) in enumerate(jobs):
        check_cancel(cancel)
        progress("starter library", i, len(jobs))
        joints = load_body_clip(path).joints[: int(max_seconds * FPS) + 1]
        name = f"{'CMU salsa' if corpus == 'cmu' else 'Bandai'} {path.stem.replace('_scaled', '')}"
        try:
            lib.add(name, genre, sub, joints=joints, source=f"{corpus}: {path.name}", licence=licence, replace=True)
            report["added"].append(name)
        except (LibraryError, ValueError) as exc:
            report["skipped"][name] = str(exc)
    progress("starter library", len(jobs), len(jobs))
    return report
