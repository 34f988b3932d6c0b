# SPDX-License-Identifier: GPL-3.0-or-later
"""FRDM foot fix: merge, contacts, ik_lock, the sampler, weight sets, training/resume, the CLI, bad input."""
import json
import subprocess
import sys
import threading
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
import torch

from motion_fixture import make_dance, rig_bvh, standing_clip
from core_models import footfix, metrics
from core_models.features import joints_to_features
from core_models.footfix.contacts import SLIDE_TOLERANCE
from core_models.footfix.representation import (FEATURE_INDEX, FRDM_DIM, LOWER_CHANNELS, UPPER_CHANNELS,
                                                features_to_world, merge, motion_features)
from core_models.footfix.sampler import sample, sampler_timesteps
from core_models.train.frdm import frdm_losses
from core_models.io import load_body_clip, read_bvh, write_bvh
from core_models.io.rig_fix import apply_fix_to_bvh, upper_body_channels_identical
from core_models.progress import Cancelled
from core_models.skating import SkatingParams, add_skating

REPO = Path(__file__).resolve().parents[2]
TINY = footfix.FRDMConfig(d_model=32, layers=1, heads=2, ff=64, window=16, dropout=0.0, diffusion_steps=50)
def tiny_weights(seed: int = 0) -> footfix.FRDMWeights:
    torch.manual_seed(seed)
    model = footfix.FRDMDenoiser(TINY).eval()
    return footfix.FRDMWeights(model, TINY, np.zeros(FRDM_DIM), np.ones(FRDM_DIM), {}, None, torch.device("cpu"))


# --- representation and merge ------------------------------------------------------------------------------
def test_features_round_trip_to_the_world():
    _, _, _, joints = make_dance(120)
    x, canon = motion_features(joints)
    assert x.shape == (120, FRDM_DIM)
    assert np.abs(features_to_world(x, canon) - joints).max() < 1e-9


def test_merge_never_changes_upper_body_channels():
    rng = np.random.default_rng(0)
    x_in, x_new = rng.normal(size=(2, 7, 40, FRDM_DIM))
    out = merge(x_in, x_new)
    assert np.array_equal(out[..., UPPER_CHANNELS], x_in[..., UPPER_CHANNELS])
    assert np.array_equal(out[..., LOWER_CHANNELS], x_new[..., LOWER_CHANNELS])
    t_in, t_new = torch.tensor(x_in, dtype=torch.float32), torch.tensor(x_new, dtype=torch.float32)
    t_out = merge(t_in, t_new)
    assert torch.equal(t_out[..., UPPER_CHANNELS], t_in[..., UPPER_CHANNELS])
    # only root, knee, ankle and toe channels are ever denoised: 4 root + 6 joints x (3 + 6 + 3)
    assert len(LOWER_CHANNELS) == 4 + 6 * 12 and len(UPPER_CHANNELS) == FRDM_DIM - 76


# --- contacts ----------------------------------------------------------------------------------------------
def _stepping(frames: int = 90) -> np.ndarray:
    """The right foot stays planted; the left is planted, lifts and moves forward from frame 30 to 59, then
    lands again."""
    j = standing_clip(frames)
    lift = np.zeros(frames)
    lift[30:60] = np.sin(np.linspace(0, np.pi, 30)) * 0.15
    forward = np.clip((np.arange(frames) - 30) / 30.0, 0, 1) * 0.3
    for joint in (7, 10):
        j[:, joint, 1] += lift
        j[:, joint, 2] += forward
    return j


def test_contacts_from_height_and_velocity_with_overrides():
    j = _stepping()
    info = footfix.detect_contacts(j)
    assert info.contacts[:, 1].all()                      # right foot planted throughout
    assert info.contacts[:25, 0].all() and info.contacts[65:, 0].all()
    assert not info.contacts[36:55, 0].any()               # high and fast: no contact
    # a foot that is low but moves fast is not in contact (velocity), nor one that is still but high
    fast = standing_clip(60)
    fast[:, [7, 10], 0] += np.arange(60)[:, None] * 0.05   # 5 cm/frame slide
    assert not footfix.detect_contacts(fast).contacts[:, 0].any()
    high = standing_clip(60)
    high[:, [7, 10], 1] += 0.2
    assert not footfix.detect_contacts(high).contacts[:, 0].any()
    # overrides: force the airborne stretch to contact, and forbid contact of the right foot
    info = footfix.detect_contacts(j, overrides=[{"foot": "left", "start": 40, "end": 50, "contact": True},
                                              ("right", 0, 20, False)])
    assert info.contacts[40:50, 0].all() and info.weights[40:50, :2].min() == 1.0
    assert not info.contacts[:20, 1].any() and info.contacts[20:, 1].all()
    with pytest.raises(footfix.FootFixError, match="foot must be"):
        footfix.detect_contacts(j, overrides=[("middle", 0, 5, True)])
    with pytest.raises(footfix.FootFixError, match="start < end"):
        footfix.detect_contacts(j, overrides=[("left", 9, 5, True)])


# --- ik_lock -------------------------------------------------------------------------------------------------
def test_ik_lock_reduces_skating_and_keeps_the_upper_body():
    clean = standing_clip(150)
    skated, _ = add_skating(clean, SkatingParams(seed=3))
    before = metrics.foot_skating_ratio(skated)["mean"]
    result = footfix.fix_feet(skated, method="ik_lock", beats="free")      # a capture: its beats may move
    after = metrics.foot_skating_ratio(result.joints)["mean"]
    assert before > 0.3 and after < 0.05, (before, after)
    assert result.report["fsr_before"]["mean"] > result.report["fsr_after"]["mean"]
    assert np.linalg.norm(result.joints - clean, axis=-1).mean() < np.linalg.norm(skated - clean, axis=-1).mean()
    # the upper body keeps its pose relative to the root (to rounding); the legs are rigid with the clip's
    # (median) bone lengths, even though the skated joints' lengths wobble
    assert result.report["upper_body_change_m"] == 0.0
    assert footfix.upper_body_change(skated, result.joints) < 1e-12
    for a, b in ((1, 4), (4, 7), (7, 10)):
        np.testing.assert_allclose(np.linalg.norm(result.joints[:, a] - result.joints[:, b], axis=-1),
                                   np.median(np.linalg.norm(skated[:, a] - skated[:, b], axis=-1)), atol=1e-6)
    # grounding keeps horizontal slides (the planted feet still move sideways) but removes float/penetration
    ground = footfix.fix_feet(skated, method="ik_lock", mode="grounding", beats="free")
    slide_left = lambda j: np.linalg.norm(j[:, 10, [0, 2]] - clean[:, 10, [0, 2]], axis=-1).mean()  # noqa: E731
    assert slide_left(ground.joints) > 2 * slide_left(result.joints)
    assert np.abs(ground.joints[:, 10, 1] - ground.joints[0, 10, 1]).max() < np.abs(skated[:, 10, 1] - skated[0, 10, 1]).max()
    # strength 0 changes nothing
    assert np.abs(footfix.fix_feet(skated, method="ik_lock", strength=0.0).joints - skated).max() < 1e-9


def test_ik_lock_on_a_rig_writes_only_root_and_leg_channels(tmp_path):
    skated, _ = add_skating(standing_clip(120), SkatingParams(seed=1))
    path = rig_bvh(tmp_path / "skated.bvh", skated)
    body = load_body_clip(path)
    assert body.unit == "cm" and body.source_fps == 60.0 and body.fps == 30.0
    result = footfix.fix_feet(body, method="ik_lock")
    original = read_bvh(path)
    fixed, notes = apply_fix_to_bvh(original, body, result.joints)
    assert notes == [] and upper_body_channels_identical(original, fixed, body)
    write_bvh(tmp_path / "fixed.bvh", fixed)
    back = load_body_clip(tmp_path / "fixed.bvh")
    assert np.abs(back.joints - result.joints).max() < 1e-4      # the rig reproduces the repaired body


# --- the diffusion model -------------------------------------------------------------------------------------
def test_sampler_is_deterministic_for_a_seed_and_keeps_the_upper_body():
    _, _, _, joints = make_dance(40)
    x_in, _ = motion_features(joints)
    contacts = footfix.detect_contacts(joints).joint_contacts
    w = tiny_weights()
    a = sample(w, x_in, contacts, footfix.SamplerConfig(steps=4, seed=7))
    b = sample(w, x_in, contacts, footfix.SamplerConfig(steps=4, seed=7))
    c = sample(w, x_in, contacts, footfix.SamplerConfig(steps=4, seed=8))
    assert np.array_equal(a, b) and not np.allclose(a, c)
    assert np.array_equal(a[:, UPPER_CHANNELS], x_in[:, UPPER_CHANNELS])
    assert sampler_timesteps(50, 4) == [50, 34, 17, 1]
    assert sampler_timesteps(50, 4, "quadratic") == [50, 23, 6, 1]


def test_losses_are_zero_for_a_perfect_prediction():
    """The consistency loss (positions vs FK of rotations) vanishes on real features: the FK is right."""
    _, _, _, joints = make_dance(60, spin=2.0)
    feats = joints_to_features(joints, target_skeleton=None)
    x0 = torch.tensor(feats[None, :, FEATURE_INDEX], dtype=torch.float32)
    yaw = torch.tensor(feats[None, :, 1], dtype=torch.float32)

    class Oracle(torch.nn.Module):
        cfg = TINY

        def forward(self, x, t):
            return x0

    zero, one = torch.zeros(FRDM_DIM), torch.ones(FRDM_DIM)
    parts = frdm_losses(Oracle(), x0, yaw, torch.zeros(1, 59, 4), zero, one)
    assert float(parts["recon"]) == 0.0 and float(parts["consistency"]) < 1e-4 and float(parts["foot_vel"]) == 0.0
    model = footfix.FRDMDenoiser(TINY)
    parts = frdm_losses(model, x0[:, :16], yaw[:, :16], torch.ones(1, 16, 4), zero, one)
    parts["loss"].backward()
    assert all(p.grad is not None for p in model.parameters())


def test_fix_feet_frdm_with_a_saved_weight_set(tmp_path):
    w = tiny_weights()
    folder = footfix.save_frdm_weights(tmp_path / "frdm", w.model, w.mean, w.std, {"training_data": "test"})
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(manifest["files"]) == {"frdm.safetensors", "stats.safetensors", "config.json"}
    config = json.loads((folder / "config.json").read_text())
    assert config["licence"].startswith("CC BY-NC 4.0") and config["model"]["window"] == TINY.window
    skated, _ = add_skating(standing_clip(50), SkatingParams(seed=2))
    stages = []
    result = footfix.fix_feet(skated, method="frdm", weights=folder, steps=3,
                           progress=lambda s, d, t: stages.append(s))
    assert result.method == "frdm" and result.joints.shape == skated.shape and "frdm" in stages
    assert result.report["upper_body_change_m"] == 0.0 and result.report["sampler"]["steps"] == 3
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        footfix.fix_feet(skated, method="frdm", weights=folder, cancel=cancel)
    (folder / "frdm.safetensors").write_bytes(b"damaged")
    with pytest.raises(footfix.FootFixError, match="failed verification"):
        footfix.load_frdm_weights(folder)


def _train_args(out: Path, steps: int) -> Namespace:
    from core_models.train.frdm import parse_args

    return parse_args(["--out", str(out), "--max-steps", str(steps), "--batch", "2", "--window", "16",
                       "--d-model", "32", "--layers", "1", "--heads", "2", "--ff", "64", "--ckpt-every", "2",
                       "--log-every", "1", "--val-batches", "1", "--warmup", "2", "--device", "cpu", "--quiet"])


def test_training_runs_and_resumes_exactly(tmp_path):
    from core_models.train.frdm import clip_arrays, train

    feats, weights = zip(*(clip_arrays(make_dance(40 + 10 * k, seed=k)[3]) for k in range(3)))
    lengths = np.array([len(f) for f in feats])
    data = {"synthetic": {"names": np.array([f"synthetic/{k}" for k in range(3)]), "feats": np.concatenate(feats),
                          "weights": np.concatenate(weights), "lengths": lengths,
                          "starts": np.concatenate([[0], np.cumsum(lengths)[:-1]])}}
    straight = train(_train_args(tmp_path / "a", 4), data)
    train(_train_args(tmp_path / "b", 2), data)
    resumed = train(_train_args(tmp_path / "b", 4), data)
    assert "resumed from ckpt_00000002.pt at step 2" in (tmp_path / "b" / "train.log").read_text()
    wa, wb = footfix.load_frdm_weights(straight, "cpu"), footfix.load_frdm_weights(resumed, "cpu")
    for (ka, va), (kb, vb) in zip(wa.model.state_dict().items(), wb.model.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka
    assert json.loads((straight / "config.json").read_text())["step"] == 4


# --- bad input -----------------------------------------------------------------------------------------------
def test_bad_input_gives_clear_messages():
    clean = standing_clip(60)
    one = footfix.fix_feet(clean[:1], method="ik_lock")
    assert np.array_equal(one.joints, clean[:1]) and "single frame" in one.notes[0]
    static = footfix.fix_feet(np.repeat(clean[:1], 30, axis=0), method="ik_lock")
    assert "static pose" in " ".join(static.notes) and np.array_equal(static.joints, np.repeat(clean[:1], 30, 0))
    with pytest.raises(footfix.FootFixError, match="centimetres"):
        footfix.fix_feet(clean * 100.0, method="ik_lock")
    with pytest.raises(footfix.FootFixError, match="30 fps"):
        footfix.fix_feet(clean, method="ik_lock", fps=120)
    with pytest.raises(footfix.FootFixError, match="unknown method"):
        footfix.fix_feet(clean, method="magic")
    with pytest.raises(footfix.FootFixError, match="unknown mode"):
        footfix.fix_feet(clean, mode="float")
    with pytest.raises(footfix.FootFixError, match="shape"):
        footfix.fix_feet(clean[:, :10])
    fallback = footfix.fix_feet(clean, method="frdm", weights=None)
    assert fallback.method == "ik_lock" and "no FRDM weights" in " ".join(fallback.notes)
    # a jump: the feet leave the floor for most of the clip; only the landings are planted
    jump = standing_clip(90)
    flight = np.linspace(0, 1, 70)
    height = np.concatenate([np.zeros(10), 4 * 0.6 * flight * (1 - flight), np.zeros(10)])   # 70 of 90 in the air
    jump += height[:, None, None] * np.array([0.0, 1.0, 0.0])
    result = footfix.fix_feet(jump, method="ik_lock")
    assert "touch the floor in only" in " ".join(result.notes)
    airborne = height > 0.2
    assert np.abs(result.joints[airborne] - jump[airborne]).max() < 1e-9


def test_rig_without_toes_falls_back_to_ankles(tmp_path):
    """A rig whose legs end at the ankles (no toe bone, no End Site): contacts from the ankles, a note."""
    skated, _ = add_skating(standing_clip(90), SkatingParams(seed=4))
    rig_bvh(tmp_path / "no_toes.bvh", skated, fps=30.0, scale=1.0, drop=(10, 11))
    body = load_body_clip(tmp_path / "no_toes.bvh")
    assert "left_foot" in body.mapping.synthesised
    result = footfix.fix_feet(body, method="ik_lock")
    assert "no toe bones" in " ".join(result.notes) and not result.report["has_toes"]
    assert result.report["fsr_after"]["mean"] < result.report["fsr_before"]["mean"]


def test_cli_fix_feet_writes_the_rig_and_a_report(tmp_path):
    skated, _ = add_skating(standing_clip(90), SkatingParams(seed=5))
    src = rig_bvh(tmp_path / "in.bvh", skated, fps=120.0)
    out, report = tmp_path / "out.bvh", tmp_path / "report.json"
    run = subprocess.run([sys.executable, "-m", "core_models", "fix-feet", str(src), "--out", str(out),
                          "--report", str(report), "--method", "ik_lock"], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    rep = json.loads(report.read_text())
    assert rep["output_rig"] == "source" and rep["upper_body_channels_identical"] is True
    assert rep["fsr_after"]["mean"] < rep["fsr_before"]["mean"] and "resampled from 120" in " ".join(rep["notes"])
    fixed = read_bvh(out)
    assert fixed.names == read_bvh(src).names and fixed.num_frames == read_bvh(src).num_frames
    same = subprocess.run([sys.executable, "-m", "core_models", "fix-feet", str(src), "--out", str(src)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert same.returncode == 2 and "nothing was overwritten" in same.stderr


# --- does no harm: only sliding planted feet change --------------------------------------------------------
def _walking(frames: int = 180, speed: float = 0.004) -> np.ndarray:
    """A clean walk-like clip: the body travels forward ``speed`` m/frame; each foot is planted (still in the
    world) for 48 frames, then swings 12 frames forward to its next plant; the feet half a cycle apart."""
    j = standing_clip(frames)
    t = np.arange(frames)
    j[:, :, 2] += (t * speed)[:, None]                       # the whole body travels
    for side, (ankle, toe) in enumerate(((7, 10), (8, 11))):
        phase = (t + 30 * side) % 60
        cycle = (t + 30 * side) // 60
        planted_z = cycle * 60 * speed + 30 * speed * side    # where this foot stands during its plant
        swing = phase >= 48
        frac = np.where(swing, (phase - 48) / 12.0, 0.0)
        z = planted_z + swing * frac * 60 * speed - t * speed  # relative to the body's travel
        for jj in (ankle, toe):
            j[:, jj, 2] += z
            j[:, jj, 1] += np.where(swing, np.sin(np.pi * frac) * 0.08, 0.0)
    return j


def test_a_clean_clip_comes_back_unchanged_with_both_methods():
    w = tiny_weights()
    for clean in (standing_clip(120), _walking()):
        for kw in ({"method": "ik_lock"}, {"method": "frdm", "weights": w, "steps": 3}):
            result = footfix.fix_feet(clean, **kw)
            assert np.array_equal(result.joints, clean), kw
            assert result.report["unchanged"] is True and "already clean" in " ".join(result.notes)
            assert result.report["fsr_after"] == result.report["fsr_before"]
            assert result.report["max_root_displacement_m"] == 0.0


def test_only_the_sliding_foot_moves_and_the_travel_is_kept():
    clean = _walking()
    slid = clean.copy()
    # the left foot slides 5 cm during its plant at frames 60..107 (it should stand still there)
    ramp = np.clip((np.arange(len(clean)) - 60) / 47.0, 0.0, 1.0) * ((np.arange(len(clean)) < 108))
    slid[:, [7, 10], 0] += (0.05 * ramp)[:, None]
    info = footfix.detect_contacts(slid, v_th=footfix.V_TH_REPAIR)
    slides = footfix.measure_slides(slid, info)
    assert slides.sliding[65:100, 0].all() and not slides.sliding[:, 1].any()
    shipped = footfix.load_frdm_weights(REPO / "core_models" / "assets" / "frdm", "cpu")
    for kw in ({"method": "ik_lock"}, {"method": "frdm", "weights": shipped, "steps": 10}):
        result = footfix.fix_feet(slid, beats="free", **kw)
        assert result.report["unchanged"] is False, result.notes
        # the root moves by at most the slide, the travel is kept, the right foot is untouched
        assert np.linalg.norm(result.root_offset, axis=-1).max() <= 0.05 + 1e-9
        travel = np.linalg.norm(np.diff(result.joints[:, 0, [0, 2]], axis=0), axis=-1).sum()
        travel0 = np.linalg.norm(np.diff(clean[:, 0, [0, 2]], axis=0), axis=-1).sum()
        assert abs(travel / travel0 - 1) < 0.03
        assert result.report["fsr_after"]["mean"] <= result.report["fsr_before"]["mean"]
        # the right foot does not slide: it stays where it was in the world (within the legs' reach)
        assert np.abs(result.joints[:, [8, 11]] - slid[:, [8, 11]]).max() < 0.02, kw
        # the slide is gone: the left foot's still point stays within a centimetre during its plant
        assert np.ptp(result.joints[65:100, 7, 0]) < 0.01, kw


def test_a_generated_dance_keeps_its_beat_frames_and_a_capture_is_repaired():
    """Joints (a generated dance, a take) keep their kinetic beats exactly, so the Beat Align Score does not
    change; a capture (beats="free", what a loaded BodyClip gets) may have them moved by the repair."""
    from core_models.footfix.beats import blend_fix

    dance = _walking()
    slid = dance.copy()
    ramp = np.clip((np.arange(len(dance)) - 60) / 47.0, 0.0, 1.0) * (np.arange(len(dance)) < 108)
    slid[:, [7, 10], 0] += (0.05 * ramp)[:, None]             # the left foot slides 5 cm in its plant
    music = np.arange(5, len(dance) - 5, 15)
    for method in ("ik_lock",):
        kept = footfix.fix_feet(slid, method=method)
        assert kept.report["beats"] == "keep"
        assert np.array_equal(metrics.motion_beats(kept.joints), metrics.motion_beats(slid))
        assert metrics.beat_align_score(kept.joints, music) == metrics.beat_align_score(slid, music)
        assert kept.report["fsr_after"]["mean"] <= kept.report["fsr_before"]["mean"]
        free = footfix.fix_feet(slid, method=method, beats="free")
        assert free.report["beats"] == "free"
        assert free.report["fsr_after"]["mean"] <= kept.report["fsr_after"]["mean"]
    # a zero weight leaves every joint as in the input; a full weight is the fix itself
    fixed = footfix.fix_feet(slid, method="ik_lock", beats="free").joints
    assert np.allclose(blend_fix(slid, fixed, np.zeros(len(slid))), slid, rtol=0, atol=1e-12)
    assert np.allclose(blend_fix(slid, fixed, np.ones(len(slid))), fixed)
    with pytest.raises(footfix.FootFixError, match="beats"):
        footfix.fix_feet(slid, beats="sometimes")


def test_a_second_pass_is_nearly_the_identity():
    skated, _ = add_skating(standing_clip(150), SkatingParams(seed=3))
    first = footfix.fix_feet(skated, method="ik_lock")
    second = footfix.fix_feet(first.joints, method="ik_lock")
    assert np.linalg.norm(second.joints[:, 0] - first.joints[:, 0], axis=-1).max() <= 0.02
    assert second.report["fsr_after"]["mean"] <= first.report["fsr_after"]["mean"] + 1e-9
    assert second.report["unchanged"] or second.report["slides"]["largest_wander_m"] > SLIDE_TOLERANCE
    third = footfix.fix_feet(footfix.fix_feet(standing_clip(150), method="ik_lock").joints, method="ik_lock")
    assert third.report["unchanged"] is True and "already clean" in " ".join(third.notes)


def test_ik_lock_never_raises_fsr():
    for seed in range(4):
        skated, _ = add_skating(make_dance(150, seed=seed)[3], SkatingParams(seed=seed))
        r = footfix.fix_feet(skated, method="ik_lock", orientation="ignore")
        assert r.report["fsr_after"]["mean"] <= r.report["fsr_before"]["mean"], seed


def test_given_contacts_decide_what_is_planted():
    """Edited contacts (e.g. Blender markers) replace detection: moving a plant's start changes the frames."""
    skated, _ = add_skating(standing_clip(120), SkatingParams(seed=6, root_drift_speed=0.0, vertical=0.0,
                                                                  jitter=0.0))
    contacts = np.zeros((120, 2), bool)
    contacts[10:60] = True
    a = footfix.fix_feet(skated, method="ik_lock", contacts=contacts)
    assert a.report["contacts_source"] == "given"
    assert a.contacts[:, 0].tolist() == contacts[:, 0].tolist()
    moved = contacts.copy()
    moved[10:60], moved[50:110] = False, True                 # the plant moved 40 frames later
    b = footfix.fix_feet(skated, method="ik_lock", contacts=moved)
    assert b.report["contact_intervals"]["left"] == [[50, 110]]
    # frames 80..100 are planted only in b: a leaves the feet there as they were; 15..40 only in a
    assert np.abs(a.joints[80:100, [7, 10]] - skated[80:100, [7, 10]]).max() < 1e-9
    assert np.abs(b.joints[15:40, [7, 10]] - skated[15:40, [7, 10]]).max() < 1e-9
    assert a.report["contact_intervals"] != b.report["contact_intervals"]
    with pytest.raises(footfix.FootFixError, match="contacts must be"):
        footfix.fix_feet(skated, method="ik_lock", contacts=np.zeros((5, 2), bool))


# --- orientation --------------------------------------------------------------------------------------------
def _rotate_x(j: np.ndarray, degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    r = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    return j @ r.T


def test_orientation_upside_down_lying_and_z_up_are_refused_or_warned(tmp_path):
    from core_models.io.orientation import check_orientation

    clean = _walking()
    assert check_orientation(clean).verdict == "ok"
    upside = _rotate_x(clean, 180.0)
    with pytest.raises(footfix.FootFixError, match="upside down"):
        footfix.fix_feet(upside, method="ik_lock")
    z_up = _rotate_x(clean, 90.0)                    # body axis along +Z: a Z-up clip read as Y-up
    with pytest.raises(footfix.FootFixError, match="--up z"):
        footfix.fix_feet(z_up, method="ik_lock")
    lying = _rotate_x(clean, -90.0)                  # the other way: a Y-up file read as Z-up
    with pytest.raises(footfix.FootFixError, match="lies in the floor plane"):
        footfix.fix_feet(lying, method="ik_lock")
    # a handstand in 40 % of the frames: a warning, the fix runs
    part = clean.copy()
    part[70:142] = _rotate_x(clean[70:142] - clean[70:142, :1], 180.0) + clean[70:142, :1]
    r = footfix.fix_feet(part, method="ik_lock")
    assert r.report["orientation"]["verdict"] == "warn" and "upside down on" in " ".join(r.notes)
    # a Z-up BVH: refused as read, fixed when loaded with up_axis='Z'; the rest pose says so too
    source = np.stack([clean[..., 0], -clean[..., 2], clean[..., 1]], axis=-1)      # core -> Z-up source axes
    path = rig_bvh(tmp_path / "z_up.bvh", source, fps=30.0)
    with pytest.raises(footfix.FootFixError, match="--up z"):
        footfix.fix_feet(load_body_clip(path), method="ik_lock")
    assert footfix.fix_feet(load_body_clip(path, up_axis="Z"), method="ik_lock").report["orientation"]["verdict"] == "ok"
    assert footfix.fix_feet(upside, method="ik_lock", orientation="ignore").joints.shape == upside.shape


def test_cli_uses_the_shipped_frdm_set_and_reads_z_up(tmp_path):
    skated, _ = add_skating(standing_clip(60), SkatingParams(seed=5))
    src = rig_bvh(tmp_path / "in.bvh", skated, fps=30.0)
    report = tmp_path / "report.json"
    run = subprocess.run([sys.executable, "-m", "core_models", "fix-feet", str(src), "--out", str(tmp_path / "o.bvh"),
                          "--report", str(report), "--steps", "3"], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    rep = json.loads(report.read_text())
    assert rep["method"] == "frdm" and rep["weights"].endswith("assets/frdm")
    assert "fixed with frdm (weights" in run.stdout
    z_src = rig_bvh(tmp_path / "z.bvh", np.stack([skated[..., 0], -skated[..., 2], skated[..., 1]], -1), fps=30.0)
    bad = subprocess.run([sys.executable, "-m", "core_models", "fix-feet", str(z_src), "--out", str(tmp_path / "z_o.bvh"),
                          "--method", "ik_lock"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--up z" in bad.stderr
    good = subprocess.run([sys.executable, "-m", "core_models", "fix-feet", str(z_src), "--out",
                           str(tmp_path / "z_o.bvh"), "--method", "ik_lock", "--up", "z"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert good.returncode == 0, good.stderr


# --- real clean mocap (skips without ../shared/data) --------------------------------------------------------
REAL = {"bandai": ["dataset/Bandai-Namco-Research-Motiondataset-2/data/dataset-2_walk_elderly_012.bvh",
                   "dataset/Bandai-Namco-Research-Motiondataset-1/data/dataset-1_bye_sad_001.bvh"],
        "cmu_dance": ["cmu_dance/131_03.bvh"]}


def _real_clips(tmp_path):
    from core_models.data import mocap_sample

    out = []
    for corpus, names in REAL.items():
        paths = mocap_sample(corpus, names, tmp_path / corpus)
        if isinstance(paths, str):
            pytest.skip(paths)
        out += [load_body_clip(p) for p in paths]
    return out


def test_real_clean_mocap_keeps_its_path_travel_and_fsr(tmp_path):
    from scipy.ndimage import gaussian_filter1d

    weights = footfix.load_frdm_weights(REPO / "core_models" / "assets" / "frdm", "cpu")

    def travel(j):
        h = gaussian_filter1d(j[:, 0, [0, 2]], 3.0, axis=0, mode="nearest")
        return np.linalg.norm(np.diff(h, axis=0), axis=-1).sum()

    for clip in _real_clips(tmp_path):
        for kw in ({"method": "ik_lock"}, {"method": "frdm", "weights": weights, "steps": 10}):
            r = footfix.fix_feet(clip, **kw)
            assert np.linalg.norm(r.root_offset, axis=-1).max() <= 0.10, (clip.path, kw["method"])
            assert abs(travel(r.joints) / max(travel(clip.joints), 1e-9) - 1) <= 0.03
            assert r.report["fsr_after"]["mean"] <= r.report["fsr_before"]["mean"]
            again = footfix.fix_feet(r.joints, **kw)
            assert np.linalg.norm(again.joints[:, 0] - r.joints[:, 0], axis=-1).max() <= 0.02


def test_a_slow_whole_body_drift_is_removed_and_a_performed_glide_kept():
    """Both feet planted and moving alike: slowly (9 cm/s, a capture's drift) the root is shifted back by the
    drift; faster (18 cm/s, a glide or shuffle a dancer performs) the root keeps the performer's path."""
    t = np.arange(150) / 30.0
    for speed, drift_removed in ((0.09, True), (0.18, False)):
        moved = standing_clip(150) + (speed * np.clip(t - 1.0, 0.0, 3.0))[:, None, None] * np.array([1.0, 0.0, 0.0])
        r = footfix.fix_feet(moved, method="ik_lock", beats="free")
        shift = float(np.linalg.norm(r.root_offset, axis=-1).max())
        if drift_removed:
            assert shift > 0.8 * speed * 3.0, shift
            assert r.root_offset[-1, 0] < 0          # back against the drift
        else:
            assert shift <= 0.015 + 1e-9, shift      # at most the legs' reach correction


def test_a_repair_never_spins_a_foot_about_the_ankle():
    """Heel up, the foot on its toe sliding 25 cm sideways: pinning the toe (the ankle is not in contact)
    swung the foot 53 degrees about the ankle; no foot turns more than MAX_FOOT_TURN_DEG from the performer's
    own heading, after every pass."""
    from core_models.footfix.ik_lock import MAX_FOOT_TURN_DEG

    j = standing_clip(150)
    t = np.arange(150)
    window = ((t >= 30) & (t < 100)).astype(float)
    j[:, 8, 1] += 0.08 * window                                   # right heel up
    j[:, [8, 11], 0] += (0.25 * np.clip((t - 30) / 70.0, 0, 1) * window)[:, None]   # the foot slides
    shipped = footfix.load_frdm_weights(REPO / "core_models" / "assets" / "frdm", "cpu")
    for kw in ({"method": "ik_lock"}, {"method": "frdm", "weights": shipped, "steps": 10}):
        r = footfix.fix_feet(j, beats="free", orientation="ignore", **kw)
        for ankle, toe in ((7, 10), (8, 11)):
            own, new = j[:, toe] - j[:, ankle], r.joints[:, toe] - r.joints[:, ankle]
            turn = np.degrees(np.abs((np.arctan2(new[:, 0], new[:, 2]) - np.arctan2(own[:, 0], own[:, 2])
                                      + np.pi) % (2 * np.pi) - np.pi))
            assert turn.max() <= MAX_FOOT_TURN_DEG + 1e-6, (kw["method"], turn.max())
        # the IK lock repairs the slide; FRDM here would raise FSR, so it is not applied (and cannot spin)
        assert r.report["unchanged"] is (kw["method"] == "frdm"), (kw["method"], r.notes)


# --- leg noise (marker shake) --------------------------------------------------------------------------------
def test_a_shaking_leg_is_smoothed_onto_rigid_bones_and_a_rig_is_left_alone():
    from core_models.footfix.jitter import NOISE_MIN_M, leg_noise, remove_leg_noise

    clean = standing_clip(150)
    assert leg_noise(clean).max() < 1e-9                      # a rig's bones are rigid
    assert remove_leg_noise(clean)[0] is clean
    shaken, _ = add_skating(clean, SkatingParams(root_drift_speed=0.0, foot_slide=0.0, vertical=0.0, seed=2))
    noise = leg_noise(shaken)
    assert (noise > NOISE_MIN_M).all() and noise.max() < 0.004, noise
    before = metrics.foot_skating_ratio(shaken)["mean"]
    result = footfix.fix_feet(shaken, method="ik_lock", beats="free")
    after = metrics.foot_skating_ratio(result.joints)["mean"]
    assert before > 0.1 and after < 0.02, (before, after)
    assert not result.report["unchanged"] and any("shake" in n for n in result.notes)
    assert result.report["leg_noise_mm"]["left"] == pytest.approx(1000 * noise[0], abs=0.01)
    # the root and the upper body are the input's; the feet are closer to the clean ones than the shaken feet
    np.testing.assert_array_equal(result.joints[:, 0], shaken[:, 0])
    assert footfix.upper_body_change(shaken, result.joints) < 1e-12
    feet = [7, 8, 10, 11]
    assert (np.linalg.norm(result.joints[:, feet] - clean[:, feet], axis=-1).mean()
            < 0.6 * np.linalg.norm(shaken[:, feet] - clean[:, feet], axis=-1).mean())
    assert leg_noise(result.joints).max() < 1e-6               # back on rigid bones
    # a second pass finds nothing to do; strength 0 changes nothing
    again = footfix.fix_feet(result.joints, method="ik_lock", beats="free")
    assert again.report["unchanged"] and np.abs(again.joints - result.joints).max() < 1e-12
    assert np.abs(footfix.fix_feet(shaken, method="ik_lock", strength=0.0).joints - shaken).max() < 1e-9
