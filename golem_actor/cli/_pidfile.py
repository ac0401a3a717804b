"""The PID file of a node: one running node per data directory.

A PID alone can be reused by the system, so a recorded PID counts as our node only when
that process is alive and its command line is a golem-provider's.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import psutil

from golem_actor._atomic import write_atomic

MARKERS = ("golem-provider", "golem_actor")


class AlreadyRunning(Exception):
    def __init__(self, pid: int, path: Path) -> None:
        super().__init__(f"a node is already running with pid {pid} (pid file {path})")
        self.pid = pid


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def is_node_process(pid: int) -> bool:
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        command = " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return any(marker in command for marker in MARKERS)


def running_pid(path: Path) -> int | None:
    """The PID of the node recorded in `path`, if that node is still running."""
    pid = read_pid(path)
    return pid if pid is not None and is_node_process(pid) else None


def claim(path: Path) -> None:
    """Record this process as the node of the data directory, or refuse."""
    pid = running_pid(path)
    if pid is not None and pid != os.getpid():
        raise AlreadyRunning(pid, path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(path, f"{os.getpid()}\n".encode("ascii"), mode=0o600)


def release(path: Path) -> None:
    """Remove the PID file if it is still ours."""
    if read_pid(path) == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
