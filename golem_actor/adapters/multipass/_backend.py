"""``MultipassBackend``: the ``VmBackend`` contract on top of the multipass CLI.

Theory of operation.

Naming and ownership: a VM's instance is ``instance_prefix + vm_id``. The node passes a
prefix unique to its data directory, so everything it owns is found again after a restart by
``multipass list`` alone, and instances of another node or the operator's own are never
listed, stopped or deleted (``list_owned`` filters by the prefix; every other method derives
the name from a vm_id).

Launch, idempotent per vm_id: ``info`` first. An instance that exists (a launch interrupted by
a crash of the node, or repeated by the lifecycle) is started if needed and observed; one in
state Deleted (deleted, not purged) is purged first, since its name would block a launch.
Otherwise: cloud-init file written, ``multipass launch`` run with multipass's own ``--timeout``
equal to ``launch_timeout`` and the client bounded a little later (``+ command_timeout``), so
that multipass normally gives up first and says why. Multipass returns once cloud-init has
finished, but the address can lag, so ``info`` is polled (bounded) until the instance runs
with an IPv4.

Failure mid-launch: a killed client does not stop the daemon. If the client timed out and
``info`` shows the instance running with an address, the daemon finished: that is a launch.
In every other failure (non-zero exit, timeout with a broken or still-starting instance, no
address in time) an instance that exists is deleted with ``--purge`` before the error is
raised, so a failed launch leaves nothing behind; if even that fails the error says so (the
instance keeps our prefix, so the lifecycle's reconciliation finds it through
``list_owned``). Caveat: while multipass downloads an image the instance "does not exist"
yet; a client killed then can leave the daemon to create it later, which only the next
reconciliation sees.

Stop asks for a graceful shutdown, falls back to ``stop --force`` when that does not finish in
its bound, then polls until Stopped. Start polls until running with an address. Delete of a
missing instance is fine. Operations on one instance are serialised by a per-name lock;
``inspect`` and ``list_owned`` only read.
"""

from __future__ import annotations

import math
import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import NoReturn

import structlog
import trio

from golem_actor.adapters.backend import (
    BackendError,
    BackendState,
    ImageNotAvailable,
    LaunchSpec,
    Observed,
    VmMissing,
)
from golem_actor.adapters.multipass import _cloud_init
from golem_actor.adapters.multipass._cli import CommandTimedOut, MultipassCli
from golem_actor.adapters.multipass._info import (
    InstanceInfo,
    backend_state,
    observe_info,
    observed,
    parse_info,
    parse_list,
)
from golem_actor.adapters.multipass._names import (
    check_authorized_keys,
    check_hostname,
    check_image_ref,
    check_prefix,
    check_resources,
    image_ref_for,
    instance_name,
    is_vm_id,
)
from golem_actor.domain.resources import Resources

log = structlog.get_logger("golem_actor.adapters.multipass")


def _ready(observed: Observed) -> bool:
    return observed.state is BackendState.RUNNING and observed.ssh is not None


def _stopped(observed: Observed) -> bool:
    return observed.state is BackendState.STOPPED


def _exists(info: InstanceInfo | None) -> bool:
    return info is not None and backend_state(info.state) is not BackendState.MISSING


def _with_note(cause: BackendError, note: str) -> BackendError:
    kind = ImageNotAvailable if isinstance(cause, ImageNotAvailable) else BackendError
    return kind(f"{cause}; {note}")


class _Locks:
    """One lock per instance name, dropped when nobody holds or awaits it."""

    def __init__(self) -> None:
        self._locks: dict[str, trio.Lock] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, trio.Lock())
        try:
            async with lock:
                yield
        finally:
            idle = not lock.locked() and lock.statistics().tasks_waiting == 0
            if idle and self._locks.get(key) is lock:
                del self._locks[key]


class MultipassBackend:
    """VMs as multipass instances named ``instance_prefix + vm_id``."""

    kind: str = "multipass"

    def __init__(
        self,
        *,
        binary: Path,
        instance_prefix: str,
        images: Mapping[str, str],
        cloud_init_dir: Path,
        launch_timeout: float = 600,
        command_timeout: float = 60,
        poll_interval: float = 1.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """``env``: the environment of the multipass client (None: the node's own)."""
        self._prefix = check_prefix(instance_prefix)
        for image, ref in images.items():
            try:
                check_image_ref(ref)
            except BackendError as exc:
                raise ValueError(f"multipass image catalog entry {image!r}: {exc}") from None
        if min(launch_timeout, command_timeout, poll_interval) <= 0:
            raise ValueError("multipass time bounds and poll interval must be positive")
        self._images = dict(images)
        self._cloud_init_dir = cloud_init_dir.absolute()
        self._launch_timeout = launch_timeout
        self._command_timeout = command_timeout
        self._poll_interval = poll_interval
        self._cli = MultipassCli(binary, env)
        self._locks = _Locks()

    @property
    def instance_prefix(self) -> str:
        return self._prefix

    def instance_name(self, vm_id: str) -> str:
        """The multipass instance name of ``vm_id`` (BackendError if it cannot be one)."""
        return instance_name(self._prefix, vm_id)

    # -- the contract ---------------------------------------------------------------------

    async def launch(self, spec: LaunchSpec) -> Observed:
        name = self.instance_name(spec.vm_id)
        image_ref = image_ref_for(self._images, spec.image)
        keys = check_authorized_keys(spec.authorized_keys)
        hostname = check_hostname(spec.hostname)
        resources = check_resources(spec.resources)
        async with self._locks.hold(name):
            info = await self._info_or_none(name)
            if _exists(info):
                assert info is not None
                log.info("multipass_launch_existing", vm_id=spec.vm_id, state=info.state)
                return await self._bring_up(name, spec.vm_id, info)
            if info is not None:  # Deleted but not purged: its name blocks a launch
                await self._purge(name)
            return await self._create(spec.vm_id, name, image_ref, hostname, keys, resources)

    async def start(self, vm_id: str) -> Observed:
        name = self.instance_name(vm_id)
        async with self._locks.hold(name):
            info = await self._existing(name)
            return await self._bring_up(name, vm_id, info)

    async def stop(self, vm_id: str) -> None:
        name = self.instance_name(vm_id)
        async with self._locks.hold(name):
            info = await self._existing(name)
            if _stopped(observe_info(vm_id, info)):
                return
            try:
                await self._cli.run(["stop", name], seconds=self._command_timeout)
            except CommandTimedOut:
                log.warning("multipass_stop_forced", vm_id=vm_id, instance=name)
                await self._cli.run(["stop", name, "--force"], seconds=self._command_timeout)
            await self._wait(name, vm_id, _stopped, "stopped", self._command_timeout)

    async def delete(self, vm_id: str) -> None:
        name = self.instance_name(vm_id)
        async with self._locks.hold(name):
            log.info("multipass_delete", vm_id=vm_id, instance=name)
            await self._purge(name)

    async def inspect(self, vm_id: str) -> Observed:
        name = self.instance_name(vm_id)
        info = await self._info_or_none(name)
        if info is None:
            return Observed(vm_id=vm_id, state=BackendState.MISSING)
        return observe_info(vm_id, info)

    async def set_vpn_link(self, vm_id: str, *, up: bool) -> None:
        """Multipass instances have no VPN NIC (the VPN needs the QEMU backend)."""
        await trio.lowlevel.checkpoint()

    async def list_owned(self) -> list[Observed]:
        """Owned instances by ``multipass list`` (no sizes: resources are None).

        Names with the prefix but a rest that no vm_id of ours can be (made by hand) are
        skipped. An owned instance in state Deleted (deleted by hand, not purged) is listed as
        MISSING; ``delete`` purges it.
        """
        raw = await self._cli.run(["list", "--format", "json"], seconds=self._command_timeout)
        owned: list[Observed] = []
        for entry in parse_list(raw):
            vm_id = entry.name.removeprefix(self._prefix)
            if entry.name.startswith(self._prefix) and is_vm_id(vm_id):
                owned.append(observed(vm_id, entry.state, entry.ipv4))
        return owned

    # -- helpers --------------------------------------------------------------------------

    async def _info_or_none(self, name: str) -> InstanceInfo | None:
        try:
            raw = await self._cli.run(
                ["info", name, "--format", "json"], seconds=self._command_timeout
            )
        except VmMissing:
            return None
        return parse_info(raw, name)

    async def _existing(self, name: str) -> InstanceInfo:
        info = await self._info_or_none(name)
        if not _exists(info):
            raise VmMissing(f"multipass has no instance {name}")
        assert info is not None
        return info

    async def _purge(self, name: str) -> None:
        with suppress(VmMissing):
            await self._cli.run(["delete", name, "--purge"], seconds=self._command_timeout)

    async def _create(
        self,
        vm_id: str,
        name: str,
        image_ref: str,
        hostname: str,
        keys: tuple[str, ...],
        resources: Resources,
    ) -> Observed:
        text = _cloud_init.render(_cloud_init.user_data(hostname=hostname, authorized_keys=keys))
        path = _cloud_init.file_for(self._cloud_init_dir, name)
        argv = [
            "launch", image_ref,
            "--name", name,
            "--cloud-init", os.fspath(path),
            "--cpus", str(resources.cpus),
            "--memory", f"{resources.memory_mib}M",
            "--disk", f"{resources.storage_gib}G",
            "--timeout", str(max(1, math.ceil(self._launch_timeout))),
        ]  # fmt: skip
        log.info("multipass_launch", vm_id=vm_id, instance=name, image=image_ref)
        try:
            try:
                await _cloud_init.write(path, text)
            except OSError as exc:
                raise BackendError(f"cannot write the cloud-init file {path}: {exc}") from exc
            try:
                await self._cli.run(argv, seconds=self._launch_timeout + self._command_timeout)
            except CommandTimedOut as exc:
                return await self._after_launch_timeout(name, vm_id, exc)
            except BackendError as exc:
                await self._discard(name, exc)
        finally:
            _cloud_init.remove(path)
        try:
            return await self._wait(
                name, vm_id, _ready, "running with an address", self._command_timeout
            )
        except BackendError as exc:
            await self._discard(name, exc)

    async def _bring_up(self, name: str, vm_id: str, info: InstanceInfo) -> Observed:
        current = observe_info(vm_id, info)
        if _ready(current):
            return current
        bound = self._command_timeout
        if current.state is BackendState.STARTING:
            bound = self._launch_timeout  # the daemon is booting it (maybe launching it)
        else:
            await self._cli.run(["start", name], seconds=self._launch_timeout)
        return await self._wait(name, vm_id, _ready, "running with an address", bound)

    async def _wait(
        self,
        name: str,
        vm_id: str,
        done: Callable[[Observed], bool],
        what: str,
        bound: float,
    ) -> Observed:
        last: Observed | None = None
        with trio.move_on_after(bound):
            while True:
                info = await self._info_or_none(name)
                if not _exists(info):
                    raise VmMissing(f"instance {name} vanished while waiting for it to be {what}")
                assert info is not None
                last = observe_info(vm_id, info)
                if done(last):
                    return last
                await trio.sleep(self._poll_interval)
        seen = last.state.value if last is not None else "no answer"
        raise BackendError(f"instance {name} was not {what} within {bound:g} s (last: {seen})")

    async def _after_launch_timeout(
        self, name: str, vm_id: str, cause: CommandTimedOut
    ) -> Observed:
        try:
            info = await self._info_or_none(name)
        except BackendError as exc:
            raise _with_note(cause, f"and {name} could not be checked: {exc}") from cause
        if _exists(info):
            assert info is not None
            current = observe_info(vm_id, info)
            if _ready(current):
                log.warning("multipass_launch_client_timeout_but_running", vm_id=vm_id)
                return current
        return await self._discard(name, cause)

    async def _discard(self, name: str, cause: BackendError) -> NoReturn:
        """Delete what a failed launch left of ``name``, then raise ``cause``."""
        try:
            info = await self._info_or_none(name)
        except BackendError as exc:
            note = f"could not check for a half-made instance {name}: {exc}"
            raise _with_note(cause, note) from cause
        if info is not None:
            log.warning("multipass_discard_failed_launch", instance=name, state=info.state)
            try:
                await self._purge(name)
            except BackendError as exc:
                note = f"the half-made instance {name} ({info.state}) could not be deleted: {exc}"
                raise _with_note(cause, note) from cause
        raise cause
