"""The slow work behind a VM's effects: backend calls, the proxy, the SSH probe.

`Operations.perform` runs a state's effects in order, as the lifecycle's work (one per
VM, `start_work` keyed by the VM's id), and returns the event that ends them. Expected
failures of the outside world raise `OperationFailed`, which the lifecycle turns into a
`FAILED` event with a message for the client; anything else is a bug and crashes the
lifecycle actor (its supervisor restarts it and it reconciles).
"""

from __future__ import annotations

from collections.abc import Awaitable
from contextlib import suppress
from dataclasses import dataclass
from typing import TypeVar

import structlog
import trio

from actors.ssh_proxy import (
    ProxyConfig,
    ProxyMessage,
    Retarget,
    proxy_child_id,
    proxy_child_spec,
)
from golem_actor.adapters.backend import BackendError, Endpoint, LaunchSpec, Observed, VmBackend
from golem_actor.adapters.local_ports import connect_host
from golem_actor.adapters.ssh_probe import wait_for_banner
from golem_actor.domain.vm_machine import Effect, Event
from golem_actor.kernel import (
    Address,
    ChildAddress,
    ChildAlreadyStarted,
    ChildStartFailed,
    DynamicSupervisorMsg,
    NoSuchChild,
    StartChild,
    TerminateChild,
)

from .registry import VmRecord

log = structlog.get_logger("golem_actor.vm_lifecycle")

T = TypeVar("T")


class OperationFailed(Exception):
    """An expected failure of the outside world; the message is for the client."""


@dataclass(frozen=True, kw_only=True)
class Operations:
    backend: VmBackend
    proxies: Address[DynamicSupervisorMsg]  # the ssh_proxies DynamicSupervisor
    listen_host: str
    launch_timeout: float
    idle_timeout: float
    max_connections: int

    @property
    def probe_host(self) -> str:
        return connect_host(self.listen_host)

    async def perform(
        self, record: VmRecord, effects: tuple[Effect, ...]
    ) -> tuple[Event | None, Observed | None]:
        event: Event | None = None
        observed: Observed | None = None
        for effect in effects:
            match effect:
                case Effect.LAUNCH:
                    observed = await self._backend(self.backend.launch(self._spec(record)))
                    await self._bring_up(record, observed)
                    event = Event.READY
                case Effect.POWER_ON:
                    observed = await self._backend(self.backend.start(record.vm_id))
                    await self._bring_up(record, observed)
                    event = Event.READY
                case Effect.OPEN_PROXY:
                    if record.target is None:
                        raise OperationFailed("the VM has no SSH endpoint to forward to")
                    await self.open_proxy(record, record.target)
                case Effect.CLOSE_PROXY:
                    await self.close_proxy(record.vm_id)
                case Effect.POWER_OFF:
                    await self._backend(self.backend.stop(record.vm_id))
                    event = Event.POWERED_OFF
                case Effect.DESTROY:
                    await self._backend(self.backend.delete(record.vm_id))
                    event = Event.DELETED
                case Effect.RELEASE:
                    raise AssertionError("RELEASE is the lifecycle's own bookkeeping")
        return event, observed

    @staticmethod
    def _spec(record: VmRecord) -> LaunchSpec:
        return LaunchSpec(
            vm_id=record.vm_id,
            hostname=record.name,
            resources=record.resources,
            image=record.image,
            authorized_keys=record.authorized_keys,
        )

    @staticmethod
    async def _backend(work: Awaitable[T]) -> T:
        try:
            return await work
        except BackendError as error:
            raise OperationFailed(str(error)) from error

    async def _bring_up(self, record: VmRecord, observed: Observed) -> None:
        """Proxy the VM's SSH to its public port, then wait for a banner through it."""
        if observed.ssh is None:
            raise OperationFailed("the backend reports no SSH endpoint for the VM")
        await self.open_proxy(record, observed.ssh)
        with trio.move_on_after(self.launch_timeout) as waited:
            banner = await wait_for_banner(self.probe_host, record.ssh_port)
        if waited.cancelled_caught:
            raise OperationFailed(
                f"SSH did not answer on port {record.ssh_port} within {self.launch_timeout:g}s"
            )
        log.info("ssh ready", vm_id=record.vm_id, port=record.ssh_port, banner=banner)

    async def open_proxy(self, record: VmRecord, target: Endpoint) -> None:
        config = ProxyConfig(
            vm_id=record.vm_id,
            listen_host=self.listen_host,
            listen_port=record.ssh_port,
            target=target,
            idle_timeout=self.idle_timeout,
            max_connections=self.max_connections,
        )
        try:
            await self.proxies.call(StartChild[ProxyMessage](proxy_child_spec(config)))
        except ChildAlreadyStarted:
            child = ChildAddress[ProxyMessage](proxy_child_id(record.vm_id))
            proxy = await self.proxies.call(child)
            await proxy.call(Retarget(target))
        except ChildStartFailed as error:
            port = record.ssh_port
            raise OperationFailed(f"SSH port {port} could not be opened: {error}") from error

    async def close_proxy(self, vm_id: str) -> None:
        with suppress(NoSuchChild):  # already closed
            await self.proxies.call(TerminateChild(proxy_child_id(vm_id)))
