"""The stream monitor's rounds, on a scripted chain and a fake vm_lifecycle (virtual time).

What is checked: one round at a time, a failed read touches nothing, and the set of VMs
stopped for payment changes (and is saved) only as rounds report back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
import trio
from payments_fakes import (
    FakeLifecycle,
    MemoryStore,
    ScriptedStreams,
    hosted,
    reading,
    stream,
    view,
)

from actors.stream_monitor import MonitorMsg, StreamMonitor
from actors.stream_monitor.actor import SCHEMA_VERSION, STATE, _State
from actors.vm_lifecycle import VmView
from golem_actor.adapters.chain.errors import ChainUnavailable
from golem_actor.domain.vm_machine import VmStatus
from golem_actor.kernel import Address
from golem_actor.state_store import StateStore

INTERVAL = 10.0
DRY = stream(runway=100)  # below the runway the monitor wants
PAYING = stream(runway=5_000)


@asynccontextmanager
async def monitoring(
    views: dict[str, VmView], client: ScriptedStreams, store: StateStore
) -> AsyncIterator[tuple[FakeLifecycle, Address[MonitorMsg]]]:
    lifecycle = FakeLifecycle(views)
    async with hosted(lifecycle, "vm_lifecycle") as vms:
        actor = StreamMonitor(
            client=client, lifecycle=vms, store=store, interval=INTERVAL, min_remaining=600
        )
        async with hosted(actor, "stream_monitor") as address:
            yield lifecycle, address


async def saved(store: StateStore) -> list[str] | None:
    state = await store.load(STATE, _State, schema_version=SCHEMA_VERSION)
    return None if state is None else state.stopped_for_payment


async def test_a_tick_while_a_round_runs_starts_no_second_round(
    autojump_clock: trio.abc.Clock,
) -> None:
    client = ScriptedStreams()
    client.answer = reading({1: DRY})
    client.hold = trio.Event()
    async with monitoring({"a": view("a", 1)}, client, MemoryStore()) as (vms, _):
        await trio.sleep(INTERVAL + 1)
        assert len(client.reads) == 1  # the first round waits on the chain
        await trio.sleep(5 * INTERVAL)
        assert len(client.reads) == 1  # five ticks came and went: no second round
        assert vms.calls == []
        client.hold.set()
        await trio.sleep(1)
        assert vms.calls == [("stop", "a")]  # the round ended, and acted once
        await trio.sleep(INTERVAL)
        assert len(client.reads) == 2  # the next tick starts the next round


async def test_a_failed_read_stops_nothing_and_a_good_one_acts(
    autojump_clock: trio.abc.Clock,
) -> None:
    client = ScriptedStreams()
    client.answer = ChainUnavailable("http://127.0.0.1:9/: connection refused")
    store = MemoryStore()
    views = {"a": view("a", 1), "b": view("b", 2)}
    with structlog.testing.capture_logs() as logs:
        async with monitoring(views, client, store) as (vms, _):
            await trio.sleep(3 * INTERVAL + 1)
            assert len(client.reads) == 3
            assert vms.calls == []  # the streams ran dry, but nobody could tell
            assert await saved(store) is None
            client.answer = reading({1: DRY, 2: PAYING})
            await trio.sleep(INTERVAL)
            assert vms.calls == [("stop", "a")]
            assert vms.views["a"].status is VmStatus.STOPPED
            assert await saved(store) == ["a"]
    unreadable = [e for e in logs if e["event"] == "streams unreadable: no VM is touched"]
    assert len(unreadable) == 3
    assert unreadable[0]["log_level"] == "warning"
    assert "connection refused" in unreadable[0]["error"]


async def test_a_restarted_monitor_starts_what_it_stopped_once_topped_up(
    autojump_clock: trio.abc.Clock,
) -> None:
    store = MemoryStore()
    await store.save(STATE, _State(["a", "gone"]), schema_version=SCHEMA_VERSION)
    client = ScriptedStreams()
    client.answer = reading({1: DRY})
    views = {"a": view("a", 1, VmStatus.STOPPED)}
    async with monitoring(views, client, store) as (vms, _):
        await trio.sleep(INTERVAL + 1)
        assert vms.calls == []  # still dry: it stays stopped
        assert await saved(store) == ["a"]  # the deleted VM is forgotten
        client.answer = reading({1: PAYING})  # topped up
        await trio.sleep(INTERVAL)
        assert vms.calls == [("start", "a")]
        assert vms.views["a"].status is VmStatus.RUNNING
        assert await saved(store) == []


async def test_a_refused_stop_is_still_remembered_as_stopped_for_payment(
    autojump_clock: trio.abc.Clock,
) -> None:
    store = MemoryStore()
    client = ScriptedStreams()
    client.answer = reading({1: DRY})
    async with monitoring({"a": view("a", 1)}, client, store) as (vms, _):
        vms.refuse.add("a")
        await trio.sleep(INTERVAL + 1)
        assert vms.calls == [("stop", "a")]
        assert await saved(store) == ["a"]
        await trio.sleep(INTERVAL)
        assert vms.calls == [("stop", "a")]  # running but remembered: no second stop
