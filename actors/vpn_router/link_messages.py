"""Messages of the vpn_router's links to other nodes (links.py, link_control.py)."""

from __future__ import annotations

import msgspec
import trio_websocket

from golem_actor.kernel import Call

__all__ = [
    "GetLinkHosting",
    "GetLinkPeer",
    "LinkConnected",
    "LinkDropped",
    "LinkFailed",
    "LinkFrames",
    "LinkHosted",
    "LinkPeer",
    "LinkRetry",
]


class LinkFrames(msgspec.Struct, frozen=True):
    """A batch of frames a peer router sent for our network `network_id` (a cast from the
    API's link route, after the peer proved it knows the network's secret)."""

    network_id: str
    message: bytes


class LinkPeer(msgspec.Struct, frozen=True):
    """What the link route tells a peer about our network: its secret (for the
    handshake) and the node ids this node hosts in it (its own VMs)."""

    secret: bytes
    hosted: tuple[str, ...]


class GetLinkPeer(Call[LinkPeer | None], frozen=True):
    """Our network `network_id` as the link route needs it; None: no such network, or
    one without a linkSecret (the route refuses the peer)."""

    network_id: str


class GetLinkHosting(Call[dict[str, bool]], frozen=True):
    """For each located node of `network_id`: whether the node at its location said it
    hosts it (absent: not known yet, or a peer that does not say)."""

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


class LinkHosted(msgspec.Struct, frozen=True):
    """The node ids the peer of `endpoint` says it hosts (carry's watch casts it)."""

    endpoint: str
    hosted: frozenset[str]
