# SPDX-License-Identifier: GPL-3.0-or-later
"""Regenerate a range of a take: everything outside stays, the inside is sampled anew.

The range is snapped to the music's bars (beats without a meter), and each end may then move a few frames
to where the take moves calmly (a seam inside a spin cannot be blended smoothly). The take's tokens before it are the
prefix, so the new motion goes on from what came before; several candidates are sampled, and the one whose
end best matches the take's motion after the range (and that comes closest to any key poses inside it) is
kept. Its root is bent to run into the frame after the range (:func:`.seams.close_gap`) and both ends are
blended in joint-rotation space over at most half a second (:func:`.seams.splice`); the frames outside
the range are the take's, exactly.

The music analysis, the weight set and the references are cached per song and weight set, so after the
first Generate of a song a regenerate costs only its sampling and decoding.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..features import features_to_joints
from ..windows import FRAMES_PER_LATENT, TOKENS_PER_LATENT, music_frames_per_token
from .constraints import hold_key_pose, key_error
from .frames import dancer_frame_joints, facing_yaw, mean_yaw, rotate_about_y
from .music_structure import grid_from_rhythm, music_grid, snap_range
from .seams import SEAM_REACH_S, calm_seam, close_gap, frame_jerk, frame_speed, margin_frames, seam_report, splice
from .take import BODY_JOINTS, EditError, Take

CANDIDATES = 4
EXTRA_CANDIDATES = 4          # more candidates, one by one, while no seam is as smooth as the take itself
ROUGH_SEAM = 1.5              # seam jerk ratio above which the report suggests another seed or range
SMOOTH_ENOUGH = 1.2           # seam jerk over the take's 99th-percentile jerk that needs no more candidates
KEY_WEIGHT = 10.0             # score per metre of key-pose error (a key matters more than a smooth end)
CONTEXT_LATENTS = 8            # decoded with the new tokens on each side, so the decoder sees the neighbours
RETRIEVAL_STRIDE_S = 6.4       # retrieval windows of the library references (as Generate uses them)


@dataclass(frozen=True)
class KeyPose:
    frame: int                 # take frame the pose must be reached at
    rotations: np.ndarray      # (J, 4) local rotations of the pose, root included
    joints: np.ndarray         # (22, 3) the pose's joints (for the error), any place and facing
    source: str = ""


@lru_cache(maxsize=2)
def _weights(path: str, backend: str, device: str):
    from ..runtime.backends import load_generator

    return load_generator(path, backend, device)


@lru_cache(maxsize=4)
def _music(song_key: tuple, ws_path: str, backend: str, device: str, start_s: float, end_s: float):
    """(samples, sr, the span's samples, raw and normalised generator features, retrieval query) of the take's
    song span."""
    from ..audio import load_audio
    from ..generation import normalise_music, query_features, raw_music_features

    ws = _weights(ws_path, backend, device)
    samples, sr = load_audio(song_key[0])
    cut = samples[int(round(start_s * sr)):int(round(end_s * sr))]
    raw = raw_music_features(ws, cut, sr)
    query = raw if ws.music_frontend == ws.query_frontend else query_features(ws, cut, sr)
    return samples, sr, cut, raw, normalise_music(ws, raw), query


def _song_key(music) -> tuple:
    p = Path(music)
    if not p.is_file():
        raise EditError(f"the music file '{p}' does not exist: give the song the take was generated for")
    st = p.stat()
    return (str(p.resolve()), st.st_size, st.st_mtime_ns)


def _provider(ws, take: Take, library, references, query, notes: list):
    from ..references import no_references, references_for

    if library is None:
        return no_references(ws)
    cfg = ws.generator.cfg
    genre = take.genre if take.genre in cfg.genres else cfg.genres[0]
    return references_for(ws, references, library, genre, query, lambda: query, notes)


def _tiled(x: np.ndarray, length: int) -> np.ndarray:
    return x[np.arange(length) % x.shape[0]] if x.shape[0] else np.zeros((length,) + x.shape[1:], x.dtype)


def sample_range(ws, take: Take, feats: np.ndarray, provider, first: int, last: int, seed: int, sampling,
                 cancel=None) -> np.ndarray:
    """(last - first, 3) new latents for latents [first, last) of the take, prefixed by the take's own."""
    from ..references import prefix_tokens
    from ..sampling import make_rng

    cfg = ws.generator.cfg
    q = TOKENS_PER_LATENT
    prefix_latents = prefix_tokens(cfg.dance_len, q) // q
    style = list(cfg.genres).index(take.genre) if take.genre in cfg.genres else 0
    per_token = music_frames_per_token(cfg.music_fps)
    rng = make_rng(int(seed))
    sequence = take.tokens[:first].reshape(-1).astype(np.int64)
    need = (last - first) * q
    made = np.zeros(0, np.int64)
    while made.size < need:
        have = np.concatenate([sequence, made])
        use = min(prefix_latents * q, have.size)
        prefix = have[have.size - use:] if use else None
        new = min(cfg.dance_len - use, need - made.size)
        token_start = have.size - use
        music_start = int(round(token_start * per_token))
        music = _tiled(feats[music_start:music_start + cfg.music_len], cfg.music_len)
        retrieval_index = int((music_start / cfg.music_fps) // RETRIEVAL_STRIDE_S)
        cond, _, _ = provider.for_window(retrieval_index)
        made = np.concatenate([made, ws.sample_window(music, style, cond, prefix, new, sampling, rng, cancel, None)])
    return made[:need].reshape(-1, q)


def _align_planar(moving: np.ndarray, fixed: np.ndarray) -> tuple[float, np.ndarray]:
    """Yaw and xz translation that best map (N, 2) ``moving`` points onto ``fixed`` (least squares)."""
    mc, fc = moving.mean(0), fixed.mean(0)
    a, b = moving - mc, fixed - fc
    angle = math.atan2(float((a[:, 1] * b[:, 0] - a[:, 0] * b[:, 1]).sum()), float((a * b).sum()))
    return angle, fc - _turn2(mc, angle)


def _turn2(p: np.ndarray, angle: float) -> np.ndarray:
    """xz points turned about +Y by ``angle`` (the same sense as :func:`.frames.rotate_about_y`)."""
    c, s = math.cos(angle), math.sin(angle)
    return np.stack([c * p[..., 0] + s * p[..., 1], -s * p[..., 0] + c * p[..., 1]], axis=-1)


def decode_candidate(ws, take: Take, latents: np.ndarray, first: int, last: int, start: int, end: int,
                     take_joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frames [start, end) of the take with latents [first, last) replaced: (rotations, root) on the take's
    skeleton, placed where the take's motion before the range is."""
    from ..io.motion_file import body_motion_from_joints
    from ..kinematics import project_to_skeleton

    lo, hi = max(0, first - CONTEXT_LATENTS), min(take.tokens.shape[0], last + CONTEXT_LATENTS)
    local = np.concatenate([take.tokens[lo:first], latents, take.tokens[last:hi]])
    joints = features_to_joints(ws.decode_features(local))
    offset = lo * FRAMES_PER_LATENT
    before = np.arange(offset, start)
    anchor = before if before.size >= 4 else np.arange(end, min(end + 16, take.num_frames, offset + joints.shape[0]))
    ours = joints[anchor - offset].reshape(-1, 3)
    theirs = take_joints[anchor].reshape(-1, 3)
    angle, shift = _align_planar(ours[:, [0, 2]], theirs[:, [0, 2]])
    placed = joints[start - offset:end - offset].copy()
    placed = rotate_about_y(angle, placed)
    placed[..., [0, 2]] += shift
    placed[..., 1] += float((theirs[:, 1] - rotate_about_y(angle, ours)[:, 1]).mean())
    skeleton = take.skeleton.subset(BODY_JOINTS)
    body = body_motion_from_joints(project_to_skeleton(placed, skeleton), take.fps, skeleton=skeleton)
    rotations = take.rotations[start:end].copy()
    rotations[:, :BODY_JOINTS] = body.rotations
    return rotations, body.root_translation


def _calm_seams(take_speed: np.ndarray, start: int, end: int, take: Take) -> tuple[int, int]:
    """The snapped range with each inner end moved (at most :data:`.seams.SEAM_REACH_S`) to where the take
    moves calmly, keeping at least one second of range."""
    reach = int(round(SEAM_REACH_S * take.fps))
    keep = int(take.fps)
    if start > 0:
        start = calm_seam(take_speed, start, reach, 1, max(1, end - keep))
    if end < take.num_frames:
        end = calm_seam(take_speed, end, reach, min(start + keep, take.num_frames - 1), take.num_frames - 1)
    return start, end


def end_mismatch(take: Take, take_joints: np.ndarray, rotations: np.ndarray, root: np.ndarray, end: int) -> float:
    """How far a candidate's last pose is from the take's pose after the range (pelvis-relative, facing +Z;
    mean joint distance in metres, plus the difference in velocity over a frame)."""
    if end >= take.num_frames:
        return 0.0
    from ..kinematics import forward_kinematics

    last = forward_kinematics(rotations[-2:], root[-2:], take.skeleton)[:, :BODY_JOINTS]
    mine = dancer_frame_joints(last, facing_yaw(rotations[-2:, 0]))
    nxt = slice(end, min(end + 2, take.num_frames))
    theirs = dancer_frame_joints(take_joints[nxt], facing_yaw(take.rotations[nxt, 0]))
    pose = float(np.linalg.norm(mine[-1] - theirs[0], axis=-1).mean())
    vel = float(np.linalg.norm((mine[-1] - mine[0]) - (theirs[-1] - theirs[0]), axis=-1).mean()) if len(theirs) > 1 else 0
    return pose + vel


def regenerate_range(take: Take, music, start_s: float, end_s: float, weights, *, seed: int | None = None,
                     sampling=None, library=None, references="auto", keys: list[KeyPose] = (),
                     candidates: int = CANDIDATES,
                     backend: str = "auto", device: str = "cpu", cancel=None) -> tuple[Take, dict]:
    """A new take with the range [start_s, end_s) (seconds in the song, snapped to bars or beats)
    regenerated; the report has ``range_frames`` (the range replaced: the snapped one, ``snapped_frames``, with
    each end moved at most 0.2 s to where the take moves calmly), the candidates' end mismatches, the
    seam measures and the key errors. ``references``: "auto" (retrieved from ``library``) or pinned clip names
    of it, as Generate takes them."""
    from ..sampling import SamplingConfig

    t0 = time.perf_counter()
    if take.tokens.shape[0] * FRAMES_PER_LATENT < take.num_frames:
        raise EditError("this take has no dance tokens for its whole length (an edited or imported motion): "
                        "regenerate a range of a generated take")
    song = _song_key(music)
    span = take.span_s
    if not (span[0] - 1e-6 <= start_s and end_s <= span[1] + 1e-6):
        raise EditError(f"the range {start_s:.2f}-{end_s:.2f} s is outside the music the take dances to "
                        f"({span[0]:.2f}-{span[1]:.2f} s)")
    ws = _weights(str(weights), backend, device)
    samples, sr, cut, raw, feats, query = _music(song, str(weights), backend, device, float(span[0]),
                                                 float(span[1]))
    grid = (grid_from_rhythm(raw, cut, sr) if ws.music_frontend == "rhythm" else
            music_grid(samples, sr, span[0], span[1], key=song))
    snapped = snap_range(grid, take.frame_of(start_s), take.frame_of(end_s), take.num_frames)
    take_joints = take.joints()
    take_jerk = frame_jerk(take_joints, take.fps)
    unit = snapped[2]
    start, end = _calm_seams(frame_speed(take_joints, take.fps), snapped[0], snapped[1], take)
    for k in keys:
        if not 0 <= k.frame < take.num_frames:
            raise EditError(f"the key pose at frame {k.frame} is outside the take (frames 0-{take.num_frames - 1})")
    notes: list[str] = []
    if (start, end) != snapped[:2]:
        notes.append(f"the range's ends moved from the {unit[:-1]} lines (frames {snapped[0]}-{snapped[1]}) to frames "
                     f"{start}-{end}, where the take moves more calmly (at most {SEAM_REACH_S:.1f} s): a seam in the "
                     "middle of a fast move joins abruptly")
    provider = _provider(ws, take, library, references, query, notes)
    sampling = sampling or SamplingConfig(**take.params.get("sampling", {}))
    first, last = start // FRAMES_PER_LATENT, min(take.tokens.shape[0], -(-end // FRAMES_PER_LATENT))
    margin = margin_frames(end - start, take.fps)
    lo, hi = max(0, start - margin - int(take.fps)), min(take.num_frames, end + margin + int(take.fps))
    jerk_p99 = float(np.percentile(take_jerk, 99))
    t1 = time.perf_counter()
    base_seed = take.seed + 1 if seed is None else int(seed)
    scored = []
    for c in range(max(1, candidates) + EXTRA_CANDIDATES):
        if c >= candidates and min(sc[5] for sc in scored) <= SMOOTH_ENOUGH:
            break
        latents = sample_range(ws, take, feats, provider, first, last, base_seed + c, sampling, cancel)
        rotations, root = decode_candidate(ws, take, latents, first, last, start, end, take_joints)
        if end < take.num_frames:
            rotations[:, 0], root, _ = close_gap(rotations[:, 0], root, take.rotations[end, 0], take.root[end])
        mismatch = end_mismatch(take, take_joints, rotations, root, end)
        # the seam measure itself decides, then how well the end matches, then the key poses (all measured on
        # the range and a second around it, not the whole take)
        probe_rot, probe_root = splice(take.rotations[lo:hi], take.root[lo:hi], rotations, root, start - lo, margin)
        probe = Take(probe_rot, probe_root, take.skeleton, take.tokens[:0], take.span_s, fps=take.fps)
        seams = seam_report(take_joints[lo:hi], probe.joints(), [start - lo, end - lo], margin, take.fps,
                            reference=jerk_p99)
        score = seams["seam_jerk_ratio"] + mismatch
        score += sum(KEY_WEIGHT * key_error(probe, k.frame - lo, k.joints, mean_yaw(k.rotations[None, 0]))
                     for k in keys if start <= k.frame < end)
        scored.append((score, c, latents, rotations, root, seams["seam_jerk_ratio"]))
    t2 = time.perf_counter()
    score, best, latents, rotations, root, _ = min(scored, key=lambda s: s[0])
    new_rot, new_root = splice(take.rotations, take.root, rotations, root, start, margin)
    tokens = take.tokens.copy()
    tokens[first:last] = latents
    edit = {"edit": "regenerate", "range_frames": [int(start), int(end)], "seed": int(base_seed + best)}
    new = take.with_motion(new_rot, new_root, edit, tokens=tokens)
    key_report = []
    for k in keys:
        new, _ = hold_key_pose(new, k.frame, k.rotations, source=k.source)
        key_report.append({"frame": int(k.frame), "source": k.source,
                           "error_m": key_error(new, k.frame, k.joints, mean_yaw(k.rotations[None, 0]))})
    seams = seam_report(take_joints, new.joints(), [start, end], margin, take.fps, reference=jerk_p99)
    if seams["seam_jerk_ratio"] > ROUGH_SEAM:
        notes.append(f"the smoothest of {len(scored)} candidates still joins the take {seams['seam_jerk_ratio']:.1f}x "
                     "more abruptly than the take's own quickest moves (the dance after the range starts far from "
                     "anything sampled): try another seed, or end the range a bar earlier or later")
    report = {"range_frames": [int(start), int(end)], "snapped_frames": [int(snapped[0]), int(snapped[1])],
              "range_s": [span[0] + start / take.fps, span[0] + end / take.fps], "snapped_to": unit,
              "meter": grid.meter, "candidates": [{"seed": int(base_seed + c), "score": float(s)}
                                                  for s, c, *_ in scored],
              "chosen_seed": int(base_seed + best),
              "seams": seams,
              "keys": key_report, "notes": notes,
              "timings": {"prepare_s": t1 - t0, "candidates_s": t2 - t1, "total_s": time.perf_counter() - t0}}
    return new, report
