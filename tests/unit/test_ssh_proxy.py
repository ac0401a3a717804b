"""The ssh_proxy actor under a real `DynamicSupervisor`, as the node runs it.

Real sockets on 127.0.0.1: fake sshds (a banner, then echo) as targets, plain trio
clients as tenants. Waiting is done with `wait_all_tasks_blocked`, never with sleeps.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import pytest
import structlog
import trio
import trio.testing
from structlog.typing import EventDict

from actors.ssh_proxy import (
    PROXY_SHUTDOWN,
    GetProxyStats,
    ProxyConfig,
    ProxyMessage,
    ProxyStats,
    Retarget,
    SshProxy,
    TargetCell,
    proxy_child_id,
    proxy_child_spec,
)
from golem_actor.adapters.backend import Endpoint
from golem_actor.kernel import (
    Address,
    Call,
    CallFailed,
    ChildSpec,
    ChildStartFailed,
    DynamicSupervisor,
    Inbox,
    StartChild,
    TerminateChild,
    WhichChildren,
)

HOST = "127.0.0.1"
M = TypeVar("M")


class Crash(Call[None], frozen=True):
    """Injected fault: the proxy's handler raises, so the actor crashes."""


class FaultyProxy(SshProxy):
    async def handle_call(self, request: ProxyMessage | Crash) -> object:
        if isinstance(request, Crash):
            raise RuntimeError("injected crash")
        return await super().handle_call(request)


def faulty_spec(config: ProxyConfig) -> ChildSpec[ProxyMessage]:
    cell = TargetCell(config.target)
    return ChildSpec(proxy_child_id(config.vm_id), lambda: FaultyProxy(config, cell), shutdown=3)


async def crash(proxy: Address[ProxyMessage]) -> None:
    """Inject the fault: only a `FaultyProxy` accepts `Crash`, beyond `ProxyMessage`."""
    await cast("Address[ProxyMessage | Crash]", proxy).call(Crash())


@dataclass
class FakeSshd:
    """A banner, then echo; `stop()` makes the target unreachable."""

    banner: bytes
    endpoint: Endpoint = field(default_factory=lambda: Endpoint(HOST, 0))
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)

    async def _handle(self, stream: trio.SocketStream) -> None:
        async with stream:
            try:
                await stream.send_all(self.banner)
                while data := await stream.receive_some(65536):
                    await stream.send_all(data)
            except trio.BrokenResourceError:
                pass

    async def serve(self, *, task_status: trio.TaskStatus[None]) -> None:
        with self.scope:
            listeners = await trio.open_tcp_listeners(0, host=HOST)
            self.endpoint = Endpoint(HOST, listeners[0].socket.getsockname()[1])
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.serve_listeners, self._handle, listeners)
                task_status.started()

    def stop(self) -> None:
        self.scope.cancel()


@dataclass
class Node:
    """The `ssh_proxies` DynamicSupervisor and helpers around it."""

    sup: DynamicSupervisor
    nursery: trio.Nursery

    async def sshd(self, banner: bytes = b"SSH-2.0-test\r\n") -> FakeSshd:
        server = FakeSshd(banner)
        await self.nursery.start(server.serve)
        return server

    async def start(self, spec: ChildSpec[M]) -> Address[M]:
        return await self.sup.address.call(StartChild(spec))

    async def proxy(
        self, target: Endpoint, vm_id: str = "vm-1", **options: Any
    ) -> Address[ProxyMessage]:
        return await self.start(proxy_child_spec(config(vm_id, target, **options)))


def config(vm_id: str, target: Endpoint, port: int = 0, **options: Any) -> ProxyConfig:
    return ProxyConfig(vm_id=vm_id, listen_host=HOST, listen_port=port, target=target, **options)


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    sup = DynamicSupervisor("ssh_proxies")
    async with trio.open_nursery() as targets:
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run, Inbox("ssh_proxies"))
            yield Node(sup, targets)
            sup.request_stop()  # a graceful stop of the whole tree, as the node does
        targets.cancel_scope.cancel()  # the fake sshds run until then


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


async def stats(proxy: Address[ProxyMessage]) -> ProxyStats:
    return await proxy.call(GetProxyStats())


async def dial(proxy: Address[ProxyMessage]) -> trio.SocketStream:
    return await trio.open_tcp_stream(HOST, (await stats(proxy)).listen_port)


async def read_line(stream: trio.SocketStream) -> bytes:
    line = b""
    while not line.endswith(b"\n"):
        data = await stream.receive_some(1)
        assert data, f"closed after {line!r}"
        line += data
    return line


async def echo(stream: trio.SocketStream, payload: bytes) -> None:
    await stream.send_all(payload)
    got = b""
    while len(got) < len(payload):
        data = await stream.receive_some(len(payload) - len(got))
        assert data, "closed mid-echo"
        got += data
    assert got == payload


async def assert_closed(stream: trio.SocketStream) -> None:
    """The proxy closed this connection (a FIN, or an RST if bytes were in flight)."""
    with trio.fail_after(5):
        try:
            while await stream.receive_some(65536):
                pass
        except trio.BrokenResourceError:
            pass
    await stream.aclose()


async def settle(done: Callable[[], Any] | None = None) -> None:
    """Let the proxies react to what the sockets just did."""
    for _ in range(100):
        await trio.testing.wait_all_tasks_blocked(cushion=0.005)
        if done is None or await done():
            return
    raise AssertionError("never settled")


def events(logs: list[EventDict], name: str) -> list[EventDict]:
    return [entry for entry in logs if entry["event"] == name]


def capture() -> Any:
    return structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars])


# -- the tests -------------------------------------------------------------------------


async def test_forwards_to_the_vm_and_counts_bytes(node: Node) -> None:
    sshd = await node.sshd()
    proxy = await node.proxy(sshd.endpoint)
    client = await dial(proxy)
    assert await read_line(client) == b"SSH-2.0-test\r\n"
    await echo(client, b"x" * 100_000)
    now = await stats(proxy)
    assert (now.vm_id, now.target, now.active_connections, now.total_connections) == (
        "vm-1",
        sshd.endpoint,
        1,
        1,
    )
    await client.aclose()

    async def idle() -> bool:
        return (await stats(proxy)).active_connections == 0

    await settle(idle)
    final = await stats(proxy)
    assert final.bytes_in == 100_000
    assert final.bytes_out == 100_000 + len(b"SSH-2.0-test\r\n")
    assert (final.refused_connections, final.upstream_failures) == (0, 0)


async def test_the_connection_over_the_cap_is_refused_at_once(node: Node) -> None:
    sshd = await node.sshd()
    proxy = await node.proxy(sshd.endpoint, max_connections=2)
    first, second = await dial(proxy), await dial(proxy)
    for client in (first, second):
        assert await read_line(client) == b"SSH-2.0-test\r\n"
    with capture() as logs:
        extra = await dial(proxy)
        await assert_closed(extra)
    [refused] = events(logs, "ssh connection refused")
    assert (refused["vm_id"], refused["reason"]) == ("vm-1", "max_connections")
    now = await stats(proxy)
    assert (now.active_connections, now.total_connections, now.refused_connections) == (2, 2, 1)
    # a slot frees up: the next one gets through, the survivor never noticed
    await first.aclose()

    async def one_left() -> bool:
        return (await stats(proxy)).active_connections == 1

    await settle(one_left)
    again = await dial(proxy)
    assert await read_line(again) == b"SSH-2.0-test\r\n"
    await echo(second, b"still here")
    await again.aclose()
    await second.aclose()


async def test_target_down_closes_the_client_and_logs_why(node: Node) -> None:
    sshd = await node.sshd()
    proxy = await node.proxy(sshd.endpoint)
    sshd.stop()
    await settle()
    with capture() as logs:
        client = await dial(proxy)
        await assert_closed(client)
        await settle()
    [closed] = events(logs, "ssh connection closed")
    assert closed["reason"] == "connect_failed"
    assert str(sshd.endpoint.port) in closed["detail"]
    now = await stats(proxy)
    assert (now.active_connections, now.total_connections, now.upstream_failures) == (0, 1, 1)


async def test_a_silent_target_is_given_up_after_connect_timeout(node: Node) -> None:
    # a listener that never accepts, its backlog full: SYNs are dropped, connects hang
    hole = trio.socket.socket()
    await hole.bind((HOST, 0))
    hole.listen(0)
    blackhole = Endpoint(HOST, hole.getsockname()[1])
    filler = await trio.open_tcp_stream(blackhole.host, blackhole.port)
    proxy = await node.proxy(blackhole, connect_timeout=0.2)
    with capture() as logs:
        client = await dial(proxy)
        await settle()
        # the inbox keeps flowing while a connection waits for the VM
        assert (await stats(proxy)).active_connections == 1
        await assert_closed(client)
        await settle()
    [closed] = events(logs, "ssh connection closed")
    assert closed["reason"] == "connect_failed"
    assert "no answer within 0.2s" in closed["detail"]
    assert closed["duration"] >= 0.2
    await filler.aclose()
    hole.close()


async def test_an_idle_connection_is_closed_after_idle_timeout(node: Node) -> None:
    sshd = await node.sshd()
    proxy = await node.proxy(sshd.endpoint, idle_timeout=0.2)
    with capture() as logs:
        client = await dial(proxy)
        assert await read_line(client) == b"SSH-2.0-test\r\n"
        await assert_closed(client)
        await settle()
    [closed] = events(logs, "ssh connection closed")
    assert closed["reason"] == "idle_timeout"
    assert closed["duration"] >= 0.2


async def test_retarget_sends_later_connections_to_the_new_target(node: Node) -> None:
    old, new = await node.sshd(b"SSH-2.0-old\r\n"), await node.sshd(b"SSH-2.0-new\r\n")
    proxy = await node.proxy(old.endpoint)
    live = await dial(proxy)
    assert await read_line(live) == b"SSH-2.0-old\r\n"
    await proxy.call(Retarget(new.endpoint))
    later = await dial(proxy)
    assert await read_line(later) == b"SSH-2.0-new\r\n"
    await echo(live, b"the live connection keeps its upstream")
    assert (await stats(proxy)).target == new.endpoint
    await live.aclose()
    await later.aclose()


async def test_a_retarget_survives_a_crash_of_the_proxy(node: Node) -> None:
    old, new = await node.sshd(b"SSH-2.0-old\r\n"), await node.sshd(b"SSH-2.0-new\r\n")
    proxy = await node.start(faulty_spec(config("vm-1", old.endpoint, port=free_port())))
    await proxy.call(Retarget(new.endpoint))
    with pytest.raises(CallFailed):
        await crash(proxy)
    await settle()
    client = await dial(proxy)  # the restarted incarnation
    assert await read_line(client) == b"SSH-2.0-new\r\n"
    await client.aclose()


async def test_one_log_line_at_open_and_at_close_with_the_source_address(node: Node) -> None:
    sshd = await node.sshd()
    proxy = await node.proxy(sshd.endpoint, vm_id="vm-7")
    with capture() as logs:
        client = await dial(proxy)
        host, port = client.socket.getsockname()[:2]
        assert await read_line(client) == b"SSH-2.0-test\r\n"
        await echo(client, b"ls -l\n")
        await client.send_eof()
        await assert_closed(client)
        await settle()
    source = f"{host}:{port}"
    [opened] = events(logs, "ssh connection opened")
    [closed] = events(logs, "ssh connection closed")
    assert opened["vm_id"] == closed["vm_id"] == "vm-7"
    assert opened["client"] == closed["client"] == source
    assert opened["target"] == f"{sshd.endpoint.host}:{sshd.endpoint.port}"
    assert opened["actor"] == closed["actor"] == "ssh_proxy:vm-7"
    assert (closed["bytes_in"], closed["bytes_out"]) == (6, 6 + 14)
    assert closed["reason"] == "completed"
    assert closed["first_closed"] == "client"
    assert closed["duration"] >= 0


async def test_a_bind_failure_fails_start_child(node: Node) -> None:
    blocker = (await trio.open_tcp_listeners(0, host=HOST))[0]
    taken = blocker.socket.getsockname()[1]
    with pytest.raises(ChildStartFailed, match=r"ssh_proxy:vm-1.*in use"):
        await node.start(proxy_child_spec(config("vm-1", Endpoint(HOST, 22), port=taken)))
    assert await node.sup.address.call(WhichChildren()) == ()
    await blocker.aclose()


async def test_terminate_child_frees_the_port_at_once(node: Node) -> None:
    sshd = await node.sshd()
    port = free_port()
    spec = proxy_child_spec(config("vm-1", sshd.endpoint, port=port))
    proxy = await node.start(spec)
    live = await dial(proxy)
    assert await read_line(live) == b"SSH-2.0-test\r\n"
    await node.sup.address.call(TerminateChild(spec.id))
    await assert_closed(live)
    # bound again at once, by the next proxy for that port
    again = await node.start(proxy_child_spec(config("vm-1", sshd.endpoint, port=port)))
    client = await dial(again)
    assert await read_line(client) == b"SSH-2.0-test\r\n"
    await client.aclose()


async def test_a_crash_of_one_proxy_never_touches_another_proxys_connection(node: Node) -> None:
    sshd = await node.sshd()
    one = await node.start(faulty_spec(config("vm-1", sshd.endpoint, port=free_port())))
    two = await node.proxy(sshd.endpoint, vm_id="vm-2")
    one_client, two_client = await dial(one), await dial(two)
    for client in (one_client, two_client):
        assert await read_line(client) == b"SSH-2.0-test\r\n"
    with pytest.raises(CallFailed):
        await crash(one)
    await assert_closed(one_client)  # its own tenant's session goes with it
    await settle()
    await echo(two_client, b"untouched" * 1000)
    assert (await stats(two)).active_connections == 1
    # the crashed proxy was restarted on the same port
    assert (await stats(one)).active_connections == 0
    back = await dial(one)
    assert await read_line(back) == b"SSH-2.0-test\r\n"
    await back.aclose()
    await two_client.aclose()


async def test_graceful_stop_closes_live_connections_within_the_bound(node: Node) -> None:
    sshd = await node.sshd()
    proxy = await node.proxy(sshd.endpoint)
    clients = [await dial(proxy) for _ in range(3)]
    for client in clients:
        assert await read_line(client) == b"SSH-2.0-test\r\n"
    await clients[0].send_all(b"in flight" * 10_000)
    with capture() as logs:
        began = trio.current_time()
        await node.sup.address.call(TerminateChild(proxy_child_id("vm-1")))
        elapsed = trio.current_time() - began
        for client in clients:
            await assert_closed(client)
    assert elapsed < min(1.0, PROXY_SHUTDOWN)
    assert not events(logs, "child cancelled")  # stopped by itself, not killed at the bound
    closed = events(logs, "ssh connection closed")
    assert [entry["reason"] for entry in closed] == ["proxy_stopped"] * 3
    assert events(logs, "ssh proxy stopped")


async def test_supervisor_shutdown_closes_every_proxy() -> None:
    sup = DynamicSupervisor("ssh_proxies")
    clients: list[trio.SocketStream] = []
    async with trio.open_nursery() as outer:
        sshd = FakeSshd(b"SSH-2.0-test\r\n")
        await outer.start(sshd.serve)
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run, Inbox("ssh_proxies"))
            for n in range(3):
                spec = proxy_child_spec(config(f"vm-{n}", sshd.endpoint))
                proxy = await sup.address.call(StartChild(spec))
                clients.append(await dial(proxy))
                assert await read_line(clients[-1]) == b"SSH-2.0-test\r\n"
            sup.request_stop()
        for client in clients:
            await assert_closed(client)
        sshd.stop()
