# SPDX-License-Identifier: GPL-3.0-or-later
import numpy as np
import pytest

from core_models.sampling import SamplingConfig, adjust_logits, sample_slot

V = 512


def _gen(seed=0):
    return np.random.default_rng(seed)


def test_seeded_draws_are_reproducible_and_batched():
    logits = _gen(1).standard_normal((4, V)).astype(np.float32)
    hist = _gen(2).integers(0, V, (4, 20))
    cfg = SamplingConfig()
    a = sample_slot(logits, hist, 1, cfg, _gen(7))
    b = sample_slot(logits, hist, 1, cfg, _gen(7))
    assert np.array_equal(a, b) and a.shape == (4,) and a.dtype == np.int64
    assert ((a >= 0) & (a < V)).all()
    # a seed works like a Generator seeded with it
    assert np.array_equal(sample_slot(logits, hist, 1, cfg, 7), a)


def test_top_k_and_top_p_limit_the_candidates():
    logits = np.full((1, V), -10.0)
    logits[0, [5, 9, 11]] = [5.0, 4.0, 3.0]
    empty = np.zeros((1, 0), np.int64)
    draws = {int(sample_slot(logits, empty, 1, SamplingConfig(top_k=2, temperature=1.0, top_p=1.0), _gen(s))[0])
             for s in range(200)}
    assert draws == {5, 9}
    # top_p below the top token's probability keeps only that token
    draws = {int(sample_slot(logits, empty, 1, SamplingConfig(top_k=15, temperature=1.0, top_p=0.5), _gen(s))[0])
             for s in range(50)}
    assert draws == {5}


def test_draw_frequencies_follow_the_softmax():
    logits = np.full((1, V), -1e9)
    logits[0, [1, 2]] = [np.log(3.0), 0.0]                    # p = 0.75, 0.25
    cfg = SamplingConfig(top_k=2, temperature=1.0, top_p=1.0, repetition_penalty=1.0)
    rng = _gen(3)
    draws = np.array([sample_slot(logits, np.zeros((1, 0), np.int64), 1, cfg, rng)[0] for _ in range(4000)])
    assert set(draws) == {1, 2}
    assert abs((draws == 1).mean() - 0.75) < 0.03


def test_repetition_penalty_applies_after_temperature_to_recent_same_slot_ids():
    cfg = SamplingConfig(temperature=2.0, repetition_penalty=1.25, max_repeat_other=100)
    logits = np.zeros((1, V))
    logits[0, 3], logits[0, 4], logits[0, 5] = 4.0, -4.0, 4.0
    hist = np.array([[3, 4] + [7] * 40])                     # 3 and 4 are older than the last 30 entries
    out = adjust_logits(logits, hist, 1, cfg)
    assert out[0, 3] == pytest.approx(2.0) and out[0, 5] == pytest.approx(2.0)
    hist = np.array([[3, 4]])
    out = adjust_logits(logits, hist, 1, cfg)
    assert out[0, 3] == pytest.approx(2.0 / 1.25) and out[0, 4] == pytest.approx(-2.0 * 1.25)
    assert out[0, 5] == pytest.approx(2.0)


def test_max_repeat_ban_counts_occurrences_in_the_recent_window():
    cfg = SamplingConfig(repetition_penalty=1.0, ngram_slot0=0)
    logits = np.zeros((1, V))
    hist = np.array([[9, 9, 1, 2, 1, 3, 1, 4, 1, 1, 1, 5, 1, 6, 1]])   # id 1 eight times in the last 13
    assert np.isneginf(adjust_logits(logits, hist, 0, cfg)[0, 1])      # slot 0: max 8 in last 13
    assert not np.isneginf(adjust_logits(logits, hist, 1, cfg)[0, 1])  # other slots: max 16


def test_ngram_block_bans_the_continuation_of_a_repeated_context():
    cfg = SamplingConfig(repetition_penalty=1.0, ngram_slot0=3, max_repeat_slot0=100)
    logits = np.zeros((1, V))
    hist = np.array([[10, 11, 12, 40, 10, 11]])               # context (10, 11) was followed by 12
    out = adjust_logits(logits, hist, 0, cfg)
    assert np.isneginf(out[0, 12]) and np.isfinite(out[0, 40])
    assert np.isfinite(adjust_logits(logits, hist, 1, cfg)[0, 12])      # slot 0 only


def test_temperature_boost_when_slot0_collapses():
    cfg = SamplingConfig(temperature=1.0, temperature_boost=2.0, repetition_penalty=1.0, max_repeat_slot0=100,
                         ngram_slot0=0)
    logits = np.full((2, V), 3.0)
    hist = np.array([[1, 1, 2, 1, 2, 1], [1, 2, 3, 4, 5, 6]])
    out = adjust_logits(logits, hist, 0, cfg)
    assert out[0, 0] == pytest.approx(1.5) and out[1, 0] == pytest.approx(3.0)


def test_everything_banned_draws_uniformly_within_the_slot():
    logits = np.full((3, V), -np.inf)
    out = sample_slot(logits, np.zeros((3, 0), np.int64), 1, SamplingConfig(), _gen(0))
    assert ((out >= 0) & (out < V)).all()
    draws = np.concatenate([sample_slot(logits, np.zeros((3, 0), np.int64), 1, SamplingConfig(), _gen(s))
                            for s in range(100)])
    assert len(set(draws.tolist())) > 100                       # spread over the slot, not one id


def test_bad_config_is_rejected():
    for kwargs in ({"temperature": 0}, {"top_k": 0}, {"top_p": 0.0}, {"top_p": 1.5}):
        with pytest.raises(ValueError):
            SamplingConfig(**kwargs)
