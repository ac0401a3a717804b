"""Provisioning a VM directory and starting its detached QEMU.

Why a module of its own: this is the one place where a VM's files turn into a QEMU
process, with the quirks of doing that from a daemon:

* disk and seed are made only when missing, so a repeated launch (or a ``start`` after a
  crash mid-launch) completes a half-made VM instead of redoing it;
* QEMU runs with ``-daemonize``: the parent exits once the machine is set up (chardevs,
  QMP socket, hostfwd bound), and the daemon, reparented away from us, outlives the node.
  Its stderr goes to ``qemu.log``, never to a pipe the daemon could keep open, and
  stdin/stdout to ``/dev/null``: the node's stdio is never inherited;
* the SSH forward port is a guess (see ``_ports``): the record names the port *before*
  each attempt, and a bind failure makes another attempt with a fresh port.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Literal

import msgspec
import structlog
import trio

from golem_actor.adapters.backend import BackendError, LaunchSpec
from golem_actor.adapters.guest import GuestImage, make_nocloud_seed
from golem_actor.adapters.images import DebianImage
from golem_actor.adapters.qemu import _vmdir
from golem_actor.adapters.qemu._argv import QemuSpec, qemu_argv
from golem_actor.adapters.qemu._disk import create_data_disk, create_overlay
from golem_actor.adapters.qemu._images import CloudDisk
from golem_actor.adapters.qemu._ports import HOSTFWD_FAILURE, pick_free_port, port_is_free
from golem_actor.adapters.qemu._vmdir import VmPaths, VmRecord

__all__ = ["BootConfig", "provision", "start_qemu", "tail"]

log = structlog.get_logger("golem_actor.qemu")


class BootConfig(msgspec.Struct, frozen=True, kw_only=True):
    qemu_binary: str
    qemu_img: str
    daemonize_timeout: float
    port_attempts: int


def tail(path: Path, chars: int = 2000) -> str:
    """The end of a log file ("" when there is none); blocking."""
    try:
        return path.read_text(errors="replace")[-chars:].strip()
    except OSError:
        return ""


Bootable = GuestImage | CloudDisk | DebianImage


async def provision(paths: VmPaths, spec: LaunchSpec, image: Bootable, *, qemu_img: str) -> None:
    """Create whatever of the data disk and the NoCloud seed is missing."""
    storage = spec.resources.storage_gib
    if not await trio.to_thread.run_sync(paths.disk.exists):
        if isinstance(image, CloudDisk):
            await create_overlay(paths.disk, image.path, storage, qemu_img=qemu_img)
        elif isinstance(image, DebianImage):  # the guest's cloud-init grows its root fs
            await create_overlay(paths.disk, image.base, storage, qemu_img=qemu_img)
        else:
            await create_data_disk(paths.disk, storage, qemu_img=qemu_img)
    if not await trio.to_thread.run_sync(paths.seed.exists):
        await trio.to_thread.run_sync(
            lambda: make_nocloud_seed(
                paths.seed,
                authorized_keys=spec.authorized_keys,
                hostname=spec.hostname,
                instance_id=f"iid-{spec.vm_id}",
            )
        )


def _argv(paths: VmPaths, record: VmRecord, image: Bootable, binary: str) -> list[str]:
    # the test guest and built images boot their kernel directly; a cloud image its disk
    guest = image if isinstance(image, GuestImage | DebianImage) else None
    return qemu_argv(
        QemuSpec(
            cpus=record.spec.resources.cpus,
            memory_mib=record.spec.resources.memory_mib,
            qmp_socket=paths.qmp_for_qemu,
            kernel=None if guest is None else guest.kernel,
            initrd=None if guest is None else guest.initrd,
            append="" if guest is None else guest.append,
            seed=paths.seed,
            disk=paths.disk,
            ssh_port=record.ssh_port,
            pidfile=paths.pidfile,
            serial_log=paths.serial,
            accel=record.accel,
            daemonize=True,
            name=paths.vm_id,
            binary=binary,
        )
    )


def _remove_stale(paths: VmPaths) -> None:
    """Files a killed QEMU left behind (a clean exit removes them itself)."""
    for stale in (paths.pidfile, paths.qmp):
        stale.unlink(missing_ok=True)


async def _run_daemonizing(argv: list[str], paths: VmPaths, config: BootConfig) -> tuple[int, str]:
    """Run QEMU with ``-daemonize`` until its parent exits; (exit code, stderr tail)."""
    log_file = await trio.to_thread.run_sync(lambda: paths.qemu_log.open("wb"))
    try:
        with trio.fail_after(config.daemonize_timeout):
            result = await trio.run_process(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log_file,
                check=False,
                cwd=paths.dir,  # a relative QMP socket path is resolved here
            )
    except trio.TooSlowError:
        raise BackendError(
            f"QEMU for {paths.vm_id} did not daemonize within {config.daemonize_timeout:g}s"
        ) from None
    except OSError as exc:
        raise BackendError(f"cannot run {argv[0]}: {exc}") from None
    finally:
        log_file.close()
    return result.returncode, await trio.to_thread.run_sync(tail, paths.qemu_log)


async def start_qemu(
    paths: VmPaths,
    record: VmRecord,
    image: Bootable,
    accel: Literal["kvm", "tcg"],
    config: BootConfig,
) -> VmRecord:
    """Start the VM's detached QEMU; the record as written for the attempt that worked."""
    port = record.ssh_port if port_is_free(record.ssh_port) else pick_free_port()
    for _attempt in range(config.port_attempts):
        record = msgspec.structs.replace(record, ssh_port=port, accel=accel)
        await trio.to_thread.run_sync(_vmdir.write_record, paths, record)
        await trio.to_thread.run_sync(_remove_stale, paths)
        argv = _argv(paths, record, image, config.qemu_binary)
        returncode, stderr = await _run_daemonizing(argv, paths, config)
        if returncode == 0:
            return record
        if HOSTFWD_FAILURE not in stderr:
            raise BackendError(
                f"QEMU for {paths.vm_id} failed to start (exit {returncode}): {stderr}"
            )
        log.info("vm_port_taken", vm_id=paths.vm_id, port=port)
        port = pick_free_port()
    raise BackendError(f"no free SSH port for {paths.vm_id} after {config.port_attempts} tries")
