"""The VPN switch: which frames go where, as a pure table the vpn_router actor consults.

Theory of operation
-------------------
A *network* is one private IPv4 network of one tenant: an id, a CIDR, an MTU and the
router's own address in it (the gateway when the network has one, the first host
otherwise). A *port* is one membership: a VM's NIC in one network, with the member's IP
and MAC (`90:13:<ip>` unless stated, golem-vpn.md §2.3). The control plane (the Net API's
network registry) feeds `SwitchNetwork` and `SwitchPort` values in; this module only
checks what would corrupt its tables (an IP taken twice, an address outside the network).

`Switch.route(port_id, frame)` takes one Ethernet frame received on a port and returns
the frames to send as `(out_port_id, frame)` pairs: forwarded frames are the very `bytes`
object received (no copy), replies from the router itself go back to the receiving port.
Nothing raises on bad input: every frame not sent on is dropped and counted by reason,
per port and in total.

Rules, in the order the hot path applies them:

1. Only frames of at most MTU + 14 bytes, with the port's own source MAC, IPv4 or ARP.
2. IPv4 unicast: the source IP must be the port's; the destination MAC picks the
   member in the *same* network (networks never see each other, even with the same
   address range); an unknown MAC is dropped. Frames to the router's MAC reach the
   router: ICMP echo to its address is answered, DHCP is served, the rest is dropped.
   A member may hold the router's own address (the requestor's gate, on the first
   host, which is also the default gateway; its MAC is then the router's too): DHCP
   (UDP to port 67) and ICMP echo requests to that address are still the router's, so
   guests renew their leases and ping the gateway; everything else to it (TCP, echo
   replies, ...) goes to the member.
3. Ethernet broadcast: DHCP (UDP to port 67) goes to the router; other IPv4 broadcasts
   go to every other located member of the network. Other group MACs (multicast, and so
   IPv6 neighbour discovery) are dropped.
4. ARP requests are answered by the router itself, for every located member and for
   the router's address (MACs follow from IPs); gratuitous ARP and probes for one's own
   address are taken silently; ARP replies are switched like unicast.
5. A port's *kind* says where its frames go: LOCAL (a VM NIC on this node), REMOTE (a VM
   on another node: the actor sends the frame over the link named by `link`), or
   UNLOCATED (a member whose node is not known yet: frames to it are dropped, counted).
   A frame that arrived over a link is never sent over a link again (split horizon), and
   a broadcast crosses each link once; the receiving node floods it to its own VMs.
   The router serves (ARP, ICMP echo, DHCP) only its own node's VMs: a remote VM is
   served by the router of its node.

Joining, leaving and (re)locating a member change the tables at once: a frame routed
after `remove_port` finds no port and is dropped.
"""

from __future__ import annotations

import dataclasses
import enum
from collections import Counter
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from .addressing import BROADCAST_MAC, guest_mac, router_mac
from .dhcp import SERVER_PORT, DhcpType, LeaseOffer, answer, parse_dhcp
from .ethernet import (
    ARP_REPLY,
    ARP_REQUEST,
    ETH_HEADER_LEN,
    ETHERTYPE_ARP,
    ETHERTYPE_IPV4,
    ArpPacket,
    build_arp,
    build_ethernet,
    parse_arp,
)
from .ipv4 import (
    ICMP_ECHO_REPLY,
    ICMP_ECHO_REQUEST,
    PROTO_ICMP,
    PROTO_UDP,
    IcmpEcho,
    Ipv4Header,
    build_icmp_echo,
    build_ipv4,
    build_udp,
    parse_icmp_echo,
    parse_ipv4,
    parse_udp,
)

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "DEFAULT_MTU",
    "MAX_MTU",
    "MIN_MTU",
    "Drop",
    "PortCounters",
    "PortKind",
    "Routed",
    "Switch",
    "SwitchNetwork",
    "SwitchPort",
    "first_host",
]

# The guests' VPN MTU in Golem (ya-runtime-vm's MTU_VPN): frames of up to 1234 bytes.
DEFAULT_MTU = 1220
# The largest MTU a network may ask for (an extension of POST /net): jumbo frames. The
# VPN NIC offers it (QEMU's host_mtu) and each network's DHCP lease sets the guest's
# MTU. TCG guests pay per packet, so bulk TCP between VMs runs ~2x faster at 9000
# (bench/vpn_vms.py); it stays well under a link batch (golem_actor/domain/vpn/link.py).
MIN_MTU, MAX_MTU = 576, 9000
DEFAULT_LEASE_SECONDS = 3600

Routed = list[tuple[str, bytes]]

_IPV4_TYPE = ETHERTYPE_IPV4.to_bytes(2, "big")
_ARP_TYPE = ETHERTYPE_ARP.to_bytes(2, "big")
_ANY_IP = b"\0\0\0\0"
_LIMITED_BROADCAST = b"\xff\xff\xff\xff"
_MIN_IPV4_FRAME = ETH_HEADER_LEN + 20
_BROADCAST_FLAG = 0x8000


class PortKind(enum.StrEnum):
    LOCAL = "local"  # a VM NIC on this node
    REMOTE = "remote"  # a VM on another node, reached over `link`
    UNLOCATED = "unlocated"  # a member whose node is not known yet


class Drop(enum.StrEnum):
    UNKNOWN_PORT = "unknown_port"  # no such port (e.g. it left the network)
    MALFORMED = "malformed"  # truncated, inconsistent, or a bad checksum the router read
    TOO_BIG = "too_big"  # longer than MTU + 14
    SPOOFED = "spoofed"  # not the port's own source MAC or IP
    MULTICAST = "multicast"
    UNSUPPORTED = "unsupported"  # not IPv4 or ARP (IPv6, VLAN tags, ...), or ARP ops
    UNKNOWN_DESTINATION = "unknown_destination"
    UNLOCATED = "unlocated"  # the destination member's node is not known yet
    TRANSIT = "transit"  # from a link to a link: never relayed
    NOT_FOR_ROUTER = "not_for_router"  # to the router, but nothing it serves


@dataclass(frozen=True, slots=True)
class SwitchNetwork:
    """One network as the switch needs it. `gateway` None: no router option in DHCP."""

    id: str
    cidr: IPv4Network
    gateway: IPv4Address | None
    mtu: int = DEFAULT_MTU
    lease_seconds: int = DEFAULT_LEASE_SECONDS

    @property
    def router_ip(self) -> IPv4Address:
        """The address the router answers on (ARP, ICMP echo, DHCP server identifier)."""
        return self.gateway if self.gateway is not None else first_host(self.cidr)


@dataclass(frozen=True, slots=True)
class SwitchPort:
    """One membership: the NIC of `id` in `network_id` holding `ip`."""

    id: str
    network_id: str
    ip: IPv4Address
    kind: PortKind = PortKind.LOCAL
    link: str | None = None  # REMOTE only: the link (peer node) that reaches it
    mac: bytes | None = None  # None: derived from the IP (90:13:<ip>)


def first_host(cidr: IPv4Network) -> IPv4Address:
    return cidr.network_address + 1


# Who may send to whom, as bits: a frame from a port of `origin` o goes to a port that
# `accepts` a if o & a. Local ports take from anyone, remote ports only from local ones
# (split horizon: link to link never), unlocated ports from no one.
_FROM_LOCAL, _FROM_REMOTE = 1, 2
_ORIGIN_ACCEPTS: dict[PortKind, tuple[int, int]] = {
    PortKind.LOCAL: (_FROM_LOCAL, _FROM_LOCAL | _FROM_REMOTE),
    PortKind.REMOTE: (_FROM_REMOTE, _FROM_LOCAL),
    PortKind.UNLOCATED: (0, 0),
}


@dataclass(slots=True)
class PortCounters:
    rx_frames: int = 0
    rx_bytes: int = 0
    tx_frames: int = 0  # frames switched to this port from others
    tx_bytes: int = 0
    to_router: int = 0  # frames the router took (ARP, ICMP echo, DHCP)
    replies: int = 0  # frames the router answered with
    drops: Counter[Drop] = field(default_factory=Counter)  # frames received, then dropped


class _Net:
    __slots__ = ("by_ip", "by_mac", "lease_base", "members", "router_ip", "router_mac", "spec")

    def __init__(self, spec: SwitchNetwork) -> None:
        self.spec = spec
        self.router_ip = spec.router_ip.packed
        self.router_mac = router_mac(spec.router_ip)
        self.members: dict[str, _Port] = {}
        self.by_mac: dict[bytes, _Port] = {}
        self.by_ip: dict[bytes, _Port] = {}
        gateway = spec.gateway.packed if spec.gateway is not None else None
        self.lease_base = LeaseOffer(
            client_ip=_ANY_IP,
            server_ip=self.router_ip,
            netmask=spec.cidr.netmask.packed,
            broadcast=spec.cidr.broadcast_address.packed,
            router=gateway,
            mtu=spec.mtu,
            lease_seconds=spec.lease_seconds,
        )


class _Port:
    __slots__ = (
        "accepts",
        "counters",
        "id",
        "ip",
        "ipv4_prefix",
        "kind",
        "link",
        "mac",
        "max_frame",
        "net",
        "origin",
        "serve",
        "shares_router",
    )

    def __init__(self, spec: SwitchPort, net: _Net) -> None:
        self.id = spec.id
        self.net = net
        self.ip = spec.ip.packed
        self.shares_router = self.ip == net.router_ip  # see rule 2: DHCP and echo aren't its
        self.mac = spec.mac if spec.mac is not None else guest_mac(spec.ip)
        self.ipv4_prefix = self.mac + _IPV4_TYPE  # source MAC + ethertype, one comparison
        self.kind = PortKind.UNLOCATED
        self.link: str | None = None
        self.origin = self.accepts = 0
        self.serve = False
        self.relocate(spec.kind, spec.link)
        self.max_frame = net.spec.mtu + ETH_HEADER_LEN
        self.counters = PortCounters()

    def relocate(self, kind: PortKind, link: str | None) -> None:
        self.kind, self.link = kind, link
        self.origin, self.accepts = _ORIGIN_ACCEPTS[kind]
        self.serve = kind is PortKind.LOCAL  # the router answers this port itself


class Switch:
    def __init__(self) -> None:
        self._nets: dict[str, _Net] = {}
        self._ports: dict[str, _Port] = {}
        self.drops: Counter[Drop] = Counter()

    # -- tables ---------------------------------------------------------------------------

    def add_network(self, spec: SwitchNetwork) -> None:
        if spec.id in self._nets:
            raise ValueError(f"network {spec.id} exists")
        if spec.cidr.prefixlen > 30:
            raise ValueError(f"{spec.cidr} has no room for members")
        if spec.router_ip not in spec.cidr:
            raise ValueError(f"gateway {spec.router_ip} is outside {spec.cidr}")
        if not 68 <= spec.mtu <= 65521:
            raise ValueError(f"MTU {spec.mtu} out of range")
        self._nets[spec.id] = _Net(spec)

    def remove_network(self, network_id: str) -> None:
        net = self._nets.pop(network_id, None)
        if net is not None:
            for port_id in net.members:
                del self._ports[port_id]

    def add_port(self, spec: SwitchPort) -> None:
        net = self._nets.get(spec.network_id)
        if net is None:
            raise ValueError(f"no network {spec.network_id}")
        if spec.id in self._ports:
            raise ValueError(f"port {spec.id} exists")
        cidr = net.spec.cidr
        if spec.ip not in cidr or spec.ip in (cidr.network_address, cidr.broadcast_address):
            raise ValueError(f"{spec.ip} is not a host address of {cidr}")
        _check_kind(spec.kind, spec.link)
        port = _Port(spec, net)
        if port.ip in net.by_ip or port.mac in net.by_mac:
            raise ValueError(f"{spec.ip} is taken in network {spec.network_id}")
        if len(port.mac) != 6 or port.mac[0] & 1:
            raise ValueError("a port needs a unicast MAC")
        self._ports[spec.id] = port
        net.members[spec.id] = port
        net.by_ip[port.ip] = port
        net.by_mac[port.mac] = port

    def remove_port(self, port_id: str) -> None:
        port = self._ports.pop(port_id, None)
        if port is not None:
            net = port.net
            del net.members[port_id], net.by_ip[port.ip], net.by_mac[port.mac]

    def locate(self, port_id: str, kind: PortKind, link: str | None = None) -> None:
        """Say where a member lives now (e.g. a node id became known, or a VM moved)."""
        _check_kind(kind, link)
        self._ports[port_id].relocate(kind, link)

    def counters(self, port_id: str) -> PortCounters:
        return self._ports[port_id].counters

    def port_kind(self, port_id: str) -> tuple[PortKind, str | None] | None:
        port = self._ports.get(port_id)
        return None if port is None else (port.kind, port.link)

    def port_for_mac(self, network_id: str, mac: bytes) -> str | None:
        """The member of a network owning `mac`: how a frame from a link finds its port."""
        net = self._nets.get(network_id)
        port = None if net is None else net.by_mac.get(mac)
        return None if port is None else port.id

    # -- the data plane -------------------------------------------------------------------

    def route(self, port_id: str, frame: bytes) -> Routed:
        """The frames to send because `frame` arrived on `port_id` (see the rules above)."""
        port = self._ports.get(port_id)
        if port is None:
            self.drops[Drop.UNKNOWN_PORT] += 1
            return []
        counters = port.counters
        size = len(frame)
        counters.rx_frames += 1
        counters.rx_bytes += size
        # The fast path: unicast IPv4 from the port's own MAC and IP to a member. One
        # `startswith` checks the source MAC and the ethertype; the destination MAC is the
        # only key built. Anything else takes the full rules in `_route_slowly`.
        if (
            _MIN_IPV4_FRAME <= size <= port.max_frame
            and frame.startswith(port.ipv4_prefix, 6)
            and frame[14] & 0xF0 == 0x40
            and not frame[0] & 1
            and frame.startswith(port.ip, 26)
        ):
            out = port.net.by_mac.get(frame[:6])
            if out is not None and out.accepts & port.origin and not out.shares_router:
                out_counters = out.counters
                out_counters.tx_frames += 1
                out_counters.tx_bytes += size
                return [(out.id, frame)]
        return self._route_slowly(port, frame, size)

    def _route_slowly(self, port: _Port, frame: bytes, size: int) -> Routed:
        if not port.origin:
            return self._drop(port, Drop.UNLOCATED)  # nothing can arrive from nowhere
        if size > port.max_frame:
            return self._drop(port, Drop.TOO_BIG)
        if size < ETH_HEADER_LEN:
            return self._drop(port, Drop.MALFORMED)
        if not frame.startswith(port.mac, 6):
            return self._drop(port, Drop.SPOOFED)
        if frame.startswith(_IPV4_TYPE, 12):
            if size < _MIN_IPV4_FRAME or frame[14] & 0xF0 != 0x40:
                return self._drop(port, Drop.MALFORMED)
            if frame[0] & 1:
                if frame.startswith(BROADCAST_MAC):
                    return self._ipv4_broadcast(port, frame)
                return self._drop(port, Drop.MULTICAST)
            if not frame.startswith(port.ip, 26):
                return self._drop(port, Drop.SPOOFED)
            out = port.net.by_mac.get(frame[:6])
            if out is not None and out.shares_router and port.serve and _for_router(out, frame):
                return self._to_router(port, frame)
            if out is None:
                if frame.startswith(port.net.router_mac):
                    return self._to_router(port, frame) if port.serve else self._not_served(port)
                return self._drop(port, Drop.UNKNOWN_DESTINATION)
            if out.accepts & port.origin:
                return self._send(out, frame)
            return self._unreachable(port, out)
        if frame.startswith(_ARP_TYPE, 12):
            return self._arp(port, frame)
        if frame[0] & 1 and not frame.startswith(BROADCAST_MAC):
            return self._drop(port, Drop.MULTICAST)
        return self._drop(port, Drop.UNSUPPORTED)

    def _drop(self, port: _Port, reason: Drop) -> Routed:
        port.counters.drops[reason] += 1
        self.drops[reason] += 1
        return []

    def _not_served(self, port: _Port) -> Routed:
        return self._drop(port, Drop.NOT_FOR_ROUTER)

    def _unreachable(self, port: _Port, out: _Port) -> Routed:
        if out.kind is PortKind.UNLOCATED:
            return self._drop(port, Drop.UNLOCATED)
        return self._drop(port, Drop.TRANSIT)

    def _send(self, out: _Port, frame: bytes) -> Routed:
        out.counters.tx_frames += 1
        out.counters.tx_bytes += len(frame)
        return [(out.id, frame)]

    def _reply(self, port: _Port, frame: bytes) -> Routed:
        port.counters.replies += 1
        return [(port.id, frame)]

    def _ipv4_broadcast(self, port: _Port, frame: bytes) -> Routed:
        ip = parse_ipv4(frame, verify=False)
        if ip is None:
            return self._drop(port, Drop.MALFORMED)
        if ip.protocol == PROTO_UDP and frame[ip.payload_offset + 2 : ip.payload_offset + 4] == (
            SERVER_PORT.to_bytes(2, "big")
        ):
            return self._dhcp(port, frame) if port.serve else self._not_served(port)
        if ip.src != port.ip:
            return self._drop(port, Drop.SPOOFED)
        return self._flood(port, frame)

    def _flood(self, port: _Port, frame: bytes) -> Routed:
        out: Routed = []
        links: set[str | None] = set()
        size = len(frame)
        for member in port.net.members.values():
            if member is port or member.kind is PortKind.UNLOCATED:
                continue
            if member.kind is PortKind.REMOTE:
                if port.kind is PortKind.REMOTE or member.link in links:
                    continue
                links.add(member.link)
            member.counters.tx_frames += 1
            member.counters.tx_bytes += size
            out.append((member.id, frame))
        return out

    def _to_router(self, port: _Port, frame: bytes) -> Routed:
        ip = parse_ipv4(frame)
        if ip is None:
            return self._drop(port, Drop.MALFORMED)
        if ip.protocol == PROTO_UDP and not ip.is_fragment:
            return self._dhcp(port, frame)
        if ip.protocol == PROTO_ICMP and ip.dst == port.net.router_ip:
            return self._echo(port, frame, ip)
        return self._drop(port, Drop.NOT_FOR_ROUTER)

    def _echo(self, port: _Port, frame: bytes, ip: Ipv4Header) -> Routed:
        echo = parse_icmp_echo(frame, ip)
        if echo is None:
            return self._drop(port, Drop.MALFORMED)
        if echo.type != ICMP_ECHO_REQUEST:
            return self._drop(port, Drop.NOT_FOR_ROUTER)
        port.counters.to_router += 1
        body = build_icmp_echo(IcmpEcho(ICMP_ECHO_REPLY, 0, echo.ident, echo.seq, echo.data))
        net = port.net
        reply = (
            build_ethernet(port.mac, net.router_mac, ETHERTYPE_IPV4)
            + build_ipv4(net.router_ip, port.ip, PROTO_ICMP, len(body))
            + body
        )
        return self._reply(port, reply)

    def _dhcp(self, port: _Port, frame: bytes) -> Routed:
        ip = parse_ipv4(frame)
        udp = None if ip is None else parse_udp(frame, ip)
        if ip is None or udp is None:
            return self._drop(port, Drop.MALFORMED)
        if udp.dst_port != SERVER_PORT:
            return self._drop(port, Drop.NOT_FOR_ROUTER)
        if ip.src not in (_ANY_IP, port.ip):
            return self._drop(port, Drop.SPOOFED)
        message = parse_dhcp(frame, udp.payload_offset, udp.end)
        if message is None:
            return self._drop(port, Drop.MALFORMED)
        if message.chaddr != port.mac:
            return self._drop(port, Drop.SPOOFED)
        port.counters.to_router += 1
        net = port.net
        lease = _lease_for(net, port)
        result = answer(message, lease)
        if result is None:
            return []
        kind, payload = result
        broadcast = kind is DhcpType.NAK or bool(message.flags & _BROADCAST_FLAG)
        if message.ciaddr != _ANY_IP and kind is not DhcpType.NAK:
            dst_ip = message.ciaddr
        elif broadcast:
            dst_ip = _LIMITED_BROADCAST
        else:
            dst_ip = lease.client_ip
        datagram = build_udp(net.router_ip, dst_ip, SERVER_PORT, udp.src_port, payload)
        reply = (
            build_ethernet(BROADCAST_MAC if broadcast else port.mac, net.router_mac, ETHERTYPE_IPV4)
            + build_ipv4(net.router_ip, dst_ip, PROTO_UDP, len(datagram))
            + datagram
        )
        return self._reply(port, reply)

    def _arp(self, port: _Port, frame: bytes) -> Routed:
        arp = parse_arp(frame)
        if arp is None:
            return self._drop(port, Drop.MALFORMED)
        if arp.sender_mac != port.mac or arp.sender_ip not in (port.ip, _ANY_IP):
            return self._drop(port, Drop.SPOOFED)
        net = port.net
        if arp.op == ARP_REQUEST:
            if not port.serve:
                return self._not_served(port)
            if arp.target_ip in (port.ip, arp.sender_ip):
                port.counters.to_router += 1  # gratuitous ARP, or a probe for its own address
                return []
            owner = net.by_ip.get(arp.target_ip)
            if owner is not None and owner.kind is PortKind.UNLOCATED:
                return self._drop(port, Drop.UNLOCATED)
            if owner is not None:
                mac = owner.mac
            elif arp.target_ip == net.router_ip:
                mac = net.router_mac
            else:
                return self._drop(port, Drop.UNKNOWN_DESTINATION)
            port.counters.to_router += 1
            answer_arp = ArpPacket(ARP_REPLY, mac, arp.target_ip, port.mac, arp.sender_ip)
            reply = build_ethernet(port.mac, mac, ETHERTYPE_ARP) + build_arp(answer_arp)
            return self._reply(port, reply)
        if arp.op != ARP_REPLY:
            return self._drop(port, Drop.UNSUPPORTED)
        if frame[0] & 1:
            port.counters.to_router += 1  # a gratuitous reply: MACs follow from IPs anyway
            return []
        out = net.by_mac.get(frame[:6])
        if out is None:
            if frame.startswith(net.router_mac):
                port.counters.to_router += 1
                return []
            return self._drop(port, Drop.UNKNOWN_DESTINATION)
        if out.accepts & port.origin:
            return self._send(out, frame)
        return self._unreachable(port, out)


def _for_router(twin: _Port, frame: bytes) -> bool:
    """A unicast IPv4 frame to the router's address that the router itself serves (DHCP
    to port 67, ICMP echo requests), though the member `twin` holds that address too."""
    ip = parse_ipv4(frame, verify=False)
    if ip is None or ip.is_fragment or ip.dst != twin.ip:
        return False
    at = ip.payload_offset
    if ip.protocol == PROTO_UDP:
        return frame[at + 2 : at + 4] == SERVER_PORT.to_bytes(2, "big")
    return ip.protocol == PROTO_ICMP and frame[at : at + 1] == bytes([ICMP_ECHO_REQUEST])


def _lease_for(net: _Net, port: _Port) -> LeaseOffer:
    return dataclasses.replace(net.lease_base, client_ip=port.ip)


def _check_kind(kind: PortKind, link: str | None) -> None:
    if (kind is PortKind.REMOTE) != (link is not None):
        raise ValueError("a remote port needs its link, and only a remote port has one")
