"""Kernel benchmark: `Address.call` and `Address.cast` against bare trio memory channels.

Baselines, measured in the same run:
- bare round trip: a client and a server task ping-pong over two memory channels
  (the least any request/reply between two trio tasks can cost);
- bare per-call channel: the same, with a fresh size-1 reply channel per request, which
  is what a safe call needs (late replies dropped, crash detection);
- bare stream: a producer sends n messages into a bounded channel that a consumer drains.
Target: a call costs at most 3x the bare round trip.

Two more cases show what the patterns built on a call cost (printed against the plain call):
- deferred reply: the handler defers the call and answers it from the next message in its
  own inbox (a cast to itself), as an actor answers a waiter once the world changes;
- start_work report: the handler defers the call and starts a work; the work's result comes
  back as a message, whose handler answers the call (call -> work -> report -> reply).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import msgspec
import trio

from golem_actor.kernel import Actor, Call, ChildSpec, Deferred, Inbox, Supervisor

from ._timing import compare

TARGET_CALL_RATIO = 3.0


class Echo(Call[int], frozen=True):
    n: int


class Tick(msgspec.Struct, frozen=True):
    n: int


class EchoLater(Call[int], frozen=True):
    """Deferred, then answered by the next message: `Release`."""

    n: int


class Release(msgspec.Struct, frozen=True):
    pass


class EchoByWork(Call[int], frozen=True):
    """Deferred, then answered once a work reports its result: `Worked`."""

    n: int


class Worked(msgspec.Struct, frozen=True):
    n: int


CounterMsg = Tick | Echo | EchoLater | Release | EchoByWork | Worked


async def echo(n: int) -> int:
    return n


class Counter(Actor[CounterMsg]):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.held: dict[int, Deferred[int]] = {}

    async def handle_cast(self, message: CounterMsg) -> None:
        match message:
            case Release():
                for n, handle in self.held.items():
                    handle.reply(n)
                self.held.clear()
            case Worked(n=n):
                self.held.pop(n).reply(n)
            case _:
                self.count += 1

    async def handle_call(self, request: CounterMsg) -> Any:
        match request:
            case Echo(n=n):
                return n
            case EchoLater(n=n):
                self.held[n] = self.defer(request)
                if not self.address.try_cast(Release()):
                    raise RuntimeError("the bench's inbox is never full")
                return None
            case EchoByWork(n=n):
                self.held[n] = self.defer(request)
                self.start_work(partial(echo, n), then=Worked)
                return None
        return await super().handle_call(request)


async def bare_round_trip(n: int) -> float:
    req_send, req_recv = trio.open_memory_channel[int](16)
    rep_send, rep_recv = trio.open_memory_channel[int](16)

    async def server() -> None:
        async for item in req_recv:
            await rep_send.send(item)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server)
        began = trio.current_time()
        for i in range(n):
            await req_send.send(i)
            await rep_recv.receive()
        elapsed = trio.current_time() - began
        await req_send.aclose()
    return elapsed


async def bare_per_call_channel(n: int) -> float:
    req_send, req_recv = trio.open_memory_channel[tuple[int, trio.MemorySendChannel[int]]](16)

    async def server() -> None:
        async for item, reply in req_recv:
            with reply:
                reply.send_nowait(item)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server)
        began = trio.current_time()
        for i in range(n):
            send, recv = trio.open_memory_channel[int](1)
            with recv:
                await req_send.send((i, send))
                await recv.receive()
        elapsed = trio.current_time() - began
        await req_send.aclose()
    return elapsed


async def bare_stream(n: int) -> float:
    send, recv = trio.open_memory_channel[int](16)
    done = trio.Event()

    async def consumer() -> None:
        count = 0
        async for _ in recv:
            count += 1
            if count == n:
                done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consumer)
        began = trio.current_time()
        for i in range(n):
            await send.send(i)
        await done.wait()
        elapsed = trio.current_time() - began
        await send.aclose()
    return elapsed


def _tree() -> Supervisor:
    return Supervisor("bench", [ChildSpec("counter", Counter, shutdown=math.inf)])


async def _calls(n: int, request: Callable[[int], Echo | EchoLater | EchoByWork]) -> float:
    sup = _tree()
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run, Inbox("bench"))
        address = sup.child_address("counter")
        began = trio.current_time()
        for i in range(n):
            if await address.call(request(i)) != i:
                raise AssertionError("the echo answered another number")
        elapsed = trio.current_time() - began
        sup.request_stop()
    return elapsed


async def actor_call(n: int) -> float:
    return await _calls(n, Echo)


async def deferred_reply(n: int) -> float:
    return await _calls(n, EchoLater)


async def work_report(n: int) -> float:
    return await _calls(n, EchoByWork)


async def actor_cast(n: int) -> float:
    sup = _tree()
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run, Inbox("bench"))
        address = sup.child_address("counter")
        began = trio.current_time()
        for i in range(n):
            await address.cast(Tick(i))
        await address.call(Echo(0))  # everything before it has been handled
        elapsed = trio.current_time() - began
        sup.request_stop()
    return elapsed


async def run(n: int = 5_000, rounds: int = 20) -> dict[str, float]:
    # trio.current_time() is the run's clock: wall time under the default clock. Many short
    # interleaved rounds: other load on a shared machine hits every case alike.
    per_op = await compare(
        {
            "bare round trip": bare_round_trip,
            "bare per-call channel": bare_per_call_channel,
            "Address.call": actor_call,
            "bare stream": bare_stream,
            "Address.cast": actor_cast,
            "deferred reply": deferred_reply,
            "start_work report": work_report,
        },
        n,
        rounds,
    )
    print(f"kernel: {n} operations x {rounds} rounds, median per operation")
    for name, seconds in per_op.items():
        print(f"  {name:<22} {seconds * 1e6:8.2f} us   {1 / seconds:>10,.0f} ops/s")
    call_ratio = per_op["Address.call"] / per_op["bare round trip"]
    cast_ratio = per_op["Address.cast"] / per_op["bare stream"]
    print(f"  call / bare round trip   = {call_ratio:.2f}x (target <= {TARGET_CALL_RATIO}x)")
    per_call_ratio = per_op["Address.call"] / per_op["bare per-call channel"]
    print(f"  call / bare per-call ch. = {per_call_ratio:.2f}x")
    print(f"  cast / bare stream       = {cast_ratio:.2f}x")
    deferred_ratio = per_op["deferred reply"] / per_op["bare round trip"]
    work_ratio = per_op["start_work report"] / per_op["bare round trip"]
    for name, ratio in (("deferred reply", deferred_ratio), ("start_work report", work_ratio)):
        per_call = per_op[name] / per_op["Address.call"]
        print(f"  {name:<17} = {ratio:.2f}x bare round trip, {per_call:.2f}x a call")
    return {
        "call_ratio": call_ratio,
        "cast_ratio": cast_ratio,
        "deferred_ratio": deferred_ratio,
        "work_ratio": work_ratio,
        **per_op,
    }


if __name__ == "__main__":
    trio.run(run)
