# SPDX-License-Identifier: GPL-3.0-or-later
"""Window plans for generating whole songs with ChoreoLLaMA (token bookkeeping only, no model).

Units: 3 tokens (one per RVQ layer) = 1 latent = 4 motion frames at 30 fps. A window is ``dance_length``
tokens (288 = 12.8 s) conditioned on ``music_length`` music frames covering the same time.

``official`` reproduces the release: N = floor(0.9 T_m) target tokens (MuQ at 25 Hz), windows every 192
tokens, each window after the first is prefixed with tokens [len-96, len-36) of the sequence so far and
only its last 192 tokens are kept (it regenerates 36 tokens and discards them); the tail of the song
beyond the last full window is not generated.

``full`` (default) covers the song to its last frame without discarding anything: every window after the
first is prefixed with the last ``prefix`` tokens generated so far and appends everything it generates;
the last window generates only what is still missing and starts early enough (with a longer prefix) that
its music ends with the song, tokens and music aligned.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .motion import MOTION_FPS

TOKENS_PER_LATENT = 3
FRAMES_PER_LATENT = 4


@dataclass(frozen=True)
class Window:
    index: int
    music_start: int          # first music frame of the window's music slice
    music_end: int            # exclusive; slices shorter than music_length are tiled by the caller
    prefix_from: int | None   # tokens [prefix_from, prefix_to) of the sequence so far; None in the first
    prefix_to: int | None     # window, whose prefix (``first_prefix`` tokens, maybe 0) is retrieved
    new_tokens: int           # tokens to sample after the prefix
    keep_from: int            # index within (prefix + new) from which tokens are appended
    retrieval_index: int      # which retrieval window conditions this generation window


def tokens_for_frames(frames: int) -> int:
    """Tokens needed to decode at least ``frames`` motion frames."""
    return math.ceil(frames / FRAMES_PER_LATENT) * TOKENS_PER_LATENT


def music_frames_per_token(music_fps: float) -> float:
    return music_fps * FRAMES_PER_LATENT / (TOKENS_PER_LATENT * MOTION_FPS)


def official_plan(music_frames: int, first_prefix: int = 60, dance_length: int = 288, overlap: int = 96,
                  prefix: int = 60, music_length: int = 320) -> tuple[list[Window], int]:
    """The release's windows for MuQ features of ``music_frames`` (25 Hz); returns (windows, total tokens).

    ``first_prefix``: length of the retrieved top-1 token prefix (60, or 0 when none was found); the
    release keeps those reference tokens as the start of the dance.
    """
    target = int(math.floor(0.9 * music_frames))
    step = dance_length - overlap
    count = max(1, (target - dance_length) // step + 1)
    windows = []
    for w in range(count):
        ds = step * w
        start = (10 * ds) // 9
        end = min((10 * (ds + dance_length)) // 9, music_frames)
        if w == 0:
            windows.append(Window(0, start, end, None, None, dance_length - first_prefix, 0, start // music_length))
        else:
            length = dance_length + step * (w - 1)            # sequence length before this window
            windows.append(Window(w, start, end, length - overlap, length - overlap + prefix,
                                  dance_length - prefix, overlap, start // music_length))
    return windows, dance_length + step * (count - 1)


def full_plan(motion_frames: int, music_fps: float, music_frames: int, first_prefix: int = 0,
              dance_length: int = 288, prefix: int = 60, music_length: int | None = None,
              retrieval_stride_s: float = 6.4) -> tuple[list[Window], int]:
    """Windows covering ``motion_frames`` (30 fps) completely; returns (windows, total tokens).

    A retrieved first prefix (``first_prefix`` tokens) is context only: it is not part of the dance.
    """
    if motion_frames < 1:
        raise ValueError("nothing to generate: the music is shorter than one motion frame")
    if prefix % TOKENS_PER_LATENT or dance_length % TOKENS_PER_LATENT or not 0 <= prefix < dance_length:
        raise ValueError(f"prefix ({prefix}) and window ({dance_length}) must be multiples of 3, prefix < window")
    per_token = music_frames_per_token(music_fps)
    music_length = music_length or round(dance_length * per_token)
    total = tokens_for_frames(motion_frames)
    windows, have = [], 0
    while have < total:
        if not windows:
            used_prefix = first_prefix
            new = min(dance_length - first_prefix, total)
            music_start = 0
        else:
            token_start = have - prefix
            if round(token_start * per_token) + music_length > music_frames >= music_length:
                # The last window: start it earlier (a longer prefix from what exists) so that its music
                # ends with the song while tokens and music stay aligned.
                latest = int((music_frames - music_length) / per_token) // TOKENS_PER_LATENT * TOKENS_PER_LATENT
                # (never so early that the window could not reach the last token)
                token_start = min(token_start, max(latest, total - dance_length))
            used_prefix = have - token_start
            new = min(dance_length - used_prefix, total - have)
            music_start = int(round(token_start * per_token))
        music_end = min(music_start + music_length, music_frames)   # a short slice is tiled by the caller
        seconds = music_start / music_fps
        windows.append(Window(len(windows), music_start, music_end,
                              None if not windows else have - used_prefix, None if not windows else have,
                              new, used_prefix, int(seconds // retrieval_stride_s)))
        have += new
    return windows, total
