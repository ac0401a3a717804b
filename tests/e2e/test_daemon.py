"""The node as a real process: `start --daemon`, readiness (also systemd's), `stop`, its logs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest
import trio

pytestmark = pytest.mark.e2e

CLI = str(Path(sys.executable).with_name("golem-provider"))
REQUIRED_KEYS = {"timestamp", "level", "event", "actor"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOLEM_")}
    env.update(OFFLINE)
    env.update(extra)
    return env


# Tests talk to 127.0.0.0/8 only: no L2 chain, public port checkers, echo services or
# package index.
OFFLINE = {
    "GOLEM_PROVIDER_PAYMENTS_NETWORK": "none",
    "GOLEM_PROVIDER_PORT_CHECK_SERVERS": "[]",
    "GOLEM_PROVIDER_PUBLIC_IP_SERVICES": "[]",
    "GOLEM_PROVIDER_UPDATE_INDEX_URL": "http://127.0.0.1:9/",
    "GOLEM_PROVIDER_COINGECKO_API_URL": "http://127.0.0.1:9/api/v3",
}


async def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process(
        [CLI, *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env=env or clean_env(),
    )


def read_log(data_dir: Path) -> list[dict[str, object]]:
    lines = (data_dir / "logs" / "provider.log").read_text().splitlines()
    return [json.loads(line) for line in lines]  # every line must be one JSON object


async def test_daemon_starts_serves_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    where = ["--data-dir", str(tmp_path), "--port", str(port), "--host", "127.0.0.1"]
    started = await cli("start", "--daemon", *where)
    assert started.returncode == 0, started.stderr.decode()
    pid = int((tmp_path / "provider.pid").read_text())
    assert psutil.pid_exists(pid)
    assert os.stat(tmp_path / "provider.pid").st_mode & 0o777 == 0o600

    async with httpx.AsyncClient() as client:
        health = await client.get(f"http://127.0.0.1:{port}/api/v1/health")
        missing = await client.get(f"http://127.0.0.1:{port}/api/v1/nothing-here")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert missing.status_code == 404
    assert "detail" in missing.json()

    again = await cli("start", "--daemon", "--data-dir", str(tmp_path), "--port", str(free_port()))
    assert again.returncode == 1
    assert f"already running with pid {pid}" in again.stderr.decode()

    stopped = await cli("stop", "--data-dir", str(tmp_path))
    assert stopped.returncode == 0, stopped.stderr.decode()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not (tmp_path / "provider.pid").exists()

    records = read_log(tmp_path)
    for record in records:
        assert record.keys() >= REQUIRED_KEYS, record
        assert str(record["timestamp"]).endswith("Z")
    events = [(r["event"], r.get("child")) for r in records]
    assert ("node ready", None) in events
    shutdown = events[events.index(("node stopping", None)) :]
    stops = [child for event, child in shutdown if event == "child stopped"]
    assert stops == [
        "api",
        "advertiser",
        "vm_lifecycle",
        "ssh_proxies",
        "vpn_router",
        "port_verifier",
        "resource_tracker",
        "pricing",
    ]
    assert shutdown[-1] == ("node stopped", None)
    assert not any(r["level"] in ("error", "critical") for r in records)


async def test_stop_without_a_running_node_says_so(tmp_path: Path) -> None:
    (tmp_path / "provider.pid").write_text("999999\n")  # stale
    result = await cli("stop", "--data-dir", str(tmp_path))
    assert result.returncode == 0
    assert "no node running" in result.stdout.decode()
    assert not (tmp_path / "provider.pid").exists()


async def test_a_node_that_cannot_bind_its_port_reports_why(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = await cli(
            "start",
            "--daemon",
            "--data-dir",
            str(tmp_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        )
    assert result.returncode == 1
    assert "exited with status 1" in result.stderr.decode()
    failed = [r for r in read_log(tmp_path) if r["event"] == "node failed to start"]
    assert len(failed) == 1
    assert "address already in use" in str(failed[0]["reason"]).lower()
    assert not (tmp_path / "provider.pid").exists()


async def test_an_invalid_setting_stops_the_start_naming_the_variable(tmp_path: Path) -> None:
    env = clean_env(GOLEM_PROVIDER_PORT="not-a-port")
    result = await cli("start", "--data-dir", str(tmp_path), env=env)
    assert result.returncode == 2
    assert "GOLEM_PROVIDER_PORT" in result.stderr.decode()


async def test_settings_from_the_data_dir_env_file_are_used(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / ".env").write_text(f"GOLEM_PROVIDER_PORT={port}\nGOLEM_PROVIDER_HOST=127.0.0.1\n")
    started = await cli("start", "--daemon", "--data-dir", str(tmp_path))
    assert started.returncode == 0, started.stderr.decode()
    try:
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{port}/api/v1/health")).status_code == 200
    finally:
        assert (await cli("stop", "--data-dir", str(tmp_path))).returncode == 0


async def test_foreground_node_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    process = await trio.lowlevel.open_process(
        [
            CLI,
            "start",
            "--data-dir",
            str(tmp_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-format",
            "json",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=clean_env(),
    )
    assert process.stderr is not None
    seen = b""
    with trio.fail_after(30):
        while b'"node ready"' not in seen:
            chunk = await process.stderr.receive_some()
            assert chunk, seen.decode()
            seen += chunk
    process.send_signal(15)
    with trio.fail_after(30):
        while chunk := await process.stderr.receive_some():
            seen += chunk
        assert await process.wait() == 0
    events = [json.loads(line)["event"] for line in seen.decode().splitlines()]
    assert events[-1] == "node stopped"


async def test_the_node_notifies_systemd_when_it_serves(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    listener = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    await listener.bind(str(path))
    env = clean_env(NOTIFY_SOCKET=str(path))
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
