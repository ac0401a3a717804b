"""The Net API's prefixes and its gates' paths: plain data, so the request limits in
front of the app (limits.py) can tell a gate handshake apart without importing the
routes (which import the API's context, which imports the limits)."""

from __future__ import annotations

import re

__all__ = ["NET_API_PREFIXES", "RAW_PATH", "TCP_PATH", "is_gate_path"]

NET_API_PREFIXES = ("/net-api/v1", "/net-api/v2/vpn")
_PREFIXES = "|".join(re.escape(p) for p in NET_API_PREFIXES)
TCP_PATH = re.compile(rf"^(?:{_PREFIXES})/net/([^/]+)/tcp/([^/]+)/([^/]+)$")
RAW_PATH = re.compile(rf"^(?:{_PREFIXES})/net/([^/]+)/raw/from/([^/]+)/to/([^/]+)$")


def is_gate_path(path: str) -> bool:
    """A TCP or raw gate's path (a websocket there opens a connection or a port)."""
    return TCP_PATH.match(path) is not None or RAW_PATH.match(path) is not None
