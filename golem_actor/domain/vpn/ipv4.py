"""IPv4 headers, the Internet checksum, ICMP echo and UDP (RFC 791, 792, 768, 1071).

Only what the router itself reads or writes: it switches other traffic without parsing
past the addresses. Parsers take the whole frame and an offset, read in place, check
every length against the buffer, and return None for what is truncated or inconsistent.

The checksum uses the identity 2**16 ≡ 1 (mod 0xFFFF): the ones' complement sum of the
16-bit big-endian words of `data` is `int.from_bytes(data) % 0xFFFF` (0 read as 0xFFFF for
non-zero data), so one C-level big-int operation replaces a Python loop over words.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .ethernet import ETH_HEADER_LEN, Buffer

__all__ = [
    "ICMP_ECHO_REPLY",
    "ICMP_ECHO_REQUEST",
    "IPV4_HEADER_LEN",
    "PROTO_ICMP",
    "PROTO_UDP",
    "UDP_HEADER_LEN",
    "IcmpEcho",
    "Ipv4Header",
    "UdpHeader",
    "build_icmp_echo",
    "build_ipv4",
    "build_udp",
    "checksum",
    "parse_icmp_echo",
    "parse_ipv4",
    "parse_udp",
]

IPV4_HEADER_LEN = 20
PROTO_ICMP = 1
PROTO_UDP = 17
UDP_HEADER_LEN = 8
ICMP_ECHO_REPLY = 0
ICMP_ECHO_REQUEST = 8
DEFAULT_TTL = 64

_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_UDP = struct.Struct("!HHHH")
_ICMP_ECHO = struct.Struct("!BBHHH")
_MORE_FRAGMENTS = 0x2000
_FRAGMENT_OFFSET = 0x1FFF


def checksum(data: Buffer) -> int:
    """The Internet checksum of `data` (0 when `data` already holds a valid checksum)."""
    value = int.from_bytes(data, "big")
    if len(data) % 2:
        value <<= 8
    total = value % 0xFFFF
    if total == 0 and value:
        total = 0xFFFF
    return ~total & 0xFFFF


@dataclass(frozen=True, slots=True)
class Ipv4Header:
    offset: int  # where the header starts in the frame
    header_len: int
    total_len: int
    ident: int
    flags_fragment: int
    ttl: int
    protocol: int
    src: bytes
    dst: bytes

    @property
    def payload_offset(self) -> int:
        return self.offset + self.header_len

    @property
    def end(self) -> int:
        """Where the packet ends (frames may carry Ethernet padding after it)."""
        return self.offset + self.total_len

    @property
    def is_fragment(self) -> bool:
        return bool(self.flags_fragment & (_MORE_FRAGMENTS | _FRAGMENT_OFFSET))


def parse_ipv4(
    frame: Buffer, offset: int = ETH_HEADER_LEN, *, verify: bool = True
) -> Ipv4Header | None:
    """The IPv4 header at `offset`; None if truncated, not version 4, or (verify) bad sum."""
    if len(frame) < offset + IPV4_HEADER_LEN:
        return None
    (ver_ihl, _tos, total_len, ident, flags_frag, ttl, proto, _sum, src, dst) = _IPV4.unpack_from(
        frame, offset
    )
    header_len = (ver_ihl & 0x0F) * 4
    if ver_ihl >> 4 != 4 or header_len < IPV4_HEADER_LEN:
        return None
    if total_len < header_len or len(frame) < offset + total_len:
        return None
    if verify and checksum(memoryview(frame)[offset : offset + header_len]) != 0:
        return None
    return Ipv4Header(offset, header_len, total_len, ident, flags_frag, ttl, proto, src, dst)


def build_ipv4(
    src: bytes,
    dst: bytes,
    protocol: int,
    payload_len: int,
    *,
    ttl: int = DEFAULT_TTL,
    ident: int = 0,
) -> bytes:
    """A 20-byte header (no options, DF clear) with its checksum."""
    total = IPV4_HEADER_LEN + payload_len
    header = _IPV4.pack(0x45, 0, total, ident, 0, ttl, protocol, 0, src, dst)
    return header[:10] + checksum(header).to_bytes(2, "big") + header[12:]


@dataclass(frozen=True, slots=True)
class IcmpEcho:
    type: int
    code: int
    ident: int
    seq: int
    data: bytes


def parse_icmp_echo(frame: Buffer, ip: Ipv4Header) -> IcmpEcho | None:
    """An ICMP echo request/reply carried by `ip`, checksum verified."""
    start, end = ip.payload_offset, ip.end
    if ip.protocol != PROTO_ICMP or ip.is_fragment or end - start < _ICMP_ECHO.size:
        return None
    message = memoryview(frame)[start:end]
    if checksum(message) != 0:
        return None
    kind, code, _sum, ident, seq = _ICMP_ECHO.unpack_from(message)
    if kind not in (ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY):
        return None
    return IcmpEcho(kind, code, ident, seq, bytes(message[_ICMP_ECHO.size :]))


def build_icmp_echo(echo: IcmpEcho) -> bytes:
    """The ICMP message (header + data) with its checksum."""
    body = _ICMP_ECHO.pack(echo.type, echo.code, 0, echo.ident, echo.seq) + echo.data
    return body[:2] + checksum(body).to_bytes(2, "big") + body[4:]


@dataclass(frozen=True, slots=True)
class UdpHeader:
    src_port: int
    dst_port: int
    length: int
    checksum: int
    payload_offset: int
    end: int


def _pseudo_header(src: bytes, dst: bytes, length: int) -> bytes:
    return src + dst + bytes((0, PROTO_UDP)) + length.to_bytes(2, "big")


def parse_udp(frame: Buffer, ip: Ipv4Header, *, verify: bool = True) -> UdpHeader | None:
    """The UDP header carried by `ip`; a non-zero checksum is verified when asked."""
    start = ip.payload_offset
    if ip.protocol != PROTO_UDP or ip.is_fragment or ip.end - start < UDP_HEADER_LEN:
        return None
    sport, dport, length, sent_sum = _UDP.unpack_from(frame, start)
    if length < UDP_HEADER_LEN or start + length > ip.end:
        return None
    if verify and sent_sum != 0:
        segment = bytes(memoryview(frame)[start : start + length])
        if checksum(_pseudo_header(ip.src, ip.dst, length) + segment) != 0:
            return None
    return UdpHeader(sport, dport, length, sent_sum, start + UDP_HEADER_LEN, start + length)


def build_udp(src: bytes, dst: bytes, src_port: int, dst_port: int, payload: bytes) -> bytes:
    """The UDP datagram (header + payload) with its checksum over the pseudo header."""
    length = UDP_HEADER_LEN + len(payload)
    segment = _UDP.pack(src_port, dst_port, length, 0) + payload
    value = checksum(_pseudo_header(src, dst, length) + segment) or 0xFFFF
    return segment[:6] + value.to_bytes(2, "big") + segment[8:]
