"""Fakes for the payments actors' unit tests: a scripted chain reader and a vm_lifecycle.

`ScriptedStreams` answers `read_streams` from a reading (or an error) the test sets, can
hold a read open until the test lets it go, and counts reads. `FakeLifecycle` is an actor
that answers `ListVms`, `StopVm` and `StartVm` from a dict of views and records each call.
`hosted` runs one actor on its own inbox for a test; `MemoryStore` keeps state in memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import trio

from actors.vm_lifecycle import Conflict, ListVms, StartVm, StopVm, VmView
from golem_actor.adapters.chain.rpc import RpcClient
from golem_actor.adapters.chain.stream_payment import StreamPaymentClient, StreamsReading
from golem_actor.domain.resources import Resources
from golem_actor.domain.streams import ZERO_ADDRESS, StreamState
from golem_actor.domain.vm_machine import VmStatus
from golem_actor.kernel import Actor, Address, Inbox
from golem_actor.state_store import Migration, StateStore

PROVIDER = "0x70997970C51812dc3A010C7d01b50e0d4dc79C8f"
SENDER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
NOW = 10_000
RESOURCES = Resources.from_gb(cpus=1, memory_gb=1, storage_gb=10)

M = TypeVar("M")
T = TypeVar("T")


class MemoryStore(StateStore):
    """A StateStore kept in memory: no worker threads, so virtual time stays exact."""

    def __init__(self) -> None:
        super().__init__(Path("/nonexistent"))
        self.saved: dict[str, bytes] = {}

    async def save(self, name: str, value: msgspec.Struct, *, schema_version: int) -> None:
        self.saved[self.path(name).name] = msgspec.json.encode(value)

    async def load(
        self,
        name: str,
        type_: type[T],
        *,
        schema_version: int,
        migrate: Migration | None = None,
    ) -> T | None:
        data = self.saved.get(self.path(name).name)
        return None if data is None else msgspec.json.decode(data, type=type_)


@asynccontextmanager
async def hosted(actor: Actor[M], name: str) -> AsyncIterator[Address[M]]:
    """Run `actor` on its own inbox (no supervisor: a crash fails the test)."""
    inbox = Inbox[M](name)
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run, inbox)
        yield inbox.address()
        actor.request_stop()


def stream(*, runway: int, halted: bool = False, withdrawn: int = 0) -> StreamState:
    """A stream paying 10 wei/s to PROVIDER, started 1000 s before NOW."""
    return StreamState(
        token=ZERO_ADDRESS,
        sender=SENDER,
        recipient=PROVIDER,
        start_time=NOW - 1_000,
        stop_time=NOW + runway,
        rate_per_second=10,
        deposit=(1_000 + runway) * 10,
        withdrawn=withdrawn,
        halted=halted,
    )


def reading(streams: dict[int, StreamState], now: int = NOW) -> StreamsReading:
    return StreamsReading(now=now, block_number=1, streams=streams)


class ScriptedStreams(StreamPaymentClient):
    """A StreamPaymentClient whose reads the test scripts (no chain behind it)."""

    def __init__(self) -> None:
        super().__init__(RpcClient("http://127.0.0.1:9/"), ZERO_ADDRESS)  # never used
        self.answer: StreamsReading | Exception = reading({})
        self.reads: list[list[int]] = []
        self.hold: trio.Event | None = None  # set by the test: reads wait for it
        self.entered = trio.Event()  # set when a read starts

    async def read_streams(self, stream_ids: Any) -> StreamsReading:
        self.reads.append(list(stream_ids))
        self.entered.set()
        if self.hold is not None:
            await self.hold.wait()
        if isinstance(self.answer, Exception):
            raise self.answer
        wanted = set(self.reads[-1])
        streams = {i: s for i, s in self.answer.streams.items() if i in wanted}
        return StreamsReading(
            now=self.answer.now, block_number=self.answer.block_number, streams=streams
        )


def view(vm_id: str, stream_id: int | None, status: VmStatus = VmStatus.RUNNING) -> VmView:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return VmView(
        vm_id=vm_id,
        name=vm_id,
        status=status,
        resources=RESOURCES,
        image="test-guest",
        ip_address=None,
        ssh_port=2222,
        stream_id=stream_id,
        job_id=None,
        error=None,
        created_at=at,
        updated_at=at,
    )


class FakeLifecycle(Actor[ListVms | StopVm | StartVm]):
    """vm_lifecycle as the payments actors see it; StopVm/StartVm flip the status."""

    def __init__(self, views: dict[str, VmView]) -> None:
        super().__init__()
        self.views = views
        self.calls: list[tuple[str, str]] = []
        self.refuse: set[str] = set()  # VM ids whose stop/start is refused

    async def handle_call(self, request: ListVms | StopVm | StartVm) -> Any:
        match request:
            case ListVms():
                return list(self.views.values())
            case StopVm(vm_id=vm_id):
                return self._move(vm_id, "stop", VmStatus.STOPPED)
            case StartVm(vm_id=vm_id):
                return self._move(vm_id, "start", VmStatus.RUNNING)
        return await super().handle_call(request)

    def _move(self, vm_id: str, what: str, status: VmStatus) -> VmView:
        self.calls.append((what, vm_id))
        if vm_id in self.refuse:
            raise Conflict(f"VM {vm_id} is busy")
        old = self.views[vm_id]
        self.views[vm_id] = view(vm_id, old.stream_id, status)
        return self.views[vm_id]
