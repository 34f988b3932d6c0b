# SPDX-License-Identifier: GPL-3.0-or-later
"""``generate``: music in, a keyed SMPL-X dance out (orchestration with progress and cancel).

    generate(music, genre, weights, *, span=Span(), sampling=None, seed=42, references="auto", library=None,
             runtime=Runtime(), job=Job(), window_mode="full", allow_untrained_genre=False)

music: an audio file path, (samples, sample_rate), or :class:`MusicFeatures` (the generator's features,
precomputed). ``span`` is the part of the music danced, ``runtime`` where the models run (device, precision,
backend, MuQ encoder), ``job`` how a caller follows and stops the work (progress, cancel).

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

from .features import features_to_joints
from .motion import MOTION_FPS, Motion
from .progress import ProgressFn, check_cancel, no_progress
from .references import ReferenceSourceError, prefix_tokens, references_for
from .runtime.backends import load_generator
from .sampling import SamplingConfig, make_rng
from .stage import ground_feet, keep_on_stage
from .windows import full_plan, official_plan

MIN_MUSIC_SECONDS = 2.0          # shorter clips hold too little music to dance to (and no beat to track)
WINDOW_MODES = ("full", "official")


class GenerationError(ValueError):
    """Input that cannot be generated from; the message says what to change."""


@dataclass(frozen=True)
class Span:
    """The part of the music danced, in seconds; ``end_s`` None: to the end of the music."""
    start_s: float = 0.0
    end_s: float | None = None


@dataclass(frozen=True)
class Runtime:
    """Where the models run. device: "auto", "cpu", "cuda"...; dtype: None/"auto" (bf16 on CUDA, fp32 on the
    CPU), "fp32", "bf16", "fp16"; backend: "auto", "torch" or "onnx" (see :mod:`core_models.runtime.backends`);
    muq_dir: the MuQ music encoder of the official family (default: $CHOREO_MUQ_DIR, else the set's muq/)."""
    device: object = "auto"
    dtype: object = None
    backend: str = "auto"
    muq_dir: object = None


@dataclass(frozen=True)
class Job:
    """How a caller follows and stops a generation: ``progress(stage, done, total)`` and a cancel event
    (set, the work stops at the next check with :class:`~core_models.progress.Cancelled`)."""
    progress: ProgressFn | None = None
    cancel: threading.Event | None = None


@dataclass(frozen=True)
class MusicFeatures:
    """The generator's music features, precomputed (T, music_dim) at the family's rate, in place of audio
    (benchmarks, training checks); retrieval then works only when the family queries with the same features."""
    array: np.ndarray


def sampling_with(base: SamplingConfig | None = None, temperature: float | None = None, top_k: int | None = None,
                  top_p: float | None = None) -> SamplingConfig:
    """``base`` (default: the release's settings) with the given values replaced; GenerationError names a
    value out of range."""
    base = base or SamplingConfig()
    overrides = {k: v for k, v in (("temperature", temperature), ("top_k", top_k), ("top_p", top_p)) if v is not None}
    try:
        return SamplingConfig(**{**base.to_dict(), **overrides})
    except ValueError as exc:
        raise GenerationError(str(exc)) from exc


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


def _music_samples(music):
    from .audio import load_audio

    if isinstance(music, (str, os.PathLike)):
        return load_audio(music)
    if isinstance(music, tuple) and len(music) == 2:
        samples, sr = music
        return np.asarray(samples, np.float32), int(sr)
    raise GenerationError("music must be an audio file path, (samples, sample_rate) or MusicFeatures")


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


def _query_of(ws, music, start_s, end_s) -> np.ndarray:
    if music is None or isinstance(music, MusicFeatures):
        raise GenerationError("retrieval needs the music itself; pass the audio, not only precomputed generator "
                              "features")
    samples, sr = _music_samples(music)
    samples, _, _ = _cut(samples, sr, start_s, end_s)
    return query_features(ws, samples, sr)


def _tile(x: np.ndarray, length: int) -> np.ndarray:
    return x if x.shape[0] == length else x[np.arange(length) % x.shape[0]]


def generate(music, genre: str = "Popular", weights=None, *, span: Span = Span(),
             sampling: SamplingConfig | None = None, seed: int = 42, references="auto", library=None,
             runtime: Runtime = Runtime(), job: Job = Job(), window_mode: str = "full",
             allow_untrained_genre: bool = False) -> GenerationResult:
    """Generate a dance for ``music`` (file path, (samples, sr) or :class:`MusicFeatures`) over ``span``.

    weights: a loaded weight set (torch ``WeightSet`` or ``OnnxWeightSet``) or a weight-set folder, loaded on
    ``runtime`` (the provider actually used is ``result.device``; any fallback is explained in
    ``result.notes``; same seed, same tokens on every backend).
    sampling: the sampler's settings (default: the release's; :func:`sampling_with` changes a few).
    references: "auto" (retrieve from ``library`` when one is given, otherwise none), None (no references:
    zero condition, no prefix) or a list, best first, of :class:`~core_models.references.Reference` objects
    or clip names of ``library`` (pinned); see :func:`core_models.references.references_for`.
    window_mode: "full" covers the span to its last frame (round(duration x 30) frames); "official"
    reproduces the release's windows (25 Hz music; the tail of the song is left out as there).
    A genre the weight set records as untrained is refused unless ``allow_untrained_genre``.
    """
    progress = job.progress or no_progress
    cancel = job.cancel
    start_s, end_s = span.start_s, span.end_s
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    notes: list[str] = []
    if window_mode not in WINDOW_MODES:
        raise GenerationError(f"window_mode must be one of {WINDOW_MODES}, got '{window_mode}'")
    if sampling is None:
        sampling = SamplingConfig()
    if weights is None:
        raise GenerationError("no weight set given: pass weights=<folder> (python -m core_models generate --weights "
                              "DIR) or install one in the add-on preferences")

    progress("load weights", 0, 1)
    ws = load_generator(weights, runtime.backend, runtime.device, runtime.dtype)
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
    precomputed = isinstance(music, MusicFeatures)
    if precomputed:
        raw = np.asarray(music.array, np.float32)
        duration = raw.shape[0] / cfg.music_fps
        start_s, end_s = 0.0, duration
        if duration < MIN_MUSIC_SECONDS:
            raise GenerationError(f"the music is {duration:.2f} s long; at least {MIN_MUSIC_SECONDS:g} s are needed")
    else:
        samples, sr = _music_samples(music)
        samples, start_s, end_s = _cut(samples, sr, start_s, end_s)
        try:
            raw = raw_music_features(ws, samples, sr, runtime.muq_dir, ws.device)
        except ValueError as exc:          # silence, NaN: the audio module names the problem
            raise GenerationError(str(exc)) from exc
        duration = end_s - start_s
    if ws.music_frontend == "rhythm" and not precomputed:
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
    try:
        provider = references_for(ws, references, library, cfg.genres[style], query,
                                  lambda: _query_of(ws, music, start_s, end_s), notes)
    except ReferenceSourceError as exc:        # pinned references that cannot be used: the caller's input
        raise GenerationError(str(exc)) from exc
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
        window_music = _tile(feats[w.music_start:w.music_end], cfg.music_len)

        def on_token(k, n, base=done):
            progress("generate", base + k, new_total)

        new = ws.sample_window(window_music, style, cond, prefix, w.new_tokens, sampling, rng, cancel, on_token)
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
    features = ws.decode_features(local)
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
