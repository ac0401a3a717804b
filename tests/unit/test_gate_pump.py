"""The TCP gate's pump over fakes (bytes, ends, backpressure), and the hypercorn patch
that lets the gate tell a websocket close from an abort, against the installed hypercorn."""

from __future__ import annotations

from functools import partial

import pytest
import trio
import trio.testing
import trio_websocket
from hypercorn.config import Config
from hypercorn.trio import serve
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope

from golem_actor.adapters.hypercorn_ws import report_clean_websocket_close
from golem_actor.adapters.vpn_gate import CHUNK, GateEnd, WsEnded, pump
from golem_actor.adapters.vpn_gate._pump import CLOSE_NORMAL, CLOSE_RESET


class FakeWs:
    def __init__(self) -> None:
        self.inbound_send, self.inbound = trio.open_memory_channel[bytes | WsEnded](0)
        self.sent: list[bytes] = []
        self.closed: tuple[int, str] | None = None
        self.send_gate = trio.Event()
        self.send_gate.set()
        self.receives = 0

    async def receive(self) -> bytes | WsEnded:
        self.receives += 1
        return await self.inbound.receive()

    async def send(self, data: bytes) -> None:
        await self.send_gate.wait()
        self.sent.append(data)

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


class Reset(Exception):
    pass


class FakeTcp:
    def __init__(self) -> None:
        self.inbound_send, self.inbound = trio.open_memory_channel[bytes | Reset](0)
        self.written: list[bytes] = []
        self.ended: str | None = None
        self.write_gate = trio.Event()
        self.write_gate.set()
        self.reads = 0
        self.asked: list[int] = []

    async def receive_some(self, max_bytes: int) -> bytes:
        self.reads += 1
        self.asked.append(max_bytes)
        got = await self.inbound.receive()
        if isinstance(got, Reset):
            raise trio.BrokenResourceError("reset") from got
        return got

    async def send_all(self, data: bytes) -> None:
        await self.write_gate.wait()
        self.written.append(data)

    async def finish(self) -> None:
        self.ended = "fin"

    def abort(self) -> None:
        self.ended = "rst"


async def _run(ws: FakeWs, tcp: FakeTcp, result: list[tuple[GateEnd, int, int]]) -> None:
    result.append(await pump(ws, tcp))


@pytest.mark.parametrize(
    ("end", "expected", "tcp_end"),
    [
        (WsEnded(clean=True), GateEnd.CLIENT_CLOSED, "fin"),
        (WsEnded(clean=False), GateEnd.CLIENT_ABORTED, "rst"),
    ],
)
async def test_bytes_both_ways_then_the_client_ends(
    end: WsEnded, expected: GateEnd, tcp_end: str
) -> None:
    ws, tcp = FakeWs(), FakeTcp()
    result: list[tuple[GateEnd, int, int]] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_run, ws, tcp, result)
        await ws.inbound_send.send(b"to the vm")
        await ws.inbound_send.send(b"text")
        await tcp.inbound_send.send(b"from the vm")
        await trio.testing.wait_all_tasks_blocked()
        await ws.inbound_send.send(end)
    assert tcp.written == [b"to the vm", b"text"]
    assert ws.sent == [b"from the vm"]
    assert tcp.asked
    assert set(tcp.asked) == {CHUNK}
    assert result == [(expected, 13, 11)]
    assert tcp.ended == tcp_end
    assert ws.closed is None  # the client ended it: nothing to close


@pytest.mark.parametrize(
    ("vm_end", "expected", "code", "tcp_end"),
    [
        (b"", GateEnd.VM_CLOSED, CLOSE_NORMAL, "fin"),
        (Reset(), GateEnd.VM_RESET, CLOSE_RESET, "rst"),
    ],
)
async def test_the_vm_ends_and_the_websocket_closes_at_once(
    vm_end: bytes | Reset, expected: GateEnd, code: int, tcp_end: str
) -> None:
    ws, tcp = FakeWs(), FakeTcp()
    result: list[tuple[GateEnd, int, int]] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_run, ws, tcp, result)
        await tcp.inbound_send.send(vm_end)
    assert result[0][0] is expected
    assert ws.closed is not None
    assert ws.closed[0] == code
    assert tcp.ended == tcp_end


async def test_backpressure_one_chunk_in_flight_each_way() -> None:
    ws, tcp = FakeWs(), FakeTcp()
    result: list[tuple[GateEnd, int, int]] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_run, ws, tcp, result)
        # the websocket does not take what the VM sends: the VM is not read again
        ws.send_gate = trio.Event()
        await tcp.inbound_send.send(b"a")
        await trio.testing.wait_all_tasks_blocked()
        assert tcp.reads == 1
        with pytest.raises(trio.WouldBlock):
            tcp.inbound_send.send_nowait(b"b")
        ws.send_gate.set()
        await trio.testing.wait_all_tasks_blocked()
        assert tcp.reads == 2
        assert ws.sent == [b"a"]
        # the VM does not take what the client sends: the websocket is not read again
        tcp.write_gate = trio.Event()
        await ws.inbound_send.send(b"x")
        await trio.testing.wait_all_tasks_blocked()
        receives = ws.receives
        with pytest.raises(trio.WouldBlock):
            ws.inbound_send.send_nowait(b"y")
        assert ws.receives == receives
        tcp.write_gate.set()
        await trio.testing.wait_all_tasks_blocked()
        assert tcp.written == [b"x"]
        await ws.inbound_send.send(WsEnded(clean=True))
    assert result[0][0] is GateEnd.CLIENT_CLOSED


# -- hypercorn's close code ------------------------------------------------------------


async def _recorder(
    codes: trio.MemorySendChannel[int],
    scope: Scope,
    receive: ASGIReceiveCallable,
    send: ASGISendCallable,
) -> None:
    if scope["type"] == "lifespan":
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept", "subprotocol": None, "headers": []})
    while True:
        event = await receive()
        if event["type"] == "websocket.disconnect":
            await codes.send(event["code"])
            return


async def test_hypercorn_reports_a_close_as_1000_and_an_abort_as_1006() -> None:
    report_clean_websocket_close()
    codes_in, codes = trio.open_memory_channel[int](4)
    config = Config()
    config.bind = ["127.0.0.1:0"]
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            partial(serve, partial(_recorder, codes_in), config, mode="asgi")
        )
        url = binds[0].replace("http://", "ws://") + "/x"
        async with trio_websocket.open_websocket_url(url) as ws:
            await ws.aclose(code=4000)
        with trio.fail_after(5):
            assert await codes.receive() == 1000
        host, port = binds[0].removeprefix("http://").rsplit(":", 1)
        stream = await trio.open_tcp_stream(host, int(port))
        await stream.send_all(
            b"GET /x HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        assert (await stream.receive_some(100)).startswith(b"HTTP/1.1 101")
        await stream.aclose()  # gone without a close frame
        with trio.fail_after(5):
            assert await codes.receive() == 1006
        nursery.cancel_scope.cancel()
