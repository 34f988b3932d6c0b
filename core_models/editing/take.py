# SPDX-License-Identifier: GPL-3.0-or-later
"""A take: one generated dance (SMPL-X rotations and root at 30 fps, its tokens) and the parameters that made
it (music span, genre, seed, sampling, references) plus the edits applied since, as a list of dicts.

The ``.npz`` layout is the one ``python -m core_models generate --out X.npz`` writes, so a generated file is a
take; ``edits`` and the music span are stored as JSON text next to the arrays.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..kinematics import forward_kinematics
from ..motion import Motion
from ..skeleton import Skeleton

BODY_JOINTS = 22
TAKE_KEYS = ("rotations", "root_translation", "offsets", "parents", "joint_names")   # what every take holds


class EditError(ValueError):
    """An edit that cannot be made as asked; the message says why and what to do. No take is written."""


@dataclass
class Take:
    rotations: np.ndarray           # (T, J, 4) local quaternions (w, x, y, z)
    root: np.ndarray                # (T, 3) root translation, metres, Y up
    skeleton: Skeleton
    tokens: np.ndarray              # (L, 3) local dance token ids (4 frames per row); may be empty
    span_s: tuple[float, float]     # the music span the take dances to (seconds in the song)
    genre: str = ""
    seed: int = 0
    fps: float = 30.0
    params: dict = field(default_factory=dict)     # sampling, references, weight set ... as generated
    edits: list = field(default_factory=list)      # every edit since, oldest first
    features: np.ndarray | None = None             # (T, 264) the decoder's features, as generated (not edited)

    def __post_init__(self):
        self.rotations = np.asarray(self.rotations, np.float64)
        self.root = np.asarray(self.root, np.float64)
        self.tokens = np.asarray(self.tokens, np.int64).reshape(-1, 3) if np.size(self.tokens) else \
            np.zeros((0, 3), np.int64)
        if self.rotations.ndim != 3 or self.rotations.shape[1:] != (self.skeleton.num_joints, 4):
            raise EditError(f"take rotations must be (frames, {self.skeleton.num_joints}, 4); got "
                            f"{self.rotations.shape}")
        if self.root.shape != (self.rotations.shape[0], 3):
            raise EditError(f"take root must be ({self.rotations.shape[0]}, 3); got {self.root.shape}")

    @property
    def num_frames(self) -> int:
        return int(self.rotations.shape[0])

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps

    def joints(self, body_only: bool = True) -> np.ndarray:
        """(T, 22 or J, 3) joint positions by forward kinematics."""
        j = forward_kinematics(self.rotations, self.root, self.skeleton)
        return j[:, :BODY_JOINTS] if body_only else j

    def motion(self) -> Motion:
        return Motion(self.rotations.copy(), self.root.copy(), self.skeleton, self.fps,
                      meta={"genre": self.genre, "seed": self.seed})

    def with_motion(self, rotations: np.ndarray, root: np.ndarray, edit: dict,
                    tokens: np.ndarray | None = None) -> "Take":
        """A new take with this one's parameters, the given motion and ``edit`` appended to the history."""
        return replace(self, rotations=np.asarray(rotations, np.float64), root=np.asarray(root, np.float64),
                       tokens=self.tokens.copy() if tokens is None else tokens,
                       params=dict(self.params), edits=[*self.edits, edit], features=None)

    def frame_of(self, seconds_in_song: float) -> int:
        """The take's frame at a time in the song."""
        return int(round((seconds_in_song - self.span_s[0]) * self.fps))


def take_from_generation(result, params: dict | None = None) -> Take:
    """A take from a :class:`~core_models.generation.GenerationResult`-like object."""
    m = result.motion
    return Take(m.rotations, m.root_translation, m.skeleton, result.tokens, (float(result.start_s),
                float(result.end_s)), genre=result.genre, seed=int(result.seed), fps=float(m.fps),
                params=dict(params or {}, references=getattr(result, "references", [])),
                features=getattr(result, "features", None))


def _text(d, key: str, default: str = "") -> str:
    return str(d[key]) if key in d.files else default


def is_take_file(path) -> bool:
    """Whether ``path`` is a take ``.npz`` (what ``generate --out TAKE.npz`` or ``edit`` wrote); a file that
    cannot be read as one (empty, damaged) is not."""
    path = Path(path)
    if path.suffix.lower() != ".npz" or not path.is_file():
        return False
    try:
        with np.load(path, allow_pickle=False) as d:
            return set(TAKE_KEYS) <= set(d.files)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return False


def load_take(path) -> Take:
    """A take from the ``.npz`` that ``generate`` (or ``edit``) wrote."""
    path = Path(path)
    if not path.is_file():
        raise EditError(f"take '{path}' does not exist: give the .npz that 'python -m core_models generate "
                        "--out TAKE.npz' wrote")
    try:
        with np.load(path, allow_pickle=False) as d:
            missing = [k for k in TAKE_KEYS if k not in d.files]
            if missing:
                raise EditError(f"'{path}' is not a take: it has no {', '.join(missing)} (write it with "
                                "'python -m core_models generate --out TAKE.npz')")
            skeleton = Skeleton(tuple(str(n) for n in d["joint_names"]), tuple(int(p) for p in d["parents"]),
                                d["offsets"], source="take")
            frames = d["rotations"].shape[0]
            fps = float(d["fps"]) if "fps" in d.files else 30.0
            span = json.loads(_text(d, "span_s", "null")) or [0.0, frames / fps]
            return Take(d["rotations"], d["root_translation"], skeleton,
                        d["tokens"] if "tokens" in d.files else np.zeros((0, 3), np.int64),
                        (float(span[0]), float(span[1])), genre=_text(d, "genre"),
                        seed=int(d["seed"]) if "seed" in d.files else 0, fps=fps,
                        params=json.loads(_text(d, "params", "{}")), edits=json.loads(_text(d, "edits", "[]")),
                        features=d["features"] if "features" in d.files and not json.loads(_text(d, "edits", "[]"))
                        else None)
    except (OSError, ValueError, KeyError) as exc:
        if isinstance(exc, EditError):
            raise
        raise EditError(f"cannot read the take '{path}': {exc}") from exc


def take_arrays(take: Take) -> dict[str, np.ndarray]:
    """The arrays of a take's ``.npz`` (the layout ``generate --out X.npz`` writes, plus span and history)."""
    extra = {} if take.features is None else {"features": np.asarray(take.features, np.float32)}
    return dict(rotations=take.rotations.astype(np.float32), root_translation=take.root.astype(np.float32),
                offsets=take.skeleton.offsets, parents=np.asarray(take.skeleton.parents),
                joint_names=np.asarray(take.skeleton.names), joints=take.joints().astype(np.float32),
                tokens=take.tokens, fps=np.float32(take.fps), genre=np.asarray(take.genre),
                seed=np.asarray(take.seed), span_s=np.asarray(json.dumps(list(take.span_s))),
                params=np.asarray(json.dumps(take.params)), edits=np.asarray(json.dumps(take.edits)), **extra)


def save_take(take: Take, path) -> Path:
    """Write a take atomically (a temporary file in the same folder, then renamed)."""
    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise EditError(f"a take is written as .npz; got '{path}'")
    if not path.parent.is_dir():
        raise EditError(f"the output folder '{path.parent}' does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
    os.close(fd)
    try:
        np.savez_compressed(tmp, **take_arrays(take))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
