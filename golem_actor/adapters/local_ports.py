"""Local port facts: can a listener take this port now? does something accept on it?"""

from __future__ import annotations

import socket

import trio

__all__ = ["accepts", "bindable", "connect_host"]


def connect_host(host: str) -> str:
    """Where to connect to reach a listener bound to `host` (a wildcard means loopback)."""
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


def bindable(host: str, port: int) -> bool:
    """Can a listener (with SO_REUSEADDR, as ours use) take `host:port` now? A syscall."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


async def accepts(host: str, port: int, *, within: float = 2.0) -> bool:
    """Does something accept a TCP connection on the listener bound to `host:port`?"""
    with trio.move_on_after(within):
        try:
            stream = await trio.open_tcp_stream(connect_host(host), port)
        except OSError:
            return False
        await stream.aclose()
        return True
    return False
