"""The Net API's TCP gate against the node's SSH relay, one guest, in the same run.

Issue 11 asks for the gate's throughput beside the relay's: a requestor reaches a VM
either through `…/net/{id}/tcp/{ip}/{port}` (a websocket, bytes through the router and
the gate namespace) or through the VM's public SSH port (the node's TCP relay into the
guest's forward). One real node process (`golem-provider start --daemon`, loopback only)
with one test guest (1 vCPU, TCG) in one network; each round moves `mb` megabytes
(10^6 bytes) of zeros from the guest to this process, cases interleaved round by round:
- gate: `head -c N /dev/zero | nc.openbsd -N -l 5000` in the guest, read by a
  trio-websocket client through the TCP gate until the VM's FIN closes it: guest TCP,
  the VPN NIC, the router, the gate's own TCP stack, the websocket (busybox `nc` as the
  sender made this case 0.4-0.8x the relay: its small writes cost the TCG guest, not
  the gate; nc.openbsd brought it to 0.85x);
- ssh via gate: `ssh … 'head -c N /dev/zero'` with `golem_actor.gate_proxy` as the
  ProxyCommand: the gate path plus dropbear's encryption, so the same work in the guest
  as the relay path;
- ssh via relay (baseline): the same command to the VM's SSH port on the host.
Every byte is counted and checked to be zero. Medians of `rounds` rounds, MB/s, the
ratios to the relay, and the CPU each case kept busy (the node process, the guest's
QEMU, as CPU seconds per wall second) to show where the bottleneck is. The TCG guest
is (its one vCPU's emulation: dropbear's ciphers, the guest's TCP stack and NIC):
read the ratios, not the absolutes; yagna publishes 13-37 MB/s provider to provider
on real hardware.
`python -m bench vpn_gate --mb=5 --rounds=1`; `GOLEM_BENCH_VPN_VMS=0` skips it.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import trio
import trio_websocket

from golem_actor.adapters.guest import build_test_guest
from golem_actor.keys import generate_ssh_keypair

from ._node import free_port, free_port_block, guest_cache_dir, kill_all, processes_mentioning

CLI = str(Path(sys.executable).with_name("golem-provider"))
NET = "/net-api/v1/net"
VM_IP = "10.41.0.2"
GATE_PORT = 5000
CHUNK = 1 << 16
BOUND = 600.0
CASES = ("gate", "ssh via gate", "ssh via relay")


@dataclass(frozen=True)
class Guest:
    api: str  # http://127.0.0.1:PORT
    token: str
    network: str
    ssh_port: int
    key: Path

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def _ssh_argv(key: Path, *options: str) -> list[str]:
    return [
        "ssh", "-F", "/dev/null", "-i", str(key), "-o", "BatchMode=yes",
        "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
        "-o", "ConnectTimeout=10", *options,
    ]  # fmt: skip


def _relay_ssh(guest: Guest, command: str) -> list[str]:
    return [*_ssh_argv(guest.key, "-p", str(guest.ssh_port)), "root@127.0.0.1", command]


def _gate_url(guest: Guest, port: int) -> str:
    return f"ws://{guest.api.removeprefix('http://')}{NET}/{guest.network}/tcp/{VM_IP}/{port}"


def _gate_ssh(guest: Guest, command: str) -> list[str]:
    proxy = f"{sys.executable} -m golem_actor.gate_proxy {_gate_url(guest, 22)}"
    return [*_ssh_argv(guest.key, "-o", f"ProxyCommand={proxy}"), f"root@{VM_IP}", command]


def _count_zeros(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, float]:
    """(bytes `argv` wrote, seconds it took), every byte checked to be zero (blocking)."""
    began = time.perf_counter()
    total = 0
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    ) as process:
        assert process.stdout is not None
        while chunk := process.stdout.read(CHUNK):
            if chunk.count(0) != len(chunk):
                raise RuntimeError(f"{argv[-1]!r}: a non-zero byte arrived")
            total += len(chunk)
    return total, time.perf_counter() - began


async def _through_relay(guest: Guest, size: int) -> tuple[int, float]:
    argv = _relay_ssh(guest, f"head -c {size} /dev/zero")
    return await trio.to_thread.run_sync(_count_zeros, argv)


async def _ssh_through_gate(guest: Guest, size: int) -> tuple[int, float]:
    env = {**os.environ, "GOLEM_NET_TOKEN": guest.token}
    argv = _gate_ssh(guest, f"head -c {size} /dev/zero")
    return await trio.to_thread.run_sync(_count_zeros, argv, env)


async def _drain(ws: trio_websocket.WebSocketConnection) -> int:
    total = 0
    try:
        while True:
            message = await ws.get_message()
            data = message if isinstance(message, bytes) else message.encode()
            if data.count(0) != len(data):
                raise RuntimeError("gate: a non-zero byte arrived")
            total += len(data)
    except trio_websocket.ConnectionClosed:
        return total


async def _through_gate(guest: Guest, size: int) -> tuple[int, float]:
    """A listener in the guest sends `size` zeros to whoever connects; read via the gate."""
    serve = f"head -c {size} /dev/zero | nc.openbsd -N -l {GATE_PORT}"
    started = await trio.run_process(
        _relay_ssh(guest, f"setsid sh -c '{serve}' </dev/null >/dev/null 2>&1 &"),
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    if started.returncode != 0:
        raise RuntimeError(f"gate: listener not started: {started.stderr.decode()}")
    headers = [(b"Authorization", f"Bearer {guest.token}".encode())]
    for _ in range(40):  # until the listener listens: a refused connect closes at once
        began = time.perf_counter()
        try:
            async with trio_websocket.open_websocket_url(
                _gate_url(guest, GATE_PORT), extra_headers=headers, message_queue_size=64
            ) as ws:
                total = await _drain(ws)
        except trio_websocket.ConnectionRejected as refused:
            if refused.status_code != 400:  # 400: refused, the listener is not up yet
                raise
            total = 0
        elapsed = time.perf_counter() - began
        if total:
            return total, elapsed
        await trio.sleep(0.25)
    raise RuntimeError("gate: the guest's listener never answered")


TRANSFERS: dict[str, Callable[[Guest, int], Awaitable[tuple[int, float]]]] = {
    "gate": _through_gate,
    "ssh via gate": _ssh_through_gate,
    "ssh via relay": _through_relay,
}


def _node_env(data: Path, ports: range) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOLEM_")}
    env.update(
        GOLEM_PROVIDER_SSH_LISTEN_HOST="127.0.0.1",
        GOLEM_PROVIDER_PORT_RANGE_START=str(ports.start),
        GOLEM_PROVIDER_PORT_RANGE_END=str(ports.stop),
        GOLEM_PROVIDER_RESERVE_MEMORY_GB="0",
        GOLEM_PROVIDER_RESERVE_STORAGE_GB="0",
        GOLEM_PROVIDER_LAUNCH_TIMEOUT_SECONDS="120",
        GOLEM_PROVIDER_VM_BACKEND="qemu",
        GOLEM_PROVIDER_PAYMENTS_NETWORK="none",
        GOLEM_PROVIDER_SKIP_PORT_VERIFICATION="true",  # loopback only: nothing to check
        GOLEM_PROVIDER_PUBLIC_IP_SERVICES="[]",
        GOLEM_PROVIDER_UPDATE_INDEX_URL="http://127.0.0.1:9/",
        GOLEM_PROVIDER_COINGECKO_API_URL="http://127.0.0.1:9/api/v3",
        GOLEM_PROVIDER_CPU_THRESHOLD="100",
        GOLEM_PROVIDER_STORAGE_THRESHOLD="100",
        GOLEM_PROVIDER_GOLEM_BASE_RPC_URL="http://127.0.0.1:9/rpc",
        GOLEM_PROVIDER_GOLEM_BASE_WS_URL="ws://127.0.0.1:9/rpc/ws",
        GOLEM_PROVIDER_FAUCET_URL="",
    )
    return env


async def _cli(data: Path, env: dict[str, str], *args: str) -> None:
    result = await trio.run_process(
        [CLI, *args, "--data-dir", str(data)], capture_stdout=True, capture_stderr=True, env=env
    )
    if result.returncode != 0:
        raise RuntimeError(f"golem-provider {args[0]}: {result.stderr.decode()}")


async def _guest_in_network(api: str, token: str, key: Path, public: str) -> Guest:
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=BOUND) as client:
        made = await client.post(f"{api}{NET}", json={"ip": "10.41.0.0/24"}, headers=auth)
        made.raise_for_status()
        network = made.json()["id"]
        body = {"name": "gate-bench", "resources": {"cpu": 1, "memory": 1, "storage": 10}}
        vm = await client.post(f"{api}/api/v1/vms", json={**body, "ssh_key": public}, headers=auth)
        vm.raise_for_status()
        joined = await client.post(
            f"{api}{NET}/{network}/nodes", json={"id": vm.json()["id"], "ip": VM_IP}, headers=auth
        )
        joined.raise_for_status()
    guest = Guest(api, token, network, int(vm.json()["ssh_port"]), key)
    with trio.fail_after(180):
        while True:  # until dropbear answers and eth1 has the address (DHCP)
            shown = await trio.run_process(
                _relay_ssh(guest, "ip -4 addr show dev eth1"),
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
            if f"inet {VM_IP}/" in shown.stdout.decode():
                return guest
            await trio.sleep(0.5)


@dataclass(frozen=True)
class Samples:
    size: int  # bytes each transfer was to move
    mbps: dict[str, list[float]]  # per case, per round
    moved: dict[str, list[int]]  # bytes that arrived, all zeros (else `measure` raised)
    node_cpu: dict[str, list[float]]  # the node process's CPU seconds / wall seconds
    guest_cpu: dict[str, list[float]]  # the guest's QEMU's, likewise (1.0: its vCPU is full)


def _per_case() -> dict[str, list[float]]:
    return {case: [] for case in CASES}


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _guest_qemu(work: Path) -> psutil.Process:
    for process in processes_mentioning(str(work)):
        if "qemu-system" in " ".join(process.cmdline()):
            return process
    raise RuntimeError("vpn gate: the guest's QEMU is not running")


async def measure(mb: float = 20, rounds: int = 3) -> Samples:
    """Each case's MB/s and bytes moved per round (raises if a byte arrives altered)."""
    size = int(mb * 10**6)
    await build_test_guest(guest_cache_dir())
    private, public = await trio.to_thread.run_sync(generate_ssh_keypair, "bench")
    work = Path(tempfile.mkdtemp(prefix="bench-gate-", dir="/tmp"))
    key = work / "key"
    key.write_text(private)
    key.chmod(0o600)
    data = work / "node"
    data.mkdir()
    (data / "guest").symlink_to(guest_cache_dir().absolute(), target_is_directory=True)
    env = _node_env(data, free_port_block(2))
    port = free_port()
    samples = Samples(size, _per_case(), {case: [] for case in CASES}, _per_case(), _per_case())
    try:
        await _cli(data, env, "start", "--daemon", "--host", "127.0.0.1", "--port", str(port))
        token = (data / "operator.token").read_text().strip()
        guest = await _guest_in_network(f"http://127.0.0.1:{port}", token, key, public)
        node = psutil.Process(int((data / "provider.pid").read_text()))
        qemu = await trio.to_thread.run_sync(_guest_qemu, work)
        for _ in range(rounds):
            for case, transfer in TRANSFERS.items():
                node_before, qemu_before = _cpu_seconds(node), _cpu_seconds(qemu)
                with trio.fail_after(BOUND):
                    moved, seconds = await transfer(guest, size)
                samples.moved[case].append(moved)
                samples.mbps[case].append(moved / 1e6 / seconds)
                samples.node_cpu[case].append((_cpu_seconds(node) - node_before) / seconds)
                samples.guest_cpu[case].append((_cpu_seconds(qemu) - qemu_before) / seconds)
    finally:
        if (data / "provider.pid").exists():
            await _cli(data, env, "stop")
        stray = await trio.to_thread.run_sync(processes_mentioning, str(work))
        await trio.to_thread.run_sync(kill_all, [p for p in stray if p.pid != os.getpid()])
        await trio.to_thread.run_sync(shutil.rmtree, work, True)
    return samples


async def run(mb: float = 20, rounds: int = 3) -> dict[str, float]:
    if os.environ.get("GOLEM_BENCH_VPN_VMS") == "0":
        return {}
    missing = [t for t in ("qemu-system-x86_64", "pasta", "ssh") if not shutil.which(t)]
    if missing:
        print(f"vpn gate: missing {', '.join(missing)} (run .ci/install-guest-deps.sh)")
        return {}
    samples = await measure(mb, rounds)
    for case, moved in samples.moved.items():
        if any(count != samples.size for count in moved):
            raise RuntimeError(f"{case}: {moved} bytes arrived, not {samples.size} each")
    medians = {case: statistics.median(values) for case, values in samples.mbps.items()}
    print(f"vpn gate: {rounds} rounds of {mb} MB from one guest (1 vCPU, TCG) to the host")
    for case, value in medians.items():
        shown = ", ".join(f"{v:.2f}" for v in samples.mbps[case])
        node = statistics.median(samples.node_cpu[case]) * 100
        guest = statistics.median(samples.guest_cpu[case]) * 100
        print(
            f"  {case:<14} {value:8.2f} MB/s   ({shown})"
            f"   CPU: node {node:3.0f} %, guest QEMU {guest:3.0f} %"
        )
    relay = medians["ssh via relay"]
    gate_ratio = medians["gate"] / relay
    ssh_ratio = medians["ssh via gate"] / relay
    print(f"  gate / ssh via relay         = {gate_ratio:.2f}x")
    print(f"  ssh via gate / ssh via relay = {ssh_ratio:.2f}x (the same dropbear work)")
    print("  the TCG guest is the bottleneck (yagna, provider to provider: 13-37 MB/s)")
    return {
        "gate_mbps": medians["gate"],
        "ssh_via_gate_mbps": medians["ssh via gate"],
        "ssh_via_relay_mbps": relay,
        "gate_ratio": gate_ratio,
        "ssh_via_gate_ratio": ssh_ratio,
    }


if __name__ == "__main__":
    trio.run(run)
