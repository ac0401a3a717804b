"""Running the image build's host tools, and keeping their mounts out of harm's way.

Why a module of its own: mmdebstrap runs for minutes as root, spawns apt and dpkg, and
mounts ``/proc`` and ``/sys`` in its chroot. Here it runs in its own process group (so a
time limit or a cancel stops all of it: SIGTERM first, which lets it unmount, then
SIGKILL), its output is streamed line by line, and every failure becomes an
:class:`ImageBuildError` with the tool's last lines. Scratch trees are removed only when
nothing is mounted inside: ``rmtree`` through a live ``/proc`` or ``/dev`` mount would
reach the host's files.
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import trio

from golem_actor.adapters.images._model import ImageBuildError

__all__ = [
    "check_unmounted",
    "mounts_under",
    "remove_scratch",
    "run_streaming",
    "run_tool",
    "sbin_tool",
]

TERM_GRACE = 30.0
Progress = Callable[[str], None]


def mounts_under(directory: Path) -> list[str]:
    prefix = str(directory).rstrip("/") + "/"
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    points = [line.split()[1].encode().decode("unicode_escape") for line in lines if " " in line]
    return sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)


def remove_scratch(scratch: Path) -> None:
    """Remove a scratch tree, unmounting what a killed mmdebstrap left mounted in it; a
    tree that still has mounts is left alone (rmtree would descend into them)."""
    for point in mounts_under(scratch):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    if mounts_under(scratch):
        return
    shutil.rmtree(scratch, ignore_errors=True)


async def _stream_lines(stream: trio.abc.ReceiveStream, sink: Callable[[str], None]) -> None:
    pending = b""
    async for chunk in stream:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            sink(line.decode(errors="replace").rstrip())
    if pending:
        sink(pending.decode(errors="replace").rstrip())


async def _stop_group(process: trio.Process) -> None:
    """SIGTERM the process group (mmdebstrap unmounts and cleans up), then SIGKILL."""
    for sig, grace in ((signal.SIGTERM, TERM_GRACE), (signal.SIGKILL, 5.0)):
        if process.returncode is not None:
            return
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        with trio.move_on_after(grace):
            await process.wait()


async def run_streaming(step: str, argv: list[str], progress: Progress) -> None:
    """Run ``argv`` in its own process group, stdout and stderr line by line to
    ``progress``; :class:`ImageBuildError` with the last lines if it fails."""
    recent: collections.deque[str] = collections.deque(maxlen=40)

    def sink(line: str) -> None:
        recent.append(line)
        if line.startswith(("I: ", "W: ", "E: ")):  # mmdebstrap's steps, not hook echoes
            progress(line if len(line) <= 160 else line[:157] + "...")

    try:
        process = await trio.lowlevel.open_process(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        raise ImageBuildError(step, f"cannot run {argv[0]}: {exc}") from exc
    try:
        assert process.stdout is not None
        await _stream_lines(process.stdout, sink)
        await process.wait()
    finally:
        with trio.CancelScope(shield=True):
            await _stop_group(process)
    if process.returncode != 0:
        raise ImageBuildError(
            step, f"{argv[0]} exited with status {process.returncode}", output="\n".join(recent)
        )


def check_unmounted(root: Path) -> None:
    """Nothing may be mounted in the tree ``mke2fs -d`` copies (once, a ``/proc`` was
    still mounted after mmdebstrap returned and its files ended up in the copy)."""
    for point in mounts_under(root):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    left = mounts_under(root)
    proc = root / "proc"
    if left or (proc.is_dir() and any(proc.iterdir())):
        raise ImageBuildError("unmount", f"still mounted in the new root: {left or ['/proc']}")


async def run_tool(step: str, argv: list[str]) -> None:
    try:
        result = await trio.run_process(
            argv, stdin=subprocess.DEVNULL, capture_stdout=True, capture_stderr=True, check=False
        )
    except OSError as exc:
        raise ImageBuildError(step, f"cannot run {argv[0]}: {exc}") from exc
    if result.returncode != 0:
        raise ImageBuildError(
            step,
            f"{argv[0]} exited with status {result.returncode}",
            output=result.stderr.decode(errors="replace"),
        )


def sbin_tool(name: str) -> str:
    search = os.pathsep.join([os.environ.get("PATH", os.defpath), "/usr/sbin", "/sbin"])
    return shutil.which(name, path=search) or name
