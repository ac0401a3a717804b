"""A real node process for end-to-end tests: start, talk to, kill, restart, stop."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import trio

from golem_actor.adapters.guest import GuestImage, build_test_guest

CLI = str(Path(sys.executable).with_name("golem-provider"))
SSH_OPTIONS = [
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "BatchMode=yes",
    "-o",
    "ConnectTimeout=10",
    "-o",
    "LogLevel=ERROR",
]
GUEST_TOOLS = ("qemu-system-x86_64", "apt-get", "apt-cache", "dpkg-deb", "ssh", "ssh-keygen")


def guest_cache_dir() -> Path:
    env = os.environ.get("GOLEM_TEST_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "golem-actor-tests"


def shared_test_guest() -> GuestImage:
    """The test guest, built into the cache shared across runs on first use."""
    missing = [tool for tool in GUEST_TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)} (run .ci/install-guest-deps.sh)")

    def progress(message: str) -> None:
        print(f"test guest: {message}")

    return trio.run(functools.partial(build_test_guest, guest_cache_dir(), on_progress=progress))


def make_keypair(key: Path) -> tuple[Path, str]:
    """A fresh passphrase-less ed25519 key at `key`: (its path, the public key line)."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "golem-e2e", "-f", str(key)],
        check=True,
    )
    return key, key.with_suffix(".pub").read_text().strip()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def free_block(size: int) -> range:
    for _ in range(100):
        base = random.randrange(30000, 40000)
        block = range(base, base + size)
        try:
            for port in block:
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return block
    raise RuntimeError("no free block of ports")


@dataclass
class NodeProcess:
    data: Path
    port: int
    ports: range
    guest_cache: Path
    checkers: tuple[str, ...] = ()  # port-check servers (ours, on loopback)
    extra_env: tuple[tuple[str, str], ...] = ()
    host: str = "127.0.0.1"  # where the API listens (a loopback address)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/api/v1"

    @property
    def operator(self) -> dict[str, str]:
        token = (self.data / "operator.token").read_text().strip()
        return {"Authorization": f"Bearer {token}"}

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GOLEM_")}
        env.update(
            GOLEM_PROVIDER_SSH_LISTEN_HOST="127.0.0.1",
            GOLEM_PROVIDER_PORT_RANGE_START=str(self.ports.start),
            GOLEM_PROVIDER_PORT_RANGE_END=str(self.ports.stop),
            GOLEM_PROVIDER_RESERVE_MEMORY_GB="0",
            GOLEM_PROVIDER_RESERVE_STORAGE_GB="0",
            GOLEM_PROVIDER_LAUNCH_TIMEOUT_SECONDS="120",
            GOLEM_PROVIDER_VM_BACKEND="qemu",
            GOLEM_PROVIDER_PAYMENTS_NETWORK="none",  # unless a test's extra_env says otherwise
            GOLEM_PROVIDER_PORT_CHECK_SERVERS=json.dumps(list(self.checkers)),
            GOLEM_PROVIDER_PORT_CHECK_QUORUM=str(max(len(self.checkers), 1)),  # all must agree
            GOLEM_PROVIDER_PUBLIC_IP_SERVICES="[]",
            GOLEM_PROVIDER_UPDATE_INDEX_URL="http://127.0.0.1:9/",
            GOLEM_PROVIDER_COINGECKO_API_URL="http://127.0.0.1:9/api/v3",  # no price feed
            # The shared test machine's CPU and disk are busy with other tests' guests: the
            # thresholds bound only what a test asks for (memory stays at its default).
            GOLEM_PROVIDER_CPU_THRESHOLD="100",
            GOLEM_PROVIDER_STORAGE_THRESHOLD="100",
            # Never Golem Base or its faucet on the Internet (tests set their double's).
            GOLEM_PROVIDER_GOLEM_BASE_RPC_URL="http://127.0.0.1:9/rpc",
            GOLEM_PROVIDER_GOLEM_BASE_WS_URL="ws://127.0.0.1:9/rpc/ws",
            GOLEM_PROVIDER_FAUCET_URL="",
        )
        env.update(self.extra_env)
        return env

    async def cli(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return await trio.run_process(
            [CLI, *args, "--data-dir", str(self.data)],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=self.env(),
        )

    async def start(self) -> None:
        guest = self.data / "guest"
        if not guest.exists():
            self.data.mkdir(parents=True, exist_ok=True)
            guest.symlink_to(self.guest_cache)  # the test guest is built once per machine
        result = await self.cli("start", "--daemon", "--host", self.host, "--port", str(self.port))
        assert result.returncode == 0, result.stderr.decode()

    def pid(self) -> int:
        return int((self.data / "provider.pid").read_text())

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, as a crash or a power cut would do."""
        process = psutil.Process(self.pid())
        process.kill()
        process.wait(10)

    async def stop(self) -> None:
        result = await self.cli("stop")
        assert result.returncode == 0, result.stderr.decode()

    def qemus(self) -> list[psutil.Process]:
        """Live QEMU processes of VMs under this node's data dir: they run in their VM
        directory (older ones carried it in their command line)."""
        found = []
        for process in psutil.process_iter(["cmdline", "status", "cwd"]):
            try:
                if process.info["status"] == psutil.STATUS_ZOMBIE:
                    continue
                command = " ".join(process.info["cmdline"] or [])
                cwd = process.info["cwd"] or ""
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            if "qemu-system" in command and (
                cwd.startswith(f"{self.data}/") or str(self.data) in command
            ):
                found.append(process)
        return found

    def guest_processes(self) -> list[psutil.Process]:
        """The QEMUs and the pastas (as their ``pasta.json`` names them) of this node."""
        found = self.qemus()
        for record in (self.data / "vms").glob("*/pasta.json"):
            with contextlib.suppress(OSError, ValueError, KeyError, psutil.Error):
                identity = json.loads(record.read_text())
                process = psutil.Process(identity["pid"])
                if process.create_time() == identity["started"]:
                    found.append(process)
        return found

    def log_events(self) -> list[str]:
        lines = (self.data / "logs" / "provider.log").read_text().splitlines()
        return [json.loads(line)["event"] for line in lines]


@contextlib.asynccontextmanager
async def running(process: NodeProcess) -> AsyncIterator[NodeProcess]:
    """`process` started; afterwards stopped, and every guest it left killed (a failed test
    must not leave guests behind)."""
    await process.start()
    try:
        yield process
    finally:
        if (process.data / "provider.pid").exists():
            await process.stop()
        for guest in process.guest_processes():
            guest.kill()


def guest_node(tmp_path: Path, guest_cache: Path, ports: int = 4) -> NodeProcess:
    """A node in `tmp_path/node` on free loopback ports, using the shared test guest."""
    return NodeProcess(
        data=tmp_path / "node", port=free_port(), ports=free_block(ports), guest_cache=guest_cache
    )


async def wait_status(
    client: httpx.AsyncClient, node: NodeProcess, vm_id: str, status: str, bound: float = 180
) -> dict[str, Any]:
    with trio.fail_after(bound):
        while True:
            reply = await client.get(f"{node.url}/vms/{vm_id}", headers=node.operator)
            if reply.status_code == 200 and reply.json()["status"] == status:
                return dict(reply.json())
            await trio.sleep(0.5)


async def ssh(key: Path, port: int, user: str, command: str) -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process(
        ["ssh", "-i", str(key), "-p", str(port), *SSH_OPTIONS, f"{user}@127.0.0.1", command],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
