"""Golem VPN networks: what a network is, who may use it, and who holds which address.

The Net API's rules (yagna's Net API: reference golem-vpn.md §1.4, observed in §7.2) as
pure functions over frozen records; the vpn_router actor holds the records, persists them
and feeds them through here. Where yagna 0.17.6 answers badly we answer better, keeping
what the SDKs (yapapi, golem-core, golem-js) rely on. Decisions, and why:

Creating a network (`new_network`)
- Forms: `ip` alone (a /24, yagna's default), `ip` + dotted `mask`, `ip/prefix`,
  `ip/dotted-mask`. yagna lets a CIDR prefix silently beat a disagreeing `mask`; we refuse
  the disagreement, since one of the two is a mistake.
- Host bits are cleared, not refused: golem-core documents `create_network("192.168.0.1/24")`,
  so refusing would break it, while yagna echoes `192.168.0.1/24` and computes its first
  host from something that is not a network. Replies name the network: `192.168.0.0/24`.
- Masks must be contiguous (yagna turns `255.0.255.0` into a /8 and keeps the ip).
- Prefixes /8 to /30: a /31 or /32 has no room for the requestor's address and a VM.
- IPv4 only (the router routes IPv4; the seed's caveat). Never inside 0/8, 127/8,
  169.254/16 (cloud-init's metadata address) or 224/3 (multicast, reserved, broadcast):
  guests route those elsewhere, so such a network would not work.
- Gateway: the first host by default (as yagna); a given one must be a host of the
  network (yagna accepts a gateway that no guest could reach).
- The requestor's side holds the first host at once (as yagna: the SDKs then add it
  themselves, which is a no-op).
- MTU: 1220 as in Golem, unless the creator asks for another (`mtu`, an extension, 576
  to 9000): the guests take it from the network's DHCP lease. Bulk TCP between TCG
  guests is bound by their per-packet cost, so jumbo frames nearly double it.

Addresses and nodes
- An address must be a host of the network: neither its network address nor its
  broadcast (yagna accepts both; no guest can use them).
- A node is a VM of this node (`vm=True`: the caller checked that the VM is the network
  owner's, `vms_seen_by`) or any other id (a Golem node id `0x…`, a VM of another node), which is
  accepted and listed as yagna does; traffic flows only for VMs the data plane knows.
- One address, one node: another node on a taken address is refused (yagna answers 200
  and silently keeps the first holder, so the second never gets traffic). The same node
  on the same address again is a no-op: golem-core refreshes its nodes so.
- The requestor's side (its addresses and the gateway) cannot be taken by a VM, but
  another id may sit there: golem-js registers the requestor itself as a node on its own
  first address.
- A VM holds one address per network; changing it is remove, then add (the seed's "an
  address cannot change once connected" is not ours). Other ids may hold several.
- Removing a node removes all its addresses; removing an unknown node is a no-op.

Tenancy: a network belongs to the owner key of the caller that created it (a tenant's
token digest, or `OPERATOR_OWNER`); to anyone else it does not exist (yagna answers 403
when the caller owns other networks, which tells a foreign id from a made-up one). The
operator sees and acts on every network, as on every VM.

Limits (networks per owner, members per network) keep the persisted registry small.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from ipaddress import AddressValueError, IPv4Address, IPv4Network

import msgspec

from golem_actor.domain.tenancy import Caller

from .switch import DEFAULT_MTU, MAX_MTU, MIN_MTU

__all__ = [
    "MAX_MEMBERS",
    "MAX_NETWORKS_PER_OWNER",
    "OPERATOR_OWNER",
    "AddressTaken",
    "Attachment",
    "InvalidRequest",
    "LimitReached",
    "NetNode",
    "NetRuleError",
    "VpnNetwork",
    "add_address",
    "add_node",
    "desired_membership",
    "first_host",
    "may_use",
    "new_network",
    "next_free_host",
    "offered_addresses",
    "owner_key",
    "parse_network",
    "remove_node",
    "vms_seen_by",
]

OPERATOR_OWNER = "operator"  # tenants' owner keys are sha256 hex digests: never this
MAX_NETWORKS_PER_OWNER = 32
MAX_MEMBERS = 256  # requestor addresses plus node addresses, per network
MAX_NODE_ID = 128
DEFAULT_MASK = "255.255.255.0"
MIN_PREFIX, MAX_PREFIX = 8, 30
_UNROUTABLE = tuple(
    IPv4Network(block) for block in ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/3")
)


class NetRuleError(Exception):
    """A request the rules refuse; the message says why, for the client."""


class InvalidRequest(NetRuleError):
    """Malformed or impossible: a bad address, mask, range or id."""


class AddressTaken(NetRuleError):
    """The address is held by someone else in this network."""


class LimitReached(NetRuleError):
    """Too many networks for this owner, or too many members in this network."""


class NetNode(msgspec.Struct, frozen=True):
    node_id: str
    ip: str
    vm: bool = False  # a VM of this node, checked to be the network owner's
    location: str | None = None  # another node's VM: that node's link URL (domain/vpn/link.py)


class VpnNetwork(msgspec.Struct, frozen=True, kw_only=True):
    id: str  # 32 lowercase hex digits, as yagna's
    owner: str  # owner key: a tenant's token digest, or OPERATOR_OWNER
    network: str  # "10.0.0.0/24": never with host bits
    gateway: str
    addresses: tuple[str, ...]  # the requestor's side
    nodes: tuple[NetNode, ...] = ()
    link_secret: str | None = None  # the requestor's secret for links to other nodes
    mtu: int = DEFAULT_MTU  # extension: the guests' MTU in this network (`with_mtu`)

    @property
    def net(self) -> IPv4Network:
        return IPv4Network(self.network)


class Attachment(msgspec.Struct, frozen=True, order=True):
    """One VM of this node in one network: a row of the data plane's desired membership."""

    vm_id: str
    network_id: str
    ip: str
    prefix: int
    gateway: str


# -- tenancy ----------------------------------------------------------------------------


def owner_key(caller: Caller) -> str | None:
    """Who owns what `caller` creates; None for a caller without credentials."""
    if caller.operator:
        return OPERATOR_OWNER
    return caller.tenant


def may_use(caller: Caller, network: VpnNetwork) -> bool:
    if caller.operator:
        return True
    return caller.tenant is not None and hmac.compare_digest(caller.tenant, network.owner)


def vms_seen_by(network: VpnNetwork) -> Caller:
    """The identity whose VMs may join `network`: its owner's (for the operator's, all)."""
    if network.owner == OPERATOR_OWNER:
        return Caller(operator=True)
    return Caller(tenant=network.owner)


# -- creating ---------------------------------------------------------------------------


def _address(raw: str, what: str) -> IPv4Address:
    try:
        return IPv4Address(raw.strip())
    except AddressValueError:
        pass
    if ":" in raw:
        raise InvalidRequest(f"{what} {raw!r}: only IPv4 networks are supported")
    raise InvalidRequest(f"{what} {raw!r} is not an IPv4 address")


def _prefix_of_mask(raw: str) -> int:
    host_bits = ~int(_address(raw, "mask")) & 0xFFFFFFFF
    if host_bits & (host_bits + 1):  # ones must lead, zeros follow
        raise InvalidRequest(f"mask {raw!r} is not contiguous (like 255.255.255.0)")
    return 32 - host_bits.bit_length()


def _prefix(raw: str) -> int:
    if "." in raw:
        return _prefix_of_mask(raw)
    if not raw.isdigit() or len(raw) > 2:
        raise InvalidRequest(f"prefix {raw!r} is not a number from 0 to 32")
    return int(raw)


def parse_network(
    ip: str, mask: str | None = None, gateway: str | None = None
) -> tuple[IPv4Network, IPv4Address]:
    """The network (host bits cleared) and its gateway, from a create request's fields."""
    base, slash, written = ip.partition("/")
    address = _address(base, "ip")
    given = _prefix_of_mask(mask) if mask else None
    if slash:
        prefix = _prefix(written.strip())
        if given is not None and given != prefix:
            raise InvalidRequest(f"ip {ip!r} and mask {mask!r} disagree on the network's size")
    else:
        prefix = given if given is not None else _prefix_of_mask(DEFAULT_MASK)
    if not MIN_PREFIX <= prefix <= MAX_PREFIX:
        raise InvalidRequest(
            f"a network must be /{MIN_PREFIX} to /{MAX_PREFIX} (a mask from 255.0.0.0 to"
            f" 255.255.255.252), got /{prefix}"
        )
    net = IPv4Network(f"{address}/{prefix}", strict=False)
    for block in _UNROUTABLE:
        if net.overlaps(block):
            raise InvalidRequest(f"network {net} overlaps {block}, which guests cannot route")
    gate = first_host(net) if not gateway else _host(net, gateway, "gateway")
    return net, gate


def new_network(
    network_id: str,
    owner: str,
    ip: str,
    mask: str | None = None,
    gateway: str | None = None,
    *,
    owned: int = 0,
) -> VpnNetwork:
    """A new network of `owner`, who owns `owned` networks already."""
    net, gate = parse_network(ip, mask, gateway)
    if owned >= MAX_NETWORKS_PER_OWNER:
        raise LimitReached(f"at most {MAX_NETWORKS_PER_OWNER} networks per tenant")
    return VpnNetwork(
        id=network_id,
        owner=owner,
        network=str(net),
        gateway=str(gate),
        addresses=(str(first_host(net)),),
    )


def with_mtu(network: VpnNetwork, mtu: int) -> VpnNetwork:
    """The network with the guests' MTU `mtu` (an extension: yagna's is fixed at 1220)."""
    if not MIN_MTU <= mtu <= MAX_MTU:
        raise InvalidRequest(f"an mtu is {MIN_MTU} to {MAX_MTU} bytes")
    return msgspec.structs.replace(network, mtu=mtu)


def first_host(net: IPv4Network) -> IPv4Address:
    """The network's first host address: the requestor's and, by default, the gateway."""
    return net.network_address + 1


# -- addresses and nodes ----------------------------------------------------------------


def _host(net: IPv4Network, raw: str, what: str) -> IPv4Address:
    """`raw` as a usable host address of `net`."""
    address = _address(raw, what)
    if address not in net:
        raise InvalidRequest(f"{what} {address} is outside the network {net}")
    if address in (net.network_address, net.broadcast_address):
        kind = "network" if address == net.network_address else "broadcast"
        raise InvalidRequest(f"{what} {address} is the {kind} address of {net}, not a host")
    return address


def _members(network: VpnNetwork) -> int:
    return len(network.addresses) + len(network.nodes)


def _check_room(network: VpnNetwork) -> None:
    if _members(network) >= MAX_MEMBERS:
        raise LimitReached(f"at most {MAX_MEMBERS} addresses per network")


def add_address(network: VpnNetwork, raw: str) -> VpnNetwork:
    """Give the requestor's side another address (a no-op when it holds it already)."""
    ip = str(_host(network.net, raw, "address"))
    if ip in network.addresses:
        return network
    holder = next((n for n in network.nodes if n.ip == ip and n.vm), None)
    if holder is not None:
        raise AddressTaken(f"address {ip} is held by VM {holder.node_id}")
    _check_room(network)
    return msgspec.structs.replace(network, addresses=(*network.addresses, ip))


def _check_node_id(node_id: str) -> None:
    if not node_id or len(node_id) > MAX_NODE_ID:
        raise InvalidRequest(f"a node id has 1 to {MAX_NODE_ID} characters")
    if not node_id.isprintable() or any(c.isspace() or c in "/?#%" for c in node_id):
        raise InvalidRequest(f"node id {node_id!r} has characters a path cannot carry")


def add_node(network: VpnNetwork, node_id: str, raw: str, *, vm: bool) -> VpnNetwork:
    """Put `node_id` on an address (a no-op when it is there already)."""
    _check_node_id(node_id)
    ip = str(_host(network.net, raw, "address"))
    for node in network.nodes:
        if node.ip == ip and node.node_id == node_id:
            return network
        if node.ip == ip:
            raise AddressTaken(f"address {ip} is held by node {node.node_id}")
    if vm:
        if ip in network.addresses or ip == network.gateway:
            raise AddressTaken(f"address {ip} belongs to the requestor's side of the network")
        held = next((n.ip for n in network.nodes if n.node_id == node_id), None)
        if held is not None:
            raise AddressTaken(
                f"VM {node_id} has address {held} in this network already; remove it first"
            )
    _check_room(network)
    return msgspec.structs.replace(network, nodes=(*network.nodes, NetNode(node_id, ip, vm)))


def remove_node(network: VpnNetwork, node_id: str) -> VpnNetwork:
    """Drop every address of `node_id` (a no-op for a node that is not there)."""
    kept = tuple(n for n in network.nodes if n.node_id != node_id)
    if len(kept) == len(network.nodes):
        return network
    return msgspec.structs.replace(network, nodes=kept)


def next_free_host(network: VpnNetwork) -> IPv4Address:
    """The lowest host address nobody holds (for a VM that joins without naming one)."""
    taken = {*network.addresses, network.gateway, *(n.ip for n in network.nodes)}
    net = network.net
    for candidate in net.hosts():
        if str(candidate) not in taken:
            return candidate
    raise LimitReached(f"network {net} has no free address")


# -- what the data plane consumes -------------------------------------------------------


def desired_membership(networks: Iterable[VpnNetwork]) -> tuple[Attachment, ...]:
    """Every (VM of this node, network, address) that should carry traffic, sorted."""
    rows = [
        Attachment(node.node_id, network.id, node.ip, network.net.prefixlen, network.gateway)
        for network in networks
        for node in network.nodes
        if node.vm
    ]
    return tuple(sorted(rows))


def offered_addresses(rows: Iterable[Attachment]) -> dict[str, str]:
    """VM id -> the one address DHCP offers its VPN NIC: its row in the network of lowest
    id (one NIC, one lease; the router's fabric takes the NIC's first member, whose id
    `<vm>/<network>` sorts the same way). A change of it is what the guest must learn."""
    offered: dict[str, tuple[str, str]] = {}
    for row in rows:
        held = offered.get(row.vm_id)
        if held is None or row.network_id < held[0]:
            offered[row.vm_id] = (row.network_id, row.ip)
    return {vm_id: ip for vm_id, (_, ip) in offered.items()}
