"""Who is calling, and so the only address this server will probe.

Why: the upstream checker probed any `provider_ip` it was given, which made it an open
relay for port scans. Here the target is always the caller: the TCP peer address, or,
when the peer is a trusted reverse proxy, the client that proxy saw.

`X-Forwarded-For` is read from the right: each proxy appends the address it received the
connection from, so the rightmost entry that is not itself a trusted proxy is the first
hop nobody trusted can have written. With one proxy that sets the header this is its only
(first) entry; with a proxy that appends, a client cannot push a victim's address in
front. IPv4-mapped IPv6 addresses are compared as IPv4.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from .config import IpNetwork

__all__ = ["CallerError", "IpAddress", "caller_address", "parse_address", "source_key", "target"]

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class CallerError(Exception):
    """A request whose caller or target is not acceptable; carries the HTTP status."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def parse_address(text: str) -> IpAddress | None:
    """An IP address (IPv4-mapped IPv6 as IPv4, IPv6 scope dropped); None if not one."""
    value = text.strip()
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    value = value.split("%", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: IpAddress, trusted: Iterable[IpNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in trusted)


def caller_address(
    peer: str | None, forwarded_for: Iterable[str], trusted: tuple[IpNetwork, ...]
) -> IpAddress:
    """The caller: the peer, or the client a trusted proxy forwarded the request for."""
    address = None if peer is None else parse_address(peer)
    if address is None:
        raise CallerError(400, "the caller's IP address is unknown")
    if not _trusted(address, trusted):
        return address
    entries = [item.strip() for header in forwarded_for for item in header.split(",")]
    entries = [item for item in entries if item]
    if not entries:
        raise CallerError(400, "a request through a trusted proxy needs X-Forwarded-For")
    hops: list[IpAddress] = []
    for entry in entries:
        hop = parse_address(entry)
        if hop is None:
            raise CallerError(400, f"X-Forwarded-For entry {entry!r} is not an IP address")
        hops.append(hop)
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            return hop
    return hops[0]  # every hop is a trusted network: the client is the first one


def target(caller: IpAddress, provider_ip: str | None) -> IpAddress:
    """The address to probe: always the caller; a different `provider_ip` is refused."""
    if provider_ip is None or not provider_ip.strip():
        return caller
    asked = parse_address(provider_ip)
    if asked is None:
        raise CallerError(422, f"provider_ip must be an IP address, got {provider_ip!r}")
    if asked != caller:
        raise CallerError(
            403,
            f"this server only checks the caller's own address: provider_ip {asked} is not "
            f"your address {caller} (ask from the provider host, or leave provider_ip out)",
        )
    return caller


def source_key(address: IpAddress) -> str:
    """Rate-limit key: the address, or its /64 for IPv6 (one host usually owns a /64)."""
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
