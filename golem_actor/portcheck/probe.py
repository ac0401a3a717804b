"""The TCP probe: can a connection to the caller's port be opened from here?

Why: "reachable" means a TCP handshake completed; nothing is sent or read, and the
socket is closed at once. One attempt per port: the kernel already retransmits the SYN
within the connect timeout, so retrying a refused port would only add load. Probes of all requests
share one `trio.CapacityLimiter` (a bound on the server's outgoing connections), and a
request's probes share its deadline; a port whose probe could not finish in time is
reported unreachable with the reason. Error strings are the upstream checker's.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Awaitable, Callable, Sequence

import msgspec
import trio

__all__ = [
    "CONNECTION_REFUSED",
    "CONNECTION_TIMED_OUT",
    "NOT_CHECKED",
    "ProbeFn",
    "ProbeResult",
    "probe_ports",
    "tcp_probe",
]

CONNECTION_REFUSED = "Connection refused"
CONNECTION_TIMED_OUT = "Connection timed out"
NOT_CHECKED = "Not checked: the request's time limit was reached"


class ProbeResult(msgspec.Struct, frozen=True):
    accessible: bool
    error: str | None = None


ProbeFn = Callable[[str, int, float], Awaitable[ProbeResult]]


async def tcp_probe(host: str, port: int, connect_timeout: float) -> ProbeResult:
    """One TCP connect to `host:port` (an IP address) within `connect_timeout` seconds."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = trio.socket.socket(family, socket.SOCK_STREAM)
    with sock:
        with trio.move_on_after(connect_timeout):
            try:
                await sock.connect((host, port))
            except ConnectionRefusedError:
                return ProbeResult(False, CONNECTION_REFUSED)
            except TimeoutError:
                return ProbeResult(False, CONNECTION_TIMED_OUT)
            except OSError as exc:
                if exc.errno == errno.ETIMEDOUT:
                    return ProbeResult(False, CONNECTION_TIMED_OUT)
                return ProbeResult(False, exc.strerror or str(exc))
            return ProbeResult(True)
    return ProbeResult(False, CONNECTION_TIMED_OUT)


async def probe_ports(
    host: str,
    ports: Sequence[int],
    *,
    limiter: trio.CapacityLimiter,
    probe_timeout: float,
    deadline: float,
    probe: ProbeFn = tcp_probe,
) -> dict[int, ProbeResult]:
    """Probe every port (bounded by `limiter`), all within `deadline` seconds."""
    results: dict[int, ProbeResult] = {}

    async def one(port: int) -> None:
        async with limiter:
            results[port] = await probe(host, port, probe_timeout)

    with trio.move_on_after(deadline):
        async with trio.open_nursery() as nursery:
            for port in ports:
                nursery.start_soon(one, port)
    for port in ports:
        if port not in results:
            results[port] = ProbeResult(False, NOT_CHECKED)
    return {port: results[port] for port in ports}
