"""`StreamMonitor`: every interval, read every mapped stream (one batched request) and
stop the VMs whose stream was halted, terminated or whose runway fell below the
threshold; start again the VMs it stopped once their stream pays (topped up).

Only definitive readings act: a read that fails (RPC down, timeout) leaves every VM as it
is, so an outage of the chain never stops a tenant's VM (the existing provider deleted
VMs on a transient error). The set of VMs it stopped is persisted, so a restart of the
node does not forget to start them again after a top-up.
"""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
import trio

from actors.vm_lifecycle import ListVms, StartVm, StopVm, VmView
from golem_actor.adapters.chain.errors import ChainError
from golem_actor.adapters.chain.stream_payment import StreamPaymentClient, StreamsReading
from golem_actor.domain.streams import monitor_verdict
from golem_actor.domain.tenancy import Caller
from golem_actor.domain.vm_machine import VmStatus
from golem_actor.kernel import Actor, ActorError, Address
from golem_actor.state_store import StateStore

log = structlog.get_logger("golem_actor.stream_monitor")

STATE = "stream_monitor"
SCHEMA_VERSION = 1
NODE = Caller(operator=True)  # the node acts on every VM


class MonitorTick(msgspec.Struct, frozen=True):
    pass


class _State(msgspec.Struct, frozen=True):
    stopped_for_payment: list[str] = []


class StreamMonitor(Actor[object]):
    def __init__(
        self,
        *,
        client: StreamPaymentClient,
        lifecycle: Address[Any],
        store: StateStore,
        interval: float,
        min_remaining: int,
    ) -> None:
        super().__init__()
        self._client = client
        self._lifecycle = lifecycle
        self._store = store
        self._interval = interval
        self._min_remaining = min_remaining
        self._stopped: set[str] = set()
        self._ticking = False

    async def on_start(self) -> None:
        state = await self._store.load(STATE, _State, schema_version=SCHEMA_VERSION)
        self._stopped = set(state.stopped_for_payment) if state else set()
        self.nursery.start_soon(self._timer)

    async def _timer(self) -> None:
        while True:
            await trio.sleep(self._interval)
            await self.address.cast(MonitorTick())

    async def handle_cast(self, message: object) -> None:
        match message:
            case MonitorTick():
                if not self._ticking:  # one tick at a time; a slow chain skips ticks
                    self._ticking = True
                    self.nursery.start_soon(self._tick)
            case _:
                await super().handle_cast(message)

    async def _tick(self) -> None:
        try:
            views = [v for v in await self._lifecycle.call(ListVms(NODE)) if v.stream_id]
            self._stopped &= {v.vm_id for v in views}  # forget deleted VMs
            if not views:
                return
            reading: StreamsReading | None
            try:
                reading = await self._client.read_streams(
                    [v.stream_id for v in views if v.stream_id]
                )
            except ChainError as error:
                log.warning("streams unreadable: no VM is touched", error=str(error))
                reading = None
            for view in views:
                await self._judge(view, reading)
            await self._store.save(
                STATE, _State(sorted(self._stopped)), schema_version=SCHEMA_VERSION
            )
        finally:
            self._ticking = False

    async def _judge(self, view: VmView, reading: StreamsReading | None) -> None:
        assert view.stream_id is not None
        stopped_for_payment = view.vm_id in self._stopped
        verdict = monitor_verdict(
            None if reading is None else reading.streams.get(view.stream_id),
            now=0 if reading is None else reading.now,
            min_remaining=self._min_remaining,
            read_failed=reading is None,
            stopped_for_payment=stopped_for_payment,
        )
        try:
            if verdict == "stop" and view.status is VmStatus.RUNNING:
                log.info(
                    "stopping a VM whose stream stopped paying",
                    vm_id=view.vm_id,
                    stream_id=view.stream_id,
                )
                self._stopped.add(view.vm_id)
                await self._lifecycle.call(StopVm(NODE, view.vm_id))
            elif verdict == "start" and view.status is VmStatus.STOPPED:
                log.info(
                    "starting a VM whose stream pays again",
                    vm_id=view.vm_id,
                    stream_id=view.stream_id,
                )
                await self._lifecycle.call(StartVm(NODE, view.vm_id))
                self._stopped.discard(view.vm_id)
        except ActorError as refused:  # the VM moved on meanwhile (deleted, busy)
            log.info("monitor action refused", vm_id=view.vm_id, reason=str(refused))
