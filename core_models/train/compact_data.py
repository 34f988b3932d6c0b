# SPDX-License-Identifier: GPL-3.0-or-later
"""The compact family's dataset: the shared mocap as canonical 264-d features with synthesised music, cached.

Every BVH clip of ../shared/data/mocap (Bandai Namco: everyday motion and one dance, labelled Popular; CMU
salsa: Latin; CMU dance takes with the genres of their clips.tsv) -> canonical body -> 264-d features at
30 fps, plus a left/right mirrored copy and time-warped copies. Each clip's kinematic beats (local minima of
joint speed) drive a synthesised drum-and-bass track (``audio.synth_accompaniment``) whose rhythm features
are what the model hears. The splits (``splits/motion_split.json``, ``splits/dance_split.json``) are written
once and kept in the repository. :class:`Corpus` reads the cache back for training
(:mod:`core_models.train.compact`).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from ..audio import rhythm_features, synth_accompaniment
from ..data import cache_dir, mocap_files
from ..features import feature_stats, joints_to_features
from ..metrics import motion_beats
from ..skeleton import BODY_JOINT_NAMES, mirror_index

SPLIT_FILE = Path(__file__).resolve().parent / "splits" / "motion_split.json"
DANCE_SPLIT_FILE = Path(__file__).resolve().parent / "splits" / "dance_split.json"
CACHE_VERSION = 4
SYNTH_SR = 15360                     # = 30 fps x 512: the music features' own analysis rate
CORPORA = ("bandai", "cmu", "cmu_dance")
# Tempo augmentation of the dance clips: each is also time-warped by these factors (playback speed), and
# its accompaniment is synthesised on the warped clip's own beats.
TEMPO_FACTORS = (1.0, 0.8, 0.9, 1.12, 1.25)
# Whole takes held out of all training (every genre; the salsa takes are those FRDM holds out, subject 120
# and subject 55's whirl are dancers the generator never sees) and takes that validate.
DANCE_TEST_TAKES = ("cmu/60_14", "cmu/61_14", "cmu/60_15", "cmu/61_15", "cmu_dance/55_01", "cmu_dance/94_05",
                    "cmu_dance/94_13", "cmu_dance/120_05", "cmu_dance/120_06", "cmu_dance/120_07",
                    "cmu_dance/85_13", "cmu_dance/131_14")
DANCE_VALIDATION_TAKES = ("cmu/60_13", "cmu/61_13", "cmu_dance/49_22", "cmu_dance/94_16", "cmu_dance/85_11",
                          "cmu_dance/131_09", "cmu_dance/55_02")


# ------------------------------------------------------------------------------------------------ data

def _clip_name(corpus: str, path: Path) -> str:
    return f"{corpus}/{path.name}"


def take_of(name: str) -> str:
    """'cmu_dance/94_05.bvh@0.80' -> 'cmu_dance/94_05' (the recording a training variant comes from)."""
    return name.split("@")[0].removesuffix(".bvh").removesuffix("_scaled")


def motion_split(names: list[str] | None = None) -> dict:
    """The fixed train / validation / test split (created from ``names`` once, then read from the repo)."""
    if SPLIT_FILE.is_file():
        return json.loads(SPLIT_FILE.read_text())
    if names is None:
        raise FileNotFoundError(f"{SPLIT_FILE} is missing; run 'python -m core_models.train.compact data'")
    from .frdm import held_out_names

    test = held_out_names()
    val = {n for n in names if n not in test and (
        (n.startswith("cmu/") and Path(n).stem.split("_")[1] == "13") or
        (n.startswith("bandai/") and int(hashlib.sha1(n.encode()).hexdigest(), 16) % 20 == 1))}
    split = {"description": "compact family split: test = the FRDM held-out clips, never trained on",
             "rule": "test: core_models/train/splits/frdm_split.json; validation: CMU take 13 and "
                     "sha1(name) % 20 == 1 of the Bandai clips; train: the rest",
             "test": sorted(n for n in names if n in test), "validation": sorted(val),
             "train": sorted(n for n in names if n not in test and n not in val)}
    SPLIT_FILE.parent.mkdir(parents=True, exist_ok=True)
    SPLIT_FILE.write_text(json.dumps(split, indent=1) + "\n")
    return split


def dance_split() -> dict:
    """Dance takes by part: 'test' (held out of every stage, every genre), 'validation', 'train' (the rest)."""
    return {"description": "dance split of the compact family: whole takes (both partners of a couple); test "
                           "takes are never trained on by any stage",
            "test": list(DANCE_TEST_TAKES), "validation": list(DANCE_VALIDATION_TAKES)}


def part_of(name: str, purpose: str) -> str:
    """'train', 'validation' or 'test' for a clip (dance clips by take, other motion by the motion split)."""
    take = take_of(name)
    if take in DANCE_TEST_TAKES:
        return "test"
    if take in DANCE_VALIDATION_TAKES:
        return "validation"
    if purpose == "dance":
        return "train"
    split = motion_split()
    base = name.split("@")[0]
    return "test" if base in split["test"] else "validation" if base in split["validation"] else "train"


def cmu_dance_genres() -> dict[str, tuple[str, str]]:
    """take -> (genre, sub-genre) from the CMU dance archive's clips.tsv (reviewed: the suggestions follow
    the CMU take descriptions and the InfiniteDance taxonomy; breakdance and MJ-style moves are Popular)."""
    from ..data import mocap_dir

    folder = mocap_dir("cmu_dance")
    if folder is None or not (folder / "clips.tsv").is_file():
        return {}
    out = {}
    for line in (folder / "clips.tsv").read_text().splitlines()[1:]:
        cols = line.split("\t")
        if len(cols) >= 5:
            out[f"cmu_dance/{Path(cols[0]).stem}"] = (cols[3], cols[4])
    return out


def dance_label(corpus: str, path: Path, tsv: dict) -> tuple[str, str] | None:
    """(genre, sub-genre) of a dance clip, or None for locomotion, gestures and other everyday motion."""
    if corpus == "cmu":
        return "Latin", "Salsa"
    if corpus == "cmu_dance":
        return tsv.get(take_of(_clip_name(corpus, path)), ("Popular", "Popular-Mix"))
    if "_dance" in path.name:                           # Bandai Namco dance-short / dance-long
        return "Popular", "Popular-Mix"
    return None


def mirror_joints(joints: np.ndarray) -> np.ndarray:
    """Left/right mirror image: x negated, left and right joints swapped."""
    out = joints[:, mirror_index(BODY_JOINT_NAMES)].copy()
    out[..., 0] *= -1
    return out


def time_warp(joints: np.ndarray, factor: float) -> np.ndarray:
    """The clip played ``factor`` times faster (linear interpolation of the joint positions)."""
    if factor == 1.0:
        return joints
    t = np.arange(0.0, joints.shape[0] - 1 + 1e-9, factor)
    i = np.minimum(np.floor(t).astype(int), joints.shape[0] - 2)
    w = (t - i)[:, None, None]
    return (1 - w) * joints[i] + w * joints[i + 1]


def clip_record(joints: np.ndarray, seed: int) -> dict:
    """Features of a clip and its mirror, its beats and the rhythm features of music synthesised on them."""
    beats = motion_beats(joints) if joints.shape[0] >= 3 else np.zeros(0, np.int64)
    audio = synth_accompaniment(beats, joints.shape[0], sr=SYNTH_SR, seed=seed)
    music = rhythm_features(audio, SYNTH_SR) if beats.size else np.zeros((joints.shape[0], 7), np.float32)
    feats = joints_to_features(joints).astype(np.float32)
    mirrored = joints_to_features(mirror_joints(joints)).astype(np.float32)
    t = feats.shape[0]
    music = np.concatenate([music, np.zeros((max(0, t - music.shape[0]), music.shape[1]), np.float32)])[:t]
    return {"feats": feats, "mirrored": mirrored, "music": music.astype(np.float32), "beats": beats}


def build_dataset(log=print, override: str | None = None) -> Path:
    """All clips -> one cached .npz (features, mirrored features, music, offsets, names, genres, purposes).

    Dance clips (purpose "dance") come in every tempo of ``TEMPO_FACTORS``; other motion ("motion") once.
    ``override``: a dataset file of the same format to use instead (tests, your own data)."""
    if override:
        return Path(override)
    from ..io import load_body_clip

    files = [(c, p) for c in CORPORA for p in mocap_files(c)]
    if not files:
        raise FileNotFoundError("no mocap found: ../shared/data/mocap (or CHOREO_MOCAP_DIR) is needed for training")
    key = hashlib.sha1(("|".join(f"{p.name}:{p.stat().st_size}" for _, p in files) + f"v{CACHE_VERSION}").encode())
    path = cache_dir() / "compact" / f"dataset_{key.hexdigest()[:12]}.npz"
    if path.is_file():
        return path
    motion_split([_clip_name(c, p) for c, p in files if c != "cmu_dance"])
    tsv = cmu_dance_genres()
    parts = {"feats": [], "mirrored": [], "music": []}
    names, genres, subgenres, purposes, lengths = [], [], [], [], []
    t0 = time.time()
    for i, (corpus, p) in enumerate(files):
        joints = load_body_clip(p).joints
        if joints.shape[0] < 17:                      # too short to hold even a few latents
            continue
        label = dance_label(corpus, p, tsv)
        for factor in (TEMPO_FACTORS if label else (1.0,)):
            rec = clip_record(time_warp(joints, factor), seed=i * 10 + TEMPO_FACTORS.index(factor))
            for k in parts:
                parts[k].append(rec[k])
            names.append(_clip_name(corpus, p) + ("" if factor == 1.0 else f"@{factor:.2f}"))
            genres.append(label[0] if label else "Popular")
            subgenres.append(label[1] if label else "")
            purposes.append("dance" if label else "motion")
            lengths.append(rec["feats"].shape[0])
        if (i + 1) % 200 == 0:
            log(f"  {i + 1}/{len(files)} clips, {time.time() - t0:.0f} s")
    data = {k: np.concatenate(v) for k, v in parts.items()}
    lengths = np.array(lengths)
    data.update(names=np.array(names), genres=np.array(genres), subgenres=np.array(subgenres),
                purposes=np.array(purposes), lengths=lengths, starts=np.concatenate([[0], np.cumsum(lengths)[:-1]]))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **data)
    os.replace(tmp, path)
    log(f"dataset: {len(names)} clips, {int(lengths.sum())} frames -> {path}")
    return path


class Corpus:
    """The cached dataset, split into clips; normalised with statistics of the training clips."""

    def __init__(self, path: Path, stats: dict | None = None):
        with np.load(path) as z:
            d = {k: z[k] for k in z.files}
        self.names = [str(n) for n in d["names"]]
        purposes = d["purposes"] if "purposes" in d else np.array(["dance"] * len(self.names))
        subgenres = d["subgenres"] if "subgenres" in d else np.array([""] * len(self.names))
        self.clips = []
        for i, name in enumerate(self.names):
            s, n = int(d["starts"][i]), int(d["lengths"][i])
            purpose = str(purposes[i])
            self.clips.append({"name": name, "genre": str(d["genres"][i]), "subgenre": str(subgenres[i]),
                               "purpose": purpose, "part": part_of(name, purpose), "warped": "@" in name,
                               "feats": d["feats"][s:s + n], "mirrored": d["mirrored"][s:s + n],
                               "music": d["music"][s:s + n]})
        if stats is None:
            mean, std = feature_stats([c["feats"] for c in self.clips if c["part"] == "train"] +
                                      [c["mirrored"] for c in self.clips if c["part"] == "train"], min_std=1e-3)
            stats = {"mean": mean, "std": std}
        self.mean, self.std = stats["mean"], stats["std"]

    def part(self, name: str, purpose: str | None = None, warped: bool = True) -> list[dict]:
        return [c for c in self.clips if c["part"] == name and (purpose is None or c["purpose"] == purpose)
                and (warped or not c["warped"])]

    def minutes_by_genre(self, name: str = "train", purpose: str = "dance") -> dict[str, float]:
        """Minutes of original (unwarped, unmirrored) motion per genre in a part."""
        out: dict[str, float] = {}
        for c in self.part(name, purpose, warped=False):
            out[c["genre"]] = out.get(c["genre"], 0.0) + c["feats"].shape[0] / 30.0 / 60.0
        return {g: round(m, 2) for g, m in sorted(out.items())}

    def normalised(self, feats: np.ndarray) -> np.ndarray:
        return ((feats - self.mean) / self.std).astype(np.float32)
