"""Finding, watching and killing the detached QEMU of one VM, safely.

Why a module of its own: QEMU outlives the node (it runs in a session of its own), so
after a restart of the node it is not our child and we find it again through its
pidfile, and a pid is only a hint: after QEMU dies its pid may be reused by an
unrelated process. So a pid counts as "this VM's QEMU" only when the process is alive,
not a zombie, and its command line holds ``-pidfile <this VM's pidfile>`` (an absolute
path inside this VM's directory, which no other process has a reason to carry), or
``-name <vm id>`` while it runs in this VM's directory (QEMU as the VM user, see
``_marked``). Nothing here ever signals a process that fails that check: the backend
never touches a process it did not create.

When the pidfile is gone or stale (a crash between exec and its creation; an older
QEMU deleted its own on a clean exit) :func:`scan_for_owner` walks the process table
for the same mark, so ``delete`` and ``launch`` never leave or duplicate a QEMU.

A QEMU left by an earlier node is reparented to PID 1, which may not reap (in a
container or microVM): a zombie counts as exited. All functions are synchronous and
read ``/proc``; the backend calls them through ``trio.to_thread.run_sync``.
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


def _marked(process: psutil.Process, pidfile: Path) -> bool:
    """Whether the command line holds ``-pidfile <pidfile>``, or ``-name <the pidfile's
    directory name>`` while the process runs in that directory (QEMU as the VM user:
    it cannot resolve absolute paths it has no access to, so the node writes the
    pidfile for it, see ``_boot``)."""
    pairs = set(itertools.pairwise(process.cmdline()))
    if ("-pidfile", str(pidfile)) in pairs:
        return True
    directory = pidfile.parent
    return ("-name", directory.name) in pairs and process.cwd() == str(directory)


def _owned(pid: int, pidfile: Path) -> psutil.Process | None:
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process if _marked(process, pidfile) else None
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
