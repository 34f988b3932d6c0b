# SPDX-License-Identifier: GPL-3.0-or-later
"""Metrics and music-beat tests on bodies and audio built in code."""
from __future__ import annotations

import numpy as np
import pytest

from core_models import metrics
from core_models.audio import load_audio, music_beat_frames, synth_click_track
from core_models.skeleton import LEFT_FOOT_JOINTS, LEG_JOINTS, RIGHT_FOOT_JOINTS, default_skeleton

FPS = 30
LEFT_LEG = list(LEG_JOINTS["left"][1:])  # knee, ankle, toe: what moves when the left foot moves


def standing_body(frames: int = 60) -> np.ndarray:
    """The default skeleton's T-pose, feet on the floor, held for ``frames`` frames: (T, 22, 3)."""
    rest = default_skeleton(body_only=True).rest_positions()
    return np.repeat(rest[None], frames, axis=0)


# --- foot contacts and skating ---------------------------------------------------------------------------

def test_planted_feet_have_contacts_and_no_skating():
    body = standing_body()
    assert metrics.foot_contacts(body).all()
    assert metrics.foot_skating_ratio(body) == {"left": 0.0, "right": 0.0, "mean": 0.0}


def test_upper_body_moving_with_planted_feet_does_not_skate():
    body = standing_body(90)
    t = np.arange(90) / FPS
    upper = [3, 6, 9, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21]
    body[:, upper, 0] += 0.3 * np.sin(2 * np.pi * t)[:, None]       # big sway of the trunk and arms
    body[:, upper, 2] += 0.2 * np.cos(2 * np.pi * t)[:, None]
    body[:, 0, 1] -= 0.1 * np.abs(np.sin(np.pi * t))              # pelvis bobbing
    assert metrics.foot_contacts(body).all()
    assert metrics.foot_skating_ratio(body)["mean"] == 0.0


def test_foot_sliding_two_cm_per_frame_has_fsr_one():
    frames = 60
    body = standing_body(frames)
    body[:, LEFT_LEG, 0] += (0.02 * np.arange(frames))[:, None]     # 2 cm/frame along the floor
    assert metrics.foot_contacts(body).all()
    ratio = metrics.foot_skating_ratio(body)
    assert ratio == {"left": 1.0, "right": 0.0, "mean": 0.5}


def test_lodge_definition_reproduces_its_quirks():
    frames = 60
    body = standing_body(frames)
    direction = np.array([1.0, 0.0, 1.0]) / np.sqrt(2.0)          # 2 cm/frame along the floor diagonal
    body[:, LEFT_LEG] += (0.02 * np.arange(frames))[:, None, None] * direction
    ratio = metrics.foot_skating_ratio(body, definition="lodge")
    # Lodge gives the last frame zero displacement, so a foot sliding throughout scores (T - 1) / T.
    assert ratio["left"] == pytest.approx((frames - 1) / frames)
    assert ratio["right"] == 0.0
    # Along (1, 0, -1) the x and z components cancel in Lodge's mean(dx, dz); the default counts it.
    body = standing_body(frames)
    body[:, LEFT_LEG] += (0.02 * np.arange(frames))[:, None, None] * np.array([1.0, 0.0, -1.0]) / np.sqrt(2)
    assert metrics.foot_skating_ratio(body, definition="lodge")["left"] == 0.0
    assert metrics.foot_skating_ratio(body)["left"] == 1.0
    with pytest.raises(ValueError, match="definition"):
        metrics.foot_skating_ratio(body, definition="gmd")


@pytest.mark.parametrize("fps", [30, 60, 120])
def test_skating_threshold_is_a_speed(fps):
    seconds = 2
    frames = seconds * fps
    for speed, expected in ((0.35, 1.0), (0.25, 0.0)):   # threshold: 0.3 m/s
        body = standing_body(frames)
        body[:, LEFT_LEG, 2] += (speed * np.arange(frames) / fps)[:, None]
        assert metrics.foot_skating_ratio(body, fps=fps)["left"] == pytest.approx(expected)


def test_foot_in_the_air_has_no_contacts():
    frames = 30
    body = standing_body(frames)
    body[:, LEFT_LEG, 1] += 0.3
    body[:, LEFT_LEG, 0] += (0.05 * np.arange(frames))[:, None]   # and it moves fast: still no skating
    contacts = metrics.foot_contacts(body)
    assert not contacts[:, 0].any()
    assert contacts[:, 1].all()
    assert metrics.foot_skating_ratio(body)["left"] == 0.0


def test_ground_normalisation_uses_frame_zero_toes():
    body = standing_body(10)
    raised = body + np.array([0.0, 1.0, 0.0])
    assert metrics.foot_contacts(raised).all()
    assert not metrics.foot_contacts(raised, normalize=False).any()
    normalised = metrics.normalize_ground(raised)
    assert normalised[0, [LEFT_FOOT_JOINTS[1], RIGHT_FOOT_JOINTS[1]], 1] == pytest.approx([0.0, 0.0])


def test_speed_condition_removes_sliding_contacts():
    frames = 30
    body = standing_body(frames)
    body[:, LEFT_LEG, 0] += (0.02 * np.arange(frames))[:, None]   # 0.6 m/s
    contacts = metrics.foot_contacts(body, max_speed=0.1)
    assert not contacts[:, 0].any()
    assert contacts[:, 1].all()


# --- jitter, penetration, PFC ----------------------------------------------------------------------------

def test_jitter_is_zero_for_constant_velocity_and_acceleration():
    frames = 50
    t = np.arange(frames) / FPS
    body = standing_body(frames)
    moving = body + (1.5 * t)[:, None, None] * np.array([1.0, 0.0, 0.5])
    accelerating = body + (2.0 * t ** 2)[:, None, None] * np.array([0.0, 1.0, 1.0])
    assert metrics.jitter(moving) == pytest.approx(0.0, abs=1e-6)
    assert metrics.jitter(accelerating) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("fps", [30, 60])
def test_jitter_of_a_cubic_is_its_third_derivative_over_ten(fps):
    frames = 2 * fps
    t = np.arange(frames) / fps
    body = standing_body(frames)
    c = 0.5                                                    # x = c t^3: third derivative 6c = 3 m/s^3
    body[:, :, 0] += (c * t ** 3)[:, None]
    assert metrics.jitter(body, fps=fps) == pytest.approx(6 * c / 10, rel=1e-6)


def test_penetration_rate_and_depth():
    frames = 40
    body = standing_body(frames)
    assert metrics.floor_penetration(body) == {"rate": 0.0, "mean_depth_mm": 0.0, "max_depth_mm": 0.0}
    body[20:, :, 1] -= 0.03                                     # sinks 3 cm for the second half
    result = metrics.floor_penetration(body)
    assert result["rate"] == pytest.approx(0.5)
    assert result["mean_depth_mm"] == pytest.approx(30.0)
    assert result["max_depth_mm"] == pytest.approx(30.0)
    body[30:, :, 1] += 0.027                                    # 3 mm deep: inside the 5 mm tolerance
    assert metrics.floor_penetration(body)["rate"] == pytest.approx(0.25)


def test_pfc_still_body_is_zero_and_sliding_feet_under_acceleration_is_not():
    assert metrics.pfc(standing_body()) == 0.0
    frames = 60
    t = np.arange(frames) / FPS
    body = standing_body(frames)
    body[:, 0, 1] += 0.05 * np.sin(2 * np.pi * 2 * t)           # root bobs: accelerates
    assert metrics.pfc(body) == 0.0                              # ... but both feet are planted
    body[:, LEFT_LEG, 0] += (0.01 * np.arange(frames))[:, None]
    assert metrics.pfc(body) == 0.0                              # one planted foot is enough support
    for side in ("left", "right"):
        body[:, list(LEG_JOINTS[side][1:]), 2] += (0.01 * np.arange(frames))[:, None]
    assert metrics.pfc(body) > 0.0


# --- beats: audio and BAS ---------------------------------------------------------------------------------

BPM, SECONDS = 120, 10
BEAT_PERIOD = FPS * 60 // BPM                                     # 15 frames


@pytest.fixture(scope="module")
def click_beats():
    samples = synth_click_track(BPM, SECONDS, sr=22050)
    return music_beat_frames(samples, 22050, fps=FPS)


def swinging_body(frames: int, beat_phase: float) -> np.ndarray:
    """Whole body swinging along x; mean joint speed ~ |sin(pi (t - phase) / period)|: zero speed on the
    frames phase + k * period (the speed curve's index t covers frames t -> t + 1)."""
    t = np.arange(frames)
    sway = 0.1 * np.cos(np.pi * (t - 0.5 - beat_phase) / BEAT_PERIOD)
    body = standing_body(frames)
    body[:, :, 0] += sway[:, None]
    return body


def test_click_track_beats_are_found_on_the_clicks(click_beats):
    true_frames = np.arange(0, SECONDS, 60 / BPM) * FPS
    assert click_beats.dtype == np.int64
    distance = np.abs(click_beats[:, None] - true_frames[None, :]).min(axis=1)
    assert distance.max() <= 2                                   # every beat within two frames of a click
    inner_clicks = true_frames[(true_frames >= FPS) & (true_frames <= (SECONDS - 1) * FPS)]
    coverage = np.abs(inner_clicks[:, None] - click_beats[None, :]).min(axis=1)
    assert coverage.max() <= 2                                   # and no click away from the edges is missed


def test_motion_beats_sit_on_speed_minima():
    beats = metrics.motion_beats(swinging_body(300, beat_phase=0))
    assert np.array_equal(beats, np.arange(BEAT_PERIOD, 300 - 1, BEAT_PERIOD))


def test_bas_high_on_the_beat_and_low_half_a_beat_off(click_beats):
    frames = SECONDS * FPS
    on_beat = metrics.beat_align_score(swinging_body(frames, beat_phase=0), click_beats)
    off_beat = metrics.beat_align_score(swinging_body(frames, beat_phase=BEAT_PERIOD // 2), click_beats)
    assert on_beat > 0.9
    assert off_beat < 0.5
    exact = metrics.beat_align_score(swinging_body(frames, 0), np.arange(BEAT_PERIOD, frames - 1, BEAT_PERIOD))
    assert exact == pytest.approx(1.0)


def test_bas_edge_cases():
    body = swinging_body(100, 0)
    with pytest.raises(ValueError, match="no music beat"):
        metrics.beat_align_score(body, [150, 200])               # all beats after the motion ends
    assert metrics.beat_align_score(standing_body(100), [15, 30]) == 0.0   # no motion beat at all
    with pytest.raises(ValueError, match="non-negative"):
        metrics.beat_align_score(body, [-3, 15])


def test_load_audio_round_trip_and_resample(tmp_path):
    import soundfile

    clicks = synth_click_track(100, 2.0, sr=22050)
    path = tmp_path / "clicks.wav"
    soundfile.write(path, np.stack([clicks, clicks], axis=1), 22050)    # stereo file
    samples, sr = load_audio(path)
    assert sr == 22050 and samples.dtype == np.float32 and samples.ndim == 1
    assert np.allclose(samples, clicks, atol=1e-4)
    resampled, sr2 = load_audio(path, sr=15360)
    assert sr2 == 15360 and abs(resampled.size - 2 * 15360) <= 2


def test_audio_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        load_audio(tmp_path / "missing.wav")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        load_audio(empty)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"this is not audio at all" * 50)
    with pytest.raises(ValueError, match="cannot be decoded"):
        load_audio(garbage)
    with pytest.raises(ValueError, match="silent"):
        music_beat_frames(np.zeros(22050, dtype=np.float32), 22050)


# --- FID and diversity ------------------------------------------------------------------------------------

def test_fid_of_a_set_against_itself_is_zero():
    feats = np.random.default_rng(0).normal(size=(200, 8)) * np.arange(1, 9)
    assert abs(metrics.fid(feats, feats)) < 1e-6


def test_fid_grows_with_a_shift_and_matches_the_mean_term():
    gt = np.random.default_rng(1).normal(size=(300, 6)) * np.array([1, 2, 3, 0.5, 1, 4])
    sigma = gt.std(axis=0)
    previous = 0.0
    for shift in (0.2, 0.5, 1.0):
        value = metrics.fid(gt + shift, gt)
        # Same covariance, so only the mean term stays: sum((shift / sigma)^2) after GT z-scoring.
        assert value == pytest.approx(np.sum((shift / (sigma + 1e-10)) ** 2), rel=1e-5)
        assert value > previous
        previous = value


def test_diversity_by_hand():
    assert metrics.diversity(np.ones((5, 4))) == 0.0
    vectors = np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])
    assert metrics.diversity(vectors) == pytest.approx((5 + 10 + 5) / 3)
    gt = np.array([[0.0, 0.0], [2.0, 2.0]])                      # mean (1, 1), population std (1, 1)
    assert metrics.diversity(vectors, gt) == pytest.approx((5 + 10 + 5) / 3, rel=1e-8)


# --- kinetic and geometric features -----------------------------------------------------------------------

def kinetic_by_definition(joints: np.ndarray, dt: float = 1 / 60) -> np.ndarray:
    """Slow loop straight from the written definition (reference text §1.1), for cross-checking."""
    frames, num_joints, _ = joints.shape
    out = np.zeros((num_joints, 3))
    for j in range(num_joints):
        for i in range(1, frames):
            disp = [joints[i + k, j] - joints[i + k - 1, j] for k in range(-2, 3) if 0 <= i + k - 1 and i + k < frames]
            v = np.mean(disp, axis=0) / dt
            out[j, 0] += (v[0] ** 2 + v[2] ** 2) / (frames - 1)
            out[j, 1] += v[1] ** 2 / (frames - 1)
            terms = []
            for k in range(-2, 3):
                n = i + k
                if 0 <= n - 1 and n + 1 < frames:
                    v2 = (joints[n + 1, j] - joints[n, j]) / dt
                    v1 = joints[n, j] - joints[n - 1, j] / dt
                    terms.append((v2 - v1) / dt)
            out[j, 2] += np.linalg.norm(np.mean(terms, axis=0)) / (frames - 1)
    return out.reshape(-1)


def test_kinetic_features_of_a_static_body():
    body = standing_body(20)
    feats = metrics.kinetic_features(body).reshape(22, 3)
    assert feats.shape == (22, 3)
    assert np.all(feats[:, :2] == 0.0)
    # Upstream bug: a still joint at P has "acceleration" P * (1/dt^2 - 1/dt) = 3540 P.
    assert feats[:, 2] == pytest.approx(3540 * np.linalg.norm(body[0], axis=-1))


def test_kinetic_features_of_constant_velocity():
    frames = 30
    step = np.array([0.01, 0.005, -0.02])                        # metres per frame
    body = standing_body(frames) + np.arange(frames)[:, None, None] * step
    feats = metrics.kinetic_features(body).reshape(22, 3)
    # Velocities use frame time 1/60 s whatever the data rate: v = step * 60.
    assert feats[:, 0] == pytest.approx(np.full(22, (step[0] ** 2 + step[2] ** 2) * 3600))
    assert feats[:, 1] == pytest.approx(np.full(22, step[1] ** 2 * 3600))


def test_kinetic_features_match_the_written_definition():
    joints = np.random.default_rng(2).normal(scale=0.3, size=(12, 22, 3))
    assert metrics.kinetic_features(joints) == pytest.approx(kinetic_by_definition(joints), rel=1e-10)
    short = joints[:3]
    assert metrics.kinetic_features(short) == pytest.approx(kinetic_by_definition(short), rel=1e-10)


def test_preprocess_for_fid():
    frames = 1100
    body = standing_body(frames) + np.arange(frames)[:, None, None] * np.array([0.001, 0.0, 0.002])
    out = metrics.preprocess_for_fid(body)
    assert out.shape == (1024, 22, 3)
    assert np.allclose(out[0, 0], 0.0)
    assert np.allclose(out[:, 0], body[:1024, 0] - body[0, 0])   # root keeps its trajectory
    assert np.allclose(out[:, 1:], body[:1024, 1:] - body[:1024, :1])
    assert metrics.kinetic_features(out).shape == (66,)


def test_geometric_features_ranges_and_known_cases():
    assert len(metrics.GEOMETRIC_FEATURES) == 32
    assert (metrics.HUMERUS_LENGTH, metrics.SHOULDER_WIDTH, metrics.HIP_WIDTH) == pytest.approx(
        (0.25684, 0.39085, 0.11925), abs=1e-5)
    rng = np.random.default_rng(3)
    random_motion = standing_body(40) + rng.normal(scale=0.05, size=(40, 22, 3))
    feats = metrics.geometric_features(random_motion)
    assert feats.shape == (32,) and np.all((feats >= 0) & (feats <= 1))

    still = metrics.geometric_features(standing_body(10))
    velocity_features = [0, 1, 4, 5, 9, 10, 11, 12, 13, 21, 22, 31]
    assert np.all(still[velocity_features] == 0.0)
    assert still[8] == 1.0          # T-pose: wrists farther apart than 2.5 shoulder widths
    assert still[28] == 0.0         # upright: the trunk is not horizontal

    gliding = standing_body(10) + np.arange(10)[:, None, None] * np.array([0.01, 0.0, 0.0])
    glide = metrics.geometric_features(gliding)
    assert glide[31] == 1.0 and glide[12] == 1.0 and glide[21] == 1.0   # fast root, wrist, ankle
    assert np.all(glide[[0, 1, 4, 5, 9, 10, 11]] == 0.0)               # no relative motion

    lying = standing_body(5)[..., [0, 2, 1]]                     # trunk along z: lying down
    assert metrics.geometric_features(lying)[28] == 1.0


# --- bad input --------------------------------------------------------------------------------------------

def test_bad_joint_input_raises_clear_errors():
    with pytest.raises(ValueError, match=r"\(T, 22, 3\).*joints\[:, :22\]"):
        metrics.jitter(np.zeros((10, 24, 3)))
    with pytest.raises(ValueError, match=r"\(T, 22, 3\)"):
        metrics.foot_skating_ratio(np.zeros((10, 66)))
    body = standing_body(10)
    body[4, 3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN.*frame 4"):
        metrics.evaluate_clip(body)
    with pytest.raises(ValueError, match="at least 4 frames, got 3"):
        metrics.jitter(standing_body(3))
    with pytest.raises(ValueError, match="at least 3 frames"):
        metrics.kinetic_features(standing_body(2))
    with pytest.raises(ValueError, match="fps"):
        metrics.jitter(standing_body(10), fps=0)


def test_bad_feature_input_raises_clear_errors():
    with pytest.raises(ValueError, match="2-D"):
        metrics.fid(np.zeros(5), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="feature sizes differ"):
        metrics.fid(np.zeros((5, 3)), np.ones((5, 2)))
    with pytest.raises(ValueError, match="at least 2"):
        metrics.diversity(np.zeros((1, 3)))


def test_evaluate_clip_keys():
    body = swinging_body(120, 0)
    result = metrics.evaluate_clip(body, music_beat_frames=[15, 30, 45, 60])
    assert set(result) == {"fsr", "fsr_left", "fsr_right", "jitter", "penetration", "penetration_depth_mm",
                           "pfc", "bas"}
    assert "bas" not in metrics.evaluate_clip(body)
    assert result["bas"] == pytest.approx(1.0)


def test_music_features_55_layout_and_beats():
    from core_models.audio import MUSIC55_COLUMNS, music_beat_frames, music_features_55, synth_click_track

    sr = 22050
    clicks = synth_click_track(120, 8.0, sr=sr)
    feats = music_features_55(clicks, sr)
    assert feats.shape[1] == 55 and feats.dtype == np.float32
    assert abs(feats.shape[0] - 8.0 * 30) <= 2                     # 30 frames per second
    assert np.isfinite(feats).all()
    beat_col = np.nonzero(feats[:, MUSIC55_COLUMNS["beat"]])[0]
    assert np.array_equal(beat_col, music_beat_frames(clicks, sr)[music_beat_frames(clicks, sr) < feats.shape[0]])
    onset = feats[:, MUSIC55_COLUMNS["onset"]]
    # the onset envelope peaks on the clicks (every 15 frames at 120 bpm)
    peaks = np.nonzero(onset > 0.5 * onset.max())[0]
    assert np.all(np.min(np.abs(peaks[:, None] - np.arange(0, 240, 15)[None]), axis=1) <= 2)
    with pytest.raises(ValueError, match="silent"):
        music_features_55(np.zeros(sr), sr)


def test_muq_frontend_without_the_optional_package_says_what_to_install(tmp_path):
    import importlib.util

    from core_models.audio import muq_features, synth_click_track

    if importlib.util.find_spec("muq") is not None:
        pytest.skip("the optional muq package is installed here")
    with pytest.raises(RuntimeError, match="install the optional 'muq' package"):
        muq_features(synth_click_track(120, 2.0), 22050, tmp_path)
