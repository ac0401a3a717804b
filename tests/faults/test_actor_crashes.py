"""Each actor of a paying node crashed in turn while tenants work and the API is busy.

A real node process in development mode (where the fault hook exists) with its own local
chain and two QEMU VMs. Throughout: one SSH session per VM streams data both ways (the
guest's ``cat`` echoes what the test writes, checked byte for byte), and four clients
poll the API as the operator, exempt from the rate limits (`/health`, served by the api
actor alone, and `/vms`, which asks vm_lifecycle). Every root child but ``ssh_proxies``
(whose children *are* the tenants' relays) is crashed once through
``POST /admin/faults/crash/{actor}``, spaced so that no 60-second window holds more than
the root's 5 restarts.

Then: no SSH session dropped or corrupted; every failed API answer falls within a few
seconds after a crash of an actor that route needs (api for all, vm_lifecycle for
`/vms`); each crash is logged with its restart; the root never gave up; both VMs and their
streams are as before.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psutil
import pytest
import trio
from node_helpers import SSH_OPTIONS, NodeProcess, free_block, free_port, running

from golem_actor.adapters.guest import GuestImage

from .invariants import check_world, settle

SPACING = 12.5  # s between crashes: at most 5 in any 60 s window (the root's intensity)
BRIEF = 8.0  # s after a crash during which that actor's routes may fail
CHUNK = os.urandom(4096)


@pytest.fixture
async def node(tmp_path: Path, test_guest: GuestImage) -> AsyncIterator[NodeProcess]:
    process = NodeProcess(
        data=tmp_path / "node",
        port=free_port(),
        ports=free_block(4),
        guest_cache=test_guest.kernel.parent.parent,
        extra_env=(
            ("GOLEM_PROVIDER_ENVIRONMENT", "development"),
            ("GOLEM_PROVIDER_PAYMENTS_NETWORK", "local"),
            ("GOLEM_PROVIDER_POLYGON_RPC_URL", f"http://127.0.0.1:{free_port()}"),
            ("GOLEM_PROVIDER_STREAM_MONITOR_INTERVAL_SECONDS", "2"),
        ),
    )
    async with running(process):
        yield process


class Session:
    """One SSH session through a VM's public port that echoes what it is sent."""

    def __init__(self, key: Path, port: int) -> None:
        self.argv = ["ssh", "-i", str(key), "-p", str(port), *SSH_OPTIONS]
        self.argv += ["-o", "ServerAliveInterval=0", "root@127.0.0.1", "cat"]
        self.sent = self.received = 0
        self.error: str | None = None

    async def run(self, done: trio.Event) -> None:
        process = await trio.lowlevel.open_process(
            self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert process.stdin
        assert process.stdout
        assert process.stderr
        async with trio.open_nursery() as nursery:

            async def write() -> None:
                assert process.stdin
                while not done.is_set():
                    await process.stdin.send_all(CHUNK)
                    self.sent += len(CHUNK)
                    await trio.sleep(0.02)
                await process.stdin.aclose()

            nursery.start_soon(write)
            echoed = bytearray()
            while chunk := await process.stdout.receive_some():
                echoed += chunk
                whole = len(echoed) // len(CHUNK) * len(CHUNK)
                if echoed[:whole] != CHUNK * (whole // len(CHUNK)):
                    self.error = f"corrupted after {self.received} bytes"
                del echoed[:whole]
                self.received += whole
        status = await process.wait()
        stderr = (await process.stderr.receive_some()).decode(errors="replace")
        if status != 0 and self.error is None:
            self.error = f"ssh exited {status}: {stderr.strip()}"


async def poll(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    failures: list[tuple[float, str]],
    done: trio.Event,
) -> None:
    while not done.is_set():
        try:
            reply = await client.get(url, headers=headers, timeout=5)
            if reply.status_code != 200:
                failures.append((trio.current_time(), f"{reply.status_code} {reply.text[:80]}"))
        except httpx.TransportError as exc:
            failures.append((trio.current_time(), repr(exc)))
        await trio.sleep(0.05)


async def test_each_actor_crashed_in_turn_drops_no_session(
    node: NodeProcess, ssh_keypair: tuple[Path, str]
) -> None:
    key, public = ssh_keypair
    async with httpx.AsyncClient(timeout=200) as client:
        vms = []
        for name in ("left", "right"):
            opened = await node.cli(
                "streams", "open", "--rate", "1000000000000", "--seconds", "3600", "--json"
            )
            assert opened.returncode == 0, opened.stderr.decode()
            body = {"name": name, "size": "small", "ssh_key": public}
            body["stream_id"] = json.loads(opened.stdout)["stream_id"]
            created = await client.post(f"{node.url}/vms", json=body)
            assert created.status_code == 200, created.text
            vms.append(created.json())
        before = await settle(client, node)
        pid = node.pid()

        stats = (
            await client.get(f"http://127.0.0.1:{node.port}/metrics", headers=node.operator)
        ).text
        actors = [
            line.split('actor="')[1].split('"')[0]
            for line in stats.splitlines()
            if line.startswith("golem_actor_restarts_total{")
        ]
        victims = [a for a in actors if a != "ssh_proxies"]
        assert {"vm_lifecycle", "api", "wallet", "stream_monitor", "local_chain"} <= set(victims)

        done = trio.Event()
        sessions = [Session(key, vm["ssh_port"]) for vm in vms]
        crashes: list[tuple[str, float]] = []
        health_failures: list[tuple[float, str]] = []
        list_failures: list[tuple[float, str]] = []
        async with trio.open_nursery() as nursery:
            for session in sessions:
                nursery.start_soon(session.run, done)
            for _ in range(2):
                nursery.start_soon(
                    poll, client, f"{node.url}/health", node.operator, health_failures, done
                )
                nursery.start_soon(
                    poll, client, f"{node.url}/vms", node.operator, list_failures, done
                )
            await trio.sleep(2)
            for victim in victims:
                crashes.append((victim, trio.current_time()))
                try:
                    reply = await client.post(
                        f"{node.url}/admin/faults/crash/{victim}", headers=node.operator, timeout=10
                    )
                    assert reply.status_code == 200, reply.text
                except httpx.TransportError:
                    assert victim == "api"  # the api answered its own crash by going down
                print(f"faults: crashed {victim}")
                await trio.sleep(SPACING)
            done.set()

        for session in sessions:
            assert session.error is None, session.error
            assert session.received == session.sent > 0
        crashed_at = dict(crashes)

        def excused(moment: float, actors: tuple[str, ...]) -> bool:
            return any(crashed_at[a] <= moment <= crashed_at[a] + BRIEF for a in actors)

        def unexcused(failures: list[tuple[float, str]], actors: tuple[str, ...]) -> list[str]:
            start = crashes[0][1]
            return [f"{t - start:.1f} s: {what}" for t, what in failures if not excused(t, actors)]

        timeline = [f"{name} at {t - crashes[0][1]:.1f} s" for name, t in crashes]
        assert unexcused(health_failures, ("api",)) == [], timeline
        assert unexcused(list_failures, ("api", "vm_lifecycle")) == [], timeline

        records = [
            json.loads(line)
            for line in (node.data / "logs" / "provider.log").read_text().splitlines()
        ]
        exits = {
            (r.get("child"), r.get("decision")) for r in records if r["event"] == "child exited"
        }
        restarted = {r.get("child") for r in records if r["event"] == "child restarted"}
        for victim in victims:
            assert (victim, "restart") in exits, victim
            assert victim in restarted, victim
        assert not any(r.get("decision") == "give up" for r in records)
        assert psutil.pid_exists(pid)  # the same node process throughout
        assert node.pid() == pid

        after = await settle(client, node)
        assert {i: v["status"] for i, v in after.items()} == {
            i: v["status"] for i, v in before.items()
        }
        assert await check_world(client, node, key, after) == []
        print(
            f"faults: {len(victims)} actors crashed, SSH sessions "
            f"{[s.received for s in sessions]} bytes echoed, 0 dropped; API failures "
            f"health {len(health_failures)}, /vms {len(list_failures)}, all soon after a crash"
        )
