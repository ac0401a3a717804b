from __future__ import annotations

import random
import struct

import pytest
from vpn_frames import ip, ping_frame, udp_frame

from golem_actor.domain.vpn.addressing import (
    format_mac,
    guest_mac,
    is_group_mac,
    parse_mac,
    router_mac,
)
from golem_actor.domain.vpn.ethernet import (
    ARP_REPLY,
    ETHERTYPE_ARP,
    ArpPacket,
    build_arp,
    build_ethernet,
    parse_arp,
    parse_ethernet,
)
from golem_actor.domain.vpn.ipv4 import (
    ICMP_ECHO_REQUEST,
    PROTO_ICMP,
    IcmpEcho,
    build_icmp_echo,
    build_ipv4,
    build_udp,
    checksum,
    parse_icmp_echo,
    parse_ipv4,
    parse_udp,
)


def word_sum_checksum(data: bytes) -> int:
    """RFC 1071, the textbook loop: the oracle for the big-int version."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for (word,) in struct.iter_unpack("!H", data):
        total += word
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def test_conventional_macs_follow_from_the_ip() -> None:
    assert format_mac(guest_mac(ip("10.1.0.2"))) == "90:13:0a:01:00:02"
    assert format_mac(router_mac(ip("192.168.0.1"))) == "a0:13:c0:a8:00:01"
    assert parse_mac("90-13-0A-01-00-02") == guest_mac(ip("10.1.0.2"))
    assert is_group_mac(b"\xff" * 6)
    assert is_group_mac(bytes.fromhex("333300000016"))
    assert not is_group_mac(guest_mac(ip("10.0.0.9")))
    with pytest.raises(ValueError, match="not a MAC"):
        parse_mac("90:13:0a:01:00")


def test_checksum_of_a_known_ipv4_header() -> None:
    # the classic example header (192.168.0.1 -> 192.168.0.199, UDP, TTL 64): sum b861
    header = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
    assert checksum(header) == 0xB861
    fixed = header[:10] + b"\xb8\x61" + header[10 + 2 :]
    assert checksum(fixed) == 0


def test_checksum_matches_the_textbook_loop_on_random_data() -> None:
    rng = random.Random(7)
    cases = [b"", b"\0", b"\xff\xff", b"\0\0\0\0", b"\xff" * 7]
    cases += [rng.randbytes(rng.randrange(1, 1600)) for _ in range(300)]
    for data in cases:
        assert checksum(data) == word_sum_checksum(data), data.hex()


def test_ethernet_round_trip_and_truncation() -> None:
    header = build_ethernet(b"\x01" * 6, b"\x02" * 6, 0x0800)
    parsed = parse_ethernet(header + b"payload")
    assert parsed is not None
    assert (parsed.dst, parsed.src, parsed.ethertype) == (b"\x01" * 6, b"\x02" * 6, 0x0800)
    assert parse_ethernet(header[:13]) is None


def test_arp_round_trip_and_rejections() -> None:
    packet = ArpPacket(ARP_REPLY, b"\x90\x13\x0a\0\0\x02", b"\x0a\0\0\x02", b"\1" * 6, b"\2" * 4)
    frame = build_ethernet(b"\1" * 6, packet.sender_mac, ETHERTYPE_ARP) + build_arp(packet)
    assert len(frame) == 42
    assert parse_arp(frame) == packet
    assert parse_arp(memoryview(frame)) == packet
    assert parse_arp(frame[:41]) is None
    not_ipv4 = frame[:16] + b"\x86\xdd" + frame[18:]  # protocol type IPv6
    assert parse_arp(not_ipv4) is None


def test_ipv4_header_round_trip() -> None:
    header = build_ipv4(b"\x0a\0\0\x02", b"\x0a\0\0\x03", PROTO_ICMP, 12, ttl=9, ident=77)
    frame = b"\0" * 14 + header + b"z" * 12 + b"\0\0"  # two bytes of Ethernet padding
    parsed = parse_ipv4(frame)
    assert parsed is not None
    assert (parsed.src, parsed.dst, parsed.protocol, parsed.ttl, parsed.ident) == (
        b"\x0a\0\0\x02",
        b"\x0a\0\0\x03",
        PROTO_ICMP,
        9,
        77,
    )
    assert (parsed.header_len, parsed.total_len, parsed.end) == (20, 32, 46)
    assert not parsed.is_fragment
    assert word_sum_checksum(header) == 0


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda f: f[:14] + b"\x65" + f[15:], "version 6"),
        (lambda f: f[:14] + b"\x44" + f[15:], "header shorter than 20"),
        (lambda f: f[:24] + bytes((f[24] ^ 1,)) + f[25:], "bad checksum"),
        (lambda f: f[:16] + b"\x40\x00" + f[18:], "total length past the frame"),
        (lambda f: f[:30], "truncated header"),
    ],
)
def test_ipv4_parser_rejects(change: object, why: str) -> None:
    frame = udp_frame(ip("10.0.0.2"), ip("10.0.0.3"))
    assert parse_ipv4(frame) is not None
    assert callable(change)
    assert parse_ipv4(change(frame)) is None, why


def test_icmp_echo_round_trip_and_bad_checksum() -> None:
    frame = ping_frame(ip("10.0.0.2"), ip("10.0.0.1"), b"\xa0\x13\x0a\0\0\x01", b"abc", seq=5)
    header = parse_ipv4(frame)
    assert header is not None
    echo = parse_icmp_echo(frame, header)
    assert echo == IcmpEcho(ICMP_ECHO_REQUEST, 0, 0x1234, 5, b"abc")
    assert build_icmp_echo(echo) == frame[34:]
    broken = frame[:-1] + bytes((frame[-1] ^ 0xFF,))
    broken_header = parse_ipv4(broken)
    assert broken_header is not None
    assert parse_icmp_echo(broken, broken_header) is None


def test_udp_round_trip_checksum_and_truncation() -> None:
    frame = udp_frame(ip("10.0.0.2"), ip("10.0.0.3"), b"odd length", sport=68, dport=67)
    header = parse_ipv4(frame)
    assert header is not None
    udp = parse_udp(frame, header)
    assert udp is not None
    assert (udp.src_port, udp.dst_port, udp.length) == (68, 67, 18)
    assert frame[udp.payload_offset : udp.end] == b"odd length"
    pseudo = b"\x0a\0\0\x02\x0a\0\0\x03\x00\x11" + (18).to_bytes(2, "big")
    assert word_sum_checksum(pseudo + frame[34:]) == 0
    corrupt = frame[:-1] + b"!"
    corrupt_header = parse_ipv4(corrupt)
    assert corrupt_header is not None
    assert parse_udp(corrupt, corrupt_header) is None
    assert parse_udp(corrupt, corrupt_header, verify=False) is not None
    zero_sum = frame[:40] + b"\0\0" + frame[42:]  # checksum 0: "not computed", accepted
    zero_header = parse_ipv4(zero_sum)
    assert zero_header is not None
    assert parse_udp(zero_sum, zero_header) is not None


def test_udp_checksum_zero_is_sent_as_all_ones() -> None:
    # find a payload whose checksum computes to 0: it must go out as 0xffff
    for n in range(70000):
        payload = n.to_bytes(4, "big")
        datagram = build_udp(b"\1\2\3\4", b"\5\6\7\x08", 1, 2, payload)
        if datagram[6:8] == b"\xff\xff":
            assert word_sum_checksum(b"\1\2\3\4\5\6\7\x08\0\x11\0\x0c" + datagram) == 0
            return
    pytest.fail("no payload with a zero checksum found")
