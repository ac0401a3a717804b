"""Public IP discovery from echo services (local HTTP servers standing in for them)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial

import trio

from golem_actor.adapters.public_ip import discover_public_ip


@asynccontextmanager
async def echo_service(answer: Callable[[], bytes]) -> AsyncIterator[str]:
    async def handle(stream: trio.SocketStream) -> None:
        async with stream:
            await stream.receive_some(4096)
            body = answer()
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s"
                % (len(body), body)
            )

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
        yield f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}/"
        nursery.cancel_scope.cancel()


async def test_the_first_good_answer_wins_and_bad_ones_are_reported() -> None:
    async with (
        echo_service(lambda: b"not an address") as garbage,
        echo_service(lambda: b"10.1.2.3\n") as private,
        echo_service(lambda: b"1.0.0.1\n") as good,
    ):
        address, failures = await discover_public_ip([garbage, private, good])
    assert address == "1.0.0.1"  # only a string our local stand-in answers with
    assert any("ValueError" in f for f in failures)
    assert any("unusable answer '10.1.2.3'" in f for f in failures)


async def test_a_public_answer_is_returned() -> None:
    async with echo_service(lambda: b"1.1.1.1") as service:
        assert await discover_public_ip([service]) == ("1.1.1.1", [])


async def test_nothing_answering_is_a_clear_report_not_a_hang() -> None:
    with trio.fail_after(5):
        address, failures = await discover_public_ip(["http://127.0.0.1:9/"], time_limit=1.0)
    assert address is None
    assert failures[0].startswith("http://127.0.0.1:9/: ConnectError")
