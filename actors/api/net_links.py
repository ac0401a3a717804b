"""The inbound side of router-to-router links: `GET /net-api/v1/net/{id}/link` (websocket).

An extension of the Net API for networks that span nodes (golem_actor/domain/vpn/link.py
has the protocol): a peer router dials this route for *our* network `id`, proves that it
knows the network's `linkSecret` (HMAC challenge, the secret never travels), then sends
batches of frames, which go to the vpn_router as `LinkFrames` casts (its bounded inbox is
the backpressure). No bearer token: the secret is the authorization, and a network without
one (or unknown) answers 404 before the upgrade. This route only receives; our own frames
to the peer go over the connection our router dials (actors/vpn_router/links.py).
"""

from __future__ import annotations

import structlog
import trio
from quart import Response, websocket
from quart_trio import QuartTrio

from actors.vpn_router.link_messages import GetLinkSecret, LinkFrames
from actors.vpn_router.links import accept_handshake
from golem_actor.domain.vpn.link import MAX_BATCH_BYTES, LinkAuthError
from golem_actor.kernel import CallTimeout

from .context import ApiContext
from .net_api import NET_API_PREFIXES

__all__ = ["register_link_route"]

log = structlog.get_logger("golem_actor.api")

HANDSHAKE_BOUND = 10.0


class _QuartChannel:
    """Quart's websocket as a MessageChannel (text messages taken as bytes)."""

    async def send(self, message: bytes) -> None:
        await websocket.send(message)

    async def receive(self) -> bytes:
        message = await websocket.receive()
        return message.encode() if isinstance(message, str) else message


def register_link_route(app: QuartTrio, context: ApiContext) -> None:
    vpn = context.vpn_router

    async def link(network_id: str) -> Response | None:
        try:
            secret = await vpn.call(GetLinkSecret(network_id))
        except CallTimeout:
            return Response("the node is busy; try again", status=503)
        if secret is None:
            return Response("no such network with a linkSecret", status=404)
        try:
            with trio.fail_after(HANDSHAKE_BOUND):
                await accept_handshake(_QuartChannel(), secret, network_id)
        except (LinkAuthError, trio.TooSlowError) as exc:
            log.warning("vpn link refused", network_id=network_id, reason=str(exc) or "timeout")
            await websocket.close(1008, "link authentication failed")
            return None
        log.info("vpn link accepted", network_id=network_id)
        try:
            while True:
                message = await websocket.receive()
                data = message.encode() if isinstance(message, str) else message
                if len(data) > MAX_BATCH_BYTES:  # a peer of ours never sends more
                    await websocket.close(1009, "batch too large")
                    return None
                await vpn.cast(LinkFrames(network_id, data))
        finally:
            log.info("vpn link ended", network_id=network_id)

    for prefix in NET_API_PREFIXES:
        scope = prefix.strip("/").replace("/", "_").replace("-", "_")
        app.add_websocket(f"{prefix}/net/<network_id>/link", f"{scope}.ws_link", link)
