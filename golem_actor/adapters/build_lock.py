"""The exclusive lock a build holds on its cache, shared by the test-guest and image builders.

A plain `flock` on a lock file: released by the kernel when the fd closes, so a build that
crashes or is killed never leaves a stale lock. Taken by polling a non-blocking `flock`,
so waiting for another build's lock stays cancellable and never blocks the event loop.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path

import trio

__all__ = ["acquire_build_lock"]


async def acquire_build_lock(
    path: Path, progress: Callable[[str], None], *, what: str, poll: float
) -> int:
    """An fd holding an exclusive flock on ``path``; closing the fd releases it.
    ``progress`` is told once, naming ``what``, when another build holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if not told:
                    progress(f"another build holds the {what}; waiting")
                    told = True
                await trio.sleep(poll)
    except BaseException:
        os.close(fd)
        raise
