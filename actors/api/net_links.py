"""The inbound side of router-to-router links: `GET /net-api/v1/net/{id}/link` (websocket).

An extension of the Net API for networks that span nodes (golem_actor/domain/vpn/link.py
has the protocol): a peer router dials this route for *our* network `id`, proves that it
knows the network's `linkSecret` (HMAC challenge, the secret never travels), then sends
batches of frames, which go to the vpn_router as `LinkFrames` casts (its bounded inbox is
the backpressure). No bearer token: the secret is the authorization, and a network without
one (or unknown) answers 404 before the upgrade. Connections that have not authenticated
yet are bounded (link_admission.py: 503/429 past the bounds, before anything else) and
get `HANDSHAKE_BOUND` seconds to do it. This route only receives frames; our own frames to
the peer go over the connection our router dials (actors/vpn_router/links.py). What it
sends after the handshake is the list of node ids this node hosts in the network, again
whenever that changes (checked every `HOSTED_EVERY` seconds), so the peer can tell a
location that names a VM we do not have.
"""

from __future__ import annotations

from collections import Counter

import structlog
import trio
from quart import Response, websocket
from quart_trio import QuartTrio

from actors.vpn_router import VpnMsg
from actors.vpn_router.link_messages import GetLinkPeer, LinkFrames, LinkPeer
from actors.vpn_router.links import accept_handshake
from golem_actor.domain.vpn.link import MAX_BATCH_BYTES, LinkAuthError, hosted_message
from golem_actor.kernel import Address, CallTimeout

from .context import ApiContext
from .link_admission import RETRY_AFTER, LinkAdmission, peer_key
from .net_api import NET_API_PREFIXES

__all__ = ["register_link_route"]

log = structlog.get_logger("golem_actor.api")

HANDSHAKE_BOUND = 10.0
HOSTED_EVERY = 5.0


class _QuartChannel:
    """Quart's websocket as a MessageChannel (text messages taken as bytes)."""

    async def send(self, message: bytes) -> None:
        await websocket.send(message)

    async def receive(self) -> bytes:
        message = await websocket.receive()
        return message.encode() if isinstance(message, str) else message


async def _announce(vpn: Address[VpnMsg], network_id: str, sent: tuple[str, ...]) -> None:
    """Send the hosted node ids again whenever they change (the peer's carry reads them)."""
    while True:
        await trio.sleep(HOSTED_EVERY)
        try:
            peer = await vpn.call(GetLinkPeer(network_id))
        except CallTimeout:
            continue
        if peer is not None and peer.hosted != sent:
            await websocket.send(hosted_message(peer.hosted))
            sent = peer.hosted


def register_link_route(app: QuartTrio, context: ApiContext, refusals: Counter[str]) -> None:
    """The route, counting its refusals by reason in `refusals` (read by /metrics)."""
    vpn = context.vpn_router
    limits = context.limits
    admission = LinkAdmission(limits.max_pending_links, limits.max_pending_links_per_peer, refusals)

    async def authenticate(network_id: str, peer: str) -> Response | LinkPeer | None:
        """The network's view once the peer proved its secret; else the answer to give
        (a Response before the upgrade, None once the websocket was closed)."""
        try:
            found = await vpn.call(GetLinkPeer(network_id))
        except CallTimeout:
            return Response("the node is busy; try again", status=503)
        if found is None:
            return Response("no such network with a linkSecret", status=404)
        try:
            with trio.fail_after(HANDSHAKE_BOUND):
                await accept_handshake(_QuartChannel(), found.secret, network_id)
        except (LinkAuthError, trio.TooSlowError) as exc:
            reason = "auth" if isinstance(exc, LinkAuthError) else "timeout"
            refusals[reason] += 1
            log.warning("vpn link refused", network_id=network_id, peer=peer, reason=reason)
            await websocket.close(1008, "link authentication failed")
            return None
        return found

    async def link(network_id: str) -> Response | None:
        peer = peer_key(websocket.scope.get("client"))
        refusal = admission.refusal(peer)
        if refusal is not None:
            admission.refused(peer, refusal, network_id)
            return Response(
                refusal.detail, status=refusal.status, headers={"Retry-After": RETRY_AFTER}
            )
        with admission.hold(peer):
            found = await authenticate(network_id, peer)
        if not isinstance(found, LinkPeer):
            return found
        log.info("vpn link accepted", network_id=network_id, peer=peer)
        await websocket.send(hosted_message(found.hosted))
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_announce, vpn, network_id, found.hosted)
                while True:
                    message = await websocket.receive()
                    data = message.encode() if isinstance(message, str) else message
                    if len(data) > MAX_BATCH_BYTES:  # a peer of ours never sends more
                        await websocket.close(1009, "batch too large")
                        nursery.cancel_scope.cancel()
                        return None
                    await vpn.cast(LinkFrames(network_id, data))
        finally:
            log.info("vpn link ended", network_id=network_id)
        return None

    for prefix in NET_API_PREFIXES:
        scope = prefix.strip("/").replace("/", "_").replace("-", "_")
        app.add_websocket(f"{prefix}/net/<network_id>/link", f"{scope}.ws_link", link)
