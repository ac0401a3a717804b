"""Messages of the vpn_router's links to other nodes (links.py, link_control.py)."""

from __future__ import annotations

import msgspec
import trio_websocket

from golem_actor.kernel import Call

__all__ = [
    "GetLinkSecret",
    "LinkConnected",
    "LinkDropped",
    "LinkFailed",
    "LinkFrames",
    "LinkRetry",
]


class LinkFrames(msgspec.Struct, frozen=True):
    """A batch of frames a peer router sent for our network `network_id` (a cast from the
    API's link route, after the peer proved it knows the network's secret)."""

    network_id: str
    message: bytes


class GetLinkSecret(Call[bytes | None], frozen=True):
    """The secret of `network_id` for the link route's handshake; None: no such network,
    or one without a linkSecret (the route refuses the peer)."""

    network_id: str


# -- the actor's own (work results and timers) -----------------------------------------------


class LinkConnected(msgspec.Struct, frozen=True):
    endpoint: str
    ws: trio_websocket.WebSocketConnection


class LinkFailed(msgspec.Struct, frozen=True):
    endpoint: str
    error: str


class LinkDropped(msgspec.Struct, frozen=True):
    endpoint: str
    reason: str


class LinkRetry(msgspec.Struct, frozen=True):
    endpoint: str
