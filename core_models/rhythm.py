# SPDX-License-Identifier: GPL-3.0-or-later
"""Onset strength, tempo, beats and tempogram of music with numpy and scipy only.

The rhythm features the compact model hears were defined with librosa 0.11.0 (its defaults for
``effects.percussive``, ``onset.onset_strength(aggregate=np.median)``, ``beat.beat_track`` and
``feature.tempogram``). Importing librosa compiles numba functions eagerly, which costs many seconds in a
fresh process, so this module computes the same quantities itself: the same formulas, edge rules, dtypes
(float32 spectra, float64 beat scores), FFT library (scipy.fft, librosa's default) and order of
floating-point operations, so the numbers agree with librosa's (bit for bit on every signal
``tests/core/test_rhythm.py`` checks: real music, drums, click tracks, silence around music, 2-s input).
Where an equal result rests on an assumption rather than the same operation, the comment says so.

Nothing here imports librosa or numba. Comments name the librosa function each step follows.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view

N_FFT = 2048
HOP_LENGTH = 512
N_MELS = 128
HPSS_KERNEL = 31          # median filter length of the harmonic/percussive separation
TEMPOGRAM_WIN = 384       # frames of onset envelope per tempogram column
START_BPM = 120.0         # centre of the tempo prior (log-normal, one octave standard deviation)
AC_SIZE_S = 8.0           # seconds of onset envelope the tempo estimate correlates
MAX_TEMPO = 320.0
TIGHTNESS = 100.0         # how strongly the beat tracker holds the tempo
_STFT_BLOCK = 256         # STFT columns per FFT call (bounds the float64 work buffers)


def hann(n: int) -> np.ndarray:
    """Periodic Hann window of length ``n`` (float64), bit for bit scipy.signal.get_window('hann', n):
    the symmetric window over ``n + 1`` points from -pi to pi with the last point dropped."""
    if n <= 1:
        return np.ones(n)
    fac = np.linspace(-np.pi, np.pi, n + 1)
    w = np.zeros(n + 1)
    for k, a in enumerate((0.5, 0.5)):   # scipy's general_cosine with coefficients (0.5, 0.5)
        w += a * np.cos(k * fac)
    return w[:-1]


def _frames(x: np.ndarray, length: int, hop: int) -> np.ndarray:
    """Frames of ``x`` as columns, (length, count), a strided view (no copy)."""
    return sliding_window_view(x, length)[::hop].T


def stft(y: np.ndarray, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH) -> np.ndarray:
    """Centred STFT, complex64 (1 + n_fft // 2, 1 + len(y) // hop_length), Fortran order.

    As librosa.stft with window 'hann' and center=True: the signal is padded by n_fft // 2 zeros on both
    sides (its default pad mode 'constant'), frames are windowed and transformed in float64 (scipy.fft)
    and stored as complex64."""
    y = np.asarray(y, dtype=np.float32)
    window = hann(n_fft)[:, None]
    frames = _frames(np.pad(y, n_fft // 2), n_fft, hop_length)
    out = np.zeros((1 + n_fft // 2, frames.shape[1]), dtype=np.complex64, order="F")
    for start in range(0, frames.shape[1], _STFT_BLOCK):
        stop = start + _STFT_BLOCK
        out[:, start:stop] = scipy.fft.rfft(window * frames[:, start:stop], axis=0)
    return out


def istft(spectrum: np.ndarray, length: int, hop_length: int = HOP_LENGTH) -> np.ndarray:
    """Inverse of :func:`stft`, float32 of ``length`` samples (librosa.istft with length=...).

    Windowed inverse FFTs are overlap-added frame after frame into float32, then divided by the summed
    squared window wherever that sum exceeds the smallest normal float32."""
    n_fft = 2 * (spectrum.shape[0] - 1)
    half = n_fft // 2
    n_frames = min(spectrum.shape[1], int(np.ceil((length + 2 * half) / hop_length)))
    window = hann(n_fft)
    span = n_fft + hop_length * (n_frames - 1)
    buffer = np.zeros(max(span, length + half), dtype=np.float32)
    for start in range(0, n_frames, _STFT_BLOCK):
        stop = min(start + _STFT_BLOCK, n_frames)
        block = window[:, None] * scipy.fft.irfft(spectrum[:, start:stop], n=n_fft, axis=0)
        for j in range(stop - start):
            at = (start + j) * hop_length
            buffer[at:at + n_fft] += block[:, j]
    y = buffer[half:half + length].copy()

    # librosa.filters.window_sumsquare: float32 accumulation, one frame at a time
    win_sq = window ** 2
    wss = np.zeros(span, dtype=np.float32)
    for i in range(n_frames):
        at = i * hop_length
        wss[at:at + n_fft] += win_sq
    wss = wss[half:half + length]
    if wss.size < length:
        wss = np.pad(wss, (0, length - wss.size))
    nonzero = wss > np.finfo(np.float32).tiny
    y[nonzero] /= wss[nonzero]
    return y


def median_filter_rows(x: np.ndarray, size: int) -> np.ndarray:
    """Median over ``size`` neighbours along the last axis, edges mirrored with the edge sample repeated
    (scipy.ndimage.median_filter(mode='reflect') on each row).

    The rows, each padded with its own mirrored edges, are laid end to end and filtered as one 1-D
    signal: scipy's 1-D rank filter is a running double heap, far faster than its N-D path on 2-D input,
    and no window centred on a row's own sample reaches into the next row."""
    from scipy.ndimage import median_filter

    half = size // 2
    padded = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(half, size - 1 - half)], mode="symmetric")
    flat = median_filter(np.ascontiguousarray(padded).reshape(-1), size=size, mode="reflect")
    return flat.reshape(padded.shape)[..., half:half + x.shape[-1]]


def percussive(y: np.ndarray) -> np.ndarray:
    """Percussive part of ``y`` (float32, same length): librosa.effects.percussive with its defaults.

    The magnitude spectrogram is median-filtered along time (harmonic, 31 frames) and along frequency
    (percussive, 31 bins); the percussive soft mask is perc^2 / (perc^2 + harm^2), 0.5 where both are
    zero (librosa.util.softmask with split_zeros, as margins of 1 imply); the masked spectrum keeps the
    original phase and is inverted to the input length."""
    y = np.asarray(y, dtype=np.float32)
    spectrum = stft(y)
    # librosa.magphase
    mag = np.abs(spectrum)
    zeros = mag == 0
    mag_nonzero = mag + zeros
    phase = np.empty_like(spectrum)
    phase.real = spectrum.real / mag_nonzero + zeros
    phase.imag = spectrum.imag / mag_nonzero
    harm = median_filter_rows(mag, HPSS_KERNEL)
    perc = median_filter_rows(mag.T, HPSS_KERNEL).T
    # librosa.util.softmask(perc, harm, power=2, split_zeros=True)
    peak = np.maximum(perc, harm)
    bad = peak < np.finfo(np.float32).tiny
    peak[bad] = 1
    mask = (perc / peak) ** 2.0
    ref = (harm / peak) ** 2.0
    good = ~bad
    mask[good] /= mask[good] + ref[good]
    mask[bad] = 0.5
    return istft((mag * mask) * phase, y.shape[0])


def _hz_to_mel(frequencies):
    """Slaney mel scale: linear below 1 kHz, logarithmic above (librosa.hz_to_mel, htk=False)."""
    frequencies = np.asanyarray(frequencies)
    f_sp = 200.0 / 3
    mels = frequencies / f_sp
    min_log_mel = 1000.0 / f_sp
    logstep = np.log(6.4) / 27.0
    if frequencies.ndim:
        above = frequencies >= 1000.0
        mels[above] = min_log_mel + np.log(frequencies[above] / 1000.0) / logstep
    elif frequencies >= 1000.0:
        mels = min_log_mel + np.log(frequencies / 1000.0) / logstep
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    f_sp = 200.0 / 3
    freqs = f_sp * mels
    min_log_mel = 1000.0 / f_sp
    logstep = np.log(6.4) / 27.0
    above = mels >= min_log_mel
    freqs[above] = 1000.0 * np.exp(logstep * (mels[above] - min_log_mel))
    return freqs


def mel_filterbank(sr: float, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """Triangular Slaney mel filters from 0 Hz to sr/2, area-normalised ('slaney'), float32 (n_mels, bins)
    (librosa.filters.mel defaults)."""
    fmax = float(sr) / 2
    weights = np.zeros((n_mels, 1 + n_fft // 2), dtype=np.float32)
    fft_freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_freqs)
    for i in range(n_mels):
        weights[i] = np.maximum(0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
    weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, np.newaxis]
    return weights


def power_to_db(power: np.ndarray) -> np.ndarray:
    """10 log10 of a power spectrogram (ref 1, floor 1e-10), clipped to 80 dB below its peak
    (librosa.power_to_db defaults)."""
    log_spec = 10.0 * np.log10(np.maximum(1e-10, power))
    return np.maximum(log_spec, log_spec.max() - 80.0)


def onset_strength(y: np.ndarray, sr: float, hop_length: int = HOP_LENGTH) -> np.ndarray:
    """Onset strength envelope, float32 (1 + len(y) // hop_length,): librosa.onset.onset_strength with
    aggregate=np.median.

    The dB mel spectrogram (128 mels, power 2) is differenced over one frame, half-wave rectified, and the
    median over mel bands taken; the envelope is delayed by lag + n_fft // (2 hop) = 3 frames (zeros in
    front) so it lines up with the centred frames, and cut to the spectrogram's frame count."""
    power = np.abs(stft(y, hop_length=hop_length)) ** 2
    mel = np.einsum("...ft,mf->...mt", power, mel_filterbank(sr), optimize=True)
    db = power_to_db(np.abs(mel))
    rise = np.maximum(0.0, db[:, 1:] - db[:, :-1])
    envelope = np.median(rise, axis=-2)
    delay = 1 + N_FFT // (2 * hop_length)
    return np.pad(envelope, (delay, 0))[:db.shape[-1]].astype(np.float32, copy=False)


def tempogram(onset_envelope: np.ndarray, win_length: int = TEMPOGRAM_WIN) -> np.ndarray:
    """Autocorrelation tempogram (win_length lags, frames), float64: librosa.feature.tempogram with
    center=True, window 'hann', norm=inf.

    The envelope is padded by win_length // 2 linear ramps to 0 on each side, each frame windowed and
    autocorrelated by FFT (power spectrum, inverse), and every column divided by its largest magnitude
    (left as is where that is below the smallest normal float64). Bin 0 is lag 0."""
    n = onset_envelope.shape[-1]
    half = win_length // 2
    padded = np.pad(onset_envelope, (half, half), mode="linear_ramp", end_values=[0, 0])
    frames = _frames(padded, win_length, 1)[:, :n] * hann(win_length)[:, None]
    # librosa.autocorrelate along axis -2
    n_pad = scipy.fft.next_fast_len(2 * win_length - 1, real=True)
    spectrum = scipy.fft.rfft(frames, n=n_pad, axis=-2)
    autocorr = scipy.fft.irfft(spectrum.real ** 2 + spectrum.imag ** 2, n=n_pad, axis=-2)[:win_length]
    # librosa.util.normalize(norm=inf, axis=-2)
    length = np.max(np.abs(autocorr).astype(float), axis=-2, keepdims=True)
    length[length < np.finfo(autocorr.dtype).tiny] = 1.0
    out = np.empty_like(autocorr)
    out[:] = autocorr / length
    return out


def tempo(onset_envelope: np.ndarray, sr: float, hop_length: int = HOP_LENGTH) -> float:
    """Global tempo in bpm (librosa.feature.tempo defaults): the 8-s tempogram averaged over time, weighted
    by a log-normal prior around 120 bpm (one octave standard deviation), tempi of 320 bpm and above
    excluded; the bpm of the best lag."""
    win_length = int(int(AC_SIZE_S * sr) // hop_length)
    mean_tg = np.mean(tempogram(onset_envelope, win_length), axis=-1, keepdims=True)
    bpms = np.zeros(win_length, dtype=np.float64)
    bpms[0] = np.inf
    bpms[1:] = 60.0 * sr / (hop_length * np.arange(1.0, win_length))
    with np.errstate(divide="ignore", invalid="ignore"):
        logprior = -0.5 * ((np.log2(bpms) - np.log2(START_BPM)) / 1.0) ** 2
    logprior[:int(np.argmax(bpms < MAX_TEMPO))] = -np.inf
    best = np.argmax(np.log1p(1e6 * mean_tg) + logprior[:, None], axis=-2)
    return float(bpms[int(best[0])])


def beat_track(onset_envelope: np.ndarray, sr: float, hop_length: int = HOP_LENGTH,
               bpm: float | None = None) -> tuple[float, np.ndarray]:
    """Tempo (bpm) and beat frames (int64, ascending) by dynamic programming: librosa.beat.beat_track
    with start_bpm 120, tightness 100, trim=True. ``bpm`` fixes the tempo instead of estimating it.
    An all-zero envelope gives (0.0, no beats)."""
    onset_envelope = np.asarray(onset_envelope)
    if not onset_envelope.any():
        return 0.0, np.array([], dtype=np.int64)
    if bpm is None:
        bpm = tempo(onset_envelope, sr, hop_length)
    if not bpm > 0:
        raise ValueError(f"bpm must be positive, got {bpm}")
    frames_per_beat = float(np.round(float(sr) / hop_length * 60.0 / np.array([bpm], dtype=np.float64))[0])
    # librosa.beat.__normalize_onsets: divide by the sample standard deviation, in the envelope's dtype
    normalised = onset_envelope / (onset_envelope.std(ddof=1, axis=-1, keepdims=True)
                                   + np.finfo(onset_envelope.dtype).tiny)
    localscore = beat_local_score(normalised, frames_per_beat)
    backlink, cumscore = _beat_dp(localscore, frames_per_beat, TIGHTNESS)
    beats = np.zeros(onset_envelope.shape[-1], dtype=bool)
    n = _last_beat(cumscore)
    while n >= 0:
        beats[n] = True
        n = backlink[n]
    return float(bpm), np.flatnonzero(_trim_beats(localscore, beats)).astype(np.int64)


def beat_local_score(onsets: np.ndarray, frames_per_beat: float) -> np.ndarray:
    """The onset envelope smoothed by a Gaussian of width frames_per_beat / 32 (float64), librosa's
    __beat_local_score: a 'same' convolution summed term by term in window order. As there, the first
    frame of the envelope never enters the scores of frames 0 .. frames_per_beat."""
    onsets = np.asarray(onsets, dtype=np.float64)
    fpb = int(frames_per_beat)
    window = [math.exp(-0.5 * ((j * 32.0 / frames_per_beat) ** 2)) for j in range(-fpb, fpb + 1)]
    n = onsets.shape[0]
    size = len(window)
    half = size // 2
    score = np.zeros(n)
    for k, w in enumerate(window):
        lo, hi = max(0, k - half + 1), min(n - 1, n - 1 + k - half)
        if lo <= hi:
            score[lo:hi + 1] += w * onsets[lo + half - k:hi + half - k + 1]
    return score


def _beat_dp(localscore: np.ndarray, frames_per_beat: float, tightness: float) -> tuple[np.ndarray, np.ndarray]:
    """librosa's __beat_track_dp: the best predecessor of every frame between 2 beats and half a beat back
    (the nearest wins ties), penalised by tightness * log(interval / beat)^2; frames before the first
    onset above 1 % of the peak score start no chain."""
    n = localscore.shape[0]
    fpb = frames_per_beat
    near = int(np.round(fpb / 2))
    far = int(2 * fpb)
    log_fpb = math.log(fpb)
    # penalty[d] for an interval of d frames, from near to far (scalar libm logs, as the compiled loop)
    penalty = np.array([tightness * ((math.log(d) - log_fpb) ** 2) for d in range(near, far + 1)])
    threshold = 0.01 * localscore.max()
    backlink = np.full(n, -1, dtype=np.int64)
    cumscore = np.zeros(n)
    first_beat = True
    for i in range(n):
        hi = i - near                       # nearest candidate
        if hi >= 0:
            lo = max(i - far, 0)
            # candidates from the nearest back: cumscore[i - d] - penalty[d], d = near..
            scores = cumscore[hi - np.arange(hi - lo + 1)] - penalty[:hi - lo + 1]
            best = int(np.argmax(scores))
            beat_location = hi - best
            cumscore[i] = localscore[i] + scores[best]
        else:
            beat_location = -1
            cumscore[i] = localscore[i]
        if first_beat and localscore[i] < threshold:
            backlink[i] = -1
        else:
            backlink[i] = beat_location
            first_beat = False
    return backlink, cumscore


def _last_beat(cumscore: np.ndarray) -> int:
    """librosa's __last_beat: the last local maximum of the cumulative score that reaches half the median
    of all its local maxima (the last frame when none does)."""
    peaks = np.zeros(cumscore.shape, dtype=bool)
    peaks[1:-1] = (cumscore[1:-1] > cumscore[:-2]) & (cumscore[1:-1] >= cumscore[2:])
    peaks[-1] = cumscore[-1] > cumscore[-2]
    median = np.ma.median(np.ma.masked_array(data=cumscore, mask=~peaks), axis=-1)
    threshold = 0.5 * np.ma.getdata(median)
    chosen = np.flatnonzero(peaks & (cumscore >= threshold))
    return int(chosen[-1]) if chosen.size else cumscore.shape[0] - 1


def _trim_beats(localscore: np.ndarray, beats: np.ndarray) -> np.ndarray:
    """librosa's __trim_beats with trim=True: frames at either end whose local score is at most half the
    RMS of the Hann-smoothed scores at the beats lose their beat."""
    beats = beats.copy()
    window = np.hanning(5)
    smooth = np.convolve(localscore[beats], window)[len(window) // 2:len(localscore) + len(window) // 2]
    squares = smooth ** 2
    # librosa's compiled loop averages sequentially; its convolution is BLAS dot products, which may round
    # differently by an ulp: a beat could only differ if a frame's score sat within an ulp of the threshold
    threshold = 0.5 * math.sqrt(float(np.add.accumulate(squares)[-1]) / squares.size)
    n = 0                             # (bounded here; librosa's loop would run off an all-low score)
    while n < beats.size and localscore[n] <= threshold:
        beats[n] = False
        n += 1
    n = beats.size - 1
    while n >= 0 and localscore[n] <= threshold:
        beats[n] = False
        n -= 1
    return beats


def percussive_onset_and_beats(y: np.ndarray, sr: float,
                               hop_length: int = HOP_LENGTH) -> tuple[np.ndarray, np.ndarray]:
    """Onset strength of the percussive part of ``y`` and the beat frames tracked on it: the recipe of the
    beat column of the 55-d music features (see ``core_models.audio``)."""
    onset = onset_strength(percussive(y), sr, hop_length)
    return onset, beat_track(onset, sr, hop_length)[1]
