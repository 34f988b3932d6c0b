# SPDX-License-Identifier: GPL-3.0-or-later
"""Files that stay where they belong: paths confined to a folder, atomic writes with the umask's modes, and a
portable exclusive lock (``fcntl.flock`` on Linux and macOS, ``msvcrt.locking`` on Windows).

Used by the library (and anything else that keeps an index next to its files); no Choreo types here.
"""
from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path

TEMP_SUFFIX = ".tmp"


class OutsideFolderError(ValueError):
    """A path that would leave its folder (``..``, an absolute path, a symbolic link pointing out)."""


def inside(root, relative, sub: str = "") -> Path:
    """``root / relative`` (normalised, links not followed, so deleting it deletes a link rather than what it
    points to), refused unless both it and what it resolves to (links followed) lie inside ``root / sub``."""
    text = str(relative)
    if not text or "\x00" in text:
        raise OutsideFolderError(f"'{text}' is not a file name")
    where = f"{sub}/ of {Path(root).resolve()}" if sub else str(Path(root).resolve())
    for base, target in ((Path(os.path.normpath(Path(root).absolute())),
                          Path(os.path.normpath(Path(root).absolute() / text))),
                         (Path(root).resolve(), (Path(root).resolve() / text).resolve())):
        folder = Path(os.path.normpath(base / sub)) if sub else base
        if target == folder or folder not in target.parents:
            raise OutsideFolderError(f"'{text}' is outside {where}")
    return Path(os.path.normpath(Path(root).absolute() / text))


def file_mode() -> int:
    """The mode ``open(..., "w")`` would give a new file under the current umask (0o666 & ~umask)."""
    try:                                   # Linux: read it without changing it (os.umask is process-wide)
        found = re.search(r"^Umask:\s*([0-7]+)", Path("/proc/self/status").read_text(), re.M)
        if found:
            return 0o666 & ~int(found.group(1), 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: Path, write) -> None:
    """Write through ``write(file_object)`` to a temporary sibling (``.<name>.*.tmp``), fsync, give it the
    umask's mode (``mkstemp`` makes 0600 files) and rename it over ``path``; nothing is left on failure."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode())
        _replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _replace(src: str, dst: Path, attempts: int = 50) -> None:
    """``os.replace``; on Windows a reader holding ``dst`` open makes it fail for a moment: retry."""
    for i in range(attempts):
        try:
            os.replace(src, dst)
            return
        except PermissionError:
            if os.name != "nt" or i == attempts - 1:
                raise
            time.sleep(0.02)


def remove_leftovers(folder: Path, older_than_s: float = 0.0) -> list[Path]:
    """Delete ``.*.tmp`` files directly in ``folder`` (leftovers of an interrupted ``atomic_write``) at least
    ``older_than_s`` old; returns what was removed."""
    removed = []
    now = time.time()
    for tmp in Path(folder).glob(f".*{TEMP_SUFFIX}"):
        try:
            if tmp.is_file() and not tmp.is_symlink() and now - tmp.stat().st_mtime >= older_than_s:
                tmp.unlink()
                removed.append(tmp)
        except OSError:
            continue
    return removed


class LockTimeout(TimeoutError):
    """Another process held the lock for longer than the timeout."""


class FileLock:
    """An exclusive lock on ``path`` (created with the umask's mode, never deleted: deleting a lock file
    races with the next locker). Works between processes and between threads of one process (each
    ``FileLock`` opens its own handle). Use as a context manager."""

    def __init__(self, path, timeout_s: float = 120.0):
        self.path = Path(path)
        self.timeout_s = timeout_s
        self._fd: int | None = None

    def __enter__(self) -> "FileLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        deadline = time.monotonic() + self.timeout_s
        try:
            while not _try_lock(fd):
                if time.monotonic() > deadline:
                    raise LockTimeout(f"'{self.path}' stayed locked by another process for {self.timeout_s:g} s")
                time.sleep(0.02)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                _unlock(fd)
            finally:
                os.close(fd)


if os.name == "nt":
    import msvcrt

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
