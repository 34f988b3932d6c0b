# SPDX-License-Identifier: GPL-3.0-or-later
"""Reference dances that guide generation (the release's retrieval-augmented condition and prefix).

A :class:`Reference` is a dance clip's 264-d features (and its tokens). Each generation window asks a
*provider* for its references through ``for_window(retrieval_index) -> (condition, prefix, used)``:

    StaticReferences    the same references for every window (pinned by the user, or none)
    LibraryReferences   per window, the best matches of that stretch of music retrieved from a library

:func:`references_for` turns ``generate``'s ``references`` argument into a provider: "auto" (retrieve from
the library when there is one and the weight set has a RetrievalNet), None (no references: a zero condition,
no prefix) or a list, best first, of :class:`Reference` objects or library clip names.

A *source* is anything with ``clips(genre)``, ``info(name)``, ``features(name)`` and ``derived(ws, name)`` (a
:class:`~core_models.library.Library`, or the starter library stacked with the user's): this module never
imports the library, the library imports it.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .features import FEATURE_DIM
from .progress import ProgressFn, check_cancel, no_progress
from .retrieval_search import top_k as cosine_top_k
from .retrieval_search import windows as query_windows

WINDOW = 384          # frames per reference window (12.8 s at 30 fps), the RAG condition's length
STRIDE = 192
PREFIX_TOKENS = 60    # release: 60 tokens (20 latents) of context per window
TOP_K = 10            # references retrieved per music window


class ReferenceSourceError(ValueError):
    """A reference, or the source it comes from, that cannot guide generation (``library.LibraryError`` is
    one); the message says what to do."""


def prefix_tokens(dance_len: int, q: int = 3) -> int:
    """Context carried into each window: the release's 60 tokens, at most a third of a shorter window."""
    return min(PREFIX_TOKENS, dance_len // 3 // q * q)


@dataclass
class Reference:
    """A reference dance: de-normalised 264-d features at 30 fps, optionally its local token ids
    (L, Q) aligned with the features (latent i covers frames 4i..4i+3)."""
    name: str
    features: np.ndarray
    tokens: np.ndarray | None = None
    genre: str | None = None
    score: float | None = None
    start: int = 0                    # first frame of the segment used

    def __post_init__(self):
        self.features = np.asarray(self.features, dtype=np.float64)
        if self.features.ndim != 2 or self.features.shape[1] != FEATURE_DIM or self.features.shape[0] < 1:
            raise ReferenceSourceError(f"reference '{self.name}': features must be (T, {FEATURE_DIM}), got "
                                       f"{self.features.shape}")


def rank_weights(n: int) -> np.ndarray:
    """The release's rank weights (n - i) / sum_j (n - j): best reference counts most, they sum to 1."""
    w = np.arange(n, 0, -1, dtype=np.float64)
    return w / w.sum()


def rag_condition(references: Sequence[Reference], rag_mean: np.ndarray, rag_std: np.ndarray,
                  length: int = WINDOW) -> np.ndarray:
    """Rank-weighted mean of the references' ``length``-frame segments, each z-normalised with the RAG
    statistics: (length, 264) float32. Segments shorter than ``length`` are tiled (the release's training
    wrapper padded; tiling keeps the motion statistics). No reference: zeros (the release's fallback)."""
    if not references:
        return np.zeros((length, FEATURE_DIM), np.float32)
    cond = np.zeros((length, FEATURE_DIM))
    for w, ref in zip(rank_weights(len(references)), references):
        seg = ref.features[ref.start:ref.start + length]
        if seg.shape[0] == 0:
            raise ReferenceSourceError(f"reference '{ref.name}' has no frames from frame {ref.start}")
        seg = seg[np.arange(length) % seg.shape[0]]
        cond += w * (seg - rag_mean) / rag_std
    return cond.astype(np.float32)


def reference_prefix(ref: Reference, tokens: int = PREFIX_TOKENS, frames_per_latent: int = 4) -> np.ndarray | None:
    """The first ``tokens`` tokens (as (tokens / Q, Q) local ids) of the reference segment, or None."""
    if ref.tokens is None:
        return None
    q = ref.tokens.shape[1]
    first = int(round(ref.start / frames_per_latent))
    seg = ref.tokens[first:first + tokens // q]
    return seg if seg.shape[0] * q == tokens else None


class StaticReferences:
    """The same references for every window (pinned by the user, or none)."""

    def __init__(self, references: Sequence[Reference], rag_mean, rag_std, cond_len: int,
                 prefix_len: int = PREFIX_TOKENS):
        self.references = list(references)
        self.cond = rag_condition(self.references, rag_mean, rag_std, cond_len)
        self.prefix = reference_prefix(self.references[0], prefix_len) if self.references else None

    def for_window(self, retrieval_index: int):
        """(condition (cond_len, 264), prefix (n, Q) local ids or None, [{"name", "start", "score"}, ...])."""
        return self.cond, self.prefix, [{"name": r.name, "start": int(r.start), "score": r.score}
                                        for r in self.references]


def no_references(ws) -> StaticReferences:
    return StaticReferences([], ws.rag_mean, ws.rag_std, ws.generator.cfg.cond_len)


# ----------------------------------------------------------------------------------- derived data

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


def prepare_derived(source, ws, names: Sequence[str] | None = None, progress: ProgressFn | None = None,
                    cancel: threading.Event | None = None) -> None:
    """Derived data of every clip of ``source`` (or of ``names``) for ``ws``, computed where it is missing."""
    progress = progress or no_progress
    names = list(names) if names is not None else [c.name for c in source.clips()]
    for i, name in enumerate(names):
        check_cancel(cancel)
        progress("library", i, len(names))
        source.derived(ws, name)
    progress("library", len(names), len(names))


# -------------------------------------------------------------------------------------- retrieval

@dataclass(frozen=True)
class Match:
    name: str
    start: int
    score: float


def retrieve_references(source, ws, query: np.ndarray, genre: str | None = None, top_k: int = TOP_K,
                        names: Sequence[str] | None = None) -> list[list[Match]]:
    """For each 384-frame window of the music (stride 192) the ``top_k`` best reference windows of ``genre``
    (or of ``names``) in ``source`` by cosine similarity of RetrievalNet embeddings, best first. ``query``:
    the music's features for RetrievalNet (``generation.query_features``: 55-d official, rhythm compact) at
    30 fps."""
    if ws.retrieval is None:
        raise ReferenceSourceError(f"weight set '{ws.path}' has no RetrievalNet; automatic references need one "
                                   "(pin references instead)")
    pool = source.clips(genre) if names is None else [source.info(n) for n in names]
    if not pool:
        raise ReferenceSourceError(f"the library has no {genre or ''} clips to retrieve from".replace("  ", " "))
    keys, embs = [], []
    for c in pool:
        d = source.derived(ws, c.name)
        keys += [(c.name, int(s)) for s in d["starts"]]
        embs.append(d["embeddings"])
    q = ws.encode_music(query_windows(np.asarray(query, np.float32), WINDOW, STRIDE))
    idx, scores = cosine_top_k(q, np.concatenate(embs), top_k)
    return [[Match(*keys[j], float(s)) for j, s in zip(row, srow)] for row, srow in zip(idx, scores)]


class LibraryReferences:
    """References per generation window from retrieval results (query window k covers 6.4 k s onwards)."""

    def __init__(self, source, ws, matches: list[list[Match]]):
        self.library, self.ws, self.matches = source, ws, matches
        self._cache: dict[int, StaticReferences] = {}

    def references(self, retrieval_index: int) -> list[Reference]:
        row = self.matches[min(max(retrieval_index, 0), len(self.matches) - 1)]
        refs = []
        for m in row:
            try:
                refs.append(Reference(m.name, self.library.features(m.name),
                                      self.library.derived(self.ws, m.name)["tokens"],
                                      genre=self.library.info(m.name).genre, score=m.score, start=m.start))
            except ReferenceSourceError as exc:          # a damaged clip is left out (the others still guide)
                note = f"reference '{m.name}' was left out: {exc}"
                if note not in self.library.notes:
                    self.library.notes.append(note)
        return refs

    def for_window(self, retrieval_index: int):
        if retrieval_index not in self._cache:
            cfg = self.ws.generator.cfg
            self._cache[retrieval_index] = StaticReferences(self.references(retrieval_index), self.ws.rag_mean,
                                                            self.ws.rag_std, cfg.cond_len, prefix_tokens(cfg.dance_len))
        return self._cache[retrieval_index].for_window(retrieval_index)


def library_references(source, ws, genre: str, query: np.ndarray, top_k: int = TOP_K,
                       pinned: Sequence[str] | None = None) -> LibraryReferences:
    """References per window retrieved from ``source`` among the clips of ``genre``, or among the ``pinned``
    clips whatever their genre."""
    return LibraryReferences(source, ws, retrieve_references(source, ws, query, None if pinned else genre, top_k,
                                                             pinned))


# ------------------------------------------------------------------------------- generate's choice

def references_for(ws, references, library, genre: str, query, compute_query, notes: list):
    """The provider for ``generate``'s ``references`` ("auto", None, or clip names / :class:`Reference`
    objects, best first; see the module's note). ``query``: the retrieval features when already computed,
    else ``compute_query()`` makes them. What was decided is appended to ``notes``."""
    if references is None or (references == "auto" and library is None):
        if references == "auto":
            notes.append("no reference library: generated without retrieved references")
        return no_references(ws)
    if references == "auto":
        if ws.retrieval is None:
            notes.append("the weight set has no RetrievalNet: generated without retrieved references")
            return no_references(ws)
        notes.extend(library.notes)
        if not library.clips(genre):
            notes.append(f"{library.describe()} has no {genre} clips: generated without references")
            return no_references(ws)
        try:
            provider = library.reference_provider(ws, genre, query if query is not None else compute_query())
        except ReferenceSourceError as exc:           # a damaged clip: dance without references rather than fail
            notes.append(f"references could not be retrieved ({exc}); generated without references")
            return no_references(ws)
        notes.append(f"references retrieved from {library.describe()}")
        return provider
    refs = list(references)
    if refs and all(isinstance(r, str) for r in refs):       # pinned library clips
        if library is None:
            raise ReferenceSourceError("pinned references are library clip names: pass the library too")
        if ws.retrieval is not None:
            return library.reference_provider(ws, genre, query if query is not None else compute_query(),
                                              pinned=refs)
        refs = [Reference(n, library.features(n), library.derived(ws, n)["tokens"], library.info(n).genre)
                for n in refs]
    return StaticReferences(refs, ws.rag_mean, ws.rag_std, ws.generator.cfg.cond_len,
                            prefix_tokens(ws.generator.cfg.dance_len))
