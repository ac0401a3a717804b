"""Golem VPN between real QEMU guests through the node's vpn_router.

One node process, two test guests booted concurrently (a 2-core host has room for two
1-core VMs), each with its VPN NIC (eth1) on the router's socket paths, and two networks
with the same range. Joins happen while the guests run and they get their addresses by
DHCP. A in one network and B in the other do not reach each other; a spoofed source
address from A is dropped and counted (/metrics); B moved into A's network reaches it
within seconds, and they exchange ICMP, TCP (busybox nc) and UDP; removing B cuts its
traffic, adding it back restores it, and so does a stop/start of B; after a SIGKILL of
the node and a restart, traffic between A and B resumes (the guests never noticed);
deleting a VM removes it from its network.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from node_helpers import NodeProcess, guest_node, running, ssh

from golem_actor.adapters.guest import GuestImage

pytestmark = pytest.mark.e2e

NET = "/net-api/v1/net"
JOIN_BOUND = 15.0  # seconds from a join to the address on the guest's eth1 (DHCP retries)


@pytest.fixture
async def node(tmp_path: Path, test_guest: GuestImage) -> AsyncIterator[NodeProcess]:
    async with running(guest_node(tmp_path, test_guest.kernel.parent.parent, ports=6)) as process:
        yield process


def base(node: NodeProcess) -> str:
    return f"http://127.0.0.1:{node.port}"


async def create_vms(
    client: httpx.AsyncClient, node: NodeProcess, public: str, names: list[str]
) -> dict[str, dict[str, Any]]:
    made: dict[str, dict[str, Any]] = {}

    async def one(name: str) -> None:
        reply = await client.post(
            f"{node.url}/vms",
            json={
                "name": name,
                "resources": {"cpu": 1, "memory": 1, "storage": 10},
                "ssh_key": public,
            },
            headers=node.operator,
        )
        assert reply.status_code == 200, reply.text
        made[name] = reply.json()

    async with trio.open_nursery() as nursery:
        for name in names:
            nursery.start_soon(one, name)
    return made


async def vpn_address(key: Path, vm: dict[str, Any]) -> str | None:
    result = await ssh(key, vm["ssh_port"], "root", "ip -4 addr show dev eth1")
    found = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", result.stdout.decode())
    return found.group(1) if found else None


async def until(check: Callable[[], Awaitable[bool]], bound: float, what: str) -> None:
    """Poll `check` until it holds; fail after `bound` seconds."""
    with trio.move_on_after(bound):
        while True:
            if await check():
                return
            await trio.sleep(0.5)
    raise AssertionError(f"not within {bound:g} s: {what}")


async def wait_address(key: Path, vm: dict[str, Any], ip: str) -> None:
    async def has_it() -> bool:
        return await vpn_address(key, vm) == ip

    await until(has_it, JOIN_BOUND, f"{vm['name']} has {ip} on eth1")


async def run(key: Path, vm: dict[str, Any], command: str) -> tuple[int, str]:
    result = await ssh(key, vm["ssh_port"], "root", command)
    return result.returncode, result.stdout.decode() + result.stderr.decode()


async def pings(key: Path, vm: dict[str, Any], ip: str, count: int = 2) -> bool:
    code, _ = await run(key, vm, f"ping -c {count} -W 2 {ip}")
    return code == 0


async def dropped(client: httpx.AsyncClient, node: NodeProcess, reason: str) -> int:
    text = (await client.get(f"{base(node)}/metrics", headers=node.operator)).text
    found = re.search(rf'golem_vpn_dropped_frames_total\{{reason="{reason}"\}} (\d+)', text)
    return int(float(found.group(1))) if found else 0


async def test_guests_talk_by_virtual_ip_inside_their_network_only(
    node: NodeProcess, ssh_keypair: tuple[Path, str]
) -> None:
    key, public = ssh_keypair
    auth = node.operator
    async with httpx.AsyncClient(timeout=200) as client:
        one = (
            await client.post(f"{base(node)}{NET}", json={"ip": "10.20.0.0/24"}, headers=auth)
        ).json()
        two = (  # with jumbo frames (an extension): its guests take MTU 9000 by DHCP
            await client.post(
                f"{base(node)}{NET}", json={"ip": "10.20.0.0/24", "mtu": 9000}, headers=auth
            )
        ).json()

        async def join(network: dict[str, Any], vm: dict[str, Any], ip: str) -> None:
            reply = await client.post(
                f"{base(node)}{NET}/{network['id']}/nodes",
                json={"id": vm["id"], "ip": ip},
                headers=auth,
            )
            assert reply.status_code == 200, reply.text

        async def leave(network: dict[str, Any], vm: dict[str, Any]) -> None:
            reply = await client.delete(
                f"{base(node)}{NET}/{network['id']}/nodes/{vm['id']}", headers=auth
            )
            assert reply.status_code == 200, reply.text

        vms = await create_vms(client, node, public, ["vpn-a", "vpn-b"])
        a, b = vms["vpn-a"], vms["vpn-b"]
        await join(one, a, "10.20.0.2")
        await wait_address(key, a, "10.20.0.2")
        assert await vpn_address(key, b) is None  # in no network: no address
        code, mtu = await run(key, a, "cat /sys/class/net/eth1/mtu")
        assert mtu.strip() == "1220"
        assert await pings(key, a, "10.20.0.1")  # the router answers on the gateway

        # B joins the other network (the same range) while running: its address comes
        # by DHCP within seconds, and the two networks do not see each other
        await join(two, b, "10.20.0.3")
        await wait_address(key, b, "10.20.0.3")
        code, mtu = await run(key, b, "cat /sys/class/net/eth1/mtu")
        assert mtu.strip() == "9000"
        assert await pings(key, b, "10.20.0.1")  # jumbo frames through the router:
        code, out = await run(key, b, "ping -c 1 -W 2 -s 8000 10.20.0.1")
        assert code == 0, out
        assert not await pings(key, a, "10.20.0.3", count=1)
        assert not await pings(key, b, "10.20.0.2", count=1)

        # A spoofs a source address: dropped, counted
        before = await dropped(client, node, "spoofed")
        code, out = await run(
            key,
            a,
            "ip addr add 10.20.0.9/24 dev eth1; ping -c 2 -W 1 -I 10.20.0.9 10.20.0.1;"
            " r=$?; ip addr del 10.20.0.9/24 dev eth1; exit $r",
        )
        assert code != 0, out
        assert await dropped(client, node, "spoofed") > before

        # B moves to A's network on the same address: traffic within seconds
        await leave(two, b)
        await join(one, b, "10.20.0.3")

        async def a_reaches_b() -> bool:
            return await pings(key, a, "10.20.0.3", count=1)

        await until(a_reaches_b, JOIN_BOUND, "A pings B once B joined A's network")
        assert await pings(key, b, "10.20.0.2")

        # TCP by virtual IP (busybox nc), both ways of a connection
        listen = "sleep 20 | nc -l -p 5000 > /tmp/tcp.txt"
        await run(key, b, f"setsid sh -c '{listen}' </dev/null >/dev/null 2>&1 &")

        async def sent() -> bool:
            code, _ = await run(key, a, "echo hello-tcp | nc -w 3 10.20.0.3 5000")
            return code == 0

        await until(sent, 10, "A connects to B's TCP listener")

        async def received() -> bool:
            _, out = await run(key, b, "cat /tmp/tcp.txt")
            return out.strip() == "hello-tcp"

        await until(received, 10, "B received the TCP message")
        # UDP by virtual IP: Debian's busybox nc has no UDP, so traceroute's UDP probes
        # (1000 bytes) go to B, whose kernel answers each with ICMP port unreachable
        code, out = await run(key, a, "traceroute -n -q 1 -m 1 -w 2 10.20.0.3 1000")
        assert code == 0, out
        assert re.search(r"^ 1\s+10\.20\.0\.3\s", out, re.MULTILINE), out

        # B leaves: its traffic stops at once; it joins again: back
        await leave(one, b)
        assert not await pings(key, a, "10.20.0.3", count=1)
        await join(one, b, "10.20.0.3")
        await until(a_reaches_b, JOIN_BOUND, "A pings B after B joined again")

        # B stopped and started: a new QEMU (a new NIC socket), the same membership
        stopped = await client.post(f"{node.url}/vms/{b['id']}/stop", headers=auth)
        assert stopped.status_code == 200, stopped.text
        assert not await pings(key, a, "10.20.0.3", count=1)
        started = await client.post(f"{node.url}/vms/{b['id']}/start", headers=auth)
        assert started.status_code == 200, started.text
        await wait_address(key, b, "10.20.0.3")
        await until(a_reaches_b, JOIN_BOUND, "A pings B after B's restart")

        # SIGKILL of the node: QEMU keeps running; the restarted router binds its
        # sockets again and the traffic resumes
        node.kill()
        await node.start()
        await until(a_reaches_b, 30, "A pings B after the node's restart")
        nodes = (await client.get(f"{base(node)}{NET}/{one['id']}/nodes", headers=auth)).json()
        assert sorted(n["ip"] for n in nodes) == ["10.20.0.2", "10.20.0.3"]

        # deleting a VM removes it from its network
        deleted = await client.delete(f"{node.url}/vms/{b['id']}", headers=auth)
        assert deleted.status_code == 200, deleted.text

        async def b_left() -> bool:
            reply = await client.get(f"{base(node)}{NET}/{one['id']}/nodes", headers=auth)
            return [n["ip"] for n in reply.json()] == ["10.20.0.2"]

        await until(b_left, 10, "the deleted VM left its network")
