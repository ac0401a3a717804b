"""VM to VM TCP throughput through the vpn_router, against the same two guests' user
networking, in the same run (part of `python -m bench vpn`).

Two test guests (1 CPU / 256 MiB each, TCG) launched by `QemuBackend` as the node does
(VM user, seccomp, own namespaces, a VPN NIC each), and a `VpnRouter` actor in this
process over their VM directories; both join one network and take their addresses by
DHCP. Each round moves `MB` megabytes (10^6 bytes) from guest A to guest B, timed from
the sender's start until the receiver has counted every byte:
- vpn: `head -c N /dev/zero | nc B 5000` in A, `nc -l -p 5000 | wc -c` in B, over the
  virtual IPs: guest kernel TCP, QEMU's dgram NIC, the router's switch;
- user networking (baseline): the only way between two guests whose user networks are
  isolated from each other: out of A through its SSH forward and into B through its
  own (`ssh A 'head -c N /dev/zero' | ssh B 'wc -c'`), so the bytes also cross each
  guest's dropbear, which encrypts in software under TCG.
Medians of `ROUNDS` rounds, vpn / user ratio. TCG guests are the bottleneck on both
paths; read the ratio, not the absolutes (yagna publishes 13-37 MB/s provider to provider
on real hardware). `GOLEM_BENCH_VPN_MB`/`_ROUNDS` shorten it; `GOLEM_BENCH_VPN_VMS=0`
skips it. `GOLEM_BENCH_VPN_MTU` creates the network with that MTU (the Net API's `mtu`
extension; default Golem's 1220): the guests' cost is per packet, which is why the vpn
path trails at 1220 and catches up at 9000 (README, "Benchmarks").
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import trio

from actors.vpn_router import AddNode, CreateNetwork, GetVpnStats, VpnRouter
from golem_actor.adapters.backend import LaunchSpec
from golem_actor.adapters.guest import build_test_guest
from golem_actor.adapters.qemu import QemuBackend
from golem_actor.domain.resources import Resources
from golem_actor.domain.tenancy import Caller
from golem_actor.domain.vpn.switch import DEFAULT_MTU
from golem_actor.images import load_catalog
from golem_actor.kernel import ChildSpec, Inbox, Supervisor
from golem_actor.keys import generate_ssh_keypair
from golem_actor.state_store import StateStore

from ._node import guest_cache_dir, kill_all, processes_mentioning

MB = int(os.environ.get("GOLEM_BENCH_VPN_MB", "20"))
MTU = int(os.environ.get("GOLEM_BENCH_VPN_MTU", str(DEFAULT_MTU)))
ROUNDS = int(os.environ.get("GOLEM_BENCH_VPN_ROUNDS", "3"))
RESOURCES = Resources(cpus=1, memory_mib=256, storage_gib=1)
IPS = {"a": "10.40.0.2", "b": "10.40.0.3"}
BOUND = 600.0


def _ssh(key: Path, port: int, command: str) -> list[str]:
    return [
        "ssh", "-F", "/dev/null", "-i", str(key), "-p", str(port),
        "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10",
        "root@127.0.0.1", command,
    ]  # fmt: skip


def _run(key: Path, port: int, command: str) -> str:
    result = subprocess.run(_ssh(key, port, command), capture_output=True, timeout=60, check=False)
    return result.stdout.decode()


def _through_vpn(key: Path, ports: dict[str, int]) -> float:
    """Seconds for MB MB from A to B over the VPN (blocking)."""
    # the receiver's stdin stays open: busybox nc -l quits when its stdin ends
    with subprocess.Popen(
        _ssh(key, ports["b"], "nc -l -p 5000 | wc -c"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ) as receiver:
        time.sleep(1.0)  # until it listens
        began = time.perf_counter()
        sender = f"head -c {MB * 10**6} /dev/zero | nc {IPS['b']} 5000"
        subprocess.run(_ssh(key, ports["a"], sender), timeout=BOUND, check=True)
        assert receiver.stdout is not None
        counted = receiver.stdout.readline().decode().strip()
        elapsed = time.perf_counter() - began
        assert receiver.stdin is not None
        receiver.stdin.close()
    if int(counted or 0) != MB * 10**6:
        raise RuntimeError(f"vpn: {counted} bytes arrived, not {MB} MB")
    return elapsed


def _through_user_networking(key: Path, ports: dict[str, int]) -> float:
    """Seconds for MB MB from A to B through the host and both SSH forwards (blocking)."""
    began = time.perf_counter()
    with subprocess.Popen(
        _ssh(key, ports["a"], f"head -c {MB * 10**6} /dev/zero"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ) as source:
        counted = subprocess.run(
            _ssh(key, ports["b"], "wc -c"),
            stdin=source.stdout,
            capture_output=True,
            timeout=BOUND,
            check=True,
        ).stdout.decode()
    elapsed = time.perf_counter() - began
    if int(counted.strip() or 0) != MB * 10**6:
        raise RuntimeError(f"user networking: {counted!r} bytes arrived, not {MB} MB")
    return elapsed


async def _until(check: str, key: Path, port: int, bound: float = 120.0) -> None:
    with trio.fail_after(bound):
        while True:
            if check in await trio.to_thread.run_sync(_run, key, port, "ip -4 addr; echo ok"):
                return
            await trio.sleep(0.5)


async def run() -> dict[str, float]:
    if os.environ.get("GOLEM_BENCH_VPN_VMS") == "0":
        return {}
    missing = [t for t in ("qemu-system-x86_64", "qemu-img", "pasta", "ssh") if not shutil.which(t)]
    if missing:
        print(f"vpn VMs: missing {', '.join(missing)} (run .ci/install-guest-deps.sh)")
        return {}
    await build_test_guest(guest_cache_dir())
    private, public_key = await trio.to_thread.run_sync(generate_ssh_keypair, "bench")
    work = Path(tempfile.mkdtemp(prefix="bench-vpn-", dir="/tmp"))
    key = work / "key"
    key.write_text(private)
    key.chmod(0o600)
    vms = work / "vms"
    backend = QemuBackend(vms_dir=vms, guest_cache=guest_cache_dir(), catalog=load_catalog())
    router = ChildSpec(
        "vpn_router",
        lambda: VpnRouter(store=StateStore(work / "state"), vm_dir=lambda vm_id: vms / vm_id),
    )
    tree = Supervisor("bench", [router], intensity=1, period=60.0)
    samples: dict[str, list[float]] = {"vpn": [], "user networking": []}
    ports: dict[str, int] = {}
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(tree.run, Inbox("bench"))
            vpn = tree.address_of(router)

            async def launch(name: str) -> None:
                spec = LaunchSpec(
                    vm_id=f"bench-vpn-{name}",
                    hostname=name,
                    resources=RESOURCES,
                    image="test-guest",
                    authorized_keys=(public_key,),
                )
                observed = await backend.launch(spec)
                assert observed.ssh is not None
                ports[name] = observed.ssh.port

            async with trio.open_nursery() as boots:
                for name in IPS:
                    boots.start_soon(launch, name)
            operator = Caller(operator=True)
            net = await vpn.call(CreateNetwork(caller=operator, ip="10.40.0.0/24", mtu=MTU))
            for name, ip in IPS.items():
                await vpn.call(
                    AddNode(
                        caller=operator,
                        network_id=net.id,
                        node_id=f"bench-vpn-{name}",
                        ip=ip,
                        vm=True,
                    )
                )
            for name, ip in IPS.items():
                await _until(f"inet {ip}/24", key, ports[name])
            print(f"vpn VMs: {ROUNDS} rounds of {MB} MB from guest A to guest B, VPN MTU {MTU}")
            for _ in range(ROUNDS):
                for case, transfer in (
                    ("vpn", _through_vpn),
                    ("user networking", _through_user_networking),
                ):
                    with trio.fail_after(BOUND):
                        seconds = await trio.to_thread.run_sync(transfer, key, ports)
                    samples[case].append(MB / seconds)
            stats = await vpn.call(GetVpnStats())
            nursery.cancel_scope.cancel()
    finally:
        for name in IPS:
            await backend.delete(f"bench-vpn-{name}")
        stray = await trio.to_thread.run_sync(processes_mentioning, str(work))
        await trio.to_thread.run_sync(kill_all, [p for p in stray if p.pid != os.getpid()])
        await trio.to_thread.run_sync(shutil.rmtree, work, True)
    medians = {case: statistics.median(values) for case, values in samples.items()}
    for case, value in medians.items():
        shown = ", ".join(f"{v:.2f}" for v in samples[case])
        print(f"  {case:<16} {value:8.2f} MB/s   ({shown})")
    ratio = medians["vpn"] / medians["user networking"]
    print(f"  vpn / user networking = {ratio:.2f}x (yagna, provider to provider: 13-37 MB/s)")
    dropped = stats.totals.get("egress_dropped", 0)
    print(f"  router: {stats.totals.get('frames_in', 0):,} frames in, {dropped} dropped")
    return {
        "vm_vpn_mbps": medians["vpn"],
        "vm_user_networking_mbps": medians["user networking"],
        "vm_vpn_ratio": ratio,
    }
