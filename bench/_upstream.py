"""The two servers of `bench api --against-upstream`, as processes the bench measures alike.

Why: every later claim about the API's speed is a ratio against the provider it replaces
(PyPI `golem-vm-provider`, FastAPI on uvicorn), so both must run under the same
conditions: the same fake `multipass` executable (tests/fakes/fake_multipass.py, one state
file each), capacity for the same number of VMs, loopback only, logs at their defaults
(one line per request on both sides) into a file.

How upstream is made to run offline, the closest honest way (the table's footer says so):
- it is installed by .ci/install-upstream-provider.sh into .tools/upstream-provider;
- a `sitecustomize` (on its PYTHONPATH only) makes psutil report 20 logical CPUs, 20 GiB
  available memory and 200 GiB free disk, which is how upstream sizes itself: room for
  `VMS` VMs of 1 CPU / 1 GB / 10 GB, as ours gets through its capacity;
- the same file makes name lookups of anything but localhost fail at once, as on a
  machine without DNS: upstream's advertiser asks three public services for its address
  at start-up (it ignores PUBLIC_IP), and with a resolver that times out that would be
  start-up time spent waiting on the network, not the provider's own;
- payments off (zero stream payment address), advertiser `discovery_server` pointed at a
  closed loopback port with one retry, pricing updates and the stream monitor off, its
  SSH port range and API port on free loopback ports; it runs as `golem-provider start
  --no-verify-port` with a HOME in the bench's temp dir.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from ._node import HOST, MEMORY_TOKEN, free_port, free_port_block

REPO = Path(__file__).resolve().parents[1]
UPSTREAM_VENV = REPO / ".tools" / "upstream-provider"
INSTALL_SCRIPT = REPO / ".ci" / "install-upstream-provider.sh"
FAKE_MULTIPASS = REPO / "tests" / "fakes" / "fake_multipass.py"
ZERO_ADDRESS = "0x" + "00" * 20
CLOSED = f"http://{HOST}:9"  # the discard port: nothing listens there

SITECUSTOMIZE = """\
# Written by bench/_upstream.py for the upstream provider's process only.
import socket
import psutil

_virtual_memory, _disk_usage = psutil.virtual_memory, psutil.disk_usage
psutil.cpu_count = lambda logical=True: {vms}
psutil.virtual_memory = lambda: _virtual_memory()._replace(available={vms} * 2**30)
psutil.disk_usage = lambda path: _disk_usage(path)._replace(free={vms} * 10 * 2**30)

_getaddrinfo = socket.getaddrinfo
_LOCAL = ("localhost", "127.0.0.1", "::1", b"localhost", b"127.0.0.1")

def _loopback_only(host, *args, **kwargs):
    if host is not None and host not in _LOCAL and not str(host).startswith("127."):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (bench: offline)")
    return _getaddrinfo(host, *args, **kwargs)

socket.getaddrinfo = _loopback_only
"""


def install_upstream() -> Path:
    """The upstream venv's `golem-provider`, installed first if it is not there."""
    subprocess.run([str(INSTALL_SCRIPT)], check=True)
    return UPSTREAM_VENV / "bin" / "golem-provider"


def multipass_wrapper(directory: Path) -> Path:
    """An executable `multipass` running the fake under this interpreter (`-S`: stdlib)."""
    binary = directory / "multipass"
    binary.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "{FAKE_MULTIPASS}" "$@"\n')
    binary.chmod(0o755)
    return binary


@dataclass
class Server:
    """One server process: how to start it, and what was seen of it."""

    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    log: Path
    cpu_pin: set[int] | None
    process: subprocess.Popen[bytes] | None = None
    startup_s: float = 0.0
    idle_rss: int = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/api/v1"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 120.0) -> None:
        """Start it; wait until `GET /provider/info` answers 200 (the start-up time)."""
        log = self.log.open("ab")
        began = time.monotonic()
        self.process = subprocess.Popen(
            self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.log.parent
        )
        log.close()
        if self.cpu_pin is not None:
            psutil.Process(self.pid).cpu_affinity(sorted(self.cpu_pin))
        with httpx.Client(timeout=1.0) as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited at start-up; see {self.log}")
                try:
                    if client.get(f"{self.url}/provider/info").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() - began > timeout:
                    raise RuntimeError(f"{self.name} did not answer within {timeout:g}s")
                time.sleep(0.02)
        self.startup_s = time.monotonic() - began
        time.sleep(2.0)  # let start-up work settle before reading the idle RSS
        self.idle_rss = psutil.Process(self.pid).memory_info().rss

    def cpu_seconds(self) -> float:
        """CPU time of the server and of its reaped children (the multipass calls)."""
        times = psutil.Process(self.pid).cpu_times()
        return times.user + times.system + times.children_user + times.children_system

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20.0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _base_env(state: Path) -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "TZ")
    env = {key: os.environ[key] for key in keep if key in os.environ}
    env["FAKE_MULTIPASS_STATE"] = str(state)
    return env


def ours(
    tmp: Path,
    multipass: Path,
    vms: int,
    cpu_pin: set[int] | None,
    *,
    sshd_port: int = 0,
    max_connections: int = 4,
) -> Server:
    """Our node (`bench._api_server`) on `multipass`, in a fresh data dir under `tmp`;
    `sshd_port`: the VMs' SSH endpoint (0: the node's own banner server)."""
    data = tmp / "ours-data"
    data.mkdir()
    port = free_port()
    env = _base_env(tmp / "ours-multipass.json")
    env["HOME"] = str(tmp)
    env["PYTHONPATH"] = str(REPO)
    argv = [sys.executable, "-m", "bench._api_server", str(data), str(port), str(multipass)]
    argv += [str(vms), str(sshd_port), str(max_connections)]
    return Server("ours", argv, env, port, tmp / "ours.log", cpu_pin)


def upstream(
    tmp: Path, binary: Path, multipass: Path, vms: int, cpu_pin: set[int] | None
) -> Server:
    """The upstream provider on `multipass`, configured as the module's opening says."""
    home = tmp / "upstream-home"
    site = tmp / "upstream-site"
    home.mkdir()
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE.format(vms=vms))
    port = free_port()
    ssh_ports = free_port_block(vms)
    env = _base_env(tmp / "upstream-multipass.json")
    env |= {
        "HOME": str(home),
        "PYTHONPATH": str(site),
        "GOLEM_PROVIDER_MULTIPASS_BINARY_PATH": str(multipass),
        "GOLEM_PROVIDER_HOST": HOST,
        "GOLEM_PROVIDER_PORT": str(port),
        "GOLEM_PROVIDER_PUBLIC_IP": HOST,
        "GOLEM_PROVIDER_PORT_RANGE_START": str(ssh_ports.start),
        "GOLEM_PROVIDER_PORT_RANGE_END": str(ssh_ports.stop),
        "GOLEM_PROVIDER_STREAM_PAYMENT_ADDRESS": ZERO_ADDRESS,
        "GOLEM_PROVIDER_ADVERTISER_TYPE": "discovery_server",
        "GOLEM_PROVIDER_DISCOVERY_URL": CLOSED,
        "GOLEM_PROVIDER_POLYGON_RPC_URL": CLOSED,
        "GOLEM_PROVIDER_GOLEM_BASE_RPC_URL": CLOSED,
        "GOLEM_PROVIDER_GOLEM_BASE_WS_URL": f"ws://{HOST}:9",
        "GOLEM_PROVIDER_COINGECKO_API_URL": CLOSED,
        "GOLEM_PROVIDER_FAUCET_URL": CLOSED,
        "GOLEM_PROVIDER_L2_FAUCET_URL": CLOSED,
        "GOLEM_PROVIDER_PRICING_UPDATE_ENABLED": "false",
        "GOLEM_PROVIDER_STREAM_MONITOR_ENABLED": "false",
        "GOLEM_PROVIDER_RETRY_ATTEMPTS": "1",
        "GOLEM_PROVIDER_RETRY_DELAY_SECONDS": "0.05",
    }
    argv = [str(binary), "start", "--no-verify-port"]
    return Server("upstream", argv, env, port, tmp / "upstream.log", cpu_pin)


__all__ = ["MEMORY_TOKEN", "Server", "install_upstream", "multipass_wrapper", "ours", "upstream"]
