"""This host's public address, asked of a list of echo services (first good answer wins)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import httpx
import trio

from .tls import tls_context

__all__ = ["discover_public_ip"]


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
