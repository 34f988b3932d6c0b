# SPDX-License-Identifier: GPL-3.0-or-later
"""``generate``: music in, a keyed SMPL-X dance out (orchestration with progress and cancel).

Steps: decode the music and cut the requested span; music features of the weight set's family (rhythm
features at 30 fps for the compact family, MuQ at 25 Hz for the official one); plan the windows; for each
window build the retrieval condition and prefix, sample tokens with ChoreoLLaMA; decode the tokens with
the RVQ-VAE; recover the 22 joints from the 264-d features; solve IK for SMPL-X rotations. Everything that
leaves this module is numpy.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .features import FEATURE_DIM, denormalize_features, features_to_joints
from .library import LibraryError
from .motion import Motion
from .progress import ProgressFn, check_cancel, no_progress
from .sampling import SamplingConfig, make_rng
from .stage import ground_feet, keep_on_stage
from .windows import MOTION_FPS, full_plan, official_plan

MIN_MUSIC_SECONDS = 2.0          # shorter clips hold too little music to dance to (and no beat to track)
WINDOW_MODES = ("full", "official")
PREFIX_TOKENS = 60               # release: 60 tokens (20 latents) of context per window


def prefix_tokens(dance_len: int, q: int = 3) -> int:
    """Context carried into each window: the release's 60 tokens, at most a third of a shorter window."""
    return min(PREFIX_TOKENS, dance_len // 3 // q * q)


class GenerationError(ValueError):
    """Input that cannot be generated from; the message says what to change."""


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
            raise GenerationError(f"reference '{self.name}': features must be (T, {FEATURE_DIM}), got "
                                  f"{self.features.shape}")


def rank_weights(n: int) -> np.ndarray:
    """The release's rank weights (n - i) / sum_j (n - j): best reference counts most, they sum to 1."""
    w = np.arange(n, 0, -1, dtype=np.float64)
    return w / w.sum()


def rag_condition(references: Sequence[Reference], rag_mean: np.ndarray, rag_std: np.ndarray,
                  length: int = 384) -> np.ndarray:
    """Rank-weighted mean of the references' ``length``-frame segments, each z-normalised with the RAG
    statistics: (length, 264) float32. Segments shorter than ``length`` are tiled (the release's training
    wrapper padded; tiling keeps the motion statistics). No reference: zeros (the release's fallback)."""
    if not references:
        return np.zeros((length, FEATURE_DIM), np.float32)
    cond = np.zeros((length, FEATURE_DIM))
    for w, ref in zip(rank_weights(len(references)), references):
        seg = ref.features[ref.start:ref.start + length]
        if seg.shape[0] == 0:
            raise GenerationError(f"reference '{ref.name}' has no frames from frame {ref.start}")
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


@dataclass
class GenerationResult:
    motion: Motion                  # 55-joint SMPL-X motion at 30 fps (hands and face at rest)
    joints: np.ndarray              # (T, 22, 3) decoded joints, metres, Y up
    features: np.ndarray            # (T, 264) de-normalised features
    tokens: np.ndarray              # (L, Q) local token ids of the dance
    genre: str
    seed: int
    start_s: float
    end_s: float
    references: list                # per window: {"window", "music_start_s", "references": [{"name", "start",
                                    #   "score"}, ...] best first; start in frames of the clip, score cosine}
    timings: dict
    fk_error_m: float               # max |FK(rotations) - joints|
    device: str
    dtype: str
    weight_set: str
    window_mode: str
    notes: list = field(default_factory=list)
    # what keep_on_stage / ground_feet did (largest shift, lift) and decoder_stretch_m: how far the rigid
    # dance (joints, motion) is from the decoder's raw joints at most
    stage: dict = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return MOTION_FPS

    @property
    def num_frames(self) -> int:
        return int(self.joints.shape[0])


def _music_samples(music, sample_rate):
    from .audio import load_audio

    if isinstance(music, (str, os.PathLike)):
        return load_audio(music)
    if isinstance(music, tuple) and len(music) == 2:
        samples, sr = music
        return np.asarray(samples, np.float32), int(sr)
    if sample_rate is not None:
        return np.asarray(music, np.float32), int(sample_rate)
    raise GenerationError("music must be an audio file path, or (samples, sample_rate)")


def _cut(samples: np.ndarray, sr: int, start_s: float, end_s: float | None):
    if samples.ndim == 2:
        samples = samples.mean(axis=0 if samples.shape[0] <= 8 else 1)
    duration = samples.shape[0] / sr
    end_s = duration if end_s is None else float(end_s)
    start_s = float(start_s)
    if not (0 <= start_s < duration):
        raise GenerationError(f"start {start_s:.2f} s is outside the music (0 - {duration:.2f} s)")
    if end_s <= start_s:
        raise GenerationError(f"the end of the music span ({end_s:g} s) is not after its start ({start_s:g} s): "
                              "choose an end later than the start")
    end_s = min(end_s, duration)
    if end_s - start_s < MIN_MUSIC_SECONDS:
        raise GenerationError(f"the music span is {end_s - start_s:.2f} s; Choreo needs at least "
                              f"{MIN_MUSIC_SECONDS:g} s of music to dance to. Choose a longer file or a wider range")
    return samples[int(round(start_s * sr)):int(round(end_s * sr))], start_s, end_s


def frontend_features(frontend: str, samples: np.ndarray, sr: int, muq_dir=None, device="cpu") -> np.ndarray:
    """Music features by frontend name: "rhythm" (7-d, 30 fps), "music55" (55-d, 30 fps), "muq" (1024-d, 25 Hz)."""
    from . import audio

    if frontend == "rhythm":
        return audio.rhythm_features(samples, sr, fps=MOTION_FPS)
    if frontend == "music55":
        return audio.music_features_55(samples, sr, fps=MOTION_FPS)
    if frontend == "muq":
        return audio.muq_features(samples, sr, muq_dir or os.environ.get("CHOREO_MUQ_DIR"), device=str(device))
    raise GenerationError(f"unknown music frontend '{frontend}'")


def raw_music_features(ws, samples: np.ndarray, sr: int, muq_dir=None, device="cpu") -> np.ndarray:
    """The generator's music features for weight set ``ws`` (before any normalisation)."""
    if ws.music_frontend == "muq":
        muq_dir = muq_dir or os.environ.get("CHOREO_MUQ_DIR") or (ws.path / "muq")
    return frontend_features(ws.music_frontend, samples, sr, muq_dir, device)


def query_features(ws, samples: np.ndarray, sr: int) -> np.ndarray:
    """The music features RetrievalNet compares with the library (30 fps)."""
    return frontend_features(ws.query_frontend, samples, sr)


def normalise_music(ws, raw: np.ndarray) -> np.ndarray:
    """The generator's music input: normalised with the weight set's music statistics when it has them."""
    raw = np.asarray(raw, np.float32)
    if raw.ndim != 2 or raw.shape[1] != ws.generator.cfg.music_dim:
        raise GenerationError(f"music features are {raw.shape} but the generator expects (T, "
                              f"{ws.generator.cfg.music_dim}) ({ws.music_frontend})")
    if ws.music_mean is not None:
        raw = (raw - ws.music_mean) / ws.music_std
    return raw.astype(np.float32)


def resolve_genre(genre: str, genres: Sequence[str]) -> int:
    for i, g in enumerate(genres):
        if str(genre).strip().lower() == g.lower():
            return i
    raise GenerationError(f"unknown genre '{genre}'; choose one of {', '.join(genres)}")


def check_trained_genre(ws, genre: str, allow_untrained: bool, notes: list) -> None:
    """Refuse a genre the weight set never saw (it would dance something else under that name), unless asked."""
    trained = ws.trained_genres
    if not trained or genre in trained:
        return
    listed = ", ".join(f"{g} ({m:.1f} min)" for g, m in trained.items())
    if not allow_untrained:
        raise GenerationError(f"the weight set '{ws.path.name}' was not trained on {genre}; it knows {listed}. "
                              f"Choose one of those, or allow untrained genres (--allow-untrained-genre) to "
                              f"generate anyway")
    notes.append(f"{genre} is not a trained genre of this weight set (trained: {listed}); generated as asked, the "
                 f"style may not be {genre}")


def features_to_motion(features: np.ndarray, on_stage: bool = True) -> tuple[np.ndarray, Motion, float, dict]:
    """De-normalised (T, 264) features -> the dance's joints (T, 22, 3), a 55-joint SMPL-X Motion that
    reproduces them, the largest distance between the Motion's FK and those joints (metres), and what the
    body corrections did.

    The decoder's joints are not a rigid body: its bones stretch from frame to frame (by centimetres on
    real motion's tokens, by up to decimetres on generated ones). The dance is the rigid body nearest to
    them on a skeleton fitted to them (:func:`~core_models.kinematics.project_to_skeleton`), so that the
    joints this returns, the BVH/npz written and the armature keyed in Blender are one motion;
    ``decoder_stretch_m`` says how far that body is from the decoder's raw joints. ``on_stage``: keep the
    dancer within a few metres of its start and its feet on (never below) the floor
    (:mod:`core_models.stage`; the whole body moves, the pose is as generated)."""
    from .io.motion_file import body_motion_from_joints, full_skeleton_from_body
    from .kinematics import fit_skeleton, project_to_skeleton
    from .skeleton import default_skeleton

    raw = features_to_joints(features)
    stage = {"stage_shift_max_m": 0.0, "floor_lift_max_m": 0.0}
    if on_stage and raw.shape[0] > 1:
        raw, shift = keep_on_stage(raw, MOTION_FPS)
        stage["stage_shift_max_m"] = float(np.linalg.norm(shift, axis=-1).max())
    skeleton = full_skeleton_from_body(fit_skeleton(raw, default_skeleton(body_only=True), source="fitted:choreollama"))
    joints = project_to_skeleton(raw, skeleton.subset(raw.shape[1]))
    stage["decoder_stretch_m"] = float(np.linalg.norm(joints - raw, axis=-1).max())
    if on_stage and joints.shape[0] > 1:          # the floor last: the rigid body's own feet touch it
        joints, lift = ground_feet(joints, MOTION_FPS)
        stage["floor_lift_max_m"] = float(np.abs(lift).max())
    motion = body_motion_from_joints(joints, MOTION_FPS, skeleton=skeleton, source="choreollama")
    fk_error = float(np.linalg.norm(motion.joints()[:, :joints.shape[1]] - joints, axis=-1).max())
    return joints, motion, fk_error, stage


def _query_of(ws, music, sample_rate, start_s, end_s) -> np.ndarray:
    if music is None:
        raise GenerationError("retrieval needs the music itself; pass the audio, not only precomputed generator "
                              "features")
    samples, sr = _music_samples(music, sample_rate)
    samples, _, _ = _cut(samples, sr, start_s, end_s)
    return query_features(ws, samples, sr)


def _reference_provider(ws, references, library, genre: str, query, compute_query, notes: list):
    """Per-window references: retrieved from the library ("auto"), pinned (clip names or Reference
    objects, best first) or none."""
    if references is None or (references == "auto" and library is None):
        if references == "auto":
            notes.append("no reference library: generated without retrieved references")
        return StaticReferences([], ws.rag_mean, ws.rag_std, ws.generator.cfg.cond_len)
    if references == "auto":
        if ws.retrieval is None:
            notes.append("the weight set has no RetrievalNet: generated without retrieved references")
            return StaticReferences([], ws.rag_mean, ws.rag_std, ws.generator.cfg.cond_len)
        notes.extend(library.notes)
        if not library.clips(genre):
            notes.append(f"{library.describe()} has no {genre} clips: generated without references")
            return StaticReferences([], ws.rag_mean, ws.rag_std, ws.generator.cfg.cond_len)
        try:
            provider = library.reference_provider(ws, genre, query if query is not None else compute_query())
        except LibraryError as exc:           # a damaged clip: dance without references rather than fail
            notes.append(f"references could not be retrieved ({exc}); generated without references")
            return StaticReferences([], ws.rag_mean, ws.rag_std, ws.generator.cfg.cond_len)
        notes.append(f"references retrieved from {library.describe()}")
        return provider
    refs = list(references)
    if refs and all(isinstance(r, str) for r in refs):       # pinned library clips
        if library is None:
            raise GenerationError("pinned references are library clip names: pass the library too")
        if ws.retrieval is not None:
            return library.reference_provider(ws, genre, query if query is not None else compute_query(),
                                              pinned=refs)
        refs = [Reference(n, library.features(n), library.derived(ws, n)["tokens"], library.info(n).genre)
                for n in refs]
    return StaticReferences(refs, ws.rag_mean, ws.rag_std, ws.generator.cfg.cond_len,
                            prefix_tokens(ws.generator.cfg.dance_len))


def _tile(x: np.ndarray, length: int) -> np.ndarray:
    return x if x.shape[0] == length else x[np.arange(length) % x.shape[0]]


def generate(music, genre: str = "Popular", *, weights=None, start_s: float = 0.0, end_s: float | None = None,
             seed: int = 42, sampling: SamplingConfig | None = None, temperature: float | None = None,
             top_k: int | None = None, top_p: float | None = None, references="auto", library=None,
             window_mode: str = "full", device="auto", dtype=None, backend: str = "auto",
             sample_rate: int | None = None,
             music_feature_array: np.ndarray | None = None, muq_dir=None, allow_untrained_genre: bool = False,
             progress: ProgressFn | None = None, cancel: threading.Event | None = None) -> GenerationResult:
    """Generate a dance for ``music`` (file path or (samples, sr)) between ``start_s`` and ``end_s``.

    weights: a loaded :class:`~core_models.weights.WeightSet` or a weight-set folder.
    references: "auto" (retrieve from ``library`` when one is given, otherwise none), None (no
    references: zero condition, no prefix) or a list of :class:`Reference` (pinned, best first).
    window_mode: "full" covers the span to its last frame (round(duration x 30) frames); "official"
    reproduces the release's windows (25 Hz music; the tail of the song is left out as there).
    A genre the weight set records as untrained is refused unless ``allow_untrained_genre``.
    ``music_feature_array`` replaces the music frontend (precomputed features at the family's rate).
    backend: "auto", "torch" or "onnx" (ONNX Runtime; ``device`` "cuda" asks for its CUDA provider); see
    :func:`core_models.onnx_backend.load_for_backend`. The provider actually used is ``result.device``, and
    any fallback is explained in ``result.notes``. Same seed, same tokens on every backend.
    """
    from .onnx_backend import load_for_backend

    progress = progress or no_progress
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    notes: list[str] = []
    if window_mode not in WINDOW_MODES:
        raise GenerationError(f"window_mode must be one of {WINDOW_MODES}, got '{window_mode}'")
    if sampling is None:
        sampling = SamplingConfig()
    overrides = {k: v for k, v in (("temperature", temperature), ("top_k", top_k), ("top_p", top_p)) if v is not None}
    if overrides:
        try:
            sampling = SamplingConfig(**{**sampling.to_dict(), **overrides})
        except ValueError as exc:
            raise GenerationError(str(exc)) from exc
    if weights is None:
        raise GenerationError("no weight set given: pass weights=<folder> (python -m core_models generate --weights "
                              "DIR) or install one in the add-on preferences")

    progress("load weights", 0, 1)
    ws = load_for_backend(weights, backend, device, dtype)
    cfg = ws.generator.cfg
    style = resolve_genre(genre, cfg.genres)
    check_trained_genre(ws, cfg.genres[style], allow_untrained_genre, notes)
    if window_mode == "official" and abs(cfg.music_fps - 25.0) > 1e-6:
        raise GenerationError("window_mode 'official' reproduces the release's bookkeeping for 25 Hz MuQ music; this "
                              f"weight set uses {cfg.music_fps:g} fps music: use window_mode 'full'")
    timings["load_s"] = time.perf_counter() - t0
    check_cancel(cancel)

    # Music: the requested span, then features at the family's rate.
    t = time.perf_counter()
    progress("music features", 0, 1)
    query = None                       # the features retrieval queries with (computed when needed)
    if music_feature_array is not None:
        raw = np.asarray(music_feature_array, np.float32)
        duration = raw.shape[0] / cfg.music_fps
        start_s, end_s = 0.0, duration
        if duration < MIN_MUSIC_SECONDS:
            raise GenerationError(f"the music is {duration:.2f} s long; at least {MIN_MUSIC_SECONDS:g} s are needed")
    else:
        samples, sr = _music_samples(music, sample_rate)
        samples, start_s, end_s = _cut(samples, sr, start_s, end_s)
        try:
            raw = raw_music_features(ws, samples, sr, muq_dir, ws.device)
        except ValueError as exc:          # silence, NaN: the audio module names the problem
            raise GenerationError(str(exc)) from exc
        duration = end_s - start_s
    if ws.music_frontend == "rhythm" and music_feature_array is None:
        from .audio import half_tempo_suspected

        halved = half_tempo_suspected(raw[:, 0], np.flatnonzero(raw[:, 2] > 0), cfg.music_fps)
        if halved:
            notes.append(f"the beat tracker found {halved:.0f} bpm, but strong onsets fall between those beats: the "
                         f"music is probably {2 * halved:.0f} bpm, and the dance follows the slower pulse")
    if ws.music_frontend == ws.query_frontend:
        query = raw
    feats = normalise_music(ws, raw)
    timings["music_features_s"] = time.perf_counter() - t
    motion_frames = int(round(duration * MOTION_FPS))
    check_cancel(cancel)

    # References for each window.
    provider = _reference_provider(ws, references, library, cfg.genres[style], query,
                                   lambda: _query_of(ws, music, sample_rate, start_s, end_s), notes)
    timings["retrieval_s"] = time.perf_counter() - t - timings["music_features_s"]
    check_cancel(cancel)

    # Window plan.
    _, first_prefix, _ = provider.for_window(0)
    first_len = 0 if first_prefix is None else first_prefix.size
    q = cfg.num_quantizers
    if window_mode == "official":
        windows, total_tokens = official_plan(feats.shape[0], first_prefix=first_len, dance_length=cfg.dance_len,
                                              music_length=cfg.music_len)
    else:
        windows, total_tokens = full_plan(motion_frames, cfg.music_fps, feats.shape[0], first_prefix=first_len,
                                          dance_length=cfg.dance_len, prefix=prefix_tokens(cfg.dance_len, q),
                                          music_length=cfg.music_len)
    new_total = sum(w.new_tokens for w in windows)

    # Sampling, window by window.
    t = time.perf_counter()
    rng = make_rng(int(seed))
    sequence = np.zeros((0,), np.int64)           # flat local ids, interleaved l0, l1, l2
    used = []
    done = 0
    progress("generate", 0, new_total)
    for w in windows:
        check_cancel(cancel)
        cond, ref_prefix, names = provider.for_window(w.retrieval_index)
        if w.prefix_from is None:
            prefix = None if ref_prefix is None else ref_prefix.reshape(-1).astype(np.int64)
        else:
            prefix = sequence[w.prefix_from:w.prefix_to]
        music = _tile(feats[w.music_start:w.music_end], cfg.music_len)

        def on_token(k, n, base=done):
            progress("generate", base + k, new_total)

        new = ws.sample_window(music, style, cond, prefix, w.new_tokens, sampling, rng, cancel, on_token)
        made = np.concatenate([prefix if prefix is not None else np.zeros(0, np.int64), new])
        sequence = np.concatenate([sequence, made[w.keep_from:]])
        done += w.new_tokens
        used.append({"window": w.index, "music_start_s": start_s + w.music_start / cfg.music_fps, "references": names})
    timings["generate_s"] = time.perf_counter() - t
    if library is not None:                  # e.g. a damaged reference left out while sampling
        notes += [n for n in library.notes if n not in notes]
    check_cancel(cancel)

    # Decode tokens -> features -> joints -> SMPL-X rotations.
    t = time.perf_counter()
    progress("decode", 0, 1)
    sequence = sequence[:len(sequence) // q * q]
    local = sequence.reshape(-1, q)
    norm = ws.decode_tokens(local)
    features = denormalize_features(norm.astype(np.float64), ws.mean, ws.std)
    if window_mode == "full":
        features = features[:motion_frames]
    timings["decode_s"] = time.perf_counter() - t

    t = time.perf_counter()
    progress("rotations", 0, 1)
    joints, motion, fk_error, stage = features_to_motion(features)
    timings["ik_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    timings["tokens_per_s"] = new_total / max(timings["generate_s"], 1e-9)
    timings["frames_per_s"] = joints.shape[0] / max(timings["generate_s"] + timings["decode_s"], 1e-9)
    motion.meta.update({"genre": cfg.genres[style], "seed": int(seed), "weight_set": str(ws.path)})
    progress("done", 1, 1)
    return GenerationResult(motion=motion, joints=joints, features=features, tokens=local,
                            genre=cfg.genres[style], seed=int(seed), start_s=float(start_s), end_s=float(end_s),
                            references=used, timings=timings, fk_error_m=fk_error, device=str(ws.device),
                            dtype=str(ws.dtype).replace("torch.", ""), weight_set=str(ws.path),
                            window_mode=window_mode, notes=notes + list(ws.notes), stage=stage)
