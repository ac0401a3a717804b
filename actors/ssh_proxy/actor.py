"""`SshProxy`: the public SSH port of one VM, relayed to the VM's sshd.

Theory of operation
-------------------
`on_start` binds the listener (SO_REUSEADDR, so a restart rebinds at once despite
connections in TIME_WAIT); a bind failure raises out of `on_start`, which fails the start
and makes the supervisor's `StartChild` answer `ChildStartFailed`. Then one task in the
actor's nursery (`_serve_listener`) runs the accept loop and owns a nursery of connection
tasks, all under one cancel scope. Each accepted connection is either refused at once (over
`max_connections`) or handed to `serve_connection`, which reaches the *current* target,
relays, and logs (see `connection.py`). The inbox stays free for `Retarget` and
`GetProxyStats` while connections run: the handlers never wait on the network.

Stopping: a graceful stop means the VM is going away, so `on_stop` cancels the serving
scope: the listener and every live connection close, each connection logs its close, and
nothing here can block, so the stop is bounded (a small `move_on_after` guards anyway).
A crash takes the same path through the cancellation of the actor's nursery, and the
listener is closed in `_serve_listener`'s `finally`, so the restarted incarnation can bind.
Connections of other proxies are other actors' tasks: untouched by either.

The target lives in a `TargetCell` shared by the incarnations of one proxy (see
`spec.py`): a restart must not bring back the VM's previous address, which the backend
may since have given to another tenant's VM.
"""

from __future__ import annotations

import errno

import structlog
import trio

from golem_actor.adapters.backend import Endpoint
from golem_actor.adapters.tcp_relay import bind_listener, tune
from golem_actor.kernel import Actor

from .config import ProxyConfig
from .connection import Counters, peer_of, serve_connection
from .messages import GetProxyStats, ProxyMessage, ProxyStats, Retarget

__all__ = ["SshProxy", "TargetCell"]

log = structlog.get_logger("golem_actor.ssh_proxy")

STOP_BOUND = 1.0  # seconds; closing sockets never blocks, this is a guard
ACCEPT_BACKOFF = 0.1  # seconds to wait when accept fails for lack of resources
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class TargetCell:
    """Where new connections go; outlives incarnations of one proxy."""

    __slots__ = ("target",)

    def __init__(self, target: Endpoint) -> None:
        self.target = target


class SshProxy(Actor[ProxyMessage]):
    def __init__(self, config: ProxyConfig, cell: TargetCell | None = None) -> None:
        super().__init__()
        self.config = config
        self._cell = cell if cell is not None else TargetCell(config.target)
        self._counters = Counters()
        self._port = config.listen_port
        self._serving = trio.CancelScope()
        self._served = trio.Event()

    @property
    def listen_port(self) -> int:
        return self._port

    async def on_start(self) -> None:
        config = self.config
        listener = await _bind_with_retries(config.listen_host, config.listen_port)
        self._port = listener.socket.getsockname()[1]
        self.nursery.start_soon(self._serve_listener, listener)
        log.info(
            "ssh proxy listening",
            vm_id=config.vm_id,
            listen=f"{config.listen_host}:{self._port}",
            target=_show(self._cell.target),
        )

    async def handle_call(self, request: ProxyMessage) -> object:
        match request:
            case Retarget(target=target):
                log.info(
                    "ssh proxy retargeted",
                    vm_id=self.config.vm_id,
                    old=_show(self._cell.target),
                    new=_show(target),
                )
                self._cell.target = target
                return None
            case GetProxyStats():
                return self._stats()
        return await super().handle_call(request)

    async def on_stop(self) -> None:
        self._serving.cancel(reason="ssh proxy stopping")
        with trio.move_on_after(STOP_BOUND):
            await self._served.wait()
        log.info("ssh proxy stopped", vm_id=self.config.vm_id, port=self._port)

    def _stats(self) -> ProxyStats:
        c = self._counters
        return ProxyStats(
            vm_id=self.config.vm_id,
            listen_port=self._port,
            target=self._cell.target,
            active_connections=c.active,
            total_connections=c.total,
            refused_connections=c.refused,
            upstream_failures=c.upstream_failures,
            bytes_in=c.bytes_in,
            bytes_out=c.bytes_out,
        )

    async def _serve_listener(self, listener: trio.SocketListener) -> None:
        try:
            with self._serving:
                async with trio.open_nursery() as connections:
                    await self._accept_loop(listener, connections)
        finally:
            listener.socket.close()
            self._served.set()

    async def _accept_loop(self, listener: trio.SocketListener, connections: trio.Nursery) -> None:
        config, counters = self.config, self._counters
        while True:
            try:
                client = await listener.accept()
            except OSError as exc:
                if exc.errno not in _OUT_OF_RESOURCES:
                    raise
                log.warning("ssh proxy cannot accept", vm_id=config.vm_id, error=str(exc))
                await trio.sleep(ACCEPT_BACKOFF)
                continue
            if counters.active >= config.max_connections:
                counters.refused += 1
                log.warning(
                    "ssh connection refused",
                    vm_id=config.vm_id,
                    client=peer_of(client),
                    reason="max_connections",
                    max_connections=config.max_connections,
                )
                client.socket.close()
                continue
            tune(client)
            counters.active += 1  # here, not in the task: the next accept must see it
            counters.total += 1
            connections.start_soon(
                _run_connection,
                client,
                config,
                self._cell.target,
                counters,
            )


async def _run_connection(
    client: trio.SocketStream, config: ProxyConfig, target: Endpoint, counters: Counters
) -> None:
    await serve_connection(
        client,
        vm_id=config.vm_id,
        target=target,
        idle_timeout=config.idle_timeout,
        connect_timeout=config.connect_timeout,
        counters=counters,
    )


def _show(endpoint: Endpoint) -> str:
    return f"{endpoint.host}:{endpoint.port}"


BIND_ATTEMPTS = 5
BIND_RETRY_DELAY = 0.5


async def _bind_with_retries(host: str, port: int) -> trio.SocketListener:
    """Bind, giving a port a moment to come free (a restarted proxy racing its own
    predecessor's socket, or a port briefly held elsewhere) before failing the start,
    so a restart does not burn the supervisor's intensity in one burst."""
    for attempt in range(1, BIND_ATTEMPTS + 1):
        try:
            return await bind_listener(host, port)
        except OSError as error:
            if error.errno != errno.EADDRINUSE or attempt == BIND_ATTEMPTS:
                raise
            await trio.sleep(BIND_RETRY_DELAY)
    raise AssertionError("unreachable")  # pragma: no cover
