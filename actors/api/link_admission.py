"""Admission to the link route: a bound on connections that have not proved a secret yet.

Why: `GET /net/{id}/link` (net_links.py) is open to anyone who can reach the API's port,
and until a peer has answered the HMAC challenge it is nobody; each such connection
holds a handler, a websocket and a call to the vpn_router for up to the handshake bound.
So at most `max_pending` of them run at once on the node, and `max_per_peer` from one
source address (an IPv6 /64 counts as one): past either the route answers before the
upgrade and before asking the router anything, 503 (the node's bound) or 429 (the
peer's), with `Retry-After`. A real peer's router dials each link with backoff, so it
simply comes back. An authenticated link no longer counts: the bound is on strangers,
not on links (those are bounded by the networks and locations the requestor set up).

Refusals are counted by reason for `GET /metrics` (`golem_vpn_link_refused_total`), and
logged once when a source starts being refused (not once per refusal: a flood must not
become a flood of log lines), again only after one of its connections was admitted.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import structlog

from golem_actor.portcheck.addressing import source_key
from golem_actor.ratelimit import InFlight

__all__ = ["LinkAdmission", "LinkRefusal", "peer_key"]

log = structlog.get_logger("golem_actor.api")

RETRY_AFTER = "2"  # seconds: a peer's first redial backoff is 0.5 s doubling to 10 s


@dataclass(frozen=True, slots=True)
class LinkRefusal:
    status: int
    reason: str  # the metric's label
    detail: str


class LinkAdmission:
    """Counts the link route's unauthenticated connections, globally and per source."""

    def __init__(self, max_pending: int, max_per_peer: int, refusals: Counter[str]) -> None:
        if max_pending < 1 or max_per_peer < 1:
            raise ValueError("the link bounds must be positive")
        self.max_pending = max_pending
        self.pending = 0
        self._per_peer = InFlight(max_per_peer)
        self.refusals = refusals  # by reason; the app's /metrics reads it
        self._refused: set[str] = set()  # sources refused since their last admission

    def refusal(self, peer: str) -> LinkRefusal | None:
        """Why a new connection from `peer` is refused now, or None: admit it."""
        if self.pending >= self.max_pending:
            detail = (
                f"the node has {self.max_pending} link connections waiting to authenticate;"
                " retry later"
            )
            return LinkRefusal(503, "node_busy", detail)
        if self._per_peer.full(peer):
            detail = (
                f"{self._per_peer.limit} link connections from {peer} are waiting to"
                " authenticate; retry later"
            )
            return LinkRefusal(429, "peer_busy", detail)
        return None

    def refused(self, peer: str, why: LinkRefusal, network_id: str) -> None:
        """Count a refusal, and log it if `peer` was not being refused already."""
        self.refusals[why.reason] += 1
        if peer in self._refused:
            return
        if len(self._refused) >= 10_000:  # bounded memory under a flood from many sources
            self._refused.clear()
        self._refused.add(peer)
        log.warning("vpn link refused", network_id=network_id, peer=peer, reason=why.reason)

    @contextmanager
    def hold(self, peer: str) -> Iterator[None]:
        """Count one unauthenticated connection of `peer` for the `with` block."""
        self._refused.discard(peer)
        self.pending += 1
        try:
            with self._per_peer.hold(peer):
                yield
        finally:
            self.pending -= 1


def peer_key(client: tuple[str, int] | None) -> str:
    """Whose bound a connection counts against: its source address (IPv6: the /64)."""
    if not client:
        return "unknown"
    try:
        return source_key(ipaddress.ip_address(client[0]))
    except ValueError:
        return str(client[0])
