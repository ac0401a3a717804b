"""Provisioning a VM directory and starting its QEMU and its network helper.

Why a module of its own: this is the one place where a VM's files turn into processes,
with the quirks of doing that from a daemon:

* disk and seed are made only when missing, so a repeated launch (or a ``start`` after a
  crash mid-launch) completes a half-made VM instead of redoing it;
* QEMU runs as the VM user (see ``_sandbox``) in a namespace of its own (see
  ``_network``), under its seccomp sandbox, which forbids ``-daemonize``'s fork. So QEMU
  and pasta are started as children in a session of their own and reaped by a trio
  system task while the node runs; after a node restart they are nobody's children and
  are found again through their pidfile/record. stdio never goes to a pipe: stderr to
  ``qemu.log``/``pasta.log``, stdin/stdout to ``/dev/null``;
* the node writes QEMU's pidfile (QEMU's own ``-pidfile`` resolves the absolute path,
  which the VM user may have no access to); QEMU counts as started once its QMP socket
  exists, and one that exits before that is a failure reported with its exit status and
  stderr;
* every VM gets a VPN NIC on two socket paths in its directory (its MAC derived from
  the VM id: the vpn_router's switch knows it before any network is joined);
* the host's SSH port is bound by pasta and is a guess (see ``_ports``): the record names
  the port *before* each attempt, and a bind failure makes another attempt with a fresh
  port (QEMU keeps running meanwhile).
"""

from __future__ import annotations

import contextlib
import functools
import subprocess
from pathlib import Path
from typing import IO, Literal

import msgspec
import structlog
import trio

from golem_actor._atomic import write_atomic
from golem_actor.adapters.backend import BackendError, LaunchSpec
from golem_actor.adapters.guest import GuestImage, make_nocloud_seed
from golem_actor.adapters.images import DebianImage
from golem_actor.adapters.qemu import _process, _vmdir
from golem_actor.adapters.qemu._argv import QemuSpec, qemu_argv
from golem_actor.adapters.qemu._disk import create_data_disk, create_overlay
from golem_actor.adapters.qemu._images import CloudDisk
from golem_actor.adapters.qemu._network import (
    NS_SSH_PORT,
    PASTA_BIND_FAILURE,
    Outbound,
    namespace_prefix,
    pasta_argv,
    record_pasta,
)
from golem_actor.adapters.qemu._ports import pick_free_port, port_is_free
from golem_actor.adapters.qemu._sandbox import RunAs, link_into, localize_backing, own_vm_dir
from golem_actor.adapters.qemu._vmdir import MachineRecord, VmPaths
from golem_actor.domain.vpn.addressing import format_mac, nic_mac
from golem_actor.domain.vpn.switch import MAX_MTU

__all__ = ["BootConfig", "provision", "start_pasta", "start_qemu", "tail"]

log = structlog.get_logger("golem_actor.qemu")


class BootConfig(msgspec.Struct, frozen=True, kw_only=True):
    qemu_binary: str
    qemu_img: str
    pasta_binary: str
    start_timeout: float
    port_attempts: int
    outbound: Outbound


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


def _argv(
    paths: VmPaths,
    record: MachineRecord,
    image: Bootable,
    config: BootConfig,
) -> list[str]:
    """QEMU's argv, every file relative to the VM directory (see ``_sandbox``)."""
    # the test guest and built images boot their kernel directly; a cloud image its disk
    guest = image if isinstance(image, GuestImage | DebianImage) else None
    return namespace_prefix() + qemu_argv(
        QemuSpec(
            cpus=record.spec.resources.cpus,
            memory_mib=record.spec.resources.memory_mib,
            qmp_socket=Path(VmPaths.QMP),
            kernel=None if guest is None else Path(VmPaths.KERNEL),
            initrd=None if guest is None else Path(VmPaths.INITRD),
            append="" if guest is None else guest.append,
            seed=Path(VmPaths.SEED),
            disk=Path(VmPaths.DISK),
            ssh_port=NS_SSH_PORT,
            ssh_bind="",  # the namespace's loopback is down until pasta configures it
            restrict=config.outbound == "none",
            pidfile=None,  # QEMU would resolve its absolute path: the node writes it
            serial_log=Path(VmPaths.SERIAL),
            accel=record.accel,
            sandbox=True,
            name=paths.vm_id,
            binary=config.qemu_binary,
            vpn_mac=format_mac(nic_mac(paths.vm_id)),
            vpn_local=Path(VmPaths.VPN_NIC),
            vpn_remote=Path(VmPaths.VPN_ROUTER),
            vpn_mtu=MAX_MTU,  # the most a network may use; its DHCP lease sets the MTU
        )
    )


def _prepare(paths: VmPaths, image: Bootable, runas: RunAs | None, qemu_img: str) -> None:
    """Remove what a killed QEMU or pasta left behind (a clean exit removes QEMU's
    pidfile and socket itself), link the boot files and an overlay's base into the VM
    directory, hand the directory to the VM user (see ``_sandbox``)."""
    for stale in (paths.pidfile, paths.qmp, paths.pasta_pid, paths.pasta_log):
        stale.unlink(missing_ok=True)
    if isinstance(image, GuestImage | DebianImage):
        link_into(paths.dir, VmPaths.KERNEL, image.kernel)
        link_into(paths.dir, VmPaths.INITRD, image.initrd)
    localize_backing(paths.dir, VmPaths.DISK, qemu_img=qemu_img)
    own_vm_dir(paths.dir, runas)


async def _reap(process: trio.Process) -> None:
    with contextlib.suppress(OSError):
        await process.wait()


async def _spawn(
    argv: list[str], *, cwd: Path, stderr: Path | None, runas: RunAs | None
) -> trio.Process:
    """Start ``argv`` in a session of its own (as ``runas``), reaped in the background."""
    log = None if stderr is None else await trio.to_thread.run_sync(stderr.open, "wb")
    try:
        err: int | IO[bytes] = subprocess.DEVNULL if log is None else log
        if runas is None:
            process = await trio.lowlevel.open_process(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                cwd=cwd,
                start_new_session=True,
            )
        else:
            process = await trio.lowlevel.open_process(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                cwd=cwd,
                start_new_session=True,
                user=runas.uid,
                group=runas.gid,
                extra_groups=list(runas.groups),
            )
    except OSError as exc:
        raise BackendError(f"cannot run {argv[0]}: {exc}") from exc
    finally:
        if log is not None:
            log.close()
    trio.lowlevel.spawn_system_task(_reap, process)
    return process


async def _wait_qemu(paths: VmPaths, process: trio.Process, deadline: float) -> None:
    while trio.current_time() < deadline:
        if process.returncode is not None:
            stderr = await trio.to_thread.run_sync(tail, paths.qemu_log)
            raise BackendError(
                f"QEMU for {paths.vm_id} failed to start (exit {process.returncode}): {stderr}"
            )
        if await trio.to_thread.run_sync(paths.qmp.exists):
            return
        await trio.sleep(0.05)
    raise BackendError(f"QEMU for {paths.vm_id} opened no QMP socket within the start timeout")


async def _wait_pasta(paths: VmPaths, process: trio.Process, deadline: float) -> bool:
    """Whether pasta got ready; False when its port was taken; raises on other failures."""
    while trio.current_time() < deadline:
        if process.returncode is not None:
            log_text = await trio.to_thread.run_sync(tail, paths.pasta_log)
            if PASTA_BIND_FAILURE in log_text:
                return False
            raise BackendError(
                f"pasta for {paths.vm_id} failed (exit {process.returncode}): {log_text or '-'}"
            )
        if await trio.to_thread.run_sync(_process.read_pidfile, paths.pasta_pid) == process.pid:
            return True
        await trio.sleep(0.05)
    await _kill_and_wait(process)
    raise BackendError(f"pasta for {paths.vm_id} not ready within the start timeout")


async def start_pasta(
    paths: VmPaths, record: MachineRecord, qemu_pid: int, config: BootConfig, runas: RunAs | None
) -> MachineRecord:
    """Connect the namespace of ``qemu_pid`` to the host; the record as written for the
    port that worked."""
    deadline = trio.current_time() + config.start_timeout
    port = record.ssh_port if port_is_free(record.ssh_port) else pick_free_port()
    for _attempt in range(config.port_attempts):
        record = msgspec.structs.replace(record, ssh_port=port)
        await trio.to_thread.run_sync(_vmdir.write_record, paths, record)
        for stale in (paths.pasta_pid, paths.pasta_log):
            await trio.to_thread.run_sync(functools.partial(stale.unlink, missing_ok=True))
        argv = pasta_argv(qemu_pid=qemu_pid, host_port=port, outbound=config.outbound)
        argv[0] = config.pasta_binary
        process = await _spawn(argv, cwd=paths.dir, stderr=None, runas=runas)
        await trio.to_thread.run_sync(record_pasta, paths.pasta, process.pid, qemu_pid)
        if await _wait_pasta(paths, process, deadline):
            return record
        log.info("vm_port_taken", vm_id=paths.vm_id, port=port)
        port = pick_free_port()
    raise BackendError(f"no free SSH port for {paths.vm_id} after {config.port_attempts} tries")


async def start_qemu(
    paths: VmPaths,
    record: MachineRecord,
    image: Bootable,
    accel: Literal["kvm", "tcg"],
    config: BootConfig,
    runas: RunAs | None,
) -> MachineRecord:
    """Start the VM's QEMU and its pasta; the record as written for the attempt that
    worked. On a failure nothing of this start keeps running."""
    record = msgspec.structs.replace(record, accel=accel)
    await trio.to_thread.run_sync(_vmdir.write_record, paths, record)
    await trio.to_thread.run_sync(_prepare, paths, image, runas, config.qemu_img)
    deadline = trio.current_time() + config.start_timeout
    argv = _argv(paths, record, image, config)
    qemu = await _spawn(argv, cwd=paths.dir, stderr=paths.qemu_log, runas=runas)
    try:
        pid = f"{qemu.pid}\n".encode()
        await trio.to_thread.run_sync(write_atomic, paths.pidfile, pid)
        await _wait_qemu(paths, qemu, deadline)
        return await start_pasta(paths, record, qemu.pid, config, runas)
    except BaseException:
        await _kill_and_wait(qemu)
        raise


async def _kill_and_wait(process: trio.Process) -> None:
    """SIGKILL a child of ours and wait for its end (bounded, even when cancelled)."""
    if process.returncode is None:
        process.kill()
    with trio.move_on_after(10) as scope:
        scope.shield = True
        await process.wait()
