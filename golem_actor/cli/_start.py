"""`golem-provider start`: run the node in the foreground, or detached as a daemon.

Daemon mode re-runs this command in a new session with its output going to the log file
in the data directory, and waits on a pipe until the child says the tree is ready (or
closes the pipe by dying), so `start --daemon` returns only once the node serves.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import msgspec
import structlog
import trio

from golem_actor._atomic import write_atomic
from golem_actor.adapters.fd_limit import raise_open_file_limit
from golem_actor.adapters.local_ports import connect_host
from golem_actor.adapters.sd_notify import notify_ready
from golem_actor.logs import choose_format, configure_logging, reset_logging
from golem_actor.runtime import EXIT_FAILED, run_node
from golem_actor.settings import LoadedSettings, Settings
from supervisors import build_node

from . import _pidfile
from ._node_api import NodeFile, node_file

READY_TIMEOUT = 120.0


def log_file(settings: Settings) -> Path:
    return settings.log_dir / "provider.log"


def start(loaded: LoadedSettings, args: argparse.Namespace, argv: list[str]) -> int:
    if args.daemon:
        return _spawn_daemon(loaded.settings, argv)
    return _run_foreground(loaded, args.ready_fd)


def _run_foreground(loaded: LoadedSettings, ready_fd: int | None) -> int:
    settings = loaded.settings
    if ready_fd is not None:  # the detached child: stderr is the log file already
        configure_logging(fmt="json", level=settings.log_level)
    else:
        fmt = choose_format(settings.log_format, sys.stderr)
        configure_logging(fmt=fmt, level=settings.log_level)
    logging.captureWarnings(True)  # warnings become log lines, not stray text
    log = structlog.get_logger("golem_actor.cli")
    for warning in loaded.warnings:
        log.warning("settings", detail=warning)
    before, after = raise_open_file_limit()  # SSH relays hold six fds per connection
    if after != before:
        log.info("open file limit raised", before=before, after=after)
    try:
        _pidfile.claim(settings.pid_file)
    except _pidfile.AlreadyRunning as error:
        print(f"golem-provider: {error}", file=sys.stderr)
        return EXIT_FAILED

    def ready() -> None:
        _write_node_file(settings)
        notify_ready()  # systemd's Type=notify, when NOTIFY_SOCKET is set
        if ready_fd is not None:
            os.write(ready_fd, b"ready\n")
            os.close(ready_fd)

    try:
        tree = build_node(settings)  # blocking IO, done before the loop runs
        return trio.run(partial(run_node, tree.root, stop=tree.stop, on_ready=ready))
    finally:
        _pidfile.release(settings.pid_file)
        node_file(settings).unlink(missing_ok=True)
        reset_logging()


def _write_node_file(settings: Settings) -> None:
    host = connect_host(settings.host)
    host = f"[{host}]" if ":" in host else host
    record = NodeFile(pid=os.getpid(), api=f"http://{host}:{settings.port}")
    write_atomic(node_file(settings), msgspec.json.encode(record), mode=0o600)


def _child_argv(settings: Settings, argv: list[str], ready_fd: int) -> list[str]:
    passed = [arg for arg in argv if arg != "--daemon"]
    return [
        sys.executable,
        "-m",
        "golem_actor.cli",
        *passed,
        "--data-dir",
        str(settings.data_path),
        "--ready-fd",
        str(ready_fd),
    ]


def _spawn_daemon(settings: Settings, argv: list[str]) -> int:
    running = _pidfile.running_pid(settings.pid_file)
    if running is not None:
        print(f"golem-provider: already running with pid {running}", file=sys.stderr)
        return EXIT_FAILED
    path = log_file(settings)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    read_end, write_end = os.pipe()
    with open(path, "ab", buffering=0) as out:
        os.chmod(path, 0o600)
        child = subprocess.Popen(
            _child_argv(settings, argv, write_end),
            pass_fds=(write_end,),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    os.close(write_end)
    try:
        ready = _wait_ready(read_end, READY_TIMEOUT)
    finally:
        os.close(read_end)
    if ready:
        print(f"golem-provider started: pid {child.pid}, logs in {path}")
        return 0
    try:
        code: int | None = child.wait(timeout=10)  # the pipe closed: it is exiting
    except subprocess.TimeoutExpired:
        code = None
    why = f"exited with status {code}" if code is not None else "did not become ready in time"
    print(f"golem-provider: the node {why}; see {path}", file=sys.stderr)
    for line in _tail(path, 5):
        print(f"  {line}", file=sys.stderr)
    return EXIT_FAILED


def _wait_ready(fd: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    received = b""
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([fd], [], [], left)
        if not readable:
            break
        chunk = os.read(fd, 64)
        if not chunk:
            break  # the child closed the pipe without saying ready: it died
        received += chunk
        if b"ready" in received:
            return True
    return False


def _tail(path: Path, lines: int) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    except OSError:
        return []
