"""The withdraw scheduler's rounds and withdrawals, on a scripted chain, a fake
vm_lifecycle and a fake wallet that answers when the test says (virtual time).

What is checked: a stream is not withdrawn twice at once, the wallet's answer (or its
failure) frees the stream for the next round, rounds never overlap, and a failed read
withdraws nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
import trio
from payments_fakes import NOW, FakeLifecycle, ScriptedStreams, hosted, reading, stream, view

from actors.wallet import Withdraw, WithdrawOutcome
from actors.withdraw_scheduler import WithdrawScheduler
from golem_actor.adapters.chain.errors import ChainUnavailable
from golem_actor.kernel import Actor, Deferred

INTERVAL = 10.0
VESTED = stream(runway=5_000)  # 1000 s at 10 wei/s: 10_000 wei withdrawable at NOW


class FakeWallet(Actor[Withdraw]):
    """Holds every `Withdraw` until the test answers it."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[Withdraw] = []
        self.waiting: list[Deferred[WithdrawOutcome]] = []

    async def handle_call(self, request: Withdraw) -> Any:
        self.asked.append(request)
        self.waiting.append(self.defer(request))

    def answer(self, *, withdrawn: bool) -> None:
        for reply in self.waiting:
            assert isinstance(reply.request, Withdraw)
            reply.reply(WithdrawOutcome(stream_id=reply.request.stream_id, withdrawn=withdrawn))
        self.waiting.clear()


@asynccontextmanager
async def scheduling(
    client: ScriptedStreams, *, min_wei: int = 1
) -> AsyncIterator[tuple[FakeWallet, FakeLifecycle]]:
    lifecycle = FakeLifecycle({"a": view("a", 1), "b": view("b", None)})
    wallet = FakeWallet()
    async with hosted(lifecycle, "vm_lifecycle") as vms, hosted(wallet, "wallet") as purse:
        actor = WithdrawScheduler(
            client=client, lifecycle=vms, wallet=purse, interval=INTERVAL, min_wei=min_wei
        )
        async with hosted(actor, "withdraw_scheduler"):
            yield wallet, lifecycle


async def test_a_stream_is_withdrawn_once_until_the_wallet_answers(
    autojump_clock: trio.abc.Clock,
) -> None:
    client = ScriptedStreams()
    client.answer = reading({1: VESTED})
    with structlog.testing.capture_logs() as logs:
        async with scheduling(client) as (wallet, _):
            await trio.sleep(INTERVAL + 1)
            assert [(w.stream_id, w.withdrawable_wei) for w in wallet.asked] == [(1, 10_000)]
            await trio.sleep(3 * INTERVAL)
            assert len(wallet.asked) == 1  # under way: later rounds leave it alone
            assert client.reads == [[1]]  # ... and do not even read it
            wallet.answer(withdrawn=True)
            await trio.sleep(INTERVAL)
            assert len(wallet.asked) == 2  # answered: the next round withdraws again
            assert client.reads == [[1], [1]]
    done = [e for e in logs if e["event"] == "withdrawal"]
    assert [(e["log_level"], e["stream_id"], e["withdrawn"]) for e in done] == [("info", 1, True)]


async def test_a_wallet_that_fails_the_call_frees_the_stream(
    autojump_clock: trio.abc.Clock,
) -> None:
    client = ScriptedStreams()
    client.answer = reading({1: VESTED})
    with structlog.testing.capture_logs() as logs:
        async with scheduling(client) as (wallet, _):
            await trio.sleep(INTERVAL + 1)
            assert len(wallet.asked) == 1
            for reply in wallet.waiting:
                reply.close()  # as when the wallet crashes: the call fails at once
            wallet.waiting.clear()
            await trio.sleep(INTERVAL)
            assert len(wallet.asked) == 2
    (failed,) = [e for e in logs if e["event"] == "withdrawal"]
    assert (failed["log_level"], failed["stream_id"], failed["withdrawn"]) == ("warning", 1, False)
    assert failed["detail"].startswith("failed: call to 'wallet' failed")


async def test_rounds_never_overlap_and_a_failed_read_withdraws_nothing(
    autojump_clock: trio.abc.Clock,
) -> None:
    client = ScriptedStreams()
    client.answer = ChainUnavailable("http://127.0.0.1:9/: connection refused")
    client.hold = trio.Event()
    with structlog.testing.capture_logs() as logs:
        async with scheduling(client) as (wallet, _):
            await trio.sleep(5 * INTERVAL + 1)
            assert len(client.reads) == 1  # the first round waits on the chain
            client.hold.set()
            await trio.sleep(1)
            assert wallet.asked == []
            await trio.sleep(INTERVAL)
            assert len(client.reads) == 2
            assert wallet.asked == []
    unreadable = [e for e in logs if e["event"].startswith("streams unreadable")]
    assert len(unreadable) == 2
    assert unreadable[0]["log_level"] == "warning"


async def test_too_little_vested_is_left_for_later(autojump_clock: trio.abc.Clock) -> None:
    client = ScriptedStreams()
    client.answer = reading({1: VESTED}, now=NOW - 999)  # 10 wei vested so far
    async with scheduling(client, min_wei=100) as (wallet, _):
        await trio.sleep(2 * INTERVAL + 1)
        assert len(client.reads) == 2
        assert wallet.asked == []
        client.answer = reading({1: VESTED})
        await trio.sleep(INTERVAL)
        assert [w.withdrawable_wei for w in wallet.asked] == [10_000]
