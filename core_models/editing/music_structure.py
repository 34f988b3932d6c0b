# SPDX-License-Identifier: GPL-3.0-or-later
"""What an edit needs to know about the music: its beats, its bars when a meter shows, and which bars recur.

All from the 55-d music features at 30 fps (:func:`core_models.audio.music_features_55`: MFCC, chroma, onset
strength and tracked beats), computed once per song span and cached, so that a second edit on the same song
does not analyse it again.

* Meter: the onset strength on the beats, folded by 3 and by 4; the meter is the fold with one clearly
  stronger beat (the downbeat), none when neither stands out.
* Repeats: bars are described by their mean chroma and MFCC; two phrases of ``phrase_bars`` bars that are
  much more alike than the song's phrases on average are suggested as "repeat this phrase there".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import numpy as np

from .take import EditError

METERS = (4, 3)
RHYTHM_ONSET, RHYTHM_BEAT = 0, 2     # columns of :func:`core_models.audio.rhythm_features`
METER_CONTRAST = 0.15        # downbeat onset at least this much above the other beats' (relative)
THREE_OVER_FOUR = 1.5        # three beats to the bar only when that fold is this much clearer than four


@dataclass(frozen=True)
class MusicGrid:
    fps: float
    frames: int                 # music frames of the span (30 fps)
    beats: np.ndarray           # beat frames within the span, ascending
    meter: int | None           # beats per bar, None when no meter shows
    downbeats: np.ndarray       # bar starts (frames); empty without a meter
    cut: np.ndarray = field(repr=False, compare=False)     # the span's samples (mono)
    sr: int = 22050

    @property
    def bars(self) -> np.ndarray:
        return self.downbeats if self.meter else np.zeros(0, np.int64)

    @cached_property
    def features(self) -> np.ndarray:
        """(frames, 55) music features (MFCC, chroma ...): computed only when asked for (repeat suggestions);
        beats and bars come from the quicker rhythm analysis."""
        from ..audio import music_features_55

        feats = music_features_55(self.cut, self.sr, self.fps)
        if feats.shape[0] < self.frames:
            feats = np.concatenate([feats, np.repeat(feats[-1:], self.frames - feats.shape[0], axis=0)])
        return feats[:self.frames]


def find_meter(onset: np.ndarray, beats: np.ndarray) -> tuple[int | None, int]:
    """(beats per bar or None, index of the first downbeat among ``beats``). Four beats to the bar unless
    three is clearly the stronger fold (most dance music is in four; a fold by three of a four-beat song
    can look nearly as good on a few bars)."""
    if beats.size < 8:
        return None, 0
    accent = onset[np.clip(beats, 0, onset.size - 1)]
    folds = {}
    for meter in METERS:
        usable = accent[: accent.size // meter * meter]
        if usable.size < 2 * meter:
            continue
        by_phase = usable.reshape(-1, meter).mean(axis=0)
        phase = int(np.argmax(by_phase))
        others = np.delete(by_phase, phase).mean()
        folds[meter] = (phase, (by_phase[phase] - others) / max(float(usable.mean()), 1e-9))
    if not folds:
        return None, 0
    meter = 4 if 4 in folds and not (3 in folds and folds[3][1] > THREE_OVER_FOUR * folds[4][1]) else 3
    phase, contrast = folds[meter]
    return (meter, phase) if contrast >= METER_CONTRAST else (None, 0)


@lru_cache(maxsize=8)
def _grid_cached(key: tuple, samples_bytes: bytes, sr: int, start_s: float, end_s: float) -> MusicGrid:
    from ..audio import rhythm_features

    samples = np.frombuffer(samples_bytes, np.float32)
    cut = samples[int(round(start_s * sr)):int(round(end_s * sr))]
    return grid_from_rhythm(rhythm_features(cut, sr, 30.0), cut, sr)


def grid_from_rhythm(rhythm: np.ndarray, cut: np.ndarray, sr: int) -> MusicGrid:
    """The grid from rhythm features (T, 7) at 30 fps of the span's samples ``cut`` (the compact family's
    music input, so an edit reuses what the generator needed anyway)."""
    beats = np.flatnonzero(rhythm[:, RHYTHM_BEAT] > 0)
    meter, first = find_meter(rhythm[:, RHYTHM_ONSET], beats)
    downbeats = beats[first::meter] if meter else np.zeros(0, np.int64)
    return MusicGrid(30.0, rhythm.shape[0], beats, meter, downbeats, np.asarray(cut, np.float32), int(sr))


def music_grid(samples: np.ndarray, sr: int, start_s: float, end_s: float, key=None) -> MusicGrid:
    """Beats, bars and features of the song span [start_s, end_s) (frames counted from ``start_s``).
    ``key`` identifies the song for the cache (e.g. its path and modification time)."""
    samples = np.ascontiguousarray(samples, np.float32)
    if samples.ndim > 1:
        samples = samples.mean(axis=1).astype(np.float32)
    return _grid_cached((key, samples.size, sr), samples.tobytes(), int(sr), float(start_s), float(end_s))


def snap_range(grid: MusicGrid, start: int, end: int, take_frames: int) -> tuple[int, int, str]:
    """A frame range snapped to the nearest bar lines (beats when no meter was found); what it snapped to."""
    if end <= start:
        raise EditError("the range ends before it starts: give START before END")
    if start < 0 or end > take_frames:
        raise EditError(f"the range {start}-{end} (frames) is outside the take (0-{take_frames}): choose a range "
                        "inside the music the take dances to")
    marks, unit = (grid.bars, "bars") if grid.meter else (grid.beats, "beats")
    marks = np.concatenate([[0], marks[(marks > 0) & (marks < take_frames)], [take_frames]]).astype(np.int64)
    if grid.beats.size >= 2:
        beat = float(np.median(np.diff(grid.beats)))
        if end - start < 0.9 * beat:
            raise EditError(f"the range is {(end - start) / grid.fps:.2f} s long, shorter than one beat "
                            f"({beat / grid.fps:.2f} s): choose at least one beat")
    s = int(marks[np.argmin(np.abs(marks - start))])
    e = int(marks[np.argmin(np.abs(marks - end))])
    if e <= s:                       # both ends snapped to one mark: keep the nearest span of marks around it
        later = marks[marks > s]
        e = int(later[0]) if later.size else take_frames
    if s == 0 and e >= take_frames:
        raise EditError("the range covers the whole take: that is a new Generate, not a regenerated range; choose "
                        "a part of the take")
    return s, e, unit if grid.meter or grid.beats.size else "frames"


def bar_descriptors(grid: MusicGrid) -> np.ndarray:
    """(bars, 32) mean chroma and MFCC of each bar, each part scaled to unit length."""
    from ..audio import MUSIC55_COLUMNS

    chroma = grid.features[:, MUSIC55_COLUMNS["chroma"]]
    mfcc = grid.features[:, MUSIC55_COLUMNS["mfcc"]]
    edges = np.concatenate([grid.bars, [grid.frames]]).astype(int)
    rows = []
    for a, b in zip(edges[:-1], edges[1:]):
        if b - a < 2:
            continue
        c, m = chroma[a:b].mean(0), mfcc[a:b].mean(0)
        m = m - mfcc.mean(0)
        rows.append(np.concatenate([c / max(np.linalg.norm(c), 1e-9), m / max(np.linalg.norm(m), 1e-9)]))
    return np.asarray(rows).reshape(-1, 32)


def suggest_repeats(grid: MusicGrid, phrase_bars: int = 2, count: int = 4) -> list[dict]:
    """Phrases whose music comes back later: [{"from_s": (start, end), "at_s": start, "score"}] (seconds from
    the span start), best first, targets not overlapping. Empty without a meter."""
    if not grid.meter or grid.bars.size < 2 * phrase_bars + 1:
        return []
    desc = bar_descriptors(grid)
    n = desc.shape[0] - phrase_bars + 1
    if n < 2:
        return []
    phrase = np.stack([desc[i:i + phrase_bars].reshape(-1) for i in range(n)]) / np.sqrt(2 * phrase_bars)
    sim = phrase @ phrase.T
    pairs = [(sim[i, j], i, j) for i in range(n) for j in range(i + phrase_bars, n)]
    if not pairs:
        return []
    scores = np.array([p[0] for p in pairs])
    threshold = scores.mean() + scores.std()
    taken: list[tuple[int, int]] = []
    out = []
    bars = np.concatenate([grid.bars, [grid.frames]])
    for score, i, j in sorted(pairs, reverse=True):
        if score < threshold or len(out) >= count:
            break
        if any(not (j + phrase_bars <= a or b <= j) for a, b in taken):
            continue
        taken.append((j, j + phrase_bars))
        out.append({"from_s": [float(bars[i] / grid.fps), float(bars[i + phrase_bars] / grid.fps)],
                    "at_s": float(bars[j] / grid.fps), "score": float(score)})
    return out
