"""Finding, watching and killing the detached QEMU of one VM, safely.

Why a module of its own: a daemonized QEMU (``-daemonize``) is not our child, so we find
it again through its pidfile after any restart of the node, and a pid is only a hint:
after QEMU dies its pid may be reused by an unrelated process. So a pid counts as "this
VM's QEMU" only when the process is alive, not a zombie, and its command line holds
``-pidfile <this VM's pidfile>`` (an absolute path inside this VM's directory, which no
other process has a reason to carry). Nothing here ever signals a process that fails
that check: the backend never touches a process it did not create.

When the pidfile is gone (QEMU deletes it on a clean exit; a crash between exec and
its creation) :func:`scan_for_owner` walks the process table for the same command-line
mark, so ``delete`` and ``launch`` never leave or duplicate a QEMU.

Daemonized QEMU is reparented to PID 1, which may not reap (in a container or microVM):
a zombie counts as exited. All functions are synchronous and read ``/proc``; the backend
calls them through ``trio.to_thread.run_sync``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
from pathlib import Path

import psutil

__all__ = ["is_ours", "live_pid", "read_pidfile", "scan_for_owner", "send_kill"]


def read_pidfile(pidfile: Path) -> int | None:
    """The pid in ``pidfile``, or None when it is missing or garbled."""
    try:
        text = pidfile.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def _cmdline_marks(cmdline: list[str], pidfile: Path) -> bool:
    target = str(pidfile)
    return any(arg == "-pidfile" and value == target for arg, value in itertools.pairwise(cmdline))


def _owned(pid: int, pidfile: Path) -> psutil.Process | None:
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process if _cmdline_marks(process.cmdline(), pidfile) else None
    except (psutil.Error, OSError):
        return None


def is_ours(pid: int, pidfile: Path) -> bool:
    """Whether ``pid`` is alive (not a zombie) and carries ``-pidfile <pidfile>``."""
    return _owned(pid, pidfile) is not None


def live_pid(pidfile: Path) -> int | None:
    """The pid of this VM's QEMU according to its pidfile, if that process is ours."""
    pid = read_pidfile(pidfile)
    return pid if pid is not None and is_ours(pid, pidfile) else None


def scan_for_owner(pidfile: Path) -> list[int]:
    """Every live process carrying ``-pidfile <pidfile>`` (normally none or one)."""
    found: list[int] = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if process.pid != os.getpid() and is_ours(process.pid, pidfile):
                found.append(process.pid)
    return found


def send_kill(pid: int, pidfile: Path, sig: signal.Signals = signal.SIGKILL) -> bool:
    """Signal ``pid`` only if it is still this VM's QEMU; whether a signal was sent.

    psutil re-checks the process's creation time before signalling, so a pid reused
    between the ownership check and the signal is not hit.
    """
    process = _owned(pid, pidfile)
    if process is None:
        return False
    try:
        process.send_signal(sig)
    except (psutil.Error, OSError):
        return False
    return True
