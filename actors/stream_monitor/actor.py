"""`StreamMonitor`: every interval, read every mapped stream (one batched request) and
stop the VMs whose stream was halted, terminated or whose runway fell below the
threshold; start again the VMs it stopped once their stream pays (topped up).

Only definitive readings act: a read that fails (RPC down, timeout) leaves every VM as it
is, so an outage of the chain never stops a tenant's VM (the existing provider deleted
VMs on a transient error). The set of VMs it stopped is persisted, so a restart of the
node does not forget to start them again after a top-up.

A round (list, read, stop/start) is work that reports back `RoundDone`; the set of
stopped VMs changes, and is saved, only in that handler. One round at a time: a tick
while a round runs is dropped, so a slow chain skips ticks. The round works from a
snapshot of the set, which nothing else changes meanwhile.
"""

from __future__ import annotations

from functools import partial

import msgspec
import structlog

from actors.vm_lifecycle import ListVms, StartVm, StopVm, VmView
from golem_actor.adapters.chain.errors import ChainError
from golem_actor.adapters.chain.stream_payment import StreamPaymentClient, StreamsReading
from golem_actor.domain.streams import monitor_verdict
from golem_actor.domain.tenancy import Caller
from golem_actor.domain.vm_machine import VmStatus
from golem_actor.kernel import Actor, ActorError, Address
from golem_actor.state_store import StateStore

from .messages import MonitorMsg, MonitorTick, RoundDone

log = structlog.get_logger("golem_actor.stream_monitor")

STATE = "stream_monitor"
SCHEMA_VERSION = 1
NODE = Caller(operator=True)  # the node acts on every VM
ROUND = "round"  # the key of the running round

Lifecycle = Address[ListVms | StopVm | StartVm]  # what the monitor sends to vm_lifecycle


class _State(msgspec.Struct, frozen=True):
    stopped_for_payment: list[str] = []


class StreamMonitor(Actor[MonitorMsg]):
    def __init__(
        self,
        *,
        client: StreamPaymentClient,
        lifecycle: Lifecycle,
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
        self._stopped = frozenset[str]()  # VMs stopped for payment

    async def on_start(self) -> None:
        state = await self._store.load(STATE, _State, schema_version=SCHEMA_VERSION)
        self._stopped = frozenset(state.stopped_for_payment) if state else frozenset()
        self.every(self._interval, MonitorTick())

    async def handle_cast(self, message: MonitorMsg) -> None:
        match message:
            case MonitorTick():
                if self.work_for(ROUND) is None:  # one round at a time
                    work = partial(self._round, self._stopped)
                    self.start_work(work, then=lambda done: done, key=ROUND)
            case RoundDone(seen=seen, stopped=stopped, started=started):
                now = ((self._stopped & seen) | stopped) - started  # deleted VMs forgotten
                if now != self._stopped:
                    self._stopped = now
                    await self._store.save(
                        STATE, _State(sorted(now)), schema_version=SCHEMA_VERSION
                    )
            case _:
                await super().handle_cast(message)

    async def _round(self, stopped: frozenset[str]) -> RoundDone:
        """One round's slow part; `stopped` is the set as the round started."""
        views = [v for v in await self._lifecycle.call(ListVms(NODE)) if v.stream_id]
        seen = frozenset(v.vm_id for v in views)
        if not views:
            return RoundDone(seen=seen)
        reading: StreamsReading | None
        try:
            reading = await self._client.read_streams([v.stream_id for v in views if v.stream_id])
        except ChainError as error:
            log.warning("streams unreadable: no VM is touched", error=str(error))
            reading = None
        stopping: set[str] = set()
        starting: set[str] = set()
        for view in views:
            await self._judge(view, reading, stopped, stopping, starting)
        return RoundDone(seen=seen, stopped=frozenset(stopping), started=frozenset(starting))

    async def _judge(
        self,
        view: VmView,
        reading: StreamsReading | None,
        stopped: frozenset[str],
        stopping: set[str],
        starting: set[str],
    ) -> None:
        """Act on one VM's verdict, noting what the round did in `stopping`/`starting`."""
        assert view.stream_id is not None
        verdict = monitor_verdict(
            None if reading is None else reading.streams.get(view.stream_id),
            now=0 if reading is None else reading.now,
            min_remaining=self._min_remaining,
            read_failed=reading is None,
            stopped_for_payment=view.vm_id in stopped,
        )
        try:
            if verdict == "stop" and view.status is VmStatus.RUNNING:
                log.info(
                    "stopping a VM whose stream stopped paying",
                    vm_id=view.vm_id,
                    stream_id=view.stream_id,
                )
                stopping.add(view.vm_id)  # remembered even if the stop is refused
                await self._lifecycle.call(StopVm(NODE, view.vm_id))
            elif verdict == "start" and view.status is VmStatus.STOPPED:
                log.info(
                    "starting a VM whose stream pays again",
                    vm_id=view.vm_id,
                    stream_id=view.stream_id,
                )
                await self._lifecycle.call(StartVm(NODE, view.vm_id))
                starting.add(view.vm_id)
        except ActorError as refused:  # the VM moved on meanwhile (deleted, busy)
            log.info("monitor action refused", vm_id=view.vm_id, reason=str(refused))
