"""Nodes and client-side helpers shared by the `api`, `boot` and `gating` benchmarks.

Two ways to run a node inside the bench process (the trio loop of `trio.run` is the
node's loop; the load generators stay outside it, in other processes or worker threads),
both the node's own tree (`supervisors.node_tree`), from different parts:
- `running_memory_api`: over a `MemoryBackend` whose machines "run sshd" at a banner
  server of ours, with room for many VMs, port checks skipped, optionally with the API's
  payment gate on (`payments`, as `prepare_node` resolves them; no stream monitor, no
  wallet);
- `running_node`: the real node, `prepare_node(settings)`, in a temp data directory whose
  guest cache is the shared test-guest cache (nothing is rebuilt).
The client helpers block (sockets, sync httpx): run them with `trio.to_thread.run_sync`.
"""

from __future__ import annotations

import gc
import io
import os
import random
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psutil
import trio

from actors.api import ApiActor
from golem_actor.adapters.backend import Endpoint, VmBackend
from golem_actor.adapters.backend.memory import MemoryBackend
from golem_actor.domain.resources import Resources
from golem_actor.images import load_catalog
from golem_actor.kernel import Inbox
from golem_actor.settings import Settings, load_settings
from golem_actor.state_store import StateStore
from supervisors import NodeParts, NodeTree, node_tree, prepare_node
from supervisors.payments import Payments

HOST = "127.0.0.1"
BANNER = b"SSH-2.0-bench_sshd\r\n"
MEMORY_TOKEN = "bench-operator-token-0123456789abcdef0123"
MEMORY_PROVIDER = "0x" + "ab" * 20


# -- ports ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def free_port_block(size: int) -> range:
    """`size` consecutive ports that are free on 127.0.0.1 right now."""
    for _ in range(100):
        base = random.randrange(20000, 40000)
        ports = range(base, base + size)
        try:
            for port in ports:
                with socket.socket() as probe:
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    probe.bind((HOST, port))
        except OSError:
            continue
        return ports
    raise RuntimeError(f"no block of {size} free ports")


# -- a node over the in-memory backend -----------------------------------------------


@dataclass(frozen=True)
class ApiNode:
    url: str  # ".../api/v1"
    token: str  # the operator's bearer token


async def _fake_sshd(stream: trio.SocketStream) -> None:
    """An SSH banner, then EOF: all the lifecycle's probe needs."""
    async with stream:
        with suppress(trio.BrokenResourceError):
            await stream.send_all(BANNER)


def memory_parts(
    backend: VmBackend,
    data: Path,
    vms: int,
    *,
    payments: Payments | None = None,
    provider: str = MEMORY_PROVIDER,
) -> NodeParts:
    """The node's parts with `backend`, sized for `vms` small VMs, API on a free port.

    `payments`: the API's create gate is on (no stream monitor, no wallet); `provider`:
    the node's address (a gated stream must pay it). The lifecycle writes the VM -> stream
    map to `<data>/streams.json` on each save, as the node's does.
    """
    ports = free_port_block(vms)
    settings = Settings(  # built directly: `load_settings` would refuse port 0
        data_dir=str(data),
        host=HOST,
        port=0,
        payments_network="none",
        max_vms=vms,
        launch_timeout_seconds=10.0,
        reserve_cpu_cores=0,
        reserve_memory_gb=0,
        reserve_storage_gb=0,
        ssh_listen_host=HOST,
        ssh_idle_timeout_seconds=600.0,
        ssh_max_connections_per_vm=4,
        port_range_start=ports.start,
        port_range_end=ports.stop,
        public_ip=HOST,
        port_check_servers=[],
        skip_port_verification=True,  # loopback only
        stream_monitor_enabled=False,
        stream_min_remaining_seconds=0 if payments is None else payments.gate.min_remaining,
    )
    return NodeParts(
        settings=settings,
        backend=backend,
        catalog=load_catalog(None),
        store=StateStore(data),
        operator_token=MEMORY_TOKEN,
        provider_id=provider,
        platform="x86_64",
        payments=payments,
        host_capacity=Resources.from_gb(cpus=2 * vms, memory_gb=2 * vms, storage_gb=20 * vms),
        version="bench",
    )


@asynccontextmanager
async def running_memory_api(
    data: Path,
    vms: int,
    *,
    payments: Payments | None = None,
    provider: str = MEMORY_PROVIDER,
    adjust: Callable[[NodeParts], NodeParts] | None = None,
) -> AsyncIterator[ApiNode]:
    """The tree of `memory_parts` (changed by `adjust`) in this trio loop until the block
    ends."""
    async with trio.open_nursery() as nursery:
        sshd = partial(trio.serve_tcp, _fake_sshd, 0, host=HOST)
        listeners = await nursery.start(sshd)
        backend = MemoryBackend(ssh=Endpoint(HOST, listeners[0].socket.getsockname()[1]))
        parts = memory_parts(backend, data, vms, payments=payments, provider=provider)
        tree = node_tree(parts if adjust is None else adjust(parts))
        await nursery.start(tree.root.run, Inbox("node"))
        gc.freeze()  # as golem_actor.runtime.run_node does once the tree is ready
        try:
            yield ApiNode(_api_url(tree), MEMORY_TOKEN)
        finally:
            tree.root.request_stop()
            nursery.cancel_scope.cancel()


def _api_url(tree: NodeTree) -> str:
    api: ApiActor = tree.root.child_actor("api")
    return api.bound[0] + "/api/v1"


# -- the real node -------------------------------------------------------------------


def guest_cache_dir() -> Path:
    """The test-guest cache the e2e tests share (`GOLEM_TEST_CACHE`, else ~/.cache/...)."""
    env = os.environ.get("GOLEM_TEST_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "golem-actor-tests"


def node_settings(data: Path, guest_cache: Path, *, ssh_port: int) -> Settings:
    """A loopback-only QEMU node in `data` whose one public SSH port is `ssh_port`.

    One port means the bench knows a VM's public port before the create answers.
    Port verification is skipped: nothing is asked of the Internet. The CPU and storage
    thresholds never bound (a busy machine would otherwise refuse the timed creates).
    The backend's guest cache `<data>/guest` is a symlink to `guest_cache`.
    """
    data.mkdir(parents=True, exist_ok=True)
    (data / "guest").symlink_to(guest_cache.absolute(), target_is_directory=True)
    return load_settings(
        env={},
        cli={
            "data_dir": str(data),
            "host": HOST,
            "port": free_port(),
            "vm_backend": "qemu",
            "qemu_accel": "tcg",
            "ssh_listen_host": HOST,
            "port_range_start": ssh_port,
            "port_range_end": ssh_port + 1,
            "max_vms": 1,
            "skip_port_verification": True,  # no port-check servers: loopback only
            "payments_network": "none",  # no L2 chain either
            "coingecko_api_url": ["http://127.0.0.1:9/api/v3"],  # nor a price feed
            "reserve_memory_gb": 0,
            "reserve_storage_gb": 0,
            # A bench times creates: a busy shared machine must not refuse them.
            "cpu_threshold": 100.0,
            "storage_threshold": 100.0,
            "launch_timeout_seconds": 60.0,
            "log_format": "json",
        },
    )


@asynccontextmanager
async def running_node(settings: Settings, *, stop_bound: float = 30.0) -> AsyncIterator[ApiNode]:
    """The node of `settings` (`prepare_node`, then `node_tree`) in this trio loop."""
    parts = await trio.to_thread.run_sync(prepare_node, settings)
    tree = node_tree(parts)
    async with trio.open_nursery() as nursery:
        await nursery.start(tree.root.run, Inbox("node"))
        gc.freeze()  # as golem_actor.runtime.run_node does once the tree is ready
        try:
            yield ApiNode(_api_url(tree), parts.operator_token)
        finally:
            tree.root.request_stop()  # graceful: the API drains, the lifecycle saves its state
            nursery.cancel_scope.deadline = trio.current_time() + stop_bound


# -- client side (blocking: run in worker threads) -----------------------------------


def http(
    method: str, url: str, token: str, body: Any = None, *, timeout: float = 30.0
) -> tuple[int, Any]:
    """One request with the bearer token: (status, decoded JSON body)."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(timeout=timeout) as client:
        reply = client.request(method, url, headers=headers, json=body)
    return reply.status_code, reply.json()


def read_banner(port: int, timeout: float = 2.0, ports: set[int] | None = None) -> bytes | None:
    """One attempt at an `SSH-` banner on 127.0.0.1:`port` (None: refused, closed, ...).

    `ports` collects the local port of each connection made (to tell ours apart in logs).
    """
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            if ports is not None:
                ports.add(sock.getsockname()[1])
            received = b""
            while b"\n" not in received and len(received) < 255:
                chunk = sock.recv(255)
                if not chunk:
                    break
                received += chunk
    except OSError:
        return None
    return received if received.startswith(b"SSH-") else None


def poll_banner(
    port: int,
    deadline: float,
    stop: threading.Event,
    interval: float,
    *,
    attempt: float = 0.25,
    ports: set[int] | None = None,
) -> float | None:
    """`time.monotonic()` when a banner was first read on `port`; None on deadline/stop.

    A fresh connection every `interval`, each bounded to `attempt` seconds.
    """
    while time.monotonic() < deadline and not stop.is_set():
        if read_banner(port, attempt, ports) is not None:
            return time.monotonic()
        time.sleep(interval)
    return None


def cpu_busy(seconds: float = 0.3) -> float:
    """The machine's CPU use (0-100 %, all cores) over `seconds`."""
    return psutil.cpu_percent(interval=seconds)


async def idle_gate(max_busy: float = 30.0, bound: float = 10.0) -> float:
    """Wait (up to `bound` s) until the machine is idle-ish; the last CPU use seen."""
    busy = 100.0
    with trio.move_on_after(bound):
        while True:
            busy = await trio.to_thread.run_sync(cpu_busy)
            if busy <= max_busy:
                break
    return busy


# -- log capture ---------------------------------------------------------------------


class LogRecorder(io.StringIO):
    """A stream for `configure_logging` that keeps each line with `time.monotonic()`."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        now = time.monotonic()
        with self._lock:
            self.lines.extend((now, line) for line in text.splitlines() if line.strip())
        return len(text)


# -- processes -----------------------------------------------------------------------


def processes_mentioning(needle: str) -> list[psutil.Process]:
    """Live processes whose command line mentions `needle` (our temp dir: our QEMUs), or
    that run in a directory under it (QEMUs of the node's backend), and the pastas of
    those (their command line names QEMU's network namespace)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        cmdline = proc.info.get("cmdline") or []
        cwd = proc.info.get("cwd") or ""
        if any(needle in part for part in cmdline) or cwd.startswith(needle):
            found.append(proc)
    marks = {f"/proc/{proc.pid}/ns/net" for proc in found}
    for proc in psutil.process_iter(["cmdline"]):
        if marks.intersection(proc.info.get("cmdline") or []):
            found.append(proc)
    return found


def kill_all(procs: list[psutil.Process], timeout: float = 10.0) -> None:
    for proc in procs:
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(procs, timeout=timeout)
