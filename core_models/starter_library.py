# SPDX-License-Identifier: GPL-3.0-or-later
"""The starter library that ships inside the extension, and the libraries Generate sees.

``core_models/assets/library`` is a read-only reference library of CMU motion-capture dance (Indian dance,
breakdance, modern dance, charleston / lindy hop, lambada, salsa, Michael-Jackson-styled moves, chicken
dance, twist), stored as the library's own clip files (264-d features in float16) with each clip's source,
genre and licence, plus the derived data (tokens, RetrievalNet embeddings) of the shipped compact weight
set. The CMU terms allow the data inside products (not resold on its own): "The data used in this project
was obtained from mocap.cs.cmu.edu. The database was created with funding from NSF EIA-0196217."
No Bandai Namco clip ships (their licence is non-commercial), nor any take the evaluation holds out.

:func:`build_starter` makes it from ``../shared/data/mocap`` (``python -m core_models library starter DIR``);
:func:`open_libraries` gives the user's own library (if any) and the shipped one as one read-only
:class:`LibraryStack` for retrieval and browsing; adding and removing clips go to the user's library.
"""
from __future__ import annotations

import re
import threading
from pathlib import Path

import numpy as np

from .features import joints_to_features
from .library import Library, LibraryError
from .motion import MOTION_FPS
from .progress import ProgressFn, check_cancel, no_progress
from .references import TOP_K, WINDOW, library_references, prepare_derived, retrieve_references

SHIPPED_LIBRARY_DIR = Path(__file__).resolve().parent / "assets" / "library"
CMU_LICENCE = ("CMU Graphics Lab Motion Capture Database terms: free for research and inside products, the data "
               "itself may not be resold. The data used in this project was obtained from mocap.cs.cmu.edu. The "
               "database was created with funding from NSF EIA-0196217")
# clips.tsv suggestions -> sub-genres of the library's taxonomy
SUBGENRES = {"Popular-Mix": "Dance", "Breaking": "Breaking", "Swing": "Swing", "Indian": "Indian",
             "Lambada": "Lambada", "Salsa": "Salsa", "Modern": "Modern"}
MAX_CLIP_SECONDS = 40.0


def _takes(corpus: str) -> list[tuple[str, str, str, Path]]:
    """(take id, genre, sub-genre, file) of the shippable dance takes of a corpus (held-out takes left out)."""
    from . import data
    from .train.compact_data import cmu_dance_genres, dance_label, part_of, take_of

    tsv = cmu_dance_genres()
    out = []
    for path in data.mocap_files(corpus):
        label = dance_label(corpus, path, tsv)
        name = f"{corpus}/{path.name}"
        if label is None or part_of(name, "dance") == "test":
            continue
        out.append((take_of(name).split("/")[1], label[0], SUBGENRES.get(label[1], label[1]), path))
    return out


def _group(takes: list[tuple[str, str, str, Path]]) -> list[list[tuple[str, str, str, Path]]]:
    """Takes of one subject and sub-genre, in take order, joined into clips of at least one reference
    window (a short remainder joins the last clip of its subject and sub-genre)."""
    from .io import load_body_clip

    by_key: dict[tuple, list] = {}
    for take in sorted(takes, key=lambda t: [int(x) for x in re.findall(r"\d+", t[0])]):
        by_key.setdefault((take[0].split("_")[0], take[2]), []).append(take)
    clips = []
    for group in by_key.values():
        chunks, current, frames = [], [], 0
        for take in group:
            current.append(take)
            frames += load_body_clip(take[3]).joints.shape[0] - 1
            if frames >= WINDOW + 6:
                chunks.append(current)
                current, frames = [], 0
        if current:
            if chunks:
                chunks[-1].extend(current)
            else:
                chunks.append(current)             # too short on its own: build_starter reports it
        clips += chunks
    return clips


def build_starter(dest, weights=None, corpora=("cmu_dance", "cmu"), max_seconds: float = MAX_CLIP_SECONDS,
                  progress: ProgressFn | None = None, cancel: threading.Event | None = None) -> dict:
    """The starter library in ``dest`` from the shared CMU dance mocap: takes of a subject and sub-genre
    joined into clips of at least one reference window (12.8 s), at most ``max_seconds``, float16 features,
    source and CMU credit on each clip; with ``weights`` (a weight-set folder) its derived data too."""
    from .io import load_body_clip

    progress = progress or no_progress
    lib = Library.create(dest, exist_ok=True)
    report = {"added": [], "skipped": {}}
    jobs = []
    for corpus in corpora:
        takes = _takes(corpus)
        if not takes:
            report["skipped"][corpus] = "corpus not found (../shared/data/mocap or CHOREO_MOCAP_DIR)"
            continue
        if corpus == "cmu":                      # the salsa couples: the leaders (subject 60) are enough
            takes = [t for t in takes if t[0].startswith("60_")]
        jobs += [(corpus, group) for group in _group(takes)]
    for i, (corpus, group) in enumerate(jobs):
        check_cancel(cancel)
        progress("starter library", i, len(jobs))
        feats = np.concatenate([joints_to_features(load_body_clip(t[3]).joints) for t in group])
        feats = feats[:int(max_seconds * MOTION_FPS)]
        first, last = group[0][0], group[-1][0]
        subject = first.split("_")[0]
        takes = first.split("_")[1] + ("" if first == last else "-" + last.split("_")[1])
        name = f"CMU {subject}_{takes} {group[0][2]}"
        try:
            lib.add(name, group[0][1], group[0][2], features=feats, replace=True, storage="float16",
                    source=f"CMU mocap {corpus}: " + ", ".join(t[3].name for t in group), licence=CMU_LICENCE)
            report["added"].append(name)
        except (LibraryError, ValueError) as exc:
            report["skipped"][name] = str(exc)
    if weights is not None:
        from .runtime.backends import load_generator

        ws = load_generator(weights, "auto", "cpu")
        lib.prepare(ws, progress=progress, cancel=cancel)
    progress("starter library", len(jobs), len(jobs))
    return report


def shipped_library(notes: list | None = None) -> Library | None:
    """The starter library inside the extension (read-only), or None (with a note) when it is missing or
    damaged: Generate then works without it."""
    if not (SHIPPED_LIBRARY_DIR / "library.json").is_file():
        if notes is not None:
            notes.append(f"the starter library is missing ({SHIPPED_LIBRARY_DIR}); reinstall Choreo to get it back")
        return None
    try:
        lib = Library(SHIPPED_LIBRARY_DIR, read_only=True)
    except LibraryError as exc:
        if notes is not None:
            notes.append(f"the starter library cannot be read ({exc}); reinstall Choreo to repair it")
        return None
    if notes is not None:
        notes.extend(f"starter library: {n}" for n in lib.notes)
    return lib


class LibraryStack:
    """Several libraries seen as one for browsing and retrieval (the user's first, then the starter library).
    A clip name found in an earlier library hides the same name in later ones. Read-only: add and remove
    clips through the user's own :class:`Library`."""

    def __init__(self, libraries: list[Library]):
        self.libraries = [lib for lib in libraries if lib is not None]
        self.notes: list[str] = []
        for lib in self.libraries:
            self.notes.extend(lib.notes)

    @property
    def path(self) -> Path | None:
        return self.libraries[0].path if self.libraries else None

    def describe(self) -> str:
        """Where references come from, for reports."""
        parts = [f"the starter library shipped with Choreo ({len(lib)} clips)" if lib.read_only
                 else f"your library {lib.path} ({len(lib)} clips)" for lib in self.libraries]
        return " and ".join(parts) if parts else "no library"

    def owner(self, name: str) -> Library:
        for lib in self.libraries:
            if name in lib:
                return lib
        raise LibraryError(f"no clip named '{name}' in {', '.join(str(lib.path) for lib in self.libraries)}")

    def is_shipped(self, name: str) -> bool:
        return self.owner(name).read_only

    def __contains__(self, name: str) -> bool:
        return any(name in lib for lib in self.libraries)

    def __len__(self) -> int:
        return len(self.clips())

    def clips(self, genre: str | None = None, subgenre: str | None = None, text: str | None = None):
        seen, out = set(), []
        for lib in self.libraries:
            for c in lib.clips(genre, subgenre, text):
                if c.name not in seen:
                    seen.add(c.name)
                    out.append(c)
        return sorted(out, key=lambda c: c.name.lower())

    def info(self, name: str):
        return self.owner(name).info(name)

    def features(self, name: str) -> np.ndarray:
        return self.owner(name).features(name)

    def joints(self, name: str) -> np.ndarray:
        return self.owner(name).joints(name)

    def derived(self, ws, name: str, progress: ProgressFn | None = None) -> dict:
        return self.owner(name).derived(ws, name, progress)

    def prepare(self, ws, names=None, progress: ProgressFn | None = None, cancel: threading.Event | None = None):
        prepare_derived(self, ws, names, progress, cancel)

    def retrieve(self, ws, query: np.ndarray, genre: str | None = None, top_k: int = TOP_K, names=None):
        return retrieve_references(self, ws, query, genre, top_k, names)

    def reference_provider(self, ws, genre: str, query: np.ndarray, top_k: int = TOP_K, pinned=None):
        return library_references(self, ws, genre, query, top_k, pinned)


def open_libraries(user_folder=None, with_shipped: bool = True) -> LibraryStack:
    """The user's library (``user_folder``, when given) and the shipped starter library, as one stack.
    Problems with the shipped library become notes; problems with the user's raise LibraryError."""
    notes: list[str] = []
    libraries = [Library(user_folder)] if user_folder else []
    if with_shipped:
        libraries.append(shipped_library(notes))
    stack = LibraryStack(libraries)
    stack.notes = notes + stack.notes
    return stack
