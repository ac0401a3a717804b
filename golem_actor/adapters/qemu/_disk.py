"""Running host tools (``qemu-img``) and making a VM's data disk.

Why a module of its own: every external tool the backend runs goes through
:func:`run_tool`, which is where their failures become ``BackendError`` with the tool's
stderr, where each run gets a time bound, and where they are kept off the node's stdio.

Disks are created under a temp name and renamed into place, so "``disk.qcow2`` exists"
always means "a complete disk" (a crash mid-create leaves only a temp file that the VM
directory's removal sweeps):

* test guest: a qcow2 of ``storage_gib`` holding an empty ext4 filesystem labelled
  ``golem-data`` (the guest mounts it and keeps ``/root``, ``/home`` and its SSH host key
  there, so they survive stop/start). Formatted here rather than in the guest: the host's
  ``mke2fs`` takes milliseconds on a sparse raw file (``assume_storage_prezeroed``: nothing
  is zeroed, so the guest's kernel has no lazy inode-table init to do either), while the
  guest's busybox only makes journal-less ext2, slowly under TCG. The feature list is
  spelled out (``-O none,...``) so that a newer host ``mke2fs`` cannot enable a feature
  the guest's kernel (Debian 12's 6.1) does not know. ``qemu-img convert`` then turns the
  sparse raw file into a qcow2 of a few MiB;
* cloud image: a qcow2 overlay whose backing file is the verified base image (format
  given explicitly, never probed), with the virtual size of the request. A base larger
  than the request is refused rather than silently shrunk.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import msgspec
import trio

from golem_actor._atomic import fsync_dir, temp_path_for
from golem_actor.adapters.backend import BackendError

__all__ = ["DATA_LABEL", "GIB", "create_data_disk", "create_overlay", "disk_info", "run_tool"]

GIB = 1 << 30
TOOL_TIMEOUT = 120.0
DATA_LABEL = "golem-data"
"""The ext4 label by which the test guest finds its data disk."""
# All understood by Linux 6.1 (and by e2fsck 1.46+); no orphan_file, no metadata_csum_seed.
EXT4_FEATURES = (
    "has_journal,ext_attr,resize_inode,dir_index,filetype,extent,64bit,flex_bg,"
    "sparse_super,large_file,huge_file,dir_nlink,extra_isize,metadata_csum"
)


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


def _unlink(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    with path.open("rb") as f:
        os.fsync(f.fileno())


def _tool(name: str) -> str:
    """``name`` found on PATH or in the sbin directories (not on a normal user's PATH)."""
    if "/" in name:
        return name
    search = os.pathsep.join([os.environ.get("PATH", os.defpath), "/usr/sbin", "/sbin"])
    return shutil.which(name, path=search) or name


async def create_data_disk(
    target: Path, storage_gib: int, *, qemu_img: str = "qemu-img", mke2fs: str = "mke2fs"
) -> None:
    """A qcow2 of ``storage_gib`` GiB at ``target`` holding an empty ext4 (``DATA_LABEL``)."""
    raw, tmp = temp_path_for(target), temp_path_for(target)
    what = "formatting the data disk"
    try:

        def sparse_file() -> None:
            with raw.open("xb") as f:
                f.truncate(storage_gib * GIB)

        await trio.to_thread.run_sync(sparse_file)
        mkfs = [
            await trio.to_thread.run_sync(_tool, mke2fs),
            "-q",
            "-F",
            "-t",
            "ext4",
            "-O",
            f"none,{EXT4_FEATURES}",
            "-m",
            "0",
        ]
        mkfs += ["-L", DATA_LABEL, "-E", "assume_storage_prezeroed=1,nodiscard", str(raw)]
        await run_tool(mkfs, what=what)
        convert = [qemu_img, "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(tmp)]
        await run_tool(convert, what=what)
        await trio.to_thread.run_sync(_fsync, tmp)
        await trio.to_thread.run_sync(os.replace, tmp, target)
        await trio.to_thread.run_sync(fsync_dir, target.parent)
    except OSError as exc:
        raise BackendError(f"{what}: {exc}") from exc
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(_unlink, raw, tmp)


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
