"""Readiness under systemd: a real node says READY=1 on $NOTIFY_SOCKET once it serves."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

pytestmark = pytest.mark.e2e

CLI = str(Path(sys.executable).with_name("golem-provider"))
OFFLINE = {
    "GOLEM_PROVIDER_PAYMENTS_NETWORK": "none",
    "GOLEM_PROVIDER_PORT_CHECK_SERVERS": "[]",
    "GOLEM_PROVIDER_PUBLIC_IP_SERVICES": "[]",
    "GOLEM_PROVIDER_UPDATE_INDEX_URL": "http://127.0.0.1:9/",
    "GOLEM_PROVIDER_COINGECKO_API_URL": "http://127.0.0.1:9/api/v3",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_the_node_notifies_systemd_when_it_serves(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    listener = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    await listener.bind(str(path))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOLEM_")}
    env.update(OFFLINE, NOTIFY_SOCKET=str(path))
    port = free_port()
    where = ["--data-dir", str(tmp_path / "data"), "--host", "127.0.0.1", "--port", str(port)]
    node = await trio.lowlevel.open_process(
        [CLI, "start", *where, "--log-format", "json"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with trio.fail_after(60):
            message = await listener.recv(4096)
        fields = dict(line.split("=", 1) for line in message.decode().splitlines())
        assert fields == {"READY": "1", "MAINPID": str(node.pid)}
        async with httpx.AsyncClient() as client:  # ready means serving, already
            health = await client.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=5)
        assert health.status_code == 200
        node.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            assert await node.wait() == 0
    finally:
        listener.close()
        if node.returncode is None:
            node.kill()
            await node.wait()
