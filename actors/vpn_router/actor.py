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

Data plane (`fabric.py`, `ports.py`): after every change the registry's rows (which VM
of this node is in which network on which address, `desired_membership`) and the fd
ports attached through the seam below are applied to the fabric's switch at once, so a
VM that leaves a network has no traffic from the next frame on. Every VM gets a VPN NIC
(QEMU `-netdev dgram` between two socket paths in its VM directory, see `ports.py`);
a timer (`NicTick`, every second) opens the router's end of the NIC of each member VM
whose directory exists, and reconnects the NICs whose QEMU restarted, in a worker
thread (binding and stat-ing touch the filesystem). A restarted router (or node) binds
the same paths again and traffic resumes; QEMU never notices. A guest configures its
NIC by DHCP, which the switch answers for the NIC's MAC (`nic_mac(vm_id)`: a NIC's MAC
is fixed at launch, before any join picks its IP, so it cannot be `90:13:<ip>`).

The seam for other ports (the TCP gate's TAP, the raw gate's socketpair): `AttachPort`
hands the router an fd carrying one Ethernet frame per datagram, as a member of one
network on one address with one MAC; `DetachPort` removes it. The fds are kept across
the router's restarts (`kept.py`: the router reads a duplicate, a new incarnation
attaches them again), so a gate's namespace outlives a router crash. Deleted VMs
(`VmsGone`, cast by vm_lifecycle) leave every network: their memberships are removed
and persisted, their NICs closed; so are those of VMs missing from the list vm_lifecycle
casts at its start (`VmsKnown`: deleted while the router missed it). `GetVpnStats`
reads the counters; `GetMembership` hands out the rows with a version that grows on
every change.

A VM's guest is offered one address by DHCP: its row in the network of lowest id (its
NIC's first member). When that address changes (a join, a move, leaving its last
network), the router casts `LeasesChanged` to its watcher (vm_lifecycle, started later:
a `try_cast`), which bounces the NIC's link so the guest asks again at once instead of
at its lease's renewal (up to 30 s; systemd-networkd's first DISCOVERs back off further).
A VM with a new address is named once its NIC is open here, so the DHCP exchange that
the bounce starts finds the router listening; one that lost its address is named at once.

Ownership is checked here, so the API cannot forget it: a network that is not the
caller's answers `NetworkNotFound`, as one that does not exist.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any
from uuid import uuid4

import msgspec
import structlog
import trio

from golem_actor.domain.tenancy import Caller
from golem_actor.domain.vpn import link as link_rules, networks as rules
from golem_actor.domain.vpn.addressing import guest_mac, nic_mac
from golem_actor.domain.vpn.networks import VpnNetwork
from golem_actor.domain.vpn.switch import SwitchNetwork
from golem_actor.kernel import ActorGone, Address
from golem_actor.state_store import CorruptStateError, StateStore

from .fabric import Fabric, Member, member_id
from .kept import KeptPort, KeptPorts
from .link_control import LinkRouting
from .link_messages import GetLinkHosting, GetLinkPeer
from .links import Dialer
from .messages import (
    AddAddress,
    AddNode,
    AttachPort,
    CreateNetwork,
    DetachPort,
    GetMembership,
    GetNetwork,
    GetVpnStats,
    LeasesChanged,
    ListNetworks,
    Membership,
    NetRefused,
    NetworkNotFound,
    NicsOpened,
    NicTick,
    RefusalKind,
    RemoveNetwork,
    RemoveNode,
    VmsGone,
    VmsKnown,
    VpnMsg,
    VpnStats,
)
from .ports import FdPort, NicPort

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


NIC_TICK = 1.0  # seconds between looks for NICs to open or reconnect
# Short DHCP leases: a guest renews every 30 s, so one that rejoined on another address
# (or left) learns it at its next renewal (the router NAKs an address that is not its).
LEASE_SECONDS = 60


def _switch_network(network: VpnNetwork) -> SwitchNetwork:
    return SwitchNetwork(
        network.id,
        IPv4Network(network.network),
        IPv4Address(network.gateway),
        mtu=network.mtu,
        lease_seconds=LEASE_SECONDS,
    )


def _refused(error: rules.NetRuleError) -> NetRefused:
    kind = next(k for cls, k in _KINDS if isinstance(error, cls))
    return NetRefused(kind, str(error))


class VpnRouter(LinkRouting):
    def __init__(
        self,
        *,
        store: StateStore,
        new_id: Callable[[], str] | None = None,
        vm_dir: Callable[[str], Path] | None = None,
        fabric: Fabric | None = None,
        kept: KeptPorts | None = None,
        link_dialer: Dialer | None = None,
        lifecycle: Address[LeasesChanged] | None = None,
    ) -> None:
        """`vm_dir`: where a VM's directory is (its VPN NIC's sockets live there); None
        for a backend without VPN NICs. `kept`: the attached fd ports, shared by the
        router's incarnations (the composition root makes it once)."""
        super().__init__()
        self._store = store
        self._new_id = new_id or (lambda: uuid4().hex)
        self._vm_dir = vm_dir
        self._fabric = fabric or Fabric()
        self._kept = kept if kept is not None else KeptPorts()
        self._networks: dict[str, VpnNetwork] = {}
        self._membership = Membership(0, ())
        self._fd_members: dict[str, Member] = {}  # endpoint -> the member AttachPort made
        self._nics: dict[str, NicPort] = {}  # vm id -> the router's end of its VPN NIC
        self._lifecycle = lifecycle
        self._renew: set[str] = set()  # VMs whose offered address changed, not told yet
        if link_dialer is not None:
            self._dialer = link_dialer

    async def on_start(self) -> None:
        try:
            registry = await self._store.load(REGISTRY, VpnRegistry, schema_version=SCHEMA_VERSION)
        except CorruptStateError as error:
            moved = await self._store.quarantine(REGISTRY)
            log.error("vpn registry unreadable: moved aside", reason=error.reason, path=str(moved))
            registry = None
        self._networks = {n.id: n for n in (registry.networks if registry else [])}
        self._membership = Membership(0, rules.desired_membership(self._networks.values()))
        self._apply()
        self._reattach_kept()
        if self._vm_dir is not None:
            self.every(NIC_TICK, NicTick(), first=0.0)
        log.info(
            "vpn registry ready",
            networks=len(self._networks),
            attachments=len(self._membership.rows),
        )

    async def on_stop(self) -> None:
        for endpoint in list(self._links):
            self._close_link(endpoint)
        for endpoint in list(self._fabric.attached()):
            self._detach(endpoint)

    async def handle_cast(self, message: VpnMsg) -> None:
        match message:
            case NicTick():
                self._look_for_nics()
            case NicsOpened(opened=opened):
                for vm_id, nic in opened.items():
                    if vm_id in self._nics or not self._wants_nic(vm_id):
                        nic.close()
                        continue
                    self._nics[vm_id] = nic
                    self._attach(vm_id, nic)
                    log.info("vpn nic attached", vm_id=vm_id, connected=nic.connected)
                self._tell_leases()
            case VmsGone(vm_ids=vm_ids):
                await self._forget_vms(set(vm_ids))
            case VmsKnown(vm_ids=known):
                members = {n.node_id for net in self._networks.values() for n in net.nodes if n.vm}
                await self._forget_vms(members - known)
            case _ if self.handle_link(message):
                pass
            case _:
                await super().handle_cast(message)

    async def handle_call(self, request: VpnMsg) -> Any:
        try:
            return await self._answer(request)
        except rules.NetRuleError as error:
            raise _refused(error) from error

    async def _answer(self, request: VpnMsg) -> Any:
        match request:
            case CreateNetwork(caller=caller, ip=ip, mask=mask, gateway=gateway):
                return await self._create(caller, ip, mask, gateway, request)
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
                if request.location is not None:  # extension: where another node's VM is
                    changed = link_rules.with_location(changed, node_id, request.location)
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
            case AttachPort(endpoint=endpoint, fd=fd, network_id=network_id, ip=ip, mac=mac):
                return self._attach_fd(endpoint, fd, network_id, ip, mac)
            case DetachPort(endpoint=endpoint):
                self._kept.drop(endpoint)
                if self._fd_members.pop(endpoint, None) is not None:
                    self._detach(endpoint)
                    self._apply()
                return None
            case VmsGone(vm_ids=vm_ids):
                await self._forget_vms(set(vm_ids))
                return None
            case GetVpnStats():
                return self._stats()
            case GetLinkPeer(network_id=network_id):
                return self.link_peer(network_id)
            case GetLinkHosting(network_id=network_id):
                return self.link_hosting(network_id)
        return await super().handle_call(request)

    async def _create(
        self, caller: Caller, ip: str, mask: str | None, gateway: str | None, request: CreateNetwork
    ) -> VpnNetwork:
        owner = rules.owner_key(caller)
        if owner is None:
            raise NetRefused("invalid", "creating a network needs a tenant's bearer token")
        owned = sum(1 for n in self._networks.values() if n.owner == owner)
        network_id = self._new_id()
        while network_id in self._networks:
            network_id = self._new_id()
        network = rules.new_network(network_id, owner, ip, mask, gateway, owned=owned)
        if request.link_secret is not None:
            network = link_rules.with_secret(network, request.link_secret)
        if request.mtu is not None:
            network = rules.with_mtu(network, request.mtu)
        self._networks[network_id] = network
        await self._changed("vpn network created", network_id, network=network.network)
        return network

    # -- the data plane ------------------------------------------------------------------

    def _apply(self) -> None:
        """Make the fabric's switch hold the registry's networks and members, and the
        attached fd ports; close the NICs of VMs that are in no network any more."""
        self._sync_links()
        networks = [_switch_network(n) for n in self._networks.values()]
        members = self._remote_members(self._networks.values()) + [
            Member(row.vm_id, row.network_id, IPv4Address(row.ip), nic_mac(row.vm_id))
            for row in self._membership.rows
        ]
        members += [m for m in self._fd_members.values() if m.network_id in self._networks]
        for refused in self._fabric.apply(networks, members):
            log.warning("vpn member refused", reason=refused)
        for vm_id in [v for v in self._nics if not self._wants_nic(v)]:
            self._detach(vm_id)
            log.info("vpn nic closed", vm_id=vm_id)

    def _wants_nic(self, vm_id: str) -> bool:
        return any(row.vm_id == vm_id for row in self._membership.rows)

    def _look_for_nics(self) -> None:
        if self.work_for("nics") is not None or self._vm_dir is None:
            return
        vm_dir = self._vm_dir
        wanted = sorted({row.vm_id for row in self._membership.rows} - self._nics.keys())
        known = list(self._nics.values())

        def look() -> NicsOpened:
            for nic in known:
                nic.refresh()  # a restarted QEMU: connect to its new socket
            opened = {}
            for vm_id in wanted:
                directory = vm_dir(vm_id)
                if directory.is_dir():
                    try:
                        opened[vm_id] = NicPort(directory)
                    except OSError as exc:
                        log.warning("vpn nic cannot be opened", vm_id=vm_id, error=str(exc))
            return NicsOpened(opened)

        self.start_work(
            functools.partial(trio.to_thread.run_sync, look), then=lambda m: m, key="nics"
        )

    def _attach(self, endpoint: str, io: NicPort | FdPort) -> None:
        self._fabric.attach(endpoint, io)
        self.start_work(functools.partial(self._fabric.pump, endpoint), key=("pump", endpoint))
        self.start_work(functools.partial(self._fabric.drain, endpoint), key=("drain", endpoint))

    def _detach(self, endpoint: str) -> None:
        for key in (("pump", endpoint), ("drain", endpoint)):
            work = self.work_for(key)
            if work is not None:
                work.cancel()
        self._nics.pop(endpoint, None)
        self._fabric.detach(endpoint)

    def _attach_fd(
        self, endpoint: str, fd: int, network_id: str, ip: str, mac: bytes | None
    ) -> None:
        """The router owns `fd` from here on: a refused port's fd is closed."""
        try:
            address = IPv4Address(ip)
            port = KeptPort(endpoint, fd, network_id, address, mac or guest_mac(address))
            self._attach_kept(port)
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
        self._kept.keep(port)
        log.info("vpn port attached", endpoint=endpoint, network_id=network_id, ip=ip)

    def _reattach_kept(self) -> None:
        """A new incarnation: the ports the last one had are attached again."""
        self._kept.close_stale()
        for port in list(self._kept.ports.values()):
            try:
                self._attach_kept(port)
            except (NetworkNotFound, NetRefused, OSError) as error:
                self._kept.drop(port.endpoint)
                log.warning("vpn port not reattached", endpoint=port.endpoint, error=str(error))
            else:
                log.info("vpn port reattached", endpoint=port.endpoint, network_id=port.network_id)

    def _attach_kept(self, port: KeptPort) -> None:
        endpoint, network_id = port.endpoint, port.network_id
        network = self._networks.get(network_id)
        if network is None:
            raise NetworkNotFound(network_id)
        if endpoint in self._fabric.attached() or "/" in endpoint:
            raise NetRefused("invalid", f"endpoint {endpoint!r} is taken or malformed")
        member = Member(endpoint, network_id, port.ip, port.mac)
        refused = self._fabric.apply(
            [_switch_network(n) for n in self._networks.values()],
            [*self._current_members(), member],
        )
        if any(r.startswith(member_id(endpoint, network_id) + ":") for r in refused):
            self._apply()
            raise NetRefused("taken", f"{port.ip} cannot be attached in network {network_id}")
        io = self._kept.reader(port.fd)  # the router's own: its stop closes it, not port.fd
        self._fd_members[endpoint] = member
        self._attach(endpoint, io)

    def _current_members(self) -> list[Member]:
        return [
            *self._remote_members(self._networks.values()),
            *(
                Member(r.vm_id, r.network_id, IPv4Address(r.ip), nic_mac(r.vm_id))
                for r in self._membership.rows
            ),
            *(m for m in self._fd_members.values() if m.network_id in self._networks),
        ]

    async def _forget_vms(self, gone: set[str]) -> None:
        for network_id, network in list(self._networks.items()):
            for node_id in {n.node_id for n in network.nodes if n.vm and n.node_id in gone}:
                before = self._networks[network_id]
                after = rules.remove_node(before, node_id)
                await self._update(before, after, "node removed", node_id=node_id, why="deleted")

    def _stats(self) -> VpnStats:
        fabric = self._fabric
        members = {}
        for mid in fabric.members():
            counters = fabric.switch.counters(mid)
            members[mid] = {
                "rx_frames": counters.rx_frames,
                "tx_frames": counters.tx_frames,
                "to_router": counters.to_router,
                "replies": counters.replies,
                **{f"drop_{reason}": n for reason, n in counters.drops.items()},
            }
        totals = {
            name: getattr(fabric.counters, name) for name in fabric.counters.__dataclass_fields__
        }
        drops = {str(reason): n for reason, n in fabric.switch.drops.items()}
        totals["link_in_dropped"] = self._link_in_dropped
        links = self._link_stats()
        return VpnStats(totals, drops, members, tuple(sorted(fabric.attached())), links)

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
            before = rules.offered_addresses(self._membership.rows)
            self._membership = Membership(self._membership.version + 1, rows)
            after = rules.offered_addresses(rows)
            self._renew |= {
                v for v in before.keys() | after.keys() if before.get(v) != after.get(v)
            }
        self._apply()
        log.info(event, network_id=network_id, **fields)
        self._tell_leases()

    def _tell_leases(self) -> None:
        """Name the VMs whose offered address changed to vm_lifecycle: those with an
        address once their NIC is open, those without one at once."""
        if not self._renew:
            return
        offered = rules.offered_addresses(self._membership.rows)
        ready = tuple(sorted(v for v in self._renew if v in self._nics or v not in offered))
        self._renew -= set(ready)
        if ready and self._lifecycle is not None:
            with contextlib.suppress(ActorGone):
                self._lifecycle.try_cast(LeasesChanged(ready))
