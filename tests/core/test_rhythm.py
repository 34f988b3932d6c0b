# SPDX-License-Identifier: GPL-3.0-or-later
"""core_models.rhythm against librosa 0.11.0, the reference it reproduces, and rhythm_features without librosa.

Each test signal goes through librosa's own calls (resample, effects.percussive, onset.onset_strength with
median aggregation, beat.beat_track, feature.tempogram) and through ours; the onset envelope, the beats,
tempogram bin 0 and the 7 rhythm features must agree (they agree bit for bit today; the tolerances are
those the rhythm features need).
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core_models import audio, rhythm

librosa = pytest.importorskip("librosa")

SR = 15360                      # the analysis rate at 30 fps (one 512-sample hop per motion frame)
MUSIC_DIR = Path("/work/shared/data/music")
MUSIC = sorted(MUSIC_DIR.glob("*.ogg")) if MUSIC_DIR.is_dir() else []
ONSET_RTOL = 1e-4               # of the envelope's peak
TEMPOGRAM_ATOL = 1e-5
FEATURE_ATOL = 1e-4


def _reference(samples: np.ndarray, sr: int) -> dict:
    """What the rhythm features were computed from before core_models.rhythm: librosa throughout."""
    y = np.asarray(samples, dtype=np.float32)
    if sr != SR:
        y = librosa.resample(y, orig_sr=sr, target_sr=SR).astype(np.float32)
    onset = librosa.onset.onset_strength(y=librosa.effects.percussive(y), sr=SR, hop_length=512,
                                         aggregate=np.median)
    _, beats = librosa.beat.beat_track(onset_envelope=onset, sr=SR, hop_length=512)
    tg0 = librosa.feature.tempogram(onset_envelope=onset, sr=SR, hop_length=512)[0]
    return {"y": y, "onset": onset, "beats": np.asarray(beats, dtype=np.int64), "tg0": tg0,
            "features": audio.rhythm_from_music55(_feats55(onset, beats, tg0))}


def _feats55(onset, beats, tg0) -> np.ndarray:
    feats = np.zeros((onset.shape[0], 55), np.float32)
    feats[:, audio.MUSIC55_COLUMNS["onset"]] = onset
    feats[beats[beats < onset.shape[0]], audio.MUSIC55_COLUMNS["beat"]] = 1.0
    feats[:, audio.MUSIC55_COLUMNS["tempogram0"]] = tg0
    return feats


def _check_against_librosa(samples: np.ndarray, sr: int) -> dict:
    ref = _reference(samples, sr)
    onset, beats = rhythm.percussive_onset_and_beats(ref["y"], SR)
    tg0 = rhythm.tempogram(onset)[0]
    features = audio.rhythm_features(samples, sr)
    diffs = {"onset_rel": float(np.max(np.abs(onset - ref["onset"])) / max(float(np.max(ref["onset"])), 1e-12)),
             "tempogram0": float(np.max(np.abs(tg0 - ref["tg0"]))),
             "features": float(np.max(np.abs(features - ref["features"])))}
    assert onset.dtype == np.float32 and onset.shape == ref["onset"].shape
    assert diffs["onset_rel"] <= ONSET_RTOL, diffs
    np.testing.assert_array_equal(beats, ref["beats"])
    assert diffs["tempogram0"] <= TEMPOGRAM_ATOL, diffs
    assert features.shape == ref["features"].shape == (onset.shape[0], audio.RHYTHM_DIM)
    assert diffs["features"] <= FEATURE_ATOL, diffs
    np.testing.assert_array_equal(audio.music_beat_frames(samples, sr), ref["beats"])
    return {**diffs, "beats": int(beats.size)}


@pytest.mark.parametrize("path", MUSIC, ids=[p.stem[:24] for p in MUSIC])
def test_real_music_matches_librosa(path):
    samples, sr = audio.load_audio(path)
    start = min(10 * sr, max(0, samples.shape[-1] - 20 * sr))
    result = _check_against_librosa(samples[start:start + 20 * sr], sr)
    assert result["beats"] > 0


@pytest.mark.parametrize("bpm", [90, 128, 175])
def test_click_tracks_match_librosa(bpm):
    result = _check_against_librosa(audio.synth_click_track(bpm, 20.0, sr=22050, offset=0.25), 22050)
    # the clicks' own tempo is found (beats every 60 / bpm s, within the 1/30-s frame grid)
    beats = audio.music_beat_frames(audio.synth_click_track(bpm, 20.0, sr=22050, offset=0.25), 22050)
    assert abs(np.median(np.diff(beats)) - 1800 / bpm) <= 1.0
    assert result["beats"] >= 20 * bpm / 60 - 4


def test_drum_track_matches_librosa():
    beat_frames = np.arange(8, 600, 14)           # ~128.6 bpm
    result = _check_against_librosa(audio.synth_accompaniment(beat_frames, 600, seed=3), SR)
    assert result["beats"] > 30


def test_silence_around_music_matches_librosa():
    drums = audio.synth_accompaniment(np.arange(4, 240, 16), 240, seed=1)
    silence = np.zeros(4 * SR, np.float32)
    result = _check_against_librosa(np.concatenate([silence, drums, silence]), SR)
    assert result["beats"] > 5


def test_two_second_input_matches_librosa():
    _check_against_librosa(audio.synth_click_track(128, 2.0, sr=22050), 22050)
    _check_against_librosa(audio.synth_accompaniment(np.arange(3, 60, 15), 60, seed=2), SR)


def test_intermediates_bit_for_bit():
    """STFT, percussive part, mel filters, tempogram and the beat tracker with a fixed tempo (odd and even
    frames per beat) equal librosa's exactly, so the end results above are not luck."""
    y = audio.synth_accompaniment(np.arange(5, 300, 13), 300, seed=4)
    np.testing.assert_array_equal(rhythm.stft(y), librosa.stft(y))
    np.testing.assert_array_equal(rhythm.percussive(y), librosa.effects.percussive(y))
    np.testing.assert_array_equal(rhythm.mel_filterbank(SR), librosa.filters.mel(sr=SR, n_fft=2048))
    onset = librosa.onset.onset_strength(y=y, sr=SR, hop_length=512, aggregate=np.median)
    np.testing.assert_array_equal(rhythm.onset_strength(y, SR), onset)
    np.testing.assert_array_equal(rhythm.tempogram(onset), librosa.feature.tempogram(onset_envelope=onset, sr=SR))
    assert rhythm.tempo(onset, SR) == float(librosa.feature.tempo(onset_envelope=onset, sr=SR)[0])
    for bpm in (120.0, 1800 / 13, 100.0, 1800 / 25):
        _, ref = librosa.beat.beat_track(onset_envelope=onset, sr=SR, hop_length=512, bpm=bpm)
        np.testing.assert_array_equal(rhythm.beat_track(onset, SR, bpm=bpm)[1], ref)


def test_helpers_match_scipy():
    import scipy.ndimage
    import scipy.signal

    for n in (1, 2, 384, 2048):
        np.testing.assert_array_equal(rhythm.hann(n), scipy.signal.get_window("hann", n, fftbins=True))
    rng = np.random.default_rng(0)
    for shape in ((40, 9), (7, 100)):     # rows shorter than half the kernel repeat their mirror images
        x = rng.random(shape).astype(np.float32).round(1)
        np.testing.assert_array_equal(rhythm.median_filter_rows(x, 31),
                                      scipy.ndimage.median_filter(x, size=(1, 31), mode="reflect"))


def test_silent_envelope_has_no_beats():
    bpm, beats = rhythm.beat_track(np.zeros(100, np.float32), SR)
    assert bpm == 0.0 and beats.size == 0 and beats.dtype == np.int64


def test_rhythm_features_without_librosa_or_numba():
    code = """
import json, sys, time
import numpy as np
from core_models.audio import music_beat_frames, rhythm_features, synth_accompaniment
y = synth_accompaniment(np.arange(6, 300, 15), 300, seed=5)
t = time.perf_counter()
feats = rhythm_features(y, 15360)
beats = music_beat_frames(y, 15360)
print(json.dumps({"shape": feats.shape, "beats": beats.tolist(), "finite": bool(np.isfinite(feats).all()),
                  "loaded": sorted(m for m in sys.modules if m.split('.')[0] in ('librosa', 'numba'))}))
"""
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300,
                         check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["loaded"] == []
    assert result["shape"] == [301, audio.RHYTHM_DIM] and result["finite"]
    assert len(result["beats"]) >= 15
