"""The test guest's data disk as ``create_data_disk`` makes it, read back byte for byte.

Real ``mke2fs`` and ``qemu-img`` (host tools of the node), no guest: the superblock must
carry the label the guest looks for, the requested size, and exactly the ext4 features the
guest's kernel is known to mount, whatever the host's ``mke2fs.conf`` enables.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
import trio

from golem_actor.adapters.backend import BackendError
from golem_actor.adapters.qemu._disk import (
    DATA_LABEL,
    GIB,
    create_data_disk,
    disk_info,
    run_tool,
)

SUPERBLOCK = 1024
# ext4 feature bits (fs/ext4/ext4.h) for has_journal, ext_attr, resize_inode, dir_index |
# filetype, extent, 64bit, flex_bg | sparse_super, large_file, huge_file, dir_nlink,
# extra_isize, metadata_csum
COMPAT = 0x4 | 0x8 | 0x10 | 0x20
INCOMPAT = 0x2 | 0x40 | 0x80 | 0x200
RO_COMPAT = 0x1 | 0x2 | 0x8 | 0x20 | 0x40 | 0x400


async def superblock(disk: Path, scratch: Path) -> bytes:
    head = scratch / "head.raw"
    argv = ["qemu-img", "dd", "-f", "qcow2", "-O", "raw", "bs=4096", "count=1"]
    await run_tool([*argv, f"if={disk}", f"of={head}"], what="reading the disk's first block")
    data = head.read_bytes()
    head.unlink()
    return data[SUPERBLOCK : SUPERBLOCK + 1024]


async def test_data_disk_is_an_ext4_of_the_requested_size(tmp_path: Path) -> None:
    disk = tmp_path / "disk.qcow2"
    await create_data_disk(disk, 3)
    info = await disk_info(disk)
    assert (info["format"], info["virtual-size"]) == ("qcow2", 3 * GIB)
    assert os.stat(disk).st_blocks * 512 < 32 << 20  # sparse: a few MiB, not 3 GiB

    sb = await superblock(disk, tmp_path)
    assert sb[0x38:0x3A] == b"\x53\xef"  # ext2/3/4 magic
    assert sb[0x78:0x88].rstrip(b"\0").decode() == DATA_LABEL
    blocks_lo, reserved_lo = struct.unpack_from("<II", sb, 0x4)
    (log_block,) = struct.unpack_from("<I", sb, 0x18)
    (blocks_hi,) = struct.unpack_from("<I", sb, 0x150)
    assert ((blocks_hi << 32) | blocks_lo) * (1024 << log_block) == 3 * GIB
    assert reserved_lo == 0  # the tenant is root anyway: all of it is theirs
    assert struct.unpack_from("<III", sb, 0x5C) == (COMPAT, INCOMPAT, RO_COMPAT)
    assert sorted(os.listdir(tmp_path)) == ["disk.qcow2"]  # no temp files left


async def test_a_failed_format_leaves_nothing(tmp_path: Path) -> None:
    disk = tmp_path / "disk.qcow2"
    with pytest.raises(BackendError, match=r"formatting the data disk: \S*false exited with 1"):
        await create_data_disk(disk, 1, mke2fs="false")
    assert os.listdir(tmp_path) == []


async def test_a_cancelled_format_leaves_nothing(tmp_path: Path) -> None:
    slow = tmp_path / "slow-mke2fs"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(0o755)
    vm_dir = tmp_path / "vm"
    vm_dir.mkdir()
    with trio.move_on_after(0.5) as scope:
        await create_data_disk(vm_dir / "disk.qcow2", 1, mke2fs=str(slow))
    assert scope.cancelled_caught
    assert os.listdir(vm_dir) == []
