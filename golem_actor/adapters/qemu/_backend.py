"""``QemuBackend``: the ``VmBackend`` that runs each VM as one detached QEMU process.

Theory of operation
-------------------
*State lives on disk, not in this object.* Each VM is a directory ``<vms_dir>/<vm_id>/``
(see ``_vmdir``) holding ``vm.json`` (spec, private SSH port, accelerator), the qcow2
data disk, the NoCloud seed, and, while QEMU runs, its pidfile and QMP socket. QEMU runs
as the unprivileged VM user (see ``_sandbox``), sandboxed, in a network namespace of its
own that pasta connects to the host (see ``_network``). Both run in a session of their
own: they outlive the node, and a new ``QemuBackend`` over the same ``vms_dir`` (a
restart after a crash) finds, observes and controls QEMU through its pidfile (guarded
against pid reuse, see ``_process``) and QMP (see ``_qmp``), and pasta through
``pasta.json``. pasta goes with QEMU: it is ended whenever the backend finds QEMU gone
(stop, delete, the next start), and started again for a running QEMU that lost it.

*Observation* (``inspect``): no directory, or a directory without ``vm.json`` -> MISSING
(nothing of the VM exists that could run: the record is written before anything else;
``delete`` still removes such a husk); a record but no live QEMU of ours -> STOPPED with
the recorded resources (this covers a crash mid-launch before the disk or the process
existed: ``start`` or a repeated ``launch`` completes the provisioning, ``delete`` removes
it); a live QEMU -> QMP ``query-status`` decides (running -> RUNNING, paused ->
SUSPENDED, ...; an unresponsive monitor -> UNKNOWN).

*Launch* is idempotent per ``vm_id``: an existing VM with the same spec is started if
needed and observed; with a different spec it is a conflict. Steps: record, disk (empty
qcow2, or an overlay of a verified cloud image), seed, then QEMU, then pasta with a
private port on 127.0.0.1 picked free (retried on a bind failure), and wait until QMP
says ``running`` (see ``_boot``). SSH readiness is the caller's business.

*Stop*: ACPI ``system_powerdown``, wait for the process to exit within
``powerdown_timeout``, then QMP ``quit``, then SIGKILL; then pasta. *Delete*: SIGKILL
of both (the disk goes anyway), then the directory. Operations on one VM are serialized
within this object; so are QMP sessions (a QMP socket serves one client at a time). One
node process per ``vms_dir`` is assumed.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

import structlog
import trio

from golem_actor._atomic import write_atomic
from golem_actor.adapters.backend import (
    BackendError,
    BackendState,
    Endpoint,
    LaunchSpec,
    Observed,
    VmMissing,
)
from golem_actor.adapters.guest import render_meta_data, render_user_data
from golem_actor.adapters.qemu import _process, _vmdir
from golem_actor.adapters.qemu._accel import probe_accel
from golem_actor.adapters.qemu._argv import VPN_NETDEV
from golem_actor.adapters.qemu._boot import BootConfig, provision, start_pasta, start_qemu, tail
from golem_actor.adapters.qemu._images import ImageStore
from golem_actor.adapters.qemu._network import (
    Outbound,
    find_pasta,
    live_pasta,
    record_pasta,
    send_kill_pasta,
)
from golem_actor.adapters.qemu._ports import LOOPBACK, pick_free_port
from golem_actor.adapters.qemu._qmp import QmpClient, QmpError, qmp_session
from golem_actor.adapters.qemu._sandbox import VM_USER, RunAs, vm_user
from golem_actor.adapters.qemu._vmdir import MachineRecord, VmPaths
from golem_actor.images import ImageCatalog

__all__ = ["GUEST_IP", "QemuBackend"]

GUEST_IP = "10.0.2.15"  # the guest's address on QEMU user networking (slirp)
_QMP_STATES = {
    "running": BackendState.RUNNING,
    "paused": BackendState.SUSPENDED,
    "suspended": BackendState.SUSPENDED,
    "prelaunch": BackendState.STARTING,
    "inmigrate": BackendState.STARTING,
    "shutdown": BackendState.STOPPING,
}
log = structlog.get_logger("golem_actor.qemu")


class QemuBackend:
    kind = "qemu"

    def __init__(
        self,
        *,
        vms_dir: Path,
        guest_cache: Path,
        catalog: ImageCatalog,
        accel: Literal["auto", "kvm", "tcg"] = "auto",
        boot_timeout: float = 60.0,
        powerdown_timeout: float = 30.0,
        qmp_timeout: float = 5.0,
        kill_timeout: float = 10.0,
        probe_timeout: float = 5.0,
        download_timeout: float = 30.0,
        port_attempts: int = 5,
        qemu_binary: str = "qemu-system-x86_64",
        qemu_img: str = "qemu-img",
        pasta_binary: str = "pasta",
        outbound: Outbound = "nat",
        run_as: str | None = VM_USER,
    ) -> None:
        self._vms_dir = vms_dir.absolute()
        self._guest_cache = guest_cache.absolute()
        self._accel_mode = accel
        self._boot_timeout = boot_timeout
        self._powerdown_timeout = powerdown_timeout
        self._qmp_timeout = qmp_timeout
        self._kill_timeout = kill_timeout
        self._probe_timeout = probe_timeout
        self._qemu = qemu_binary
        self._qemu_img = qemu_img
        self._boot_config = BootConfig(
            qemu_binary=qemu_binary,
            qemu_img=qemu_img,
            pasta_binary=pasta_binary,
            start_timeout=boot_timeout,
            port_attempts=port_attempts,
            outbound=outbound,
        )
        self._run_as = run_as
        self._runas_choice: tuple[RunAs | None] | None = None
        self._runas_lock = trio.Lock()
        self._images = ImageStore(
            catalog=catalog, cache_dir=self._guest_cache, download_timeout=download_timeout
        )
        self._accel_choice: Literal["kvm", "tcg"] | None = "tcg" if accel == "tcg" else None
        self._accel_lock = trio.Lock()
        self._op_locks: dict[str, trio.Lock] = {}
        self._qmp_locks: dict[str, trio.Lock] = {}

    # -- the VmBackend contract -------------------------------------------------------

    async def launch(self, spec: LaunchSpec) -> Observed:
        paths = _vmdir.check_vm_id(self._vms_dir, spec.vm_id)
        self._images.lookup(spec.image)  # ImageNotAvailable before anything is made
        try:
            render_user_data(spec.authorized_keys)
            render_meta_data(hostname=spec.hostname, instance_id=f"iid-{spec.vm_id}")
        except ValueError as exc:
            raise BackendError(f"cannot provision {spec.vm_id}: {exc}") from None
        async with self._op_lock(spec.vm_id):
            record = await trio.to_thread.run_sync(_vmdir.read_record, paths)
            if record is None:
                if await trio.to_thread.run_sync(_vmdir.is_husk, paths):
                    await trio.to_thread.run_sync(_vmdir.remove_vm_dir, paths)
                record = MachineRecord(
                    spec=spec, ssh_port=pick_free_port(), accel=await self._accel()
                )
                await trio.to_thread.run_sync(_vmdir.create_vm_dir, paths, record)
                log.info("vm_created", vm_id=spec.vm_id, dir=str(paths.dir))
            elif record.spec != spec:
                raise BackendError(f"VM {spec.vm_id} already exists with a different spec")
            return await self._ensure_running(paths, record)

    async def start(self, vm_id: str) -> Observed:
        paths = _vmdir.check_vm_id(self._vms_dir, vm_id)
        async with self._op_lock(vm_id):
            record = await trio.to_thread.run_sync(_vmdir.read_record, paths)
            if record is None:
                raise VmMissing(f"no VM {vm_id}")
            return await self._ensure_running(paths, record)

    async def stop(self, vm_id: str) -> None:
        paths = _vmdir.check_vm_id(self._vms_dir, vm_id)
        async with self._op_lock(vm_id):
            if await trio.to_thread.run_sync(_vmdir.read_record, paths) is None:
                raise VmMissing(f"no VM {vm_id}")
            pids = await self._find_all(paths)
            if not pids:
                await self._end_pasta(paths)
                return
            started = trio.current_time()
            await self._power_off(paths, pids)
            await self._end_pasta(paths)
            log.info("vm_stopped", vm_id=vm_id, seconds=round(trio.current_time() - started, 2))

    async def delete(self, vm_id: str) -> None:
        paths = _vmdir.check_vm_id(self._vms_dir, vm_id)
        async with self._op_lock(vm_id):
            pids = await self._find_all(paths)
            if pids:
                await self._kill(paths, pids)
            await self._end_pasta(paths)
            if await trio.to_thread.run_sync(_vmdir.remove_vm_dir, paths) or pids:
                log.info("vm_deleted", vm_id=vm_id, killed=sorted(pids))
        for locks in (self._op_locks, self._qmp_locks):  # forget idle locks of a gone VM
            lock = locks.get(vm_id)
            if lock is not None and not lock.locked() and not lock.statistics().tasks_waiting:
                del locks[vm_id]

    async def inspect(self, vm_id: str) -> Observed:
        paths = _vmdir.check_vm_id(self._vms_dir, vm_id)
        try:
            record = await trio.to_thread.run_sync(_vmdir.read_record, paths)
        except BackendError as exc:
            log.warning("vm_record_unreadable", vm_id=vm_id, error=str(exc))
            return Observed(vm_id=vm_id, state=BackendState.UNKNOWN)
        if record is None:
            return Observed(vm_id=vm_id, state=BackendState.MISSING)
        return await self._observe(paths, record)

    async def list_owned(self) -> list[Observed]:
        def scan() -> list[str]:
            try:
                entries = list(os.scandir(self._vms_dir))
            except FileNotFoundError:
                return []
            return sorted(
                e.name
                for e in entries
                if not e.name.startswith(".")
                and e.is_dir(follow_symlinks=False)
                and os.path.exists(os.path.join(e.path, VmPaths.RECORD))
            )

        owned: list[Observed] = []
        for vm_id in await trio.to_thread.run_sync(scan):
            try:
                observed = await self.inspect(vm_id)
            except BackendError:  # a name we would never have created
                continue
            if observed.state is not BackendState.MISSING:
                owned.append(observed)
        return owned

    async def set_vpn_link(self, vm_id: str, *, up: bool) -> None:
        paths = _vmdir.check_vm_id(self._vms_dir, vm_id)
        async with self._qmp(paths) as qmp:
            await qmp.execute("set_link", {"name": VPN_NETDEV, "up": up})

    # -- accelerator ------------------------------------------------------------------

    async def _accel(self) -> Literal["kvm", "tcg"]:
        if self._accel_choice is not None:
            return self._accel_choice
        async with self._accel_lock:
            if self._accel_choice is None:
                try:
                    guest = await self._images.test_guest()
                except BackendError as exc:
                    if self._accel_mode == "kvm":
                        raise
                    log.warning("accel_chosen", accel="tcg", reason=f"cannot probe KVM: {exc}")
                    self._accel_choice = "tcg"
                    return "tcg"
                verdict = await probe_accel(
                    cache_dir=self._guest_cache,
                    kernel=guest.kernel,
                    binary=self._qemu,
                    probe_timeout=self._probe_timeout,
                )
                if self._accel_mode == "kvm" and verdict != "kvm":
                    raise BackendError("accel=kvm was asked for, but KVM runs no guest here")
                self._accel_choice = verdict
            return self._accel_choice

    async def _runas(self) -> RunAs | None:
        """Who QEMU runs as: the VM user (created when missing) when the node is root."""
        if self._runas_choice is not None:
            return self._runas_choice[0]
        async with self._runas_lock:
            if self._runas_choice is None:
                runas = None
                if self._run_as is not None:
                    runas = await trio.to_thread.run_sync(vm_user, self._run_as)
                if runas is not None:
                    log.info("vm_user", user=runas.name, uid=runas.uid)
                else:
                    log.warning(
                        "vm_user_fallback",
                        user=os.getuid(),
                        reason="the node is not root: QEMU runs as the node's own user"
                        if self._run_as is not None
                        else "no VM user configured",
                    )
                self._runas_choice = (runas,)
            return self._runas_choice[0]

    # -- processes and QMP ------------------------------------------------------------

    def _op_lock(self, vm_id: str) -> trio.Lock:
        return self._op_locks.setdefault(vm_id, trio.Lock())

    @asynccontextmanager
    async def _qmp(self, paths: VmPaths) -> AsyncIterator[QmpClient]:
        async with (
            self._qmp_locks.setdefault(paths.vm_id, trio.Lock()),
            qmp_session(paths.qmp, op_timeout=self._qmp_timeout) as qmp,
        ):
            yield qmp

    async def _find_all(self, paths: VmPaths) -> set[int]:
        """Every live QEMU of this VM: the pidfile's, and any found by a process scan."""

        def find() -> set[int]:
            found = set(_process.scan_for_owner(paths.pidfile))
            pid = _process.live_pid(paths.pidfile)
            return found | ({pid} if pid is not None else set())

        return await trio.to_thread.run_sync(find)

    async def _end_pasta(self, paths: VmPaths) -> None:
        """End the VM's pasta (its QEMU is gone); no pasta of ours running is fine."""
        if not await trio.to_thread.run_sync(send_kill_pasta, paths.pasta):
            return
        with trio.move_on_after(self._kill_timeout):
            while True:
                if await trio.to_thread.run_sync(live_pasta, paths.pasta) is None:
                    log.info("vm_pasta_ended", vm_id=paths.vm_id)
                    return
                await trio.sleep(0.05)
        raise BackendError(f"pasta of {paths.vm_id} survived SIGKILL")

    async def _wait_gone(self, paths: VmPaths, pids: set[int], seconds: float) -> bool:
        with trio.move_on_after(seconds):
            while True:
                alive = await trio.to_thread.run_sync(
                    lambda: [p for p in pids if _process.is_ours(p, paths.pidfile)]
                )
                if not alive:
                    return True
                await trio.sleep(0.1)
        return False

    async def _power_off(self, paths: VmPaths, pids: set[int]) -> None:
        try:
            async with self._qmp(paths) as qmp:
                await qmp.execute("system_powerdown")
        except QmpError as exc:
            log.warning("vm_powerdown_failed", vm_id=paths.vm_id, error=str(exc))
        else:
            if await self._wait_gone(paths, pids, self._powerdown_timeout):
                return
            log.warning("vm_powerdown_timeout", vm_id=paths.vm_id, seconds=self._powerdown_timeout)
        try:
            async with self._qmp(paths) as qmp:
                await qmp.execute("quit")
        except QmpError as exc:
            log.warning("vm_quit_failed", vm_id=paths.vm_id, error=str(exc))
        if await self._wait_gone(paths, pids, self._kill_timeout / 2):
            return
        log.warning("vm_quit_timeout", vm_id=paths.vm_id, action="SIGKILL")
        await self._kill(paths, pids)

    async def _kill(self, paths: VmPaths, pids: set[int]) -> None:
        for pid in pids:
            await trio.to_thread.run_sync(_process.send_kill, pid, paths.pidfile)
        if not await self._wait_gone(paths, pids, self._kill_timeout):
            raise BackendError(f"QEMU of {paths.vm_id} (pids {sorted(pids)}) survived SIGKILL")
        log.info("vm_killed", vm_id=paths.vm_id, pids=sorted(pids))

    async def _observe(self, paths: VmPaths, record: MachineRecord) -> Observed:
        resources = record.spec.resources
        pid = await trio.to_thread.run_sync(_process.live_pid, paths.pidfile)
        if pid is None:
            reason = await trio.to_thread.run_sync(why_off, paths.serial)
            return Observed(
                vm_id=paths.vm_id, state=BackendState.STOPPED, resources=resources, reason=reason
            )
        try:
            async with self._qmp(paths) as qmp:
                status = str((await qmp.execute("query-status")).get("status", ""))
            state = _QMP_STATES.get(status, BackendState.UNKNOWN)
        except QmpError as exc:
            log.warning("vm_status_unknown", vm_id=paths.vm_id, error=str(exc))
            state = BackendState.UNKNOWN
        return Observed(
            vm_id=paths.vm_id,
            state=state,
            ssh=Endpoint(LOOPBACK, record.ssh_port),
            ip_address=GUEST_IP,
            resources=resources,
        )

    # -- booting ----------------------------------------------------------------------

    async def _ensure_running(self, paths: VmPaths, record: MachineRecord) -> Observed:
        pids = await self._find_all(paths)
        if pids:
            return await self._observe(paths, await self._ensure_pasta(paths, record, pids))
        await self._end_pasta(paths)
        started = trio.current_time()
        image = await self._images.materialize(record.spec.image)
        await provision(paths, record.spec, image, qemu_img=self._qemu_img)
        record = await start_qemu(
            paths, record, image, await self._accel(), self._boot_config, await self._runas()
        )
        await self._wait_running(paths, started + self._boot_timeout)
        log.info(
            "vm_running",
            vm_id=paths.vm_id,
            ssh_port=record.ssh_port,
            accel=record.accel,
            seconds=round(trio.current_time() - started, 2),
        )
        return await self._observe(paths, record)

    async def _ensure_pasta(
        self, paths: VmPaths, record: MachineRecord, pids: set[int]
    ) -> MachineRecord:
        """Complete what a node killed mid-start left: QEMU's pidfile, pasta's record, or
        pasta itself (started again for a running QEMU in a namespace of its own)."""
        pid = await trio.to_thread.run_sync(_process.live_pid, paths.pidfile)
        if pid is None and len(pids) == 1:
            (pid,) = pids
            await trio.to_thread.run_sync(write_atomic, paths.pidfile, f"{pid}\n".encode())
            log.warning("vm_pidfile_rewritten", vm_id=paths.vm_id, qemu_pid=pid)
        if pid is None or await trio.to_thread.run_sync(live_pasta, paths.pasta) is not None:
            return record
        if not await trio.to_thread.run_sync(_own_netns, pid):
            return record  # started before QEMU got a namespace: it forwards itself
        orphan = await trio.to_thread.run_sync(find_pasta, pid)
        if orphan is not None:
            await trio.to_thread.run_sync(record_pasta, paths.pasta, orphan, pid)
            log.warning("vm_pasta_adopted", vm_id=paths.vm_id, pasta_pid=orphan)
            return record
        log.warning("vm_pasta_restarted", vm_id=paths.vm_id, qemu_pid=pid)
        return await start_pasta(paths, record, pid, self._boot_config, await self._runas())

    async def _wait_running(self, paths: VmPaths, deadline: float) -> None:
        last_error = ""
        while trio.current_time() < deadline:
            if await trio.to_thread.run_sync(_process.live_pid, paths.pidfile) is None:
                serial = await trio.to_thread.run_sync(tail, paths.serial)
                stderr = await trio.to_thread.run_sync(tail, paths.qemu_log)
                raise BackendError(
                    f"QEMU for {paths.vm_id} exited during boot.\n"
                    f"stderr: {stderr or '-'}\nserial log tail:\n{serial or '-'}"
                )
            try:
                async with self._qmp(paths) as qmp:
                    status = (await qmp.execute("query-status")).get("status")
                if status == "running":
                    return
                last_error = f"status {status}"
            except QmpError as exc:
                last_error = str(exc)
            await trio.sleep(0.1)
        raise BackendError(
            f"QEMU for {paths.vm_id} not running after {self._boot_timeout:g}s ({last_error})"
        )


def why_off(serial: Path) -> str:
    """Why a VM's QEMU is not running, from the end of its serial console (blocking): a
    Linux guest that powered itself off says so last; anything else means QEMU ended
    under a running guest (killed, crashed, out of memory)."""
    try:
        with serial.open("rb") as log:
            log.seek(max(log.seek(0, os.SEEK_END) - 512, 0))
            end = log.read().decode(errors="replace")
    except OSError:
        end = ""
    if "reboot: Power down" in end:
        return "the guest powered itself off"
    return "QEMU ended while the guest ran (killed or crashed); its disk is kept"


def _own_netns(pid: int) -> bool:
    """Whether ``pid`` runs in another network namespace than the node (blocking)."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return False
