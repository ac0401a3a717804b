"""This host's address for adverts: its public address, asked of a list of echo services
(first good answer wins), or in development its LAN address, read from the interface table
(no traffic at all)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping, Sequence

import httpx
import psutil
import trio

from .tls import tls_context

__all__ = ["discover_public_ip", "lan_ipv4", "pick_lan_ipv4"]


_LAN = tuple(
    ipaddress.IPv4Network(net) for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
)


def pick_lan_ipv4(addresses: Mapping[str, Sequence[tuple[int, str]]], up: set[str]) -> str | None:
    """The first RFC 1918 (LAN) IPv4 address of an interface that is up, interfaces taken
    by name; None when there is none. `addresses` maps an interface to its (address family,
    address) pairs."""
    for name in sorted(addresses):
        if name not in up:
            continue
        for family, text in addresses[name]:
            if family != socket.AF_INET:
                continue
            if any(ipaddress.IPv4Address(text) in net for net in _LAN):
                return text
    return None


def _read_lan_ipv4() -> str | None:
    stats = psutil.net_if_stats()
    up = {name for name, stat in stats.items() if stat.isup}
    table = {
        name: [(int(a.family), a.address) for a in found]
        for name, found in psutil.net_if_addrs().items()
    }
    return pick_lan_ipv4(table, up)


async def lan_ipv4() -> str | None:
    """This host's LAN address (see `pick_lan_ipv4`), read off the event loop."""
    return await trio.to_thread.run_sync(_read_lan_ipv4)


async def discover_public_ip(
    services: Sequence[str], *, time_limit: float = 5.0
) -> tuple[str | None, list[str]]:
    """(address, []) or (None, why each service failed); never raises, never hangs."""
    failures: list[str] = []
    async with httpx.AsyncClient(timeout=time_limit, verify=await tls_context()) as client:
        for service in services:
            with trio.move_on_after(time_limit) as waited:
                try:
                    reply = await client.get(service)
                    text = reply.text.strip()
                    address = ipaddress.ip_address(text)
                except (httpx.HTTPError, ValueError) as error:
                    failures.append(f"{service}: {type(error).__name__}: {error}"[:200])
                    continue
                if reply.status_code != 200 or address.is_private or address.is_loopback:
                    failures.append(f"{service}: unusable answer {text[:60]!r}")
                    continue
                return str(address), failures
            if waited.cancelled_caught:
                failures.append(f"{service}: no answer within {time_limit:g}s")
    return None, failures
