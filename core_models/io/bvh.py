# SPDX-License-Identifier: GPL-3.0-or-later
"""BVH (Biovision Hierarchy) reading and writing for any skeleton.

Conventions (those of the common BVH writers, checked on the Bandai Namco and CMU data):

* Every joint may carry any subset of the six channels ``Xposition Yposition Zposition Xrotation
  Yrotation Zrotation`` in any order. Rotation channels compose as intrinsic rotations in the order
  they are listed (``Zrotation Xrotation Yrotation`` means ``R = Rz @ Rx @ Ry``), in degrees.
* Position channels *replace* the joint's OFFSET (component by component): the values are the
  joint's translation relative to its parent, not an addition to the offset. Joints without position
  channels use their OFFSET.
* ``End Site`` blocks become leaf joints named ``<parent>_end`` with no channels (``is_end_site``).
* The MOTION block has one line per frame with all channels in hierarchy order.

Reading is bulk-parsed (one ``bytes.split`` plus one numpy conversion for the whole MOTION block);
malformed files raise :class:`BvhError` naming the file and the problem.
"""
from __future__ import annotations

import math
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..rotations import axis_rotation_matrix, euler_to_matrix, quat_to_matrix

__all__ = ["BvhError", "BvhClip", "read_bvh", "write_bvh", "bvh_from_rotations", "CHANNEL_NAMES",
           "matrix_to_bvh_euler"]

CHANNEL_NAMES: tuple[str, ...] = ("Xposition", "Yposition", "Zposition", "Xrotation", "Yrotation", "Zrotation")
_CHANNEL_LOOKUP = {c.lower(): c for c in CHANNEL_NAMES}
_AXIS = {"X": 0, "Y": 1, "Z": 2}


class BvhError(ValueError):
    """A BVH file could not be read or written; the message names the file and the problem."""


# --- the clip ----------------------------------------------------------------------------------------
@dataclass
class BvhClip:
    """A BVH skeleton and its raw channel data.

    names/parents/offsets/channels/is_end_site are per joint (End Sites included as channel-less leaf
    joints); joints are topologically ordered (parent before child) and ``motion`` holds the channels
    of joint 0, then joint 1, ... each in its own channel order (the file's column order when read).
    """
    names: list[str]
    parents: list[int]
    offsets: np.ndarray                      # (J, 3) float64, file units
    channels: list[tuple[str, ...]]
    is_end_site: list[bool]
    frame_time: float                        # seconds per frame
    motion: np.ndarray                       # (F, C) float64, raw channel values
    path: str | None = None
    _starts: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        self.names = [str(n) for n in self.names]
        self.parents = [int(p) for p in self.parents]
        self.channels = [tuple(_canonical_channel(c) for c in ch) for ch in self.channels]
        self.is_end_site = [bool(e) for e in self.is_end_site]
        self.offsets = np.asarray(self.offsets, dtype=np.float64).reshape(-1, 3)
        self.motion = np.asarray(self.motion, dtype=np.float64)
        j = len(self.names)
        if not (len(self.parents) == len(self.channels) == len(self.is_end_site) == self.offsets.shape[0] == j):
            raise BvhError(f"{self._where()}: names ({j}), parents ({len(self.parents)}), offsets "
                           f"({self.offsets.shape[0]}), channels ({len(self.channels)}) and is_end_site "
                           f"({len(self.is_end_site)}) must have one entry per joint")
        for i, p in enumerate(self.parents):
            if p >= i or p < -1:
                raise BvhError(f"{self._where()}: joints must be topologically ordered; joint {i} "
                               f"'{self.names[i]}' has parent {p}")
            if p >= 0 and self.is_end_site[p]:
                raise BvhError(f"{self._where()}: End Site '{self.names[p]}' cannot have children")
        for i, ch in enumerate(self.channels):
            if len(set(ch)) != len(ch):
                raise BvhError(f"{self._where()}: joint '{self.names[i]}' repeats a channel: {' '.join(ch)}")
            if ch and self.is_end_site[i]:
                raise BvhError(f"{self._where()}: End Site '{self.names[i]}' cannot have channels")
        counts = np.array([len(c) for c in self.channels], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(counts)])
        total = int(self._starts[-1])
        if self.motion.ndim != 2 or self.motion.shape[1] != total:
            raise BvhError(f"{self._where()}: motion must be (frames, {total}) for these channels; "
                           f"got {self.motion.shape}")
        if not (np.isfinite(self.frame_time) and self.frame_time > 0):
            raise BvhError(f"{self._where()}: frame time must be a positive number of seconds; got {self.frame_time}")
        self.frame_time = float(self.frame_time)

    def _where(self) -> str:
        return f"BVH '{self.path}'" if self.path else "BVH clip"

    # --- basic info ---
    @property
    def num_joints(self) -> int:
        return len(self.names)

    @property
    def num_frames(self) -> int:
        return int(self.motion.shape[0])

    @property
    def num_channels(self) -> int:
        return int(self._starts[-1])

    @property
    def fps(self) -> float:
        """Frames per second; ``1 / frame_time`` snapped to the nearest integer when within 1e-4 of it
        (relative), since files store rounded frame times (0.0333333 -> 30, 0.008333 -> 120)."""
        fps = 1.0 / self.frame_time
        near = round(fps)
        return float(near) if near > 0 and abs(fps - near) <= 1e-4 * fps else fps

    @property
    def duration(self) -> float:
        return self.num_frames * self.frame_time

    def joint_names(self) -> list[str]:
        """Names of the real joints (End Sites left out)."""
        return [n for n, e in zip(self.names, self.is_end_site) if not e]

    def index(self, name: str) -> int:
        return self.names.index(name)

    def children(self, j: int) -> list[int]:
        return [c for c, p in enumerate(self.parents) if p == j]

    def channel_columns(self, j: int) -> slice:
        """Columns of ``motion`` holding joint ``j``'s channels (in ``channels[j]`` order)."""
        return slice(int(self._starts[j]), int(self._starts[j + 1]))

    def rotation_order(self, j: int) -> str:
        """Axis letters of joint ``j``'s rotation channels in file order ('' when it has none)."""
        return "".join(c[0] for c in self.channels[j] if c.endswith("rotation"))

    # --- kinematics ---
    def local_rotation_matrices(self) -> np.ndarray:
        """(F, J, 3, 3) local rotations; identity for joints without rotation channels."""
        f, j = self.num_frames, self.num_joints
        out = np.empty((f, j, 3, 3))
        out[:] = np.eye(3)
        groups: dict[str, tuple[list[int], list[int]]] = {}
        for i, ch in enumerate(self.channels):
            cols = [int(self._starts[i]) + k for k, c in enumerate(ch) if c.endswith("rotation")]
            if cols:
                g = groups.setdefault(self.rotation_order(i), ([], []))
                g[0].append(i)
                g[1].extend(cols)
        for order, (joints, cols) in groups.items():
            angles = self.motion[:, cols].reshape(f, len(joints), len(order))
            if len(order) == 3 and len(set(order)) == 3:
                out[:, joints] = euler_to_matrix(angles, order)
            else:  # one, two or repeated axes: compose them in file order
                rad = np.deg2rad(angles)
                m = out[:, joints]
                for k, axis in enumerate(order):
                    m = m @ axis_rotation_matrix(axis, rad[..., k])
                out[:, joints] = m
        return out

    def local_translations(self) -> np.ndarray:
        """(F, J, 3) translation of each joint relative to its parent (position channels replace the
        matching OFFSET components)."""
        out = np.broadcast_to(self.offsets, (self.num_frames,) + self.offsets.shape).copy()
        for i, ch in enumerate(self.channels):
            s = int(self._starts[i])
            for k, c in enumerate(ch):
                if c.endswith("position"):
                    out[:, i, _AXIS[c[0]]] = self.motion[:, s + k]
        return out

    def global_transforms(self) -> tuple[np.ndarray, np.ndarray]:
        """Global rotations (F, J, 3, 3) and positions (F, J, 3) in file units by forward kinematics."""
        local_r = self.local_rotation_matrices()
        local_t = self.local_translations()
        glob_r = np.empty_like(local_r)
        glob_p = np.empty_like(local_t)
        for j, p in enumerate(self.parents):
            if p < 0:
                glob_r[:, j] = local_r[:, j]
                glob_p[:, j] = local_t[:, j]
            else:
                glob_r[:, j] = glob_r[:, p] @ local_r[:, j]
                glob_p[:, j] = glob_p[:, p] + np.einsum("fab,fb->fa", glob_r[:, p], local_t[:, j])
        return glob_r, glob_p

    def global_positions(self, scale: float = 1.0) -> np.ndarray:
        """(F, J, 3) global joint positions, multiplied by ``scale`` (e.g. 0.01 for cm -> m)."""
        pos = self.global_transforms()[1]
        return pos * scale if scale != 1.0 else pos

    def rest_positions(self, scale: float = 1.0) -> np.ndarray:
        """(J, 3) joint positions of the rest pose (OFFSETs only, no channels)."""
        pos = np.zeros_like(self.offsets)
        for j, p in enumerate(self.parents):
            pos[j] = self.offsets[j] if p < 0 else pos[p] + self.offsets[j]
        return pos * scale

    def copy(self) -> "BvhClip":
        return BvhClip(list(self.names), list(self.parents), self.offsets.copy(), list(self.channels),
                       list(self.is_end_site), self.frame_time, self.motion.copy(), self.path)


def _canonical_channel(c: str) -> str:
    name = _CHANNEL_LOOKUP.get(str(c).lower())
    if name is None:
        raise BvhError(f"unknown BVH channel '{c}' (valid: {', '.join(CHANNEL_NAMES)})")
    return name


# --- reading -------------------------------------------------------------------------------------------
_MOTION_RE = re.compile(rb"^[ \t]*MOTION\b", re.MULTILINE)


def read_bvh(path: str | os.PathLike) -> BvhClip:
    """Read a BVH file of any skeleton. Raises :class:`BvhError` for missing or malformed files."""
    path = str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise BvhError(f"BVH '{path}': file not found") from None
    except IsADirectoryError:
        raise BvhError(f"BVH '{path}': is a directory, not a file") from None
    except OSError as e:
        raise BvhError(f"BVH '{path}': cannot read file ({e.strerror or e})") from None
    if not data.strip():
        raise BvhError(f"BVH '{path}': file is empty")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    m = _MOTION_RE.search(data)
    if m is None:
        if b"HIERARCHY" not in data[:4096]:
            raise BvhError(f"BVH '{path}': not a BVH file (no HIERARCHY or MOTION section)")
        raise BvhError(f"BVH '{path}': no MOTION section (file truncated inside the HIERARCHY?)")
    head = data[:m.start()].decode("utf-8", errors="replace")
    names, parents, offsets, channels, ends = _parse_hierarchy(head, path)
    header_line = head.count("\n") + 1
    frames, frame_time, body, body_line = _parse_motion_header(data, m.end(), header_line, path)
    counts = [len(c) for c in channels]
    motion = _parse_motion(body, frames, sum(counts), body_line, path)
    _check_finite(motion, names, channels, counts, path)
    return BvhClip(names, parents, offsets, channels, ends, frame_time, motion, path)


def _parse_hierarchy(text: str, path: str):
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float] | None] = []
    channels: list[tuple[str, ...]] = []
    ends: list[bool] = []
    stack: list[int] = []          # open joints
    pending: int | None = None     # declared joint waiting for its '{'
    seen_header = False
    lines = text.splitlines()

    def err(lineno, msg):
        return BvhError(f"BVH '{path}', line {lineno}: {msg}")

    def open_brace(lineno):
        nonlocal pending
        if pending is None:
            raise err(lineno, "unbalanced braces: '{' without a ROOT, JOINT or End Site before it")
        stack.append(pending)
        pending = None

    for lineno, raw in enumerate(lines, 1):
        tokens = raw.split()
        if not tokens:
            continue
        key = tokens[0].upper()
        if not seen_header:
            if key != "HIERARCHY":
                raise err(lineno, f"expected 'HIERARCHY' at the start of the file, found '{tokens[0]}'")
            seen_header = True
            continue
        if pending is not None and key != "{":
            raise err(lineno, f"expected '{{' after the declaration of '{names[pending]}', found '{tokens[0]}'")
        if key in ("ROOT", "JOINT"):
            brace = tokens[-1] == "{" and len(tokens) > 2
            name = " ".join(tokens[1:-1] if brace else tokens[1:])
            if not name or name == "{":
                raise err(lineno, f"{key} without a name")
            if key == "ROOT" and stack:
                raise err(lineno, f"ROOT '{name}' inside another joint (unbalanced braces)")
            if key == "JOINT" and not stack:
                raise err(lineno, f"JOINT '{name}' outside any ROOT (unbalanced braces)")
            parent = stack[-1] if stack else -1
            if parent >= 0 and ends[parent]:
                raise err(lineno, f"JOINT '{name}' inside an End Site")
            names.append(name)
            parents.append(parent)
            offsets.append(None)
            channels.append(())
            ends.append(False)
            pending = len(names) - 1
            if brace:
                open_brace(lineno)
        elif key == "END":
            if not stack:
                raise err(lineno, "End Site outside any joint (unbalanced braces)")
            parent = stack[-1]
            if ends[parent]:
                raise err(lineno, "End Site inside an End Site")
            base = f"{names[parent]}_end"
            name, k = base, 1
            existing = set(names)
            while name in existing:
                k += 1
                name = f"{base}{k}"
            names.append(name)
            parents.append(parent)
            offsets.append(None)
            channels.append(())
            ends.append(True)
            pending = len(names) - 1
            if tokens[-1] == "{":
                open_brace(lineno)
        elif key == "{":
            open_brace(lineno)
            if len(tokens) > 1:
                raise err(lineno, f"unexpected text after '{{': '{' '.join(tokens[1:])}'")
        elif key == "}" or set(key) == {"}"}:
            for _ in range(sum(t.count("}") for t in tokens)):
                if not stack:
                    raise err(lineno, "unbalanced braces: '}' without a matching '{'")
                j = stack.pop()
                if offsets[j] is None:
                    raise err(lineno, f"joint '{names[j]}' has no OFFSET")
        elif key == "OFFSET":
            if not stack:
                raise err(lineno, "OFFSET outside any joint")
            j = stack[-1]
            if offsets[j] is not None:
                raise err(lineno, f"joint '{names[j]}' has a second OFFSET")
            if len(tokens) != 4:
                raise err(lineno, f"OFFSET of '{names[j]}' needs 3 numbers, found {len(tokens) - 1}")
            try:
                vals = [float(t) for t in tokens[1:]]
            except ValueError:
                raise err(lineno, f"OFFSET of '{names[j]}' is not numeric: '{' '.join(tokens[1:])}'") from None
            if not all(math.isfinite(v) for v in vals):
                raise err(lineno, f"OFFSET of '{names[j]}' is not finite: '{' '.join(tokens[1:])}'")
            offsets[j] = vals
        elif key == "CHANNELS":
            if not stack:
                raise err(lineno, "CHANNELS outside any joint")
            j = stack[-1]
            if ends[j]:
                raise err(lineno, f"End Site of '{names[parents[j]]}' cannot have CHANNELS")
            if channels[j]:
                raise err(lineno, f"joint '{names[j]}' has a second CHANNELS line")
            try:
                n = int(tokens[1]) if len(tokens) > 1 else -1
            except ValueError:
                n = -1
            if n < 0:
                raise err(lineno, f"CHANNELS of '{names[j]}' must start with the channel count")
            listed = tokens[2:]
            if len(listed) != n:
                raise err(lineno, f"CHANNELS of '{names[j]}' declares {n} channels but lists {len(listed)}")
            chans = []
            for c in listed:
                name = _CHANNEL_LOOKUP.get(c.lower())
                if name is None:
                    raise err(lineno, f"unknown channel '{c}' on joint '{names[j]}' "
                                      f"(valid: {', '.join(CHANNEL_NAMES)})")
                chans.append(name)
            if len(set(chans)) != len(chans):
                raise err(lineno, f"joint '{names[j]}' repeats a channel: {' '.join(listed)}")
            channels[j] = tuple(chans)
        else:
            raise err(lineno, f"unexpected '{tokens[0]}' in the HIERARCHY")
    last = len(lines)
    if not seen_header:
        raise BvhError(f"BVH '{path}': no HIERARCHY section before MOTION")
    if pending is not None:
        raise BvhError(f"BVH '{path}': hierarchy truncated: '{names[pending]}' is declared but has no "
                       f"'{{ ... }}' block before MOTION")
    if stack:
        raise BvhError(f"BVH '{path}', line {last}: unbalanced braces or truncated hierarchy: "
                       f"{len(stack)} block(s) still open at MOTION (innermost: '{names[stack[-1]]}')")
    if not names:
        raise BvhError(f"BVH '{path}': the HIERARCHY declares no joints")
    return names, parents, np.array(offsets, dtype=np.float64), channels, ends


def _parse_motion_header(data: bytes, pos: int, line0: int, path: str):
    """Parse 'Frames:' and 'Frame Time:' after MOTION; returns (frames, frame_time, body bytes, body line)."""
    lineno = line0

    def next_line(pos, lineno):
        while pos < len(data):
            end = data.find(b"\n", pos)
            end = len(data) if end < 0 else end
            line = data[pos:end].strip()
            pos, lineno = end + 1, lineno + 1
            if line:
                return line.decode("utf-8", errors="replace"), pos, lineno
        return None, pos, lineno

    # The rest of the MOTION line itself (normally empty).
    end = data.find(b"\n", pos)
    end = len(data) if end < 0 else end
    if data[pos:end].strip():
        raise BvhError(f"BVH '{path}', line {lineno}: unexpected text after MOTION")
    pos = end + 1
    line, pos, lineno = next_line(pos, lineno)
    m = re.match(r"(?i)frames\s*:?\s*(\S*)\s*$", line or "")
    if m is None:
        raise BvhError(f"BVH '{path}', line {lineno}: missing 'Frames:' line after MOTION"
                       + (f" (found '{line[:40]}')" if line else " (file ends)"))
    try:
        frames = int(m.group(1))
    except ValueError:
        raise BvhError(f"BVH '{path}', line {lineno}: 'Frames:' must be a whole number, "
                       f"found '{m.group(1)}'") from None
    if frames <= 0:
        raise BvhError(f"BVH '{path}', line {lineno}: the clip has zero frames (Frames: {frames})")
    line, pos, lineno = next_line(pos, lineno)
    m = re.match(r"(?i)frame\s*time\s*:?\s*(\S*)\s*$", line or "")
    if m is None:
        raise BvhError(f"BVH '{path}', line {lineno}: missing 'Frame Time:' line after 'Frames:'"
                       + (f" (found '{line[:40]}')" if line else " (file ends)"))
    try:
        frame_time = float(m.group(1))
    except ValueError:
        raise BvhError(f"BVH '{path}', line {lineno}: 'Frame Time:' is not a number: '{m.group(1)}'") from None
    if not np.isfinite(frame_time) or frame_time <= 0:
        raise BvhError(f"BVH '{path}', line {lineno}: 'Frame Time:' must be a positive number of seconds, "
                       f"found {m.group(1)}")
    return frames, frame_time, data[pos:], lineno + 1


def _parse_motion(body: bytes, frames: int, nchan: int, first_line: int, path: str) -> np.ndarray:
    tokens = body.split()
    expected = frames * nchan
    if len(tokens) == expected:
        try:
            values = np.array(tokens, dtype=np.float64)
        except ValueError:
            _raise_bad_number(body, first_line, path)
        rows = sum(1 for ln in body.splitlines() if ln.strip()) if nchan else frames
        if rows == frames:
            return values.reshape(frames, nchan)
    _raise_layout(body, frames, nchan, len(tokens), first_line, path)
    raise AssertionError("unreachable")


def _raise_bad_number(body: bytes, first_line: int, path: str):
    for k, ln in enumerate(body.splitlines()):
        for col, tok in enumerate(ln.split(), 1):
            try:
                float(tok)
            except ValueError:
                raise BvhError(f"BVH '{path}', line {first_line + k}: motion value {col} is not a number: "
                               f"'{tok.decode('utf-8', errors='replace')[:40]}'") from None
    raise BvhError(f"BVH '{path}': the MOTION block contains values that are not numbers")


def _raise_layout(body: bytes, frames: int, nchan: int, found: int, first_line: int, path: str):
    expected = frames * nchan
    lines = body.splitlines()
    rows = [(first_line + k, len(ln.split())) for k, ln in enumerate(lines) if ln.strip()]
    for lineno, n in rows[:frames]:
        if n != nchan:
            more = "" if found == expected else f" ({expected} values expected in all, {found} found)"
            raise BvhError(f"BVH '{path}', line {lineno}: motion row has {n} values, expected {nchan} "
                           f"(one per channel){more}")
    if found < expected or len(rows) < frames:
        raise BvhError(f"BVH '{path}': truncated motion data: 'Frames: {frames}' x {nchan} channels = "
                       f"{expected} values expected, found {found} in {len(rows)} rows")
    raise BvhError(f"BVH '{path}': too much motion data: 'Frames: {frames}' x {nchan} channels = "
                   f"{expected} values expected, found {found} in {len(rows)} rows")


def _check_finite(motion: np.ndarray, names, channels, counts, path: str):
    if motion.size and not np.isfinite(motion).all():
        frame, col = (int(v) for v in np.argwhere(~np.isfinite(motion))[0])
        starts = np.concatenate([[0], np.cumsum(counts)])
        j = int(np.searchsorted(starts, col, side="right") - 1)
        raise BvhError(f"BVH '{path}': non-finite value ({motion[frame, col]}) in channel "
                       f"{channels[j][col - starts[j]]} of joint '{names[j]}' at frame {frame}")


# --- writing -------------------------------------------------------------------------------------------
def _fmt_exact(v: float) -> str:
    """Shortest text that reads back to the same float (offsets, frame time)."""
    v = float(v)
    if v == 0.0:
        return "0"
    text = repr(v)
    return text[:-2] if text.endswith(".0") else text


def write_bvh(path: str | os.PathLike, clip: BvhClip, precision: int = 6) -> None:
    """Write ``clip`` as BVH (tab-indented, each joint's channel order kept), atomically.

    Channels are written with ``precision`` decimals ('%.6f': 1e-6 absolute in file units, whatever
    the magnitude); offsets and the frame time are written exactly. The hierarchy is written
    depth-first with siblings in joint order; if the clip's joint order is not already depth-first
    the motion columns are reordered to match (reading back then gives depth-first order).
    """
    path = str(path)
    if not isinstance(clip, BvhClip):
        raise BvhError(f"BVH '{path}': write_bvh needs a BvhClip, got {type(clip).__name__}")
    if clip.num_frames < 1:
        raise BvhError(f"BVH '{path}': cannot write a clip with zero frames")
    if not np.isfinite(clip.motion).all():
        bad = np.argwhere(~np.isfinite(clip.motion))[0]
        raise BvhError(f"BVH '{path}': cannot write non-finite channel values (first at frame {bad[0]}, "
                       f"column {bad[1]})")
    if not np.isfinite(clip.offsets).all():
        raise BvhError(f"BVH '{path}': cannot write non-finite offsets")
    precision = int(precision)
    if precision < 0 or precision > 17:
        raise BvhError(f"BVH '{path}': precision must be 0..17 decimals, got {precision}")
    for n in clip.names:
        if not n.strip() or "\n" in n or "{" in n or "}" in n:
            raise BvhError(f"BVH '{path}': joint name {n!r} cannot be written to BVH")

    kids: list[list[int]] = [[] for _ in clip.names]
    roots = []
    for j, p in enumerate(clip.parents):
        (kids[p] if p >= 0 else roots).append(j)
    order: list[int] = []
    out: list[str] = ["HIERARCHY"]

    def emit(j: int, depth: int):
        ind = "\t" * depth
        if clip.is_end_site[j]:
            out.append(f"{ind}End Site")
        else:
            out.append(f"{ind}{'ROOT' if clip.parents[j] < 0 else 'JOINT'} {clip.names[j]}")
            order.append(j)
        out.append(f"{ind}{{")
        out.append(f"{ind}\tOFFSET " + " ".join(_fmt_exact(v) for v in clip.offsets[j]))
        if not clip.is_end_site[j]:
            ch = clip.channels[j]
            out.append(f"{ind}\tCHANNELS {len(ch)}" + ("".join(" " + c for c in ch)))
        for c in kids[j]:
            emit(c, depth + 1)
        out.append(f"{ind}}}")

    for r in roots:
        if clip.is_end_site[r]:
            raise BvhError(f"BVH '{path}': an End Site cannot be a root")
        emit(r, 0)
    cols = np.concatenate([np.arange(clip._starts[j], clip._starts[j + 1]) for j in order]).astype(np.int64) \
        if order else np.zeros(0, np.int64)
    motion = clip.motion[:, cols]
    out.append("MOTION")
    out.append(f"Frames: {clip.num_frames}")
    out.append(f"Frame Time: {_fmt_exact(clip.frame_time)}")
    header = "\n".join(out) + "\n"
    if motion.shape[1]:
        row = " ".join([f"%.{precision}f"] * motion.shape[1])
        body = "\n".join([row % tuple(r) for r in motion.tolist()]) + "\n"
    else:
        body = "\n" * motion.shape[0]
    _atomic_write(path, header + body)


def _atomic_write(path: str, text: str) -> None:
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise BvhError(f"BVH '{path}': folder '{folder}' does not exist")
    tmp = folder / f".{target.name}.{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise BvhError(f"BVH '{path}': cannot write file ({e.strerror or e})") from None
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# --- building a clip from rotations ---------------------------------------------------------------------
def matrix_to_bvh_euler(m: np.ndarray, order: str = "ZXY") -> np.ndarray:
    """Degrees (..., 3) such that ``euler_to_matrix(angles, order)`` == m, for the six BVH orders
    (three distinct axes, intrinsic). numpy only; at gimbal lock the last angle is set to 0."""
    order = order.upper()
    if len(order) != 3 or set(order) != set("XYZ"):
        raise ValueError(f"rotation order must be a permutation of XYZ, got '{order}'")
    m = np.asarray(m, dtype=np.float64)
    i, j, k = (_AXIS[a] for a in order)
    s = 1.0 if (j - i) % 3 == 1 else -1.0          # even (cyclic) or odd permutation
    sb = np.clip(s * m[..., i, k], -1.0, 1.0)
    beta = np.arcsin(sb)
    cb = np.sqrt(np.maximum(0.0, 1.0 - sb * sb))
    lock = cb < 1e-7
    alpha = np.where(lock, np.arctan2(s * m[..., k, j], m[..., j, j]), np.arctan2(-s * m[..., j, k], m[..., k, k]))
    gamma = np.where(lock, 0.0, np.arctan2(-s * m[..., i, j], m[..., i, i]))
    return np.rad2deg(np.stack([alpha, beta, gamma], axis=-1))


def bvh_from_rotations(names, parents, offsets, rotations, root_translation, frame_time: float,
                       rotation_order: str = "ZXY", end_sites=None, scale: float = 1.0) -> BvhClip:
    """A BvhClip from local quaternions (T, J, 4, w-first) and root positions (T, 3).

    The root joint(s) get 6 channels (X/Y/Zposition then the rotation order), the others 3 rotation
    channels. ``offsets`` (J, 3) are the rest offsets; ``scale`` multiplies offsets, End Site offsets
    and root translation (e.g. 100 to write metres as centimetres). ``end_sites`` maps a joint (name
    or index) to its End Site offset, in the units of ``offsets``. Joints are reordered depth-first
    (siblings in the given order) so that the clip reads back from a file in the same order. Euler
    angles are unwrapped in time (no 360-degree jumps).
    """
    names = [str(n) for n in names]
    parents = [int(p) for p in parents]
    offsets = np.asarray(offsets, dtype=np.float64).reshape(-1, 3)
    rotations = np.asarray(rotations, dtype=np.float64)
    root_translation = np.asarray(root_translation, dtype=np.float64)
    nj = len(names)
    if len(parents) != nj or offsets.shape[0] != nj:
        raise ValueError(f"names ({nj}), parents ({len(parents)}) and offsets ({offsets.shape[0]}) disagree")
    if rotations.ndim != 3 or rotations.shape[1:] != (nj, 4):
        raise ValueError(f"rotations must be (T, {nj}, 4); got {rotations.shape}")
    t = rotations.shape[0]
    if t < 1:
        raise ValueError("bvh_from_rotations needs at least one frame")
    if root_translation.shape != (t, 3):
        raise ValueError(f"root_translation must be ({t}, 3); got {root_translation.shape}")
    for j, p in enumerate(parents):
        if p >= j or p < -1:
            raise ValueError(f"parents must be topologically ordered; joint {j} '{names[j]}' has parent {p}")
    order = rotation_order.upper()
    if len(order) != 3 or set(order) != set("XYZ"):
        raise ValueError(f"rotation_order must be a permutation of XYZ, got '{rotation_order}'")
    ends: dict[int, np.ndarray] = {}
    for key, off in (end_sites or {}).items():
        j = names.index(key) if isinstance(key, str) else int(key)
        if not 0 <= j < nj:
            raise ValueError(f"end_sites: no joint {key!r}")
        ends[j] = np.asarray(off, dtype=np.float64).reshape(3) * scale

    euler = matrix_to_bvh_euler(quat_to_matrix(rotations), order)        # (T, J, 3)
    euler = np.unwrap(euler, period=360.0, axis=0)
    kids: list[list[int]] = [[] for _ in range(nj)]
    for j, p in enumerate(parents):
        if p >= 0:
            kids[p].append(j)
    out_names, out_parents, out_offsets, out_channels, out_ends, cols = [], [], [], [], [], []
    rot_ch = tuple(f"{a}rotation" for a in order)

    def visit(j: int, parent_out: int):
        me = len(out_names)
        out_names.append(names[j])
        out_parents.append(parent_out)
        out_offsets.append(offsets[j] * scale)
        out_ends.append(False)
        if parents[j] < 0:
            out_channels.append(("Xposition", "Yposition", "Zposition") + rot_ch)
            cols.append(root_translation * scale)
        else:
            out_channels.append(rot_ch)
        cols.append(euler[:, j])
        for c in kids[j]:
            visit(c, me)
        if j in ends:
            out_names.append(f"{names[j]}_end")
            out_parents.append(me)
            out_offsets.append(ends[j])
            out_channels.append(())
            out_ends.append(True)

    for j, p in enumerate(parents):
        if p < 0:
            visit(j, -1)
    motion = np.concatenate(cols, axis=1)
    return BvhClip(out_names, out_parents, np.array(out_offsets), out_channels, out_ends,
                   float(frame_time), motion, None)
