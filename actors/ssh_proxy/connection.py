"""One relayed connection: reach the VM, relay, and log its open and its close.

Why a module of its own: this is the per-tenant-session part of the proxy, which runs in
its own task with its own structlog context (`vm_id`, `client`), so every line it logs
says whose connection it is. It owns the client stream from the moment it is handed
over: whatever happens (relay end, unreachable VM, the proxy stopping or crashing), the
client is closed and exactly one "closed" line is written.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
import trio

from golem_actor.adapters.backend import Endpoint
from golem_actor.adapters.tcp_relay import ConnectFailed, connect, relay

__all__ = ["Counters", "peer_of", "serve_connection"]

log = structlog.get_logger("golem_actor.ssh_proxy")


@dataclass
class Counters:
    """The proxy's running totals; only its own tasks touch them."""

    active: int = 0
    total: int = 0
    refused: int = 0
    upstream_failures: int = 0
    bytes_in: int = 0
    bytes_out: int = 0


def peer_of(stream: trio.SocketStream) -> str:
    """`addr:port` of the remote end (`[v6]:port` for IPv6), `?` if it is gone already."""
    try:
        address = stream.socket.getpeername()
    except OSError:
        return "?"
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def serve_connection(
    client: trio.SocketStream,
    *,
    vm_id: str,
    target: Endpoint,
    idle_timeout: float,
    connect_timeout: float,
    counters: Counters,
) -> None:
    """Relay `client` to `target`; the caller has counted it in `counters.active`."""
    began = trio.current_time()
    bytes_in = bytes_out = 0
    reason, detail, first_closed = "error", "", ""

    def on_bytes(to_upstream: int, to_client: int) -> None:
        nonlocal bytes_in, bytes_out
        bytes_in += to_upstream
        bytes_out += to_client
        counters.bytes_in += to_upstream
        counters.bytes_out += to_client

    with structlog.contextvars.bound_contextvars(vm_id=vm_id, client=peer_of(client)):
        try:
            log.info("ssh connection opened", target=f"{target.host}:{target.port}")
            try:
                upstream = await connect(target.host, target.port, within=connect_timeout)
            except ConnectFailed as exc:
                counters.upstream_failures += 1
                reason, detail = "connect_failed", str(exc)
                return
            async with upstream:
                result = await relay(client, upstream, idle_timeout=idle_timeout, on_bytes=on_bytes)
            reason, detail = result.reason.value, result.detail
            first_closed = result.first_closed.value if result.first_closed else ""
        except trio.Cancelled:
            reason, detail = "proxy_stopped", "the proxy stopped or restarted"
            raise
        except BaseException as exc:
            detail = repr(exc)
            raise
        finally:
            client.socket.close()
            counters.active -= 1
            log.info(
                "ssh connection closed",
                bytes_in=bytes_in,
                bytes_out=bytes_out,
                duration=round(trio.current_time() - began, 3),
                reason=reason,
                detail=detail,
                first_closed=first_closed or None,
            )
