"""Boot benchmark: the node's create-to-SSH time against the guest's own boot-to-sshd time.

What is measured, in the same run, alternating direct/node after one unrecorded warm-up
of each, medians of 3:
- direct (baseline): the test guest booted by hand exactly as `QemuBackend` boots it
  (`qemu_argv(QemuSpec(...))` with the same CPUs, memory, TCG, empty qcow2 data disk,
  NoCloud seed, `-daemonize`), timed from exec to the first `SSH-` banner read on the
  forwarded port;
- node: `supervisors.build_node(settings)`'s tree running in this process (temp data dir, QEMU
  backend, TCG, guest cache symlinked to the shared test-guest cache, one public SSH
  port), timed from sending `POST /api/v1/vms` (synchronous: it answers once SSH works)
  to its answer, and separately to the first banner read through the VM's public port
  (the SSH proxy). Each VM is deleted through the API afterwards.
Overhead = node create-to-answer - direct boot-to-banner (target: <= 0.5 s).

The client side stays out of the node's trio loop: the HTTP request and the banner
pollers run in worker threads on blocking sockets. A poller tries a fresh connection
every 20 ms, each attempt bounded to 0.25 s: under QEMU user networking a connection
made before the guest's network is up is accepted by slirp on the host and then hangs
until slirp's SYN retransmission reaches the guest (seconds later), so a long attempt
would measure slirp's backoff, not the guest. The node's timeline (from its own log
events, captured at info level during node runs) splits the create into admission,
backend launch, guest boot until a banner is readable through the proxy, the node's
own probe noticing it, and the API answering.

TCG boots move by ~10 % between runs on a busy 2-core VM; the overhead (a difference of
two such numbers) is noisy to about +-0.2 s, read it with the breakdown.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import trio

from golem_actor.adapters.guest import GuestImage, build_test_guest, make_nocloud_seed
from golem_actor.adapters.qemu import QemuSpec, qemu_argv
from golem_actor.adapters.ssh_probe import FIRST_ATTEMPT, LAST_ATTEMPT, RETRY_DELAY
from golem_actor.domain.resources import Resources
from golem_actor.keys import generate_ssh_keypair
from golem_actor.logs import configure_logging

from ._node import (
    ApiNode,
    LogRecorder,
    free_port,
    free_port_block,
    guest_cache_dir,
    http,
    idle_gate,
    kill_all,
    node_settings,
    poll_banner,
    processes_mentioning,
    running_node,
)

RUNS = 3
TARGET_OVERHEAD = 0.5
RESOURCES = Resources.from_gb(cpus=1, memory_gb=1, storage_gb=10)  # the API's minimum
POLL_INTERVAL = 0.02
ATTEMPT = 0.25  # bound of one attempt of our pollers
BOOT_BOUND = 60.0
IDLE_BOUND = 3.0  # how long a run waits for the machine to calm down
# node milestones, from its log events (first one for the VM after the request)
MILESTONES = ("vm creating", "vm_running", "ssh ready")
_SSHD_STARTING = re.compile(r"golem-guest: \[([\d.]+)\] sshd starting")


def guest_sshd_uptime(serial_log: Path) -> float:
    """The guest's own uptime when its init started sshd (from the serial log; nan if none)."""
    try:
        found = _SSHD_STARTING.search(serial_log.read_text(errors="replace"))
    except OSError:
        return math.nan
    return float(found.group(1)) if found else math.nan


@dataclass
class DirectSample:
    daemonized: float  # exec -> the QEMU parent exits (machine set up, hostfwd bound)
    banner: float  # exec -> first banner on the forwarded port
    sshd: float  # the guest's uptime when it started sshd (its serial log)


@dataclass
class NodeSample:
    answer: float  # POST sent -> answer
    banner: float  # POST sent -> first banner through the public port
    sshd: float  # the guest's uptime when it started sshd (its serial log)
    milestones: dict[str, float] = field(default_factory=dict)  # POST sent -> log event
    probe_attempts: list[float] = field(default_factory=list)  # POST sent -> node probe try


async def _banner_after(
    port: int, began: float, stop: threading.Event, ports: set[int] | None = None
) -> float:
    """Seconds from `began` to the first banner on `port` (worker thread, blocking)."""
    seen = await trio.to_thread.run_sync(
        lambda: poll_banner(
            port, began + BOOT_BOUND, stop, POLL_INTERVAL, attempt=ATTEMPT, ports=ports
        )
    )
    if seen is None:
        raise RuntimeError(f"no SSH banner on port {port} within {BOOT_BOUND:g}s")
    return seen - began


async def direct_boot(guest: GuestImage, work: Path, public_key: str, n: int) -> DirectSample:
    """Boot the guest as `QemuBackend` does; exec -> banner. The QEMU is killed after."""
    vm = work / f"direct-{n}"
    vm.mkdir()
    disk, seed = vm / "disk.qcow2", vm / "seed.iso"
    disk_argv = ["qemu-img", "create", "-q", "-f", "qcow2", str(disk)]
    await trio.run_process([*disk_argv, str(RESOURCES.storage_gib << 30)])
    await trio.to_thread.run_sync(
        lambda: make_nocloud_seed(
            seed, authorized_keys=[public_key], hostname=f"direct-{n}", instance_id=f"iid-d{n}"
        )
    )
    port = free_port()
    spec = QemuSpec(
        cpus=RESOURCES.cpus,
        memory_mib=RESOURCES.memory_mib,
        qmp_socket=vm / "qmp.sock",
        kernel=guest.kernel,
        initrd=guest.initrd,
        append=guest.append,
        seed=seed,
        disk=disk,
        ssh_port=port,
        pidfile=vm / "qemu.pid",
        serial_log=vm / "serial.log",
        accel="tcg",
        daemonize=True,
        name=f"bench-direct-{n}",
    )
    stop = threading.Event()
    with (vm / "qemu.log").open("wb") as stderr:
        began = time.monotonic()
        await trio.run_process(
            qemu_argv(spec), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr
        )
    daemonized = time.monotonic() - began
    try:
        banner = await _banner_after(port, began, stop)
        sshd = await trio.to_thread.run_sync(guest_sshd_uptime, vm / "serial.log")
    finally:
        pid = int((vm / "qemu.pid").read_text())
        await trio.to_thread.run_sync(kill_all, [psutil.Process(pid)])
    return DirectSample(daemonized, banner, sshd)


async def node_create(
    node: ApiNode, vms_dir: Path, port: int, public_key: str, n: int, log: LogRecorder
) -> NodeSample:
    """POST a VM (synchronous create); time the answer and the public banner; delete it."""
    body = {
        "name": f"boot-{n}",
        "resources": {"cpu": RESOURCES.cpus, "memory": RESOURCES.memory_gb, "storage": 10},
        "ssh_key": public_key,
        "image": "test-guest",
    }
    stop = threading.Event()
    banner: list[float] = []
    ours: set[int] = set()  # local ports of our poller's connections
    began = time.monotonic()
    async with trio.open_nursery() as nursery:

        async def poller() -> None:
            banner.append(await _banner_after(port, began, stop, ours))

        nursery.start_soon(poller)
        try:
            status, reply = await trio.to_thread.run_sync(
                lambda: http("POST", f"{node.url}/vms", node.token, body, timeout=BOOT_BOUND)
            )
            answered = time.monotonic() - began
        except BaseException:
            stop.set()
            raise
        if status != 200:
            stop.set()
            raise RuntimeError(f"create answered HTTP {status}: {reply}")
    vm_id = reply["id"]
    if reply["ssh_port"] != port:
        raise RuntimeError(f"VM {vm_id} got public port {reply['ssh_port']}, expected {port}")
    sshd = await trio.to_thread.run_sync(guest_sshd_uptime, vms_dir / vm_id / "serial.log")
    status, gone = await trio.to_thread.run_sync(
        lambda: http("DELETE", f"{node.url}/vms/{vm_id}", node.token, timeout=BOOT_BOUND)
    )
    if status != 200:
        raise RuntimeError(f"delete of {vm_id} answered HTTP {status}: {gone}")
    milestones, attempts = _timeline(log, vm_id, began, ours)
    return NodeSample(answered, banner[0], sshd, milestones, attempts)


def _timeline(
    log: LogRecorder, vm_id: str, began: float, ours: set[int]
) -> tuple[dict[str, float], list[float]]:
    """From the node's log: seconds from `began` to the VM's first events of `MILESTONES`,
    and to each connection the node's own probe opened through the proxy until 'ssh ready'
    (the proxied connections that are not our poller's, told apart by client port)."""
    found: dict[str, float] = {}
    probes: list[float] = []
    for at, line in log.lines:
        if at < began:
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("vm_id") != vm_id:
            continue
        name = event.get("event")
        if name in MILESTONES and name not in found:
            found[name] = at - began
        if name == "ssh connection opened" and "ssh ready" not in found:
            client_port = int(str(event.get("client", ":0")).rsplit(":", 1)[1])
            if client_port not in ours:
                probes.append(at - began)
    return found, probes


async def run(runs: int = RUNS) -> dict[str, float]:
    if shutil.which("qemu-system-x86_64") is None or shutil.which("qemu-img") is None:
        print("boot: qemu-system-x86_64 or qemu-img not found (qemu-system-x86, qemu-utils)")
        return {}
    cache = guest_cache_dir()
    print(f"boot: test guest from {cache} (built there first if missing: minutes)")
    guest = await build_test_guest(cache)
    _, public_key = await trio.to_thread.run_sync(generate_ssh_keypair, "bench")
    direct: list[DirectSample] = []
    node_runs: list[NodeSample] = []
    log = LogRecorder()
    work = Path(tempfile.mkdtemp(prefix="bench-boot-"))
    leftovers = 0
    busiest = 0.0
    try:
        port = free_port_block(1).start
        settings = node_settings(work / "node", guest_cache=cache, ssh_port=port)
        vms_dir = settings.data_path / "vms"  # QemuBackend's: <vms_dir>/<vm_id>/serial.log
        configure_logging(fmt="json", level="info", stream=log)  # the node's timeline
        async with running_node(settings) as node:
            for n in range(runs + 1):  # n == 0: warm-up of each, not recorded
                busiest = max(busiest, await idle_gate(bound=IDLE_BOUND))
                d = await direct_boot(guest, work, public_key, n)
                busiest = max(busiest, await idle_gate(bound=IDLE_BOUND))
                s = await node_create(node, vms_dir, port, public_key, n, log)
                if n > 0:
                    direct.append(d)
                    node_runs.append(s)
    finally:
        configure_logging(fmt="console", level="warning")
        stray = await trio.to_thread.run_sync(processes_mentioning, str(work))
        leftovers = len(stray)
        await trio.to_thread.run_sync(kill_all, stray)
        await trio.to_thread.run_sync(shutil.rmtree, work, True)
    return _report(direct, node_runs, guest, leftovers, busiest)


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _report(
    direct: list[DirectSample],
    node: list[NodeSample],
    guest: GuestImage,
    leftovers: int,
    busiest: float,
) -> dict[str, float]:
    cpus = os.cpu_count() or 1
    print(
        f"boot: test guest {guest.version}, {RESOURCES.cpus} vCPU, {RESOURCES.memory_mib} MiB,"
        f" TCG, {cpus} host CPUs; median of {len(direct)} runs each, alternated"
    )
    print(f"  machine CPU before runs <= {busiest:.0f}% (idle gate 30%, {IDLE_BOUND:g} s at most)")
    d_banner = _median([s.banner for s in direct])
    d_daemon = _median([s.daemonized for s in direct])
    n_answer = _median([s.answer for s in node])
    n_banner = _median([s.banner for s in node])
    overhead = n_answer - d_banner

    def row(label: str, median: float, values: list[float]) -> None:
        each = " ".join(f"{v:.2f}" for v in values)
        print(f"  {label:<42}{median:6.2f} s   [{each}]")

    row("direct  exec -> banner on forwarded port", d_banner, [s.banner for s in direct])
    row("node    POST -> answer (SSH works)", n_answer, [s.answer for s in node])
    row("node    POST -> banner via public port", n_banner, [s.banner for s in node])
    verdict = "met" if overhead <= TARGET_OVERHEAD else "MISSED"
    print(
        f"  overhead = node answer - direct banner = {overhead:+.2f} s"
        f" (target <= {TARGET_OVERHEAD:g} s: {verdict})"
    )
    print(
        f"    of which node banner - direct banner = {n_banner - d_banner:+.2f} s (boot path),"
        f" node answer - node banner = {n_answer - n_banner:+.2f} s (probe + API)"
    )
    sshd = " ".join(f"{s.sshd:.2f}" for s in direct), " ".join(f"{s.sshd:.2f}" for s in node)
    print(f"  guest's own uptime at 'sshd starting': direct [{sshd[0]}], node [{sshd[1]}]")
    out = {
        "direct_banner_s": d_banner,
        "node_answer_s": n_answer,
        "node_banner_s": n_banner,
        "overhead_s": overhead,
    }
    complete = [s for s in node if all(m in s.milestones for m in MILESTONES)]
    if complete:
        creating = _median([s.milestones["vm creating"] for s in complete])
        running = _median([s.milestones["vm_running"] for s in complete])
        ready = _median([s.milestones["ssh ready"] for s in complete])
        banner = _median([s.banner for s in complete])
        answer = _median([s.answer for s in complete])
        print("  node timeline (medians, from its log events; direct for comparison):")
        rows = [
            ("POST -> 'vm creating' (API, admission)", creating, None),
            ("-> 'vm_running' (disk, seed, QEMU, QMP)", running - creating, d_daemon),
            ("-> banner via proxy (guest boot)", banner - running, d_banner - d_daemon),
            ("-> 'ssh ready' (node's probe notices)", ready - banner, None),
            ("-> answer (API notices RUNNING)", answer - ready, None),
        ]
        for label, value, compare in rows:
            extra = "" if compare is None else f"   direct: {compare:.2f} s"
            print(f"    {label:<42}{value:6.2f} s{extra}")
        out.update({"probe_lag_s": ready - banner, "answer_lag_s": answer - ready})
    print(
        f"  the node's probe attempts through the proxy, s after POST (an attempt lasts up to"
        f" {FIRST_ATTEMPT:g}-{LAST_ATTEMPT:g} s, the next starts {RETRY_DELAY:g} s after):"
    )
    for s in node:
        tries = " ".join(f"{t:.2f}" for t in s.probe_attempts)
        print(f"    [{tries}] -> 'ssh ready' at {s.milestones.get('ssh ready', math.nan):.2f}")
    print(f"  QEMU processes left at the end: {leftovers}" + (" (killed)" if leftovers else ""))
    return out
