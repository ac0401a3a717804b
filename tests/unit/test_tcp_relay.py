"""The TCP relay on real loopback sockets, with both pump engines.

Layout of every test: `client_peer` <-> [`relay_client` relay `relay_upstream`] <->
`upstream_peer`; the test plays both peers, `relay` owns nothing and closes nothing.
"""

from __future__ import annotations

import hashlib
import os
import random
import resource
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import trio
import trio.testing

from golem_actor.adapters.tcp_relay import (
    CHUNK,
    SPLICE_AVAILABLE,
    EndReason,
    Engine,
    RelayResult,
    Side,
    relay,
)

ENGINES = [
    pytest.param(
        Engine.SPLICE,
        id="splice",
        marks=pytest.mark.skipif(not SPLICE_AVAILABLE, reason="no os.splice here"),
    ),
    pytest.param(Engine.STREAM, id="stream"),
]


@dataclass
class Wires:
    client_peer: trio.SocketStream
    relay_client: trio.SocketStream
    relay_upstream: trio.SocketStream
    upstream_peer: trio.SocketStream

    def all(self) -> list[trio.SocketStream]:
        return [self.client_peer, self.relay_client, self.relay_upstream, self.upstream_peer]


async def tcp_pair(buffer: int | None = None) -> tuple[trio.SocketStream, trio.SocketStream]:
    """A connected (outer, inner) pair on 127.0.0.1; `buffer` caps both kernel buffers."""
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    if buffer is not None:  # inherited by the accepted socket, before the handshake
        listener.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer)
        listener.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, buffer)
    port = listener.socket.getsockname()[1]
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, buffer)
    await sock.connect(("127.0.0.1", port))
    inner = await listener.accept()
    await listener.aclose()
    return trio.SocketStream(sock), inner


@pytest.fixture
async def wires() -> AsyncIterator[Wires]:
    client_peer, relay_client = await tcp_pair()
    relay_upstream, upstream_peer = await tcp_pair()
    w = Wires(client_peer, relay_client, relay_upstream, upstream_peer)
    yield w
    for stream in w.all():
        await trio.aclose_forcefully(stream)


async def run_relay(
    w: Wires, engine: Engine, idle_timeout: float = 30.0, out: list[RelayResult] | None = None
) -> RelayResult:
    result = await relay(w.relay_client, w.relay_upstream, idle_timeout=idle_timeout, engine=engine)
    if out is not None:
        out.append(result)
    return result


async def send_blob(stream: trio.SocketStream, blob: bytes, piece: int = 1 << 20) -> None:
    view = memoryview(blob)
    for i in range(0, len(view), piece):
        await stream.send_all(view[i : i + piece])
    await stream.send_eof()


async def digest_until_eof(
    stream: trio.SocketStream, out: dict[str, tuple[int, str]], key: str
) -> None:
    h, n = hashlib.sha256(), 0
    while data := await stream.receive_some(1 << 20):
        h.update(data)
        n += len(data)
    out[key] = (n, h.hexdigest())


async def receive_exactly(stream: trio.SocketStream, n: int) -> bytes:
    got = bytearray()
    while len(got) < n:
        data = await stream.receive_some(n - len(got))
        assert data, f"EOF after {len(got)} of {n} bytes"
        got += data
    return bytes(got)


@pytest.mark.parametrize("engine", ENGINES)
async def test_tens_of_mib_both_ways_at_once_arrive_intact(wires: Wires, engine: Engine) -> None:
    size = 24 << 20
    rng = random.Random(7)
    up, down = rng.randbytes(size), rng.randbytes(size + 12345)
    digests: dict[str, tuple[int, str]] = {}
    results: list[RelayResult] = []
    moved = [0, 0]

    def on_bytes(to_upstream: int, to_client: int) -> None:
        moved[0] += to_upstream
        moved[1] += to_client

    async def run() -> None:
        results.append(
            await relay(
                wires.relay_client,
                wires.relay_upstream,
                idle_timeout=30,
                on_bytes=on_bytes,
                engine=engine,
            )
        )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        nursery.start_soon(send_blob, wires.client_peer, up)
        nursery.start_soon(send_blob, wires.upstream_peer, down)
        nursery.start_soon(digest_until_eof, wires.upstream_peer, digests, "up")
        nursery.start_soon(digest_until_eof, wires.client_peer, digests, "down")

    assert digests["up"] == (len(up), hashlib.sha256(up).hexdigest())
    assert digests["down"] == (len(down), hashlib.sha256(down).hexdigest())
    [result] = results
    assert result.reason is EndReason.COMPLETED
    assert (result.bytes_to_upstream, result.bytes_to_client) == (len(up), len(down))
    assert moved == [len(up), len(down)]
    assert result.engine is engine


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("first", [Side.CLIENT, Side.UPSTREAM])
async def test_half_close_is_propagated_and_the_other_way_keeps_flowing(
    wires: Wires, engine: Engine, first: Side
) -> None:
    closer, other = (
        (wires.client_peer, wires.upstream_peer)
        if first is Side.CLIENT
        else (wires.upstream_peer, wires.client_peer)
    )
    results: list[RelayResult] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_relay, wires, engine, 30.0, results)
        await closer.send_all(b"last words")
        await closer.send_eof()
        assert await receive_exactly(other, 10) == b"last words"
        assert await other.receive_some(100) == b""  # the EOF went through
        # the other direction still flows, after the EOF, in volume
        reply = random.Random(1).randbytes(3 << 20)
        nursery.start_soon(send_blob, other, reply)
        assert await receive_exactly(closer, len(reply)) == reply
        assert await closer.receive_some(100) == b""
    [result] = results
    assert result.reason is EndReason.COMPLETED
    assert result.first_closed is first


@pytest.mark.parametrize("engine", ENGINES)
async def test_idle_timeout_ends_the_relay(wires: Wires, engine: Engine) -> None:
    idle = 0.3
    results: list[RelayResult] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_relay, wires, engine, idle, results)
        # traffic every third of the timeout keeps it alive well past one timeout
        for _ in range(6):
            await wires.client_peer.send_all(b"x")
            assert await receive_exactly(wires.upstream_peer, 1) == b"x"
            await trio.sleep(idle / 3)
        assert not results
        began = trio.current_time()
    [result] = results
    assert result.reason is EndReason.IDLE_TIMEOUT
    assert result.first_closed is None
    assert trio.current_time() - began == pytest.approx(idle, abs=0.2)
    assert result.bytes_to_upstream == 6


def reset(stream: trio.SocketStream) -> None:
    """Close with an RST instead of a FIN."""
    stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    stream.socket.close()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("culprit", [Side.CLIENT, Side.UPSTREAM])
async def test_a_reset_ends_the_relay_with_a_reason(
    wires: Wires, engine: Engine, culprit: Side
) -> None:
    victim_peer = wires.upstream_peer if culprit is Side.CLIENT else wires.client_peer
    culprit_peer = wires.client_peer if culprit is Side.CLIENT else wires.upstream_peer
    results: list[RelayResult] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_relay, wires, engine, 30.0, results)
        await culprit_peer.send_all(b"hi")
        assert await receive_exactly(victim_peer, 2) == b"hi"
        reset(culprit_peer)
    [result] = results
    assert result.reason is EndReason.RESET
    assert result.first_closed is culprit
    assert result.detail == f"ECONNRESET from {culprit.value}"


@pytest.mark.parametrize("engine", ENGINES)
async def test_writing_to_a_peer_that_reset_ends_the_relay(wires: Wires, engine: Engine) -> None:
    results: list[RelayResult] = []
    ended = trio.Event()

    async def run() -> None:
        await run_relay(wires, engine, 30.0, results)
        ended.set()

    async def push() -> None:  # writes towards the dead upstream must end the relay
        while True:
            await wires.client_peer.send_all(b"y" * 65536)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        await wires.upstream_peer.send_eof()  # half-closed, then gone: reads see EOF only
        assert await wires.client_peer.receive_some(10) == b""
        reset(wires.upstream_peer)
        with trio.fail_after(5):
            async with trio.open_nursery() as pushing:
                pushing.start_soon(push)
                await ended.wait()
                pushing.cancel_scope.cancel()
    [result] = results
    assert result.reason is EndReason.RESET
    assert result.first_closed is Side.UPSTREAM  # its EOF came first
    assert result.detail.startswith(("EPIPE", "ECONNRESET"))


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_slow_reader_does_not_make_the_relay_buffer(engine: Engine) -> None:
    buffer = 32 * 1024  # the kernel doubles it; four such buffers lie on the path
    client_peer, relay_client = await tcp_pair(buffer)
    relay_upstream, upstream_peer = await tcp_pair(buffer)
    w = Wires(client_peer, relay_client, relay_upstream, upstream_peer)
    offered = random.Random(3).randbytes(8 << 20)
    sent = 0

    async def sender() -> None:
        nonlocal sent
        piece = 16 * 1024
        for i in range(0, len(offered), piece):
            await client_peer.send_all(offered[i : i + piece])
            sent += piece
        await client_peer.send_eof()

    results: list[RelayResult] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_relay, w, engine, 30.0, results)
        nursery.start_soon(sender)
        # Nobody reads upstream: everything stalls once the buffers on the path are full.
        await trio.testing.wait_all_tasks_blocked(cushion=0.05)
        stalled_at = sent
        # 4 socket buffers (<= 64 KiB each once doubled) + one chunk held by the relay
        bound = 4 * 2 * buffer + CHUNK + 64 * 1024
        assert 0 < stalled_at <= bound, (stalled_at, bound)
        await trio.testing.wait_all_tasks_blocked(cushion=0.05)
        assert sent == stalled_at  # still stalled: nothing piles up anywhere
        # the reader comes back: every byte arrives, in order
        assert await receive_exactly(upstream_peer, len(offered)) == offered
        assert await upstream_peer.receive_some(10) == b""
        await upstream_peer.send_eof()
    assert results[0].reason is EndReason.COMPLETED
    for stream in w.all():
        await trio.aclose_forcefully(stream)


async def test_auto_picks_splice_where_available(wires: Wires) -> None:
    results: list[RelayResult] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_relay, wires, Engine.AUTO, 30.0, results)
        await wires.client_peer.send_eof()
        await wires.upstream_peer.send_eof()
    assert results[0].engine is (Engine.SPLICE if SPLICE_AVAILABLE else Engine.STREAM)
    assert results[0].reason is EndReason.COMPLETED


async def test_a_non_positive_idle_timeout_is_refused(wires: Wires) -> None:
    with pytest.raises(ValueError, match="idle_timeout"):
        await relay(wires.relay_client, wires.relay_upstream, idle_timeout=0)


@pytest.mark.skipif(not SPLICE_AVAILABLE, reason="no os.splice here")
async def test_out_of_file_descriptors_the_splice_relay_still_moves_the_bytes(
    wires: Wires,
) -> None:
    """A splice pump needs a pipe (two fds); a process at its fd limit gets EMFILE. The
    connection must still work (through user space), not fail or crash its proxy."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowest_free = os.dup(0)
    os.close(lowest_free)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))  # no new fd at all
    try:
        with pytest.raises(OSError, match="Too many open files"):
            os.pipe()
        results: list[RelayResult] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_relay, wires, Engine.SPLICE, 30.0, results)
            await wires.client_peer.send_all(b"ping")
            assert await receive_exactly(wires.upstream_peer, 4) == b"ping"
            await wires.upstream_peer.send_all(b"pong")
            assert await receive_exactly(wires.client_peer, 4) == b"pong"
            await wires.client_peer.send_eof()
            await wires.upstream_peer.send_eof()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert results[0].reason is EndReason.COMPLETED
    assert (results[0].bytes_to_upstream, results[0].bytes_to_client) == (4, 4)
