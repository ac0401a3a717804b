"""One directory per VM: its layout, its record (``vm.json``) and crash-safe creation/removal.

Why a module of its own: the directory *is* the backend's memory. A new backend instance
(after a crash or restart of the node) knows its VMs only from ``<vms_dir>/<vm_id>/``,
so creating and removing it must leave no state that could be misread:

* **Create**: a staging directory ``.<vm_id>.staging-<hex>`` gets ``vm.json`` (written
  atomically) and is then renamed to ``<vm_id>``. So a VM directory always has a record;
  a crash before the rename leaves only a dotted staging directory, which ``delete``
  sweeps and ``list_owned`` ignores.
* **Remove**: the directory is first renamed to ``.<vm_id>.deleting-<hex>`` (atomic: the
  VM is gone at once) and then removed recursively; a crash mid-removal leaves a dotted
  directory that the next ``delete`` of that id sweeps.
* **Ownership**: a directory is ours when it holds ``vm.json``, or when it holds nothing
  but names this module writes (a husk from an older crash). Anything else in
  ``vms_dir`` is left alone.

The record holds the launch spec, the private SSH forward port and the accelerator of
the latest boot. Functions here block (filesystem); the backend runs them in threads.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Literal

import msgspec

from golem_actor._atomic import ensure_dir, fsync_dir, is_temp_name, write_atomic
from golem_actor.adapters.backend import BackendError, LaunchSpec

__all__ = [
    "RECORD_VERSION",
    "MachineRecord",
    "VmPaths",
    "check_vm_id",
    "create_vm_dir",
    "is_husk",
    "read_record",
    "remove_vm_dir",
    "write_record",
]

RECORD_VERSION = 1
SUN_PATH_MAX = 107  # sockaddr_un.sun_path is 108 bytes including the NUL
_VM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class MachineRecord(msgspec.Struct, frozen=True, kw_only=True):
    """``vm.json``: what the backend must remember about one VM."""

    version: int = RECORD_VERSION
    spec: LaunchSpec
    ssh_port: int
    accel: Literal["kvm", "tcg"]


class VmPaths:
    """Where everything of one VM lives (all absolute)."""

    RECORD = "vm.json"
    DISK = "disk.qcow2"
    SEED = "seed.iso"
    PIDFILE = "qemu.pid"
    QMP = "qmp.sock"
    SERIAL = "serial.log"
    QEMU_LOG = "qemu.log"
    KERNEL = "vmlinux"  # the test guest's boot files, linked from the image cache
    INITRD = "initrd"
    BASE = "base"  # an overlay disk's base image, linked from the image cache
    PASTA = "pasta.json"  # the network helper (see _network): its identity,
    PASTA_PID = "pasta.pid"  # its own pidfile (written once it is ready),
    PASTA_LOG = "pasta.log"  # and its log
    VPN_NIC = "vpn.sock"  # the VPN NIC: QEMU's datagram socket (QEMU binds it)
    VPN_ROUTER = "vpn-router.sock"  # and the vpn_router's (the router binds it)
    KNOWN = frozenset(
        {RECORD, DISK, SEED, PIDFILE, QMP, SERIAL, QEMU_LOG}
        | {KERNEL, INITRD, BASE, PASTA, PASTA_PID, PASTA_LOG, VPN_NIC, VPN_ROUTER}
    )

    def __init__(self, vms_dir: Path, vm_id: str) -> None:
        self.vm_id = vm_id
        self.vms_dir = vms_dir
        self.dir = vms_dir / vm_id
        self.record = self.dir / self.RECORD
        self.disk = self.dir / self.DISK
        self.seed = self.dir / self.SEED
        self.pidfile = self.dir / self.PIDFILE
        self.qmp = self.dir / self.QMP
        self.serial = self.dir / self.SERIAL
        self.qemu_log = self.dir / self.QEMU_LOG
        self.pasta = self.dir / self.PASTA
        self.pasta_pid = self.dir / self.PASTA_PID
        self.pasta_log = self.dir / self.PASTA_LOG

    def leftovers(self) -> list[Path]:
        """Dotted staging/deleting directories of this VM id left by a crash."""
        pattern = re.compile(rf"\.{re.escape(self.vm_id)}\.(staging|deleting)-[0-9a-f]{{12}}")
        try:
            names = os.listdir(self.vms_dir)
        except FileNotFoundError:
            return []
        return [self.vms_dir / name for name in names if pattern.fullmatch(name)]


def check_vm_id(vms_dir: Path, vm_id: str) -> VmPaths:
    """The paths of ``vm_id``, refusing ids that are not safe directory names or that
    would make the QMP socket path too long for a unix socket."""
    if not _VM_ID.fullmatch(vm_id):
        raise BackendError(
            f"invalid vm id {vm_id!r}: 1-64 of A-Z a-z 0-9 _ . - (starting alphanumeric)"
        )
    return VmPaths(vms_dir, vm_id)


def read_record(paths: VmPaths) -> MachineRecord | None:
    """The VM's record; None when the file is missing. A corrupt one raises."""
    try:
        data = paths.record.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return msgspec.json.decode(data, type=MachineRecord)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BackendError(f"{paths.record} is unreadable: {exc}") from None


def write_record(paths: VmPaths, record: MachineRecord) -> None:
    write_atomic(paths.record, msgspec.json.format(msgspec.json.encode(record)) + b"\n")


def is_husk(paths: VmPaths) -> bool:
    """Whether the VM directory exists without a record, holding only names of ours."""
    try:
        names = os.listdir(paths.dir)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return VmPaths.RECORD not in names and all(
        name in VmPaths.KNOWN or is_temp_name(name) for name in names
    )


def create_vm_dir(paths: VmPaths, record: MachineRecord) -> None:
    """Create ``paths.dir`` holding ``vm.json``, atomically (see the module docstring)."""
    ensure_dir(paths.vms_dir)
    staging = paths.vms_dir / f".{paths.vm_id}.staging-{secrets.token_hex(6)}"
    staging.mkdir(mode=0o700)
    try:
        write_record(VmPaths(paths.vms_dir, staging.name), record)
        os.rename(staging, paths.dir)  # fails if the target exists and is not empty
        fsync_dir(paths.vms_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def remove_vm_dir(paths: VmPaths) -> bool:
    """Remove the VM directory (if ours) and any leftovers of earlier crashes; whether
    there was anything to remove."""
    if paths.dir.exists() and not paths.record.exists() and not is_husk(paths):
        raise BackendError(
            f"{paths.dir} has no {VmPaths.RECORD} and holds files this backend did not"
            " write; leaving it alone"
        )
    with contextlib.suppress(FileNotFoundError):
        trash = paths.vms_dir / f".{paths.vm_id}.deleting-{secrets.token_hex(6)}"
        os.rename(paths.dir, trash)
        fsync_dir(paths.vms_dir)
    leftovers = paths.leftovers()
    for leftover in leftovers:
        shutil.rmtree(leftover, ignore_errors=True)
    if paths.leftovers():
        raise BackendError(f"could not remove every leftover of {paths.vm_id} in {paths.vms_dir}")
    return bool(leftovers)
