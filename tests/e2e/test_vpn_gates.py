"""The Net API's gates on a real node process, into a real QEMU test guest.

One node (root here, so the gate helpers run as the VM user, as QEMU does), one guest
joined to a network whose gateway is the default (the first host, which is also the
requestor's gate address). Through the TCP gate, with `golem_actor.gate_proxy` as ssh's
ProxyCommand, ssh reaches the guest's dropbear on its VPN address and 10 MB go up and
come back intact (sha256); the guest still pings its gateway while the gate namespace
holds that address. A gate connection whose VM side ends (the listener killed in
the guest) closes its websocket within a second. Then the raw gate from the first
address: an ARP request and an ICMP echo frame to the guest get their replies.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import random
import sys
from collections.abc import AsyncIterator
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import trio
import trio_websocket
from node_helpers import SSH_OPTIONS, NodeProcess, guest_node, running
from test_vpn_data_plane import create_vms, run, wait_address

from golem_actor.adapters.guest import GuestImage
from golem_actor.domain.vpn.addressing import BROADCAST_MAC, router_mac
from golem_actor.domain.vpn.ethernet import (
    ARP_REPLY,
    ARP_REQUEST,
    ETHERTYPE_ARP,
    ETHERTYPE_IPV4,
    ArpPacket,
    build_arp,
    build_ethernet,
    parse_arp,
    parse_ethernet,
)
from golem_actor.domain.vpn.ipv4 import (
    ICMP_ECHO_REPLY,
    ICMP_ECHO_REQUEST,
    PROTO_ICMP,
    IcmpEcho,
    build_icmp_echo,
    build_ipv4,
    parse_icmp_echo,
    parse_ipv4,
)

pytestmark = pytest.mark.e2e

NET = "/net-api/v1/net"
GATE = IPv4Address("10.31.0.1")  # the first host: the requestor's address and the gateway
VM = IPv4Address("10.31.0.2")
BLOB = 10 * 1024 * 1024


@pytest.fixture
async def node(tmp_path: Path, test_guest: GuestImage) -> AsyncIterator[NodeProcess]:
    async with running(guest_node(tmp_path, test_guest.kernel.parent.parent, ports=4)) as process:
        yield process


def token(node: NodeProcess) -> str:
    return node.operator["Authorization"].removeprefix("Bearer ")


async def through_gate(
    node: NodeProcess, network_id: str, key: Path, command: str, stdin: bytes = b""
) -> bytes:
    """`command` on the guest over ssh through the TCP gate (gate_proxy as ProxyCommand)."""
    url = f"ws://127.0.0.1:{node.port}{NET}/{network_id}/tcp/{VM}/22"
    proxy = f"{sys.executable} -m golem_actor.gate_proxy {url}"
    argv = ["ssh", "-i", str(key), *SSH_OPTIONS, "-o", f"ProxyCommand={proxy}", f"root@{VM}"]
    env = {**os.environ, "GOLEM_NET_TOKEN": token(node)}
    result = await trio.run_process(
        [*argv, command], stdin=stdin, capture_stdout=True, capture_stderr=True, env=env
    )
    return result.stdout


async def ssh_through_the_gate(node: NodeProcess, network_id: str, key: Path) -> None:
    blob = random.randbytes(BLOB)
    digest = hashlib.sha256(blob).hexdigest()
    with trio.fail_after(120):
        up = await through_gate(
            node, network_id, key, "cat > /tmp/blob && sha256sum /tmp/blob", stdin=blob
        )
        assert up.decode().split()[0] == digest
        down = await through_gate(node, network_id, key, "cat /tmp/blob")
    assert len(down) == BLOB
    assert hashlib.sha256(down).hexdigest() == digest


def helper_users() -> set[str]:
    """Who the gate namespace helpers of GATE's network run as (their argv has its MAC)."""
    mac = router_mac(GATE).hex(":")
    users = set()
    for process in psutil.process_iter(["cmdline", "username"]):
        if mac in (process.info["cmdline"] or []) and "unshare" not in process.info["cmdline"][0]:
            users.add(process.info["username"])
    return users


async def gate_closes_when_the_vm_side_ends(
    node: NodeProcess, network_id: str, key: Path, vm: dict[str, Any]
) -> None:
    # An open stdin: busybox nc sends a FIN as soon as its stdin ends.
    listen = "sleep 60 | nc -l -p 5000 >/dev/null & echo $! > /tmp/nc.pid"
    await run(key, vm, f"setsid sh -c '{listen}' </dev/null >/dev/null 2>&1")
    url = f"ws://127.0.0.1:{node.port}{NET}/{network_id}/tcp/{VM}/5000"
    headers = [(b"Authorization", node.operator["Authorization"].encode())]
    closed_at: list[float] = []
    closed = trio.Event()
    async with trio_websocket.open_websocket_url(url, extra_headers=headers) as ws:

        async def watch() -> None:
            try:
                while True:
                    await ws.get_message()
            except trio_websocket.ConnectionClosed:
                closed_at.append(trio.current_time())
                closed.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            await ws.send_message(b"hello\n")
            await trio.sleep(0.5)
            assert not closed_at  # open while the listener lives
            assert helper_users() == {"golem-vm" if os.geteuid() == 0 else getpass.getuser()}
            code, out = await run(key, vm, "kill $(cat /tmp/nc.pid)")
            killed_by = trio.current_time()  # the kill happened before this
            assert code == 0, out
            with trio.fail_after(5):
                await closed.wait()
        assert ws.closed is not None
        assert ws.closed.code == 1000  # the VM's FIN
    assert closed_at[0] - killed_by < 1.0


async def raw_echo(node: NodeProcess, network_id: str) -> None:
    url = f"ws://127.0.0.1:{node.port}{NET}/{network_id}/raw/from/{GATE}/to/{VM}"
    headers = [(b"Authorization", node.operator["Authorization"].encode())]
    ours = router_mac(GATE)
    async with trio_websocket.open_websocket_url(url, extra_headers=headers) as ws:
        # The guest's MAC, as a raw-gate client learns it: ARP (the router answers).
        request = ArpPacket(ARP_REQUEST, ours, GATE.packed, b"\0" * 6, VM.packed)
        await ws.send_message(
            build_ethernet(BROADCAST_MAC, ours, ETHERTYPE_ARP) + build_arp(request)
        )
        with trio.fail_after(5):
            while True:
                frame = await ws.get_message()
                assert isinstance(frame, bytes)
                arp = parse_arp(frame)
                if arp is not None and arp.op == ARP_REPLY and arp.sender_ip == VM.packed:
                    break
        vm_mac = arp.sender_mac
        body = build_icmp_echo(IcmpEcho(ICMP_ECHO_REQUEST, 0, 0x4242, 7, b"through the raw gate"))
        echo = (
            build_ethernet(vm_mac, ours, ETHERTYPE_IPV4)
            + build_ipv4(GATE.packed, VM.packed, PROTO_ICMP, len(body))
            + body
        )
        await ws.send_message(echo)
        with trio.fail_after(5):
            while True:
                frame = await ws.get_message()
                assert isinstance(frame, bytes)
                header = parse_ethernet(frame)
                ip = parse_ipv4(frame)
                if header is None or header.ethertype != ETHERTYPE_IPV4 or ip is None:
                    continue
                reply = parse_icmp_echo(frame, ip)
                if reply is not None and reply.type == ICMP_ECHO_REPLY:
                    break
        assert (header.dst, header.src) == (ours, vm_mac)
        assert (ip.src, ip.dst) == (VM.packed, GATE.packed)
        assert (reply.ident, reply.seq, reply.data) == (0x4242, 7, b"through the raw gate")


async def test_ssh_and_raw_frames_through_the_gates(
    node: NodeProcess, ssh_keypair: tuple[Path, str]
) -> None:
    key, public = ssh_keypair
    auth = node.operator
    root = f"http://127.0.0.1:{node.port}"
    async with httpx.AsyncClient(timeout=200) as client:
        made = await client.post(f"{root}{NET}", json={"ip": "10.31.0.0/24"}, headers=auth)
        assert made.status_code == 200, made.text
        network = made.json()
        assert network["gateway"] == str(GATE)
        vm = (await create_vms(client, node, public, ["gated"]))["gated"]
        joined = await client.post(
            f"{root}{NET}/{network['id']}/nodes", json={"id": vm["id"], "ip": str(VM)}, headers=auth
        )
        assert joined.status_code == 200, joined.text
        await wait_address(key, vm, str(VM))

        await ssh_through_the_gate(node, network["id"], key)
        # The gate namespace holds the gateway's address now; the gateway still answers.
        code, out = await run(key, vm, f"ping -c 2 -W 2 {GATE}")
        assert code == 0, out
        await gate_closes_when_the_vm_side_ends(node, network["id"], key, vm)

        listed = await client.get(f"{root}{NET}/{network['id']}/tcp", headers=auth)
        assert listed.json() == []  # every gate connection ended: the raw gate may take .1
        await raw_echo(node, network["id"])
