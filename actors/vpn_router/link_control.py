"""The vpn_router's handlers for links to other nodes (a base class of `VpnRouter`).

Theory of operation
-------------------
`_sync_links` (called by `_apply` after every registry change) opens a link for every
(network, location) the registry asks for (`wanted_links`) and closes the others. A
link's life, each step an ordinary message, so state changes only in handlers:

    open -> dial work --LinkConnected--> up: carry work --LinkDropped--> down
                 \\--LinkFailed--> down                                     |
    LinkRetry (timer, backoff) <-------------------------------------------/

While a link is up its remote members are REMOTE ports in the switch, otherwise
UNLOCATED (`_remote_members`), so traffic to a node that is away is dropped and counted,
never queued without bound. A dial retries forever with backoff (0.5 s doubling to 10 s,
jittered): a peer that restarts is found again without the requestor. Inbound batches
(`LinkFrames`, cast by the API's link route) are routed at once by `deliver`.

The peer says which node ids it hosts in its copy of the network (`LinkHosted`, cast by
the link's carry work; see golem_actor/domain/vpn/link.py). A located node the peer does
not host is reported: a warning when that set changes, `unhosted` in the link's stats,
and `hosted: false` in the Net API's node listing (`link_hosting`). Its frames still go
to the link (the peer drops them): the requestor may add the VM there a moment later.
"""

from __future__ import annotations

import functools
import random
import socket
from collections.abc import Iterable
from ipaddress import IPv4Address

import structlog
import trio_websocket

from golem_actor.domain.vpn import link as wire
from golem_actor.domain.vpn.addressing import nic_mac
from golem_actor.domain.vpn.networks import VpnNetwork
from golem_actor.domain.vpn.switch import PortKind
from golem_actor.kernel import Actor

from .fabric import Fabric, Member
from .link_messages import (
    LinkConnected,
    LinkDropped,
    LinkFailed,
    LinkFrames,
    LinkHosted,
    LinkPeer,
    LinkRetry,
)
from .links import (
    Dialer,
    LinkCounters,
    LinkDown,
    LinkSpec,
    carry,
    close,
    deliver,
    dial,
    link_endpoint,
    open_link_pair,
    target_of,
)
from .messages import VpnMsg
from .ports import FdPort, NicPort

log = structlog.get_logger("golem_actor.vpn_router")

__all__ = ["LinkRouting"]


class LinkRouting(Actor[VpnMsg]):
    _fabric: Fabric
    _networks: dict[str, VpnNetwork]

    def __init__(self) -> None:
        super().__init__()
        self._links: dict[str, LinkSpec] = {}
        self._link_state: dict[str, LinkCounters] = {}
        self._link_ends: dict[str, socket.socket] = {}
        self._link_in_dropped = 0
        self._dialer: Dialer = dial  # tests dial over memory streams

    # provided by VpnRouter
    def _attach(self, endpoint: str, io: NicPort | FdPort) -> None:
        raise NotImplementedError

    def _detach(self, endpoint: str) -> None:
        raise NotImplementedError

    def _apply(self) -> None:
        raise NotImplementedError

    # -- messages -------------------------------------------------------------------------

    def handle_link(self, message: VpnMsg) -> bool:
        """Handle a link message; False when `message` is not one."""
        match message:
            case LinkFrames(network_id=network_id, message=batch):
                self._link_in_dropped += deliver(self._fabric, network_id, batch, self._remote)
            case LinkConnected(endpoint=endpoint, ws=ws):
                self._connected(endpoint, ws)
            case LinkFailed(endpoint=endpoint, error=error):
                self._down(endpoint, error, was_up=False)
            case LinkDropped(endpoint=endpoint, reason=reason):
                self._down(endpoint, reason, was_up=True)
            case LinkRetry(endpoint=endpoint):
                if endpoint in self._links and self.work_for(("link", endpoint)) is None:
                    self._dial(endpoint)
            case LinkHosted(endpoint=endpoint, hosted=hosted):
                state = self._link_state.get(endpoint)
                if state is not None and state.hosted != hosted:
                    state.hosted = hosted
                    self._check_hosted(endpoint)
            case _:
                return False
        return True

    def link_peer(self, network_id: str) -> LinkPeer | None:
        network = self._networks.get(network_id)
        if network is None or network.link_secret is None:
            return None
        hosted = tuple(sorted({node.node_id for node in network.nodes if node.vm}))
        return LinkPeer(network.link_secret.encode(), hosted)

    def link_hosting(self, network_id: str) -> dict[str, bool]:
        network = self._networks.get(network_id)
        if network is None or network.link_secret is None:
            return {}
        hosting = {}
        for node in network.nodes:
            if node.location is None or node.vm:
                continue
            state = self._link_state.get(link_endpoint(network_id, node.location))
            if state is not None and state.hosted is not None:
                hosting[node.node_id] = node.node_id in state.hosted
        return hosting

    def _unhosted(self, endpoint: str) -> list[str]:
        """The located nodes of `endpoint`'s link that its peer said it does not host."""
        spec, state = self._links[endpoint], self._link_state[endpoint]
        network = self._networks.get(spec.network_id)
        if network is None or state.hosted is None:
            return []
        located = {n.node_id for n in network.nodes if n.location == spec.location and not n.vm}
        return sorted(located - state.hosted)

    def _check_hosted(self, endpoint: str) -> None:
        """Warn once per change of the set of located nodes the peer does not host."""
        if endpoint not in self._links:
            return
        missing = tuple(self._unhosted(endpoint))
        state = self._link_state[endpoint]
        if missing and missing != state.reported:
            spec = self._links[endpoint]
            log.warning(
                "vpn link peer lacks nodes",
                endpoint=endpoint,
                network_id=spec.network_id,
                location=spec.location,
                node_ids=list(missing),
            )
        state.reported = missing

    # -- the table ------------------------------------------------------------------------

    def _sync_links(self) -> None:
        wanted = {}
        for network_id, location, secret in wire.wanted_links(self._networks.values()):
            endpoint = link_endpoint(network_id, location)
            target = target_of(location)
            wanted[endpoint] = LinkSpec(endpoint, network_id, location, secret.encode(), target)
        for endpoint, spec in list(self._links.items()):
            if wanted.get(endpoint) != spec:
                self._close_link(endpoint)
        for endpoint, spec in wanted.items():
            if endpoint not in self._links:
                self._open_link(spec)
        for endpoint in self._links:  # nodes may have been added to a peer's location
            self._check_hosted(endpoint)

    def _remote_members(self, networks: Iterable[VpnNetwork]) -> list[Member]:
        members = []
        for network in networks:
            if network.link_secret is None:
                continue
            for node in network.nodes:
                if node.location is None or node.vm:
                    continue
                endpoint = link_endpoint(network.id, node.location)
                state = self._link_state.get(endpoint)
                up = state is not None and state.up
                kind = PortKind.REMOTE if up else PortKind.UNLOCATED
                address = IPv4Address(node.ip)
                mac = nic_mac(node.node_id)
                link = endpoint if up else None
                members.append(Member(endpoint, network.id, address, mac, kind, link, node.node_id))
        return members

    def _remote(self, member_id: str) -> bool:
        kind = self._fabric.switch.port_kind(member_id)
        return kind is not None and kind[0] is PortKind.REMOTE

    def _link_stats(self) -> dict[str, dict[str, int | str]]:
        stats: dict[str, dict[str, int | str]] = {}
        for endpoint, spec in sorted(self._links.items()):
            state = self._link_state[endpoint]
            stats[endpoint] = {
                "network_id": spec.network_id,
                "location": spec.location,
                "up": int(state.up),
                "dials": state.dials,
                "failures": state.failures,
                "drops": state.drops,
                "frames_out": state.frames_out,
                "messages_out": state.messages_out,
                "last_error": state.last_error,
                "unhosted": ",".join(self._unhosted(endpoint)),
            }
        return stats

    # -- a link's life --------------------------------------------------------------------

    def _open_link(self, spec: LinkSpec) -> None:
        port, link_end = open_link_pair()
        self._links[spec.endpoint] = spec
        self._link_state[spec.endpoint] = LinkCounters()
        self._link_ends[spec.endpoint] = link_end
        self._attach(spec.endpoint, port)
        log.info(
            "vpn link opened",
            endpoint=spec.endpoint,
            network_id=spec.network_id,
            location=spec.location,
        )
        self._dial(spec.endpoint)

    def _close_link(self, endpoint: str) -> None:
        work = self.work_for(("link", endpoint))
        if work is not None:
            work.cancel()  # carry closes its websocket on the way out
        self._links.pop(endpoint)
        self._link_state.pop(endpoint)
        self._link_ends.pop(endpoint).close()
        self._detach(endpoint)
        log.info("vpn link closed", endpoint=endpoint)

    def _dial(self, endpoint: str) -> None:
        spec = self._links[endpoint]
        self._link_state[endpoint].dials += 1

        def failed(error: Exception) -> VpnMsg:
            if isinstance(error, LinkDown):
                return LinkFailed(endpoint, str(error))
            raise error

        self.start_work(
            functools.partial(self._dialer, self.nursery, spec),
            then=lambda ws: LinkConnected(endpoint, ws),
            failed=failed,
            key=("link", endpoint),
        )

    def _connected(self, endpoint: str, ws: trio_websocket.WebSocketConnection) -> None:
        state = self._link_state.get(endpoint)
        if state is None:  # closed while dialing
            self.start_work(functools.partial(close, ws))
            return
        state.up, state.attempt, state.last_error = True, 0, ""
        spec = self._links[endpoint]
        log.info("vpn link up", endpoint=endpoint, network_id=spec.network_id)
        self._apply()
        address = self.address

        async def hosted(ids: frozenset[str]) -> None:
            await address.cast(LinkHosted(endpoint, ids))

        self.start_work(
            functools.partial(carry, ws, self._link_ends[endpoint], state, hosted),
            then=lambda reason: LinkDropped(endpoint, reason),
            key=("link", endpoint),
        )

    def _down(self, endpoint: str, why: str, *, was_up: bool) -> None:
        state = self._link_state.get(endpoint)
        if state is None:
            return
        state.attempt += 1
        state.last_error = why
        if was_up:
            state.up = False
            state.drops += 1
            log.warning("vpn link down", endpoint=endpoint, reason=why)
            self._apply()
        else:
            state.failures += 1
            if state.attempt == 1 or state.attempt % 10 == 0:  # not one line per retry
                log.info("vpn link dial failed", endpoint=endpoint, error=why)
        self.after(wire.backoff(state.attempt, random.random()), LinkRetry(endpoint))
