"""Synchronous helpers for crash-safe files: write a temp file, fsync, rename, fsync the dir.

Why: a node killed mid-write (power loss, SIGKILL, a full disk) must find either the old or
the new content of a state file on restart, never a mix. ``os.replace`` is atomic within a
directory; the fsyncs make the new content and the rename durable before we report success.
These run in worker threads (see ``golem_actor.state_store``), never on the event loop.
Temp files are named ``.<final name>.tmp-<random>`` so leftovers of a crash are recognisable.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

TEMP_MARKER = ".tmp-"
DIR_MODE = 0o700
FILE_MODE = 0o600


def temp_path_for(path: Path) -> Path:
    """A fresh temp file name next to ``path``."""
    return path.with_name(f".{path.name}{TEMP_MARKER}{secrets.token_hex(6)}")


def is_temp_name(name: str) -> bool:
    """Whether a directory entry is a temp file of ``write_atomic``."""
    return name.startswith(".") and TEMP_MARKER in name


def ensure_dir(path: Path, mode: int = DIR_MODE) -> None:
    """Create ``path`` and any missing parents, each with ``mode`` (umask notwithstanding)."""
    missing: list[Path] = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=mode)
            os.chmod(directory, mode)


def fsync_dir(path: Path) -> None:
    """Make the entries of a directory (a rename, an unlink) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def write_atomic(
    path: Path, data: bytes, *, tmp: Path | None = None, mode: int = FILE_MODE
) -> None:
    """Replace ``path`` with ``data`` atomically and durably; on failure ``path`` is untouched."""
    tmp = temp_path_for(path) if tmp is None else tmp
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        try:
            os.fchmod(fd, mode)
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def read_if_exists(path: Path) -> bytes | None:
    """The content of ``path``, or None when it does not exist."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def remove_durably(path: Path) -> bool:
    """Unlink ``path`` if present and sync its directory; whether it existed."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    fsync_dir(path.parent)
    return True


def rename_durably(source: Path, target: Path) -> None:
    """Rename within one directory, refusing to overwrite, and sync the directory."""
    if target.exists():
        raise FileExistsError(target)
    os.rename(source, target)
    fsync_dir(target.parent)
