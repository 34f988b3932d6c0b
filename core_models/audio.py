# SPDX-License-Identifier: GPL-3.0-or-later
"""Audio loading, music beats on the motion's frame grid, and a synthetic click track.

Music beats follow the recipe of the beat column of the InfiniteDance / Bailando 55-d music feature:
the audio is resampled to ``sr = fps * 512`` and analysed with hop 512, so one feature frame is one motion
frame (15360 Hz and 30 frames per second for the core rate); the onset envelope is the onset strength of the
percussive part (HPSS) with median aggregation, and ``librosa.beat.beat_track`` on that envelope gives the
beat frames. The beat frames are therefore directly motion-frame indices at ``fps``.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

HOP_LENGTH = 512  # one analysis frame per motion frame when sr = fps * HOP_LENGTH
_SILENCE_PEAK = 1e-4  # peak amplitude (full scale 1.0) below which a signal counts as silent (-80 dBFS)


class AudioFileError(ValueError):
    """An audio file that cannot be used as it is (not audio, damaged, cut short); the message says what
    the file is and what to do."""


_SUPPORTED = "choose a music file (WAV, FLAC, OGG or MP3)"
_TRUNCATION_LOG = ("should be", "ended unexpectedly", "lacks an end-of-stream", "lost sync", "truncated",
                   "unexpected end")
_SHORT_BY_S = 0.25       # a container that promises this much more than decodes is cut short


def load_audio(path: str | os.PathLike, sr: int | None = None) -> tuple[np.ndarray, int]:
    """Decode an audio file to mono float32 samples in [-1, 1].

    ``sr=None`` keeps the file's own sample rate; otherwise the signal is resampled to ``sr``.
    Returns ``(samples, sample_rate)``. Raises ``FileNotFoundError`` for a missing file and
    :class:`AudioFileError` (a ``ValueError``) for an empty file, a file that is not audio (saying what it
    is: text, an image, a BVH...), one no decoder can read, one cut short (its container promises more than
    decodes, an Ogg stream without its end, a decoder reporting lost sync) or a signal without samples.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file '{path}' does not exist; choose an existing WAV, FLAC, OGG or MP3 file")
    if path.stat().st_size == 0:
        raise AudioFileError(f"audio file '{path}' is empty (0 bytes); export the music again or choose another file")
    if sr is not None and (not np.isfinite(sr) or sr <= 0):
        raise ValueError(f"sample rate must be a positive number, got {sr}")
    with open(path, "rb") as f:
        head = f.read(64)
    container, other = _sniff(head)
    if other:
        raise AudioFileError(f"'{path}' cannot be decoded as sound: it is not audio but {other}. "
                             f"{_SUPPORTED[0].upper()}{_SUPPORTED[1:]}")

    samples, native_sr = _decode(path, container)
    if samples.size == 0:
        raise AudioFileError(f"audio file '{path}' decodes to no samples; it holds no audio (an empty export, or "
                             f"a file cut short before its first sound): {_SUPPORTED}")
    if not np.all(np.isfinite(samples)):
        raise AudioFileError(f"audio file '{path}' decodes to NaN/inf samples; re-export it as 16-bit WAV")
    if sr is not None and int(sr) != native_sr:
        import librosa

        samples = librosa.resample(samples, orig_sr=native_sr, target_sr=int(sr))
        native_sr = int(sr)
    return np.ascontiguousarray(samples, dtype=np.float32), int(native_sr)


def _sniff(head: bytes) -> tuple[str | None, str | None]:
    """(audio container, None) from a file's first bytes, (None, what it is) for a file that is clearly
    something else, (None, None) when unknown (the decoders decide)."""
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "WAV", None
    for magic, name in ((b"fLaC", "FLAC"), (b"OggS", "Ogg"), (b"ID3", "MP3"), (b"caff", "CAF"), (b".snd", "AU"),
                        (b"wvpk", "WavPack"), (b"MThd", None)):
        if head.startswith(magic):
            return (name, None) if name else (None, "a MIDI file (notes, not sound): render it to WAV first")
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "AIFF", None
    if head[4:8] == b"ftyp":
        return "MP4/M4A", None
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "MPEG audio", None
    others = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
              (b"%PDF", "a PDF document"), (b"PK\x03\x04", "a ZIP archive (or a .npz / office file)"),
              (b"\x1f\x8b", "a gzip archive"), (b"BLENDER", "a Blender .blend file"), (b"\x7fELF", "a program"),
              (b"MZ", "a Windows program"), (b"\x93NUMPY", "a NumPy array (.npy)"), (b"7z\xbc\xaf", "a 7-Zip archive"),
              (b"Kaydara FBX", "an FBX scene"), (b"\x80\x04", "a Python pickle"), (b"\x80\x02", "a Python pickle"))
    for magic, what in others:
        if head.startswith(magic):
            return None, what
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = head[:exc.start].decode("utf-8") if exc.start >= len(head) - 3 else None
    if text is not None and text.strip() and all(c.isprintable() or c in "\t\r\n" for c in text):
        first = text.strip()
        kind = ("a BVH motion file" if first.upper().startswith("HIERARCHY") else
                "a web page or XML document (a download that saved an error page?)" if first.startswith("<") else
                "a JSON file" if first[0] in "{[" else "a text file")
        return None, f"{kind} (it starts with '{first.splitlines()[0][:40]}')"
    return None, None


def _decode(path: Path, container: str | None) -> tuple[np.ndarray, int]:
    """libsndfile first (WAV/FLAC/OGG/AIFF, MP3 with libsndfile >= 1.1), with checks that the file is
    complete; librosa's audioread fallback second."""
    import soundfile

    try:
        handle = soundfile.SoundFile(str(path))
    except Exception as sndfile_error:  # not a format libsndfile knows: try the slower fallback
        return _decode_fallback(path, container, sndfile_error)
    blocks, failure = [], None
    with handle:
        declared, native_sr = handle.frames, int(handle.samplerate)
        try:
            while True:
                block = handle.read(1 << 16, dtype="float32", always_2d=True)
                if not len(block):
                    break
                blocks.append(block.mean(axis=1))
        except Exception as exc:         # a decoder that loses its way part-way (FLAC lost sync, ...)
            failure = exc
        log = handle.extra_info
    samples = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    what = container or handle.format
    got = samples.size / native_sr
    if failure is not None:
        if not samples.size:
            raise AudioFileError(f"audio file '{path}' ({what}) cannot be decoded ({failure}); the file is damaged: "
                                 f"get it again or re-export it ({_SUPPORTED})") from failure
        promised = f"its header says {declared / native_sr:.1f} s; " if 0 < declared < 1 << 62 else ""
        raise _cut_short(path, what, got, f"{promised}decoding stops with '{str(failure).strip()[:80]}'")
    promised = max(declared if declared < 1 << 62 else 0, _wav_declared_frames(path) if what == "WAV" else 0)
    if promised / native_sr - got > _SHORT_BY_S:
        raise _cut_short(path, what, got, f"its header says {promised / native_sr:.1f} s")
    if what == "Ogg" and not _ogg_ends_cleanly(path):
        raise _cut_short(path, what, got, "its last Ogg page is incomplete or lacks the end-of-stream mark")
    hints = [line.strip() for line in log.splitlines() if any(k in line.lower() for k in _TRUNCATION_LOG)]
    if hints and what != "WAV":
        raise _cut_short(path, what, got, f"the decoder reports '{hints[0][:80]}'")
    return samples, native_sr


def _cut_short(path: Path, what: str, got: float, why: str) -> AudioFileError:
    return AudioFileError(f"audio file '{path}' ({what}) is cut short: {why}, but only {got:.1f} s decode. It looks "
                          "like an interrupted download or copy: get the complete file again or re-export it "
                          "(Choreo will not dance to a fragment without telling you)")


def _decode_fallback(path: Path, container: str | None, sndfile_error: Exception) -> tuple[np.ndarray, int]:
    try:
        import librosa

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # librosa warns that the audioread fallback is deprecated
            data, file_sr = librosa.load(str(path), sr=None, mono=True)
        return np.asarray(data, dtype=np.float32), int(file_sr)
    except Exception as fallback_error:
        if container is None:
            raise AudioFileError(f"'{path}' cannot be decoded: it is not a recognised audio file (it starts with bytes "
                                 f"{path.read_bytes()[:8].hex(' ')}); {_SUPPORTED}") from fallback_error
        detail = "; ".join(str(e).strip() for e in (sndfile_error, fallback_error) if str(e).strip())
        raise AudioFileError(f"audio file '{path}' looks like {container} but cannot be decoded ({detail[:160]}); "
                             "it may be damaged or use a codec Choreo cannot read: convert it to WAV, FLAC or OGG "
                             "and try again") from fallback_error


def _wav_declared_frames(path: Path) -> int:
    """Frames the WAV's own 'data' chunk header promises (0 when unknown: streamed WAVs write 0 or 0xFFFFFFFF)."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    pos, align = 12, 0
    while pos + 8 <= len(head):
        tag, size = head[pos:pos + 4], int.from_bytes(head[pos + 4:pos + 8], "little")
        if tag == b"fmt " and pos + 22 <= len(head):
            align = int.from_bytes(head[pos + 20:pos + 22], "little")
        if tag == b"data":
            return size // align if align and 0 < size < 0xFFFFFFFF else 0
        pos += 8 + size + (size & 1)
    return 0


def _ogg_ends_cleanly(path: Path) -> bool:
    """Whether the last Ogg page is whole and carries the end-of-stream flag (a cut file loses both)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(max(0, size - (1 << 16)))
        tail = f.read()
    at = tail.rfind(b"OggS")
    while at >= 0:
        page = tail[at:]
        if len(page) >= 27 and page[4] == 0:                   # stream structure version 0: a page header
            segments = page[26]
            if len(page) < 27 + segments:
                return False
            length = 27 + segments + sum(page[27:27 + segments])
            return bool(page[5] & 0x04) and length <= len(page)
        at = tail.rfind(b"OggS", 0, at)
    return False


def _analysis_signal(samples: np.ndarray, sr: int, fps: float, purpose: str) -> tuple[np.ndarray, int]:
    """Validated mono float32 signal resampled to ``fps * 512`` Hz (one hop per motion frame)."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 2:  # (channels, n) as librosa returns for mono=False
        samples = samples.mean(axis=0)
    if samples.ndim != 1:
        raise ValueError(f"samples must be a 1-D mono signal, got shape {samples.shape}")
    if not np.isfinite(sr) or sr <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    if not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if samples.size == 0:
        raise ValueError(f"the audio signal has no samples; cannot compute {purpose}")
    if not np.all(np.isfinite(samples)):
        raise ValueError(f"the audio signal contains NaN or inf samples; cannot compute {purpose}")
    if float(np.max(np.abs(samples))) < _SILENCE_PEAK:
        raise ValueError(f"the audio is silent (peak below -80 dBFS); {purpose} need music to work from. "
                         "Choose a music file with audible content")
    analysis_sr = int(round(fps * HOP_LENGTH))
    if int(sr) != analysis_sr:
        # soxr directly: the same result as librosa.resample's default (soxr_hq) without its first-call
        # set-up, which costs seconds in a fresh process.
        import soxr

        samples = soxr.resample(samples, int(sr), analysis_sr, quality="HQ").astype(np.float32)
    return samples, analysis_sr


def _onset_and_beats(percussive: np.ndarray, analysis_sr: int) -> tuple[np.ndarray, np.ndarray]:
    import librosa

    onset_envelope = librosa.onset.onset_strength(y=percussive, sr=analysis_sr, hop_length=HOP_LENGTH,
                                                  aggregate=np.median)
    _, beats = librosa.beat.beat_track(onset_envelope=onset_envelope, sr=analysis_sr, hop_length=HOP_LENGTH)
    return onset_envelope, np.asarray(beats, dtype=np.int64)


def music_beat_frames(samples: np.ndarray, sr: int, fps: float = 30) -> np.ndarray:
    """Beat positions as motion-frame indices (int64, ascending) at ``fps``.

    Resamples to ``fps * 512`` Hz, separates the percussive part (HPSS), takes its onset strength
    (hop 512, median aggregation) and tracks beats on that envelope, as ``librosa.beat.beat_track``
    does (computed by :mod:`core_models.rhythm`, without importing librosa). Raises ``ValueError`` for
    an empty, non-finite or silent signal (no beat can be found in silence). A non-silent signal without
    a detectable pulse gives an empty array.
    """
    from . import rhythm

    y, analysis_sr = _analysis_signal(samples, sr, fps, "beats")
    return rhythm.percussive_onset_and_beats(y, analysis_sr, HOP_LENGTH)[1]


MUSIC55_COLUMNS = {"mfcc": slice(0, 20), "mfcc_delta": slice(20, 40), "chroma": slice(40, 52),
                   "onset": 52, "beat": 53, "tempogram0": 54}


def music_features_55(samples: np.ndarray, sr: int, fps: float = 30) -> np.ndarray:
    """The 55-d music features at ``fps`` frames/s (Bailando / InfiniteDance RetrievalNet recipe), (T, 55).

    At sr = fps * 512 with hop 512: MFCC 20 from the dB mel spectrogram (n_fft 2048, 128 mels), their
    deltas (width 3), chroma_cqt 12 of the harmonic part (5 octaves), onset strength of the percussive
    part (median aggregation), a beat one-hot from beat_track on that envelope, and tempogram bin 0;
    trimmed to the shortest, not normalised. Column map in :data:`MUSIC55_COLUMNS`.
    """
    import librosa

    y, analysis_sr = _analysis_signal(samples, sr, fps, "music features")
    mel = librosa.feature.melspectrogram(y=y, sr=analysis_sr, hop_length=HOP_LENGTH)
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel, ref=np.max), n_mfcc=20)
    mfcc_delta = librosa.feature.delta(mfcc, width=3)
    harmonic, percussive = librosa.effects.hpss(y)
    with warnings.catch_warnings():      # tuning estimation warns on percussion-only music; the default is fine
        warnings.filterwarnings("ignore", message="Trying to estimate tuning")
        chroma = librosa.feature.chroma_cqt(y=harmonic, sr=analysis_sr, hop_length=HOP_LENGTH, n_chroma=12,
                                            n_octaves=5)
    onset, beats = _onset_and_beats(percussive, analysis_sr)
    beat_onehot = np.zeros_like(onset)
    beat_onehot[beats[beats < onset.shape[0]]] = 1.0
    tempogram = librosa.feature.tempogram(onset_envelope=onset, sr=analysis_sr, hop_length=HOP_LENGTH)
    blocks = [mfcc, mfcc_delta, chroma, onset[None], beat_onehot[None], tempogram[:1]]
    frames = min(b.shape[1] for b in blocks)
    return np.concatenate([b[:, :frames] for b in blocks], axis=0).T.astype(np.float32)


def synth_click_track(bpm: float, seconds: float, sr: int = 22050, offset: float = 0.0) -> np.ndarray:
    """A metronome: one short decaying click every ``60 / bpm`` seconds from ``offset``, mono float32.

    Each click is a 1.5 kHz tone with a 2 kHz overtone under a 5 ms exponential decay (about 30 ms
    audible), peak 0.9. Click k starts at sample ``round((offset + k * 60 / bpm) * sr)``.
    """
    if not np.isfinite(bpm) or bpm <= 0:
        raise ValueError(f"bpm must be positive, got {bpm}")
    if not np.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    if sr <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    if offset < 0:
        raise ValueError(f"offset must be >= 0 seconds, got {offset}")

    total = int(round(seconds * sr))
    out = np.zeros(total, dtype=np.float64)
    t = np.arange(int(0.04 * sr)) / sr
    click = np.exp(-t / 0.005) * (np.sin(2 * np.pi * 1500 * t) + 0.5 * np.sin(2 * np.pi * 2000 * t))
    click *= 0.9 / np.max(np.abs(click))
    for start_time in np.arange(offset, seconds, 60.0 / bpm):
        start = int(round(start_time * sr))
        stop = min(total, start + click.size)
        out[start:stop] += click[:stop - start]
    return out.astype(np.float32)


MUQ_SAMPLE_RATE = 24000
MUQ_FPS = 25.0             # MuQ-large-msd-iter frames per second (the official code's 10:9 bookkeeping assumes 25)
MUQ_HOP = 240              # mel hop at 24 kHz (100 mel frames/s) ...
MUQ_SUBSAMPLING = 4        # ... then two stride-2 convolutions: 25 frames/s
MUQ_SINGLE_PASS_SECONDS = 300
MUQ_CHUNK_SECONDS = 120    # a whole number of MuQ frames (3,000), so chunked and single-pass counts agree
MUQ_MIN_TAIL_SECONDS = 10  # a shorter last piece joins the one before it (MuQ needs context, not 3 samples)


def muq_frame_count(n_samples: int) -> int:
    """Frames MuQ gives for ``n_samples`` at 24 kHz: its mel spectrogram keeps ``n // 240`` frames (the
    centred STFT's last one is dropped), and each of its two stride-2, padding-1 convolutions rounds up."""
    frames = int(n_samples) // MUQ_HOP
    for _ in range(2):
        frames = (frames + 1) // 2
    return frames


def muq_chunks(n_samples: int) -> list[tuple[int, int]]:
    """Sample ranges MuQ encodes one at a time: the whole song up to ``MUQ_SINGLE_PASS_SECONDS`` (as the release
    does), else ``MUQ_CHUNK_SECONDS`` pieces. Every boundary falls on a whole MuQ frame (960 samples), so the
    pieces' frame counts add up to the single-pass count and frame i always covers [i / 25, (i + 1) / 25) s;
    attention memory stays that of one piece however long the song."""
    n = int(n_samples)
    if n <= MUQ_SINGLE_PASS_SECONDS * MUQ_SAMPLE_RATE:
        return [(0, n)]
    step = MUQ_CHUNK_SECONDS * MUQ_SAMPLE_RATE
    assert step % (MUQ_HOP * MUQ_SUBSAMPLING) == 0
    starts = list(range(0, n, step))
    if n - starts[-1] < MUQ_MIN_TAIL_SECONDS * MUQ_SAMPLE_RATE:
        starts.pop()
    return [(a, b) for a, b in zip(starts, starts[1:] + [n])]


def load_muq(model_dir: str | os.PathLike, device: str = "cpu"):
    """The MuQ encoder from a local copy of ``OpenMuQ/MuQ-large-msd-iter`` (needs the optional ``muq``
    package; nothing is downloaded), in eval mode on ``device``."""
    try:
        from muq import MuQ
    except Exception as exc:     # absent, or present but broken (a torchaudio built for another torch)
        raise RuntimeError("the official weight family needs MuQ music features: install the optional 'muq' "
                           "package (pip install muq) and download OpenMuQ/MuQ-large-msd-iter with "
                           f"weights_fetch.py; the compact family works without it ({type(exc).__name__}: "
                           f"{exc})") from exc
    model_dir = Path(model_dir) if model_dir is not None else None
    if model_dir is None or not model_dir.is_dir():
        raise FileNotFoundError(f"MuQ weights folder '{model_dir}' does not exist; download it with "
                                "'python weights_fetch.py download official'")
    return MuQ.from_pretrained(str(model_dir)).to(device).eval()


def muq_features(samples: np.ndarray, sr: int, model_dir: str | os.PathLike | None = None, device: str = "cpu",
                 model=None) -> np.ndarray:
    """MuQ last-hidden-state features (T, 1024) at 25 frames/s, for the official weight family.

    ``model``: an already loaded MuQ (else :func:`load_muq` of ``model_dir``). The audio is resampled to 24 kHz
    mono and encoded in the pieces of :func:`muq_chunks`; T is ``muq_frame_count`` of the resampled length.
    """
    import torch

    if model is None:
        model = load_muq(model_dir, device)
    cfg = getattr(model, "config", None)
    rate, hop = getattr(cfg, "label_rate", MUQ_FPS), getattr(cfg, "hop_length", MUQ_HOP)
    if rate != MUQ_FPS or hop != MUQ_HOP:
        raise ValueError(f"this MuQ runs at {rate} frames/s with mel hop {hop}; the official family needs "
                         f"MuQ-large-msd-iter's {MUQ_FPS:g} frames/s (hop {MUQ_HOP})")
    y, _ = _analysis_signal(samples, sr, MUQ_SAMPLE_RATE / HOP_LENGTH, "MuQ features")   # -> 24 kHz mono
    dev = next(model.parameters()).device
    parts = []
    with torch.no_grad():
        for start, stop in muq_chunks(len(y)):
            piece = torch.from_numpy(np.ascontiguousarray(y[start:stop], np.float32))[None].to(dev)
            out = model(piece, output_hidden_states=False).last_hidden_state[0].float().cpu().numpy()
            if out.shape[0] != muq_frame_count(stop - start):
                raise RuntimeError(f"MuQ gave {out.shape[0]} frames for {(stop - start) / MUQ_SAMPLE_RATE:.2f} s, "
                                   f"not the {muq_frame_count(stop - start)} of its 25 Hz arithmetic")
            parts.append(out)
    return np.concatenate(parts, axis=0)


# --- rhythm features (the compact family's music input) -------------------------------------------------
RHYTHM_COLUMNS = ("onset", "onset_smooth", "beat", "beat_phase_sin", "beat_phase_cos", "tempo", "tempogram0")
RHYTHM_DIM = len(RHYTHM_COLUMNS)


def beat_phase(beats: np.ndarray, frames: int) -> np.ndarray:
    """Phase in [0, 1) of every frame within its beat interval (0 on a beat); before the first and after
    the last beat the median beat period is extrapolated. No beats: zeros."""
    beats = np.unique(np.asarray(beats, dtype=np.float64))
    if beats.size == 0:
        return np.zeros(frames)
    period = float(np.median(np.diff(beats))) if beats.size > 1 else 15.0
    before = beats[0] - period * np.arange(int(np.ceil(beats[0] / period)) + 1, 0, -1)
    after = beats[-1] + period * np.arange(1, int(np.ceil((frames - beats[-1]) / period)) + 2)
    grid = np.concatenate([before, beats, after])
    t = np.arange(frames, dtype=np.float64)
    k = np.clip(np.searchsorted(grid, t, side="right") - 1, 0, grid.size - 2)
    return np.mod((t - grid[k]) / (grid[k + 1] - grid[k]), 1.0)


def rhythm_features(samples: np.ndarray, sr: int, fps: float = 30) -> np.ndarray:
    """Timbre-free rhythm features at ``fps``, (T, 7): onset strength (scaled by the song's 95th percentile),
    the same smoothed over 5 frames, the beat one-hot, sin and cos of the beat phase, the tempo (bpm / 120)
    and tempogram bin 0 (scaled like the onset).

    They describe when and how strongly the music pulses, not what it sounds like, so a model trained on
    synthesised accompaniment transfers to real recordings (MFCCs and chroma would not).

    The onset, beat and tempogram columns are those of :func:`music_features_55`, computed by
    :mod:`core_models.rhythm` (the same numbers as librosa's, without importing librosa and numba, whose
    start-up costs seconds in a fresh process).
    """
    from . import rhythm

    y, analysis_sr = _analysis_signal(samples, sr, fps, "rhythm features")
    onset, beats = rhythm.percussive_onset_and_beats(y, analysis_sr, HOP_LENGTH)
    feats = np.zeros((onset.shape[0], 55), np.float32)
    feats[:, MUSIC55_COLUMNS["onset"]] = onset
    feats[beats[beats < onset.shape[0]], MUSIC55_COLUMNS["beat"]] = 1.0
    feats[:, MUSIC55_COLUMNS["tempogram0"]] = rhythm.tempogram(onset)[0]
    return rhythm_from_music55(feats, fps)


def rhythm_from_music55(feats55: np.ndarray, fps: float = 30) -> np.ndarray:
    """The rhythm features from the 55-d features' onset, beat and tempogram columns."""
    from scipy.ndimage import uniform_filter1d

    onset = feats55[:, MUSIC55_COLUMNS["onset"]].astype(np.float64)
    scale = max(float(np.percentile(onset, 95)), 1e-6)
    onset = np.clip(onset / scale, 0.0, 3.0)
    beats = np.flatnonzero(feats55[:, MUSIC55_COLUMNS["beat"]] > 0)
    phase = beat_phase(beats, feats55.shape[0])
    tempo = 60.0 * fps / float(np.median(np.diff(beats))) if beats.size > 1 else 0.0
    tempogram = feats55[:, MUSIC55_COLUMNS["tempogram0"]].astype(np.float64)
    tempogram = np.clip(tempogram / max(float(np.percentile(tempogram, 95)), 1e-6), 0.0, 3.0)
    out = np.stack([onset, uniform_filter1d(onset, 5), (feats55[:, MUSIC55_COLUMNS["beat"]] > 0).astype(float),
                    np.sin(2 * np.pi * phase), np.cos(2 * np.pi * phase), np.full_like(onset, tempo / 120.0),
                    tempogram], axis=1)
    return out.astype(np.float32)


def synth_accompaniment(beat_frames: np.ndarray, frames: int, fps: float = 30, sr: int = 15360,
                        seed: int = 0) -> np.ndarray:
    """Drums and bass that follow given beats (motion-frame indices at ``fps``), ``frames / fps`` seconds.

    Kick on every beat, snare on every second beat, closed hi-hats on the half beats, a bass note per beat
    walking a minor-pentatonic pattern; small random variations of level and timbre per song (``seed``).
    Used to give each training clip music whose pulse is the clip's own.
    """
    rng = np.random.default_rng(seed)
    total = int(round(frames / fps * sr))
    out = np.zeros(total)
    beats = np.sort(np.asarray(beat_frames, dtype=np.float64)) / fps
    t = np.arange(int(0.5 * sr)) / sr
    kick_f = rng.uniform(45, 65)
    kick = np.sin(2 * np.pi * (kick_f * t + 60 * (1 - np.exp(-t / 0.03)))) * np.exp(-t / 0.12)
    noise = rng.standard_normal(t.size)
    snare = (0.6 * noise + 0.4 * np.sin(2 * np.pi * 190 * t)) * np.exp(-t / 0.07)
    hat = np.diff(noise, prepend=0.0) * np.exp(-t / 0.015) * 0.25
    root = rng.uniform(41, 55)                           # bass root in Hz (E1-A1 region)
    pattern = np.array([0, 3, 5, 7, 10, 7, 5, 3])       # minor pentatonic walk, semitones

    def put(sample, start_s, gain):
        i = int(round(start_s * sr))
        if 0 <= i < total:
            n = min(sample.size, total - i)
            out[i:i + n] += gain * sample[:n]

    for k, b in enumerate(beats):
        put(kick, b, rng.uniform(0.7, 1.0))
        if k % 2 == 1:
            put(snare, b, rng.uniform(0.35, 0.55))
        if k + 1 < beats.size:
            put(hat, (b + beats[k + 1]) / 2, rng.uniform(0.2, 0.4))
            length = beats[k + 1] - b
        else:
            length = 0.4
        f = root * 2 ** (pattern[k % pattern.size] / 12)
        tb = np.arange(int(max(length, 0.1) * 0.9 * sr)) / sr
        put(np.sin(2 * np.pi * f * tb) * np.exp(-tb / 0.25) * np.minimum(1, tb / 0.005), b, 0.35)
    peak = np.max(np.abs(out))
    return (0.8 * out / peak if peak > 0 else out).astype(np.float32)


def half_tempo_suspected(onset: np.ndarray, beat_frames: np.ndarray, fps: float = 30) -> float | None:
    """The tempo (bpm) a beat tracker likely halved, or None: when onsets between its beats are nearly as
    strong as those on them, the music's pulse is probably twice what it found (fast music, ~200 bpm and up,
    is often tracked at half speed)."""
    onset = np.asarray(onset, np.float64)
    beats = np.asarray(beat_frames, np.int64)
    beats = beats[(beats >= 1) & (beats < onset.shape[0] - 1)]
    if beats.size < 4:
        return None
    peak = lambda frames: np.maximum.reduce([onset[frames - 1], onset[frames], onset[frames + 1]])
    mid = (beats[:-1] + beats[1:]) // 2
    on_beats, between = float(peak(beats).mean()), float(peak(mid).mean())
    bpm = 60.0 * fps / float(np.median(np.diff(beats)))
    return bpm if on_beats > 0 and between >= 0.7 * on_beats and bpm < 160 else None
