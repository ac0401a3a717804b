"""The server side of DHCP (RFC 2131/2132), just enough to configure a VPN NIC.

Theory of operation
-------------------
The router knows every member's address before the guest asks: the control plane put
it in the port, and the MAC is derived from it. So there is no pool and no lease table:
a DISCOVER from a port is OFFERed the port's address, a REQUEST for that address is
ACKed, a REQUEST for anything else is NAKed (the client then starts over and learns the
new address: this is how an address can change while the VM runs). DECLINE, RELEASE and
INFORM are taken and not answered. The decision is data (`REPLIES`); `answer` builds the
BOOTP payload; the switch wraps it in UDP/IPv4/Ethernet.

Options sent: message type (53), server identifier (54), lease time (51), renewal and
rebinding times (58, 59), subnet mask (1), broadcast address (28), the router (3) only
when the network has a gateway, and the interface MTU (26). busybox udhcpc, dhclient
and systemd-networkd all apply option 26.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from .ethernet import Buffer

__all__ = [
    "CLIENT_PORT",
    "REPLIES",
    "SERVER_PORT",
    "DhcpMessage",
    "DhcpType",
    "LeaseOffer",
    "answer",
    "build_dhcp",
    "parse_dhcp",
]

SERVER_PORT = 67
CLIENT_PORT = 68
MAGIC_COOKIE = b"\x63\x82\x53\x63"
BOOTREQUEST = 1
BOOTREPLY = 2
BROADCAST_FLAG = 0x8000
MIN_BOOTP_LEN = 300  # some clients drop shorter replies (the BOOTP minimum)

# op htype hlen hops xid secs flags ciaddr yiaddr siaddr giaddr chaddr sname file
_BOOTP = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")
_FIXED_LEN = _BOOTP.size  # 236

OPT_PAD = 0
OPT_SUBNET_MASK = 1
OPT_ROUTER = 3
OPT_MTU = 26
OPT_BROADCAST = 28
OPT_REQUESTED_IP = 50
OPT_LEASE_TIME = 51
OPT_MESSAGE_TYPE = 53
OPT_SERVER_ID = 54
OPT_RENEWAL_TIME = 58
OPT_REBINDING_TIME = 59
OPT_END = 255


class DhcpType(enum.IntEnum):
    DISCOVER = 1
    OFFER = 2
    REQUEST = 3
    DECLINE = 4
    ACK = 5
    NAK = 6
    RELEASE = 7
    INFORM = 8


# What the server answers to each client message; absent: taken, not answered.
REPLIES: dict[DhcpType, DhcpType] = {
    DhcpType.DISCOVER: DhcpType.OFFER,
    DhcpType.REQUEST: DhcpType.ACK,  # NAK when the address asked for is not the port's
}


@dataclass(frozen=True, slots=True)
class DhcpMessage:
    op: int
    xid: int
    flags: int
    ciaddr: bytes
    yiaddr: bytes
    giaddr: bytes
    chaddr: bytes  # the 6-byte client MAC (htype 1, hlen 6 only)
    options: dict[int, bytes]

    @property
    def message_type(self) -> DhcpType | None:
        value = self.options.get(OPT_MESSAGE_TYPE, b"")
        if len(value) != 1 or value[0] not in DhcpType._value2member_map_:
            return None
        return DhcpType(value[0])

    def option_address(self, code: int) -> bytes | None:
        value = self.options.get(code)
        return value if value is not None and len(value) == 4 else None


def parse_dhcp(frame: Buffer, start: int, end: int) -> DhcpMessage | None:
    """The BOOTP/DHCP message in frame[start:end]; None if truncated or not DHCP."""
    if end - start < _FIXED_LEN + len(MAGIC_COOKIE) or len(frame) < end:
        return None
    op, htype, hlen, _hops, xid, _secs, flags, ciaddr, yiaddr, _si, giaddr, chaddr, _sn, _f = (
        _BOOTP.unpack_from(frame, start)
    )
    if htype != 1 or hlen != 6:
        return None
    cookie_at = start + _FIXED_LEN
    if bytes(memoryview(frame)[cookie_at : cookie_at + 4]) != MAGIC_COOKIE:
        return None
    options = _parse_options(memoryview(frame)[cookie_at + 4 : end])
    if options is None:
        return None
    return DhcpMessage(op, xid, flags, ciaddr, yiaddr, giaddr, chaddr[:6], options)


def _parse_options(data: memoryview) -> dict[int, bytes] | None:
    options: dict[int, bytes] = {}
    at = 0
    while at < len(data):
        code = data[at]
        if code == OPT_END:
            return options
        if code == OPT_PAD:
            at += 1
            continue
        if at + 2 > len(data) or at + 2 + data[at + 1] > len(data):
            return None
        length = data[at + 1]
        # RFC 3396: a repeated option is the concatenation of its parts
        options[code] = options.get(code, b"") + bytes(data[at + 2 : at + 2 + length])
        at += 2 + length
    return None  # no END option


@dataclass(frozen=True, slots=True)
class LeaseOffer:
    """What the server tells a client: its address and the network's parameters."""

    client_ip: bytes
    server_ip: bytes
    netmask: bytes
    broadcast: bytes
    router: bytes | None
    mtu: int
    lease_seconds: int


def answer(request: DhcpMessage, lease: LeaseOffer) -> tuple[DhcpType, bytes] | None:
    """The reply to a client message, as its type and BOOTP payload, or None (no reply)."""
    kind = request.message_type
    if request.op != BOOTREQUEST or kind is None or kind not in REPLIES:
        return None
    server_id = request.option_address(OPT_SERVER_ID)
    if server_id is not None and server_id != lease.server_ip:
        return None  # the client chose another server
    reply = REPLIES[kind]
    if kind is DhcpType.REQUEST:
        wanted = request.option_address(OPT_REQUESTED_IP) or request.ciaddr
        if wanted != lease.client_ip:
            reply = DhcpType.NAK
    return reply, build_dhcp(request, reply, lease)


def build_dhcp(request: DhcpMessage, kind: DhcpType, lease: LeaseOffer) -> bytes:
    options = bytearray()

    def put(code: int, value: bytes) -> None:
        options.extend((code, len(value)))
        options.extend(value)

    put(OPT_MESSAGE_TYPE, bytes((kind,)))
    put(OPT_SERVER_ID, lease.server_ip)
    if kind is not DhcpType.NAK:
        put(OPT_LEASE_TIME, lease.lease_seconds.to_bytes(4, "big"))
        put(OPT_RENEWAL_TIME, (lease.lease_seconds // 2).to_bytes(4, "big"))
        put(OPT_REBINDING_TIME, (lease.lease_seconds * 7 // 8).to_bytes(4, "big"))
        put(OPT_SUBNET_MASK, lease.netmask)
        put(OPT_BROADCAST, lease.broadcast)
        if lease.router is not None:
            put(OPT_ROUTER, lease.router)
        put(OPT_MTU, lease.mtu.to_bytes(2, "big"))
    options.append(OPT_END)
    yiaddr = b"\0" * 4 if kind is DhcpType.NAK else lease.client_ip
    fixed = _BOOTP.pack(
        BOOTREPLY,
        1,
        6,
        0,
        request.xid,
        0,
        request.flags & BROADCAST_FLAG,
        request.ciaddr if kind is DhcpType.ACK else b"\0" * 4,
        yiaddr,
        lease.server_ip if kind is not DhcpType.NAK else b"\0" * 4,
        request.giaddr,
        request.chaddr.ljust(16, b"\0"),
        b"",
        b"",
    )
    body = fixed + MAGIC_COOKIE + bytes(options)
    return body.ljust(MIN_BOOTP_LEN, b"\0")
