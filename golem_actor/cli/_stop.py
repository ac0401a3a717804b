"""`golem-provider stop`: SIGTERM the node, then SIGKILL it after the timeout."""

from __future__ import annotations

import contextlib
import os
import signal
import sys

import psutil

from golem_actor.settings import Settings

from . import _pidfile


def stop(settings: Settings, timeout: float | None) -> int:
    bound = settings.shutdown_timeout_seconds if timeout is None else timeout
    pid = _pidfile.running_pid(settings.pid_file)
    if pid is None:
        with contextlib.suppress(FileNotFoundError):
            settings.pid_file.unlink()  # stale: its process is gone
        print(f"golem-provider: no node running in {settings.data_path}")
        return 0
    process = psutil.Process(pid)
    os.kill(pid, signal.SIGTERM)
    try:
        process.wait(bound)
    except psutil.TimeoutExpired:
        print(
            f"golem-provider: pid {pid} still running after {bound:g}s; killing it", file=sys.stderr
        )
        os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(psutil.NoSuchProcess):
            process.wait(10)
        with contextlib.suppress(FileNotFoundError):
            settings.pid_file.unlink()
        return 1
    print(f"golem-provider stopped (pid {pid})")
    return 0
