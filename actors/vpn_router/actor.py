"""`VpnRouter`: the node's Golem VPN networks, their nodes and addresses.

Theory of operation
-------------------
Control plane (this module): the registry of networks, one `VpnNetwork` record each,
changed only by the Net API's requests through the pure rules of
`golem_actor.domain.vpn.networks`. Every change is written to `<data dir>/state/
vpn_networks.json` (StateStore: atomic, fsynced, checksummed) *before* the request is
answered, so an answered request survives a crash of the node; at start the registry is
read back before the actor serves (yagna keeps networks in memory and loses them).
A corrupt file is moved aside (`vpn_networks.corrupt-<time>`) and logged as an
error, and the node starts with no networks rather than not at all.

Data plane seam: the rows of `desired_membership` (which VM of this node is in which
network on which address) are the table the data plane consumes, the switch core's
ports and QEMU's second NIC; `GetMembership` hands it out with a version that grows on
every change. Frame routing itself is not wired here yet.

Ownership is checked here, so the API cannot forget it: a network that is not the
caller's answers `NetworkNotFound`, as one that does not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import uuid4

import msgspec
import structlog

from golem_actor.domain.tenancy import Caller
from golem_actor.domain.vpn import networks as rules
from golem_actor.domain.vpn.networks import VpnNetwork
from golem_actor.kernel import Actor
from golem_actor.state_store import CorruptStateError, StateStore

from .messages import (
    AddAddress,
    AddNode,
    CreateNetwork,
    GetMembership,
    GetNetwork,
    ListNetworks,
    Membership,
    NetRefused,
    NetworkNotFound,
    RefusalKind,
    RemoveNetwork,
    RemoveNode,
    VpnMsg,
)

log = structlog.get_logger("golem_actor.vpn_router")

REGISTRY = "vpn_networks"
SCHEMA_VERSION = 1
_KINDS: tuple[tuple[type[rules.NetRuleError], RefusalKind], ...] = (
    (rules.AddressTaken, "taken"),
    (rules.LimitReached, "limit"),
    (rules.InvalidRequest, "invalid"),
)


class VpnRegistry(msgspec.Struct, frozen=True):
    networks: list[VpnNetwork] = []


def _refused(error: rules.NetRuleError) -> NetRefused:
    kind = next(k for cls, k in _KINDS if isinstance(error, cls))
    return NetRefused(kind, str(error))


class VpnRouter(Actor[VpnMsg]):
    def __init__(self, *, store: StateStore, new_id: Callable[[], str] | None = None) -> None:
        super().__init__()
        self._store = store
        self._new_id = new_id or (lambda: uuid4().hex)
        self._networks: dict[str, VpnNetwork] = {}
        self._membership = Membership(0, ())

    async def on_start(self) -> None:
        try:
            registry = await self._store.load(REGISTRY, VpnRegistry, schema_version=SCHEMA_VERSION)
        except CorruptStateError as error:
            moved = await self._store.quarantine(REGISTRY)
            log.error("vpn registry unreadable: moved aside", reason=error.reason, path=str(moved))
            registry = None
        self._networks = {n.id: n for n in (registry.networks if registry else [])}
        self._membership = Membership(0, rules.desired_membership(self._networks.values()))
        log.info(
            "vpn registry ready",
            networks=len(self._networks),
            attachments=len(self._membership.rows),
        )

    async def handle_call(self, request: VpnMsg) -> Any:
        try:
            return await self._answer(request)
        except rules.NetRuleError as error:
            raise _refused(error) from error

    async def _answer(self, request: VpnMsg) -> Any:
        match request:
            case CreateNetwork(caller=caller, ip=ip, mask=mask, gateway=gateway):
                return await self._create(caller, ip, mask, gateway)
            case ListNetworks(caller=caller):
                return [n for _, n in sorted(self._networks.items()) if rules.may_use(caller, n)]
            case GetNetwork(caller=caller, network_id=network_id):
                return self._find(caller, network_id)
            case RemoveNetwork(caller=caller, network_id=network_id):
                self._find(caller, network_id)
                del self._networks[network_id]
                await self._changed("vpn network removed", network_id)
                return None
            case AddAddress(caller=caller, network_id=network_id, ip=ip):
                network = self._find(caller, network_id)
                await self._update(network, rules.add_address(network, ip), "address added")
                return None
            case AddNode(caller=caller, network_id=network_id, node_id=node_id, ip=ip, vm=vm):
                network = self._find(caller, network_id)
                changed = rules.add_node(network, node_id, ip, vm=vm)
                await self._update(network, changed, "node added", node_id=node_id, ip=ip, vm=vm)
                return None
            case RemoveNode(caller=caller, network_id=network_id, node_id=node_id):
                network = self._find(caller, network_id)
                changed = rules.remove_node(network, node_id)
                await self._update(network, changed, "node removed", node_id=node_id)
                return None
            case GetMembership(vm_id=vm_id):
                if vm_id is None:
                    return self._membership
                rows = tuple(r for r in self._membership.rows if r.vm_id == vm_id)
                return Membership(self._membership.version, rows)
        return await super().handle_call(request)

    async def _create(
        self, caller: Caller, ip: str, mask: str | None, gateway: str | None
    ) -> VpnNetwork:
        owner = rules.owner_key(caller)
        if owner is None:
            raise NetRefused("invalid", "creating a network needs a tenant's bearer token")
        owned = sum(1 for n in self._networks.values() if n.owner == owner)
        network_id = self._new_id()
        while network_id in self._networks:
            network_id = self._new_id()
        network = rules.new_network(network_id, owner, ip, mask, gateway, owned=owned)
        self._networks[network_id] = network
        await self._changed("vpn network created", network_id, network=network.network)
        return network

    def _find(self, caller: Caller, network_id: str) -> VpnNetwork:
        network = self._networks.get(network_id)
        if network is None or not rules.may_use(caller, network):
            raise NetworkNotFound(network_id)
        return network

    async def _update(
        self, before: VpnNetwork, after: VpnNetwork, event: str, **fields: object
    ) -> None:
        if after is before and before.id in self._networks:
            return  # idempotent: nothing to write
        self._networks[after.id] = after
        await self._changed(f"vpn {event}", after.id, **fields)

    async def _changed(self, event: str, network_id: str, **fields: object) -> None:
        """Persist the registry, then refresh the data plane's table."""
        registry = VpnRegistry(sorted(self._networks.values(), key=lambda n: n.id))
        await self._store.save(REGISTRY, registry, schema_version=SCHEMA_VERSION)
        rows = rules.desired_membership(self._networks.values())
        if rows != self._membership.rows:
            self._membership = Membership(self._membership.version + 1, rows)
        log.info(event, network_id=network_id, **fields)
