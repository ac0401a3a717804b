"""Running host tools (``qemu-img``) and making a VM's data disk.

Why a module of its own: every external tool the backend runs goes through
:func:`run_tool`, which is where their failures become ``BackendError`` with the tool's
stderr, where each run gets a time bound, and where they are kept off the node's stdio.

Disks are created under a temp name and renamed into place, so "``disk.qcow2`` exists"
always means "a complete disk" (a crash mid-create leaves only a temp file that the VM
directory's removal sweeps):

* test guest: an empty qcow2 of ``storage_gib`` (the guest runs from its initramfs and
  sees the disk as ``/dev/vda``);
* cloud image: a qcow2 overlay whose backing file is the verified base image (format
  given explicitly, never probed), with the virtual size of the request. A base larger
  than the request is refused rather than silently shrunk.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import msgspec
import trio

from golem_actor._atomic import fsync_dir, temp_path_for
from golem_actor.adapters.backend import BackendError

__all__ = ["GIB", "create_data_disk", "create_overlay", "disk_info", "run_tool"]

GIB = 1 << 30
TOOL_TIMEOUT = 120.0


async def run_tool(argv: list[str], *, what: str, time_limit: float = TOOL_TIMEOUT) -> bytes:
    """Run ``argv`` to completion with no stdin; its stdout, or ``BackendError``."""
    try:
        with trio.fail_after(time_limit):
            result = await trio.run_process(
                argv,
                stdin=subprocess.DEVNULL,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
    except trio.TooSlowError:
        raise BackendError(f"{what}: {argv[0]} did not finish within {time_limit:g}s") from None
    except OSError as exc:
        raise BackendError(f"{what}: cannot run {argv[0]}: {exc}") from None
    if result.returncode != 0:
        stderr = result.stderr.decode(errors="replace").strip()
        raise BackendError(f"{what}: {argv[0]} exited with {result.returncode}: {stderr[-2000:]}")
    return result.stdout


async def disk_info(path: Path, *, qemu_img: str = "qemu-img") -> dict[str, Any]:
    """``qemu-img info --output=json`` of ``path`` (``format``, ``virtual-size``, ...)."""
    out = await run_tool(
        [qemu_img, "info", "--output=json", str(path)], what=f"inspecting {path.name}"
    )
    try:
        return msgspec.json.decode(out, type=dict[str, Any])
    except msgspec.DecodeError as exc:
        raise BackendError(f"qemu-img info {path}: unreadable output: {exc}") from None


async def _create(
    target: Path, options: list[str], size_bytes: int, what: str, qemu_img: str
) -> None:
    tmp = temp_path_for(target)
    try:
        argv = [qemu_img, "create", "-q", "-f", "qcow2", *options, str(tmp), str(size_bytes)]
        await run_tool(argv, what=what)
        await trio.to_thread.run_sync(os.replace, tmp, target)
        await trio.to_thread.run_sync(fsync_dir, target.parent)
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(lambda: tmp.unlink(missing_ok=True))


async def create_data_disk(target: Path, storage_gib: int, *, qemu_img: str = "qemu-img") -> None:
    """An empty qcow2 of ``storage_gib`` GiB at ``target``."""
    await _create(target, [], storage_gib * GIB, "creating the data disk", qemu_img)


async def create_overlay(
    target: Path, base: Path, storage_gib: int, *, qemu_img: str = "qemu-img"
) -> None:
    """A qcow2 overlay of ``base`` at ``target``, ``storage_gib`` GiB large."""
    info = await disk_info(base, qemu_img=qemu_img)
    base_format = str(info.get("format", ""))
    base_size = int(info.get("virtual-size", 0))
    if base_format not in ("qcow2", "raw"):
        raise BackendError(f"base image {base} has unsupported format {base_format!r}")
    if base_size > storage_gib * GIB:
        raise BackendError(
            f"the image needs {-(-base_size // GIB)} GiB of storage, the VM asks for"
            f" {storage_gib} GiB"
        )
    await _create(
        target,
        ["-b", str(base), "-F", base_format],
        storage_gib * GIB,
        "creating the disk overlay",
        qemu_img,
    )
