# SPDX-License-Identifier: GPL-3.0-or-later
import math

import pytest

from core_models.windows import full_plan, official_plan, tokens_for_frames


def _simulate(windows, first_prefix_len=0):
    """Lengths only: apply the plan and return the final token count (first window: retrieved prefix)."""
    length = 0
    for w in windows:
        made = (w.prefix_to - w.prefix_from if w.prefix_from is not None else first_prefix_len) + w.new_tokens
        length += made - w.keep_from
    return length


@pytest.mark.parametrize("seconds", [0.5, 3.0, 12.8, 13.0, 60.0, 187.3, 1200.0])
@pytest.mark.parametrize("first_prefix", [0, 60])
def test_full_plan_covers_every_frame_without_discarding(seconds, first_prefix):
    frames = round(seconds * 30)
    windows, total = full_plan(frames, music_fps=30.0, music_frames=round(seconds * 30), first_prefix=first_prefix)
    assert total == tokens_for_frames(frames) and total % 3 == 0 and total // 3 * 4 >= frames
    assert _simulate(windows, first_prefix_len=first_prefix) == total
    for w in windows:
        assert w.new_tokens > 0 and w.new_tokens % 3 == 0
        assert 0 <= w.music_start < w.music_end <= round(seconds * 30)
        if w.index:
            # a prefix is context, never re-kept; only the last window may take a longer one
            assert w.keep_from == w.prefix_to - w.prefix_from
            assert w.prefix_to - w.prefix_from == 60 or (w is windows[-1] and 60 < w.keep_from < 288)
            assert w.music_start == round(w.prefix_from * 30.0 * 4 / (3 * 30))   # music aligned with tokens
            assert w.keep_from + w.new_tokens <= 288
        else:
            assert w.keep_from == first_prefix
    # windows follow the song: each later window's music starts later
    assert all(b.music_start >= a.music_start for a, b in zip(windows, windows[1:]))


def test_full_plan_music_alignment_muq_rate():
    frames = 30 * 60
    windows, _ = full_plan(frames, music_fps=25.0, music_frames=25 * 60)
    assert windows[0].music_end - windows[0].music_start == 320          # 288 tokens <-> 320 MuQ frames
    assert windows[1].music_start == round((288 - 60) * 10 / 9)          # token 228 <-> music frame 253


def test_official_plan_reproduces_the_release_bookkeeping():
    t_m = 25 * 60                                  # one minute of MuQ frames
    windows, total = official_plan(t_m)
    n = math.floor(0.9 * t_m)                      # 1350 target tokens
    count = max(1, (n - 288) // 192 + 1)
    assert len(windows) == count == 6
    assert total == 288 + 192 * (count - 1) == 1248 <= n
    w1 = windows[1]
    assert (w1.music_start, w1.music_end) == (213, 533)
    assert (w1.prefix_from, w1.prefix_to) == (288 - 96, 288 - 36) and w1.keep_from == 96
    assert w1.new_tokens == 228 and w1.retrieval_index == 213 // 320
    assert windows[0].new_tokens == 228 and windows[0].keep_from == 0          # the 60 retrieved tokens stay
    assert _simulate(windows, first_prefix_len=60) == total
    no_ref, total_no_ref = official_plan(t_m, first_prefix=0)
    assert no_ref[0].new_tokens == 288 and _simulate(no_ref) == total_no_ref == total
    short, total_short = official_plan(100)        # shorter than a window: one window, tiled music
    assert len(short) == 1 and total_short == 288


def test_bad_plans_are_rejected():
    with pytest.raises(ValueError, match="shorter than one motion frame"):
        full_plan(0, 30.0, 0)
    with pytest.raises(ValueError, match="multiples of 3"):
        full_plan(100, 30.0, 100, prefix=10)
