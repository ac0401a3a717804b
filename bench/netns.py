"""Guest networking benchmark: SSH bulk throughput through a VM's forwarded port, with the
isolated networking (QEMU in its own namespace behind pasta) against the old user
networking (slirp's hostfwd in the host's namespace), in the same run.

What is measured: two test guests run at once, each 1 CPU / 256 MiB, TCG:
- old (baseline): booted by hand the way the backend used to boot them: QEMU as root,
  no sandbox, ``-netdev user,hostfwd=tcp:127.0.0.1:PORT-:22`` in the host namespace;
- new: launched by ``QemuBackend`` (the VM user, seccomp, own user+net namespace,
  pasta forwarding 127.0.0.1:PORT into it).
Each round pulls ``MB`` megabytes (10^6 bytes) of the guest's /dev/zero through ``ssh``
(OpenSSH client, the guest's dropbear; the test guest has no scp or sftp server) and
pushes as many into the guest's /dev/null, for each guest in turn; ``ROUNDS`` rounds,
medians reported, and the new/old ratio per direction (1.0: no cost).

The guest is the bottleneck (TCG encrypts in software at a few MB/s), so this measures
what the networking costs on top of a slow guest, not the networking's own ceiling. The
two guests share two cores with everything else; read the ratios, not the absolutes.
Run: ``python -m bench netns`` (``GOLEM_BENCH_NETNS_MB``/``_ROUNDS`` to shorten it).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
import trio

from golem_actor.adapters.backend import LaunchSpec
from golem_actor.adapters.guest import GuestImage, build_test_guest, make_nocloud_seed
from golem_actor.adapters.qemu import QemuBackend, QemuSpec, qemu_argv
from golem_actor.domain.resources import Resources
from golem_actor.images import load_catalog
from golem_actor.keys import generate_ssh_keypair

from ._node import free_port, guest_cache_dir, kill_all, processes_mentioning

MB = int(os.environ.get("GOLEM_BENCH_NETNS_MB", "200"))
ROUNDS = int(os.environ.get("GOLEM_BENCH_NETNS_ROUNDS", "2"))
RESOURCES = Resources(cpus=1, memory_mib=256, storage_gib=1)
TRANSFER_BOUND = 900.0


def _ssh_argv(key: Path, port: int, command: str) -> list[str]:
    return [
        "ssh", "-F", "/dev/null", "-i", str(key), "-p", str(port),
        "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10",
        "root@127.0.0.1", command,
    ]  # fmt: skip


def _pull(key: Path, port: int) -> tuple[float, int]:
    """Seconds and bytes for ``MB`` MB out of the guest (blocking)."""
    argv = _ssh_argv(key, port, f"head -c {MB * 10**6} /dev/zero")
    began = time.perf_counter()
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proc:
        assert proc.stdout is not None
        total = 0
        while chunk := proc.stdout.read(1 << 20):
            total += len(chunk)
    return time.perf_counter() - began, total


def _push(key: Path, port: int) -> tuple[float, int]:
    """Seconds and the guest's byte count for ``MB`` MB into the guest (blocking)."""
    argv = _ssh_argv(key, port, "wc -c")
    chunk = bytes(1 << 20)
    began = time.perf_counter()
    with subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    ) as proc:
        assert proc.stdin is not None
        assert proc.stdout is not None
        left = MB * 10**6
        while left > 0:
            proc.stdin.write(chunk[: min(left, len(chunk))])
            left -= min(left, len(chunk))
        proc.stdin.close()
        counted = proc.stdout.read().decode().strip()
    return time.perf_counter() - began, int(counted or 0)


async def _wait_ssh(key: Path, port: int) -> None:
    with trio.fail_after(180):
        while True:
            result = await trio.run_process(
                _ssh_argv(key, port, "true"), capture_stdout=True, capture_stderr=True, check=False
            )
            if result.returncode == 0:
                return
            await trio.sleep(0.5)


async def _old_style(guest: GuestImage, work: Path, public_key: str) -> int:
    """The test guest as the backend booted it before: root, host netns, hostfwd."""
    vm = work / "old"
    vm.mkdir()
    disk, seed = vm / "disk.qcow2", vm / "seed.iso"
    await trio.run_process(
        ["qemu-img", "create", "-q", "-f", "qcow2", str(disk), str(RESOURCES.storage_gib << 30)]
    )
    await trio.to_thread.run_sync(
        lambda: make_nocloud_seed(
            seed, authorized_keys=[public_key], hostname="old", instance_id="iid-old"
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
        name="bench-netns-old",
    )
    with (vm / "qemu.log").open("wb") as stderr:
        await trio.run_process(
            qemu_argv(spec), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr
        )
    return port


async def run() -> dict[str, float]:
    missing = [t for t in ("qemu-system-x86_64", "qemu-img", "pasta", "ssh") if not shutil.which(t)]
    if missing:
        print(f"netns: missing {', '.join(missing)} (run .ci/install-guest-deps.sh)")
        return {}
    guest = await build_test_guest(guest_cache_dir())
    private, public_key = await trio.to_thread.run_sync(generate_ssh_keypair, "bench")
    work = Path(tempfile.mkdtemp(prefix="bench-netns-", dir="/tmp"))
    key = work / "key"
    key.write_text(private)
    key.chmod(0o600)
    backend = QemuBackend(
        vms_dir=work / "vms", guest_cache=guest_cache_dir(), catalog=load_catalog()
    )
    spec = LaunchSpec(
        vm_id="bench-new",
        hostname="new",
        resources=RESOURCES,
        image="test-guest",
        authorized_keys=(public_key,),
    )
    samples: dict[str, list[float]] = {}
    try:
        ports = {"old": await _old_style(guest, work, public_key)}
        observed = await backend.launch(spec)
        assert observed.ssh is not None
        ports["new"] = observed.ssh.port
        for port in ports.values():
            await _wait_ssh(key, port)
        tools = await trio.run_process(
            _ssh_argv(key, ports["new"], "command -v scp sftp-server; true"), capture_stdout=True
        )
        print(f"netns: scp/sftp-server in the guest: {tools.stdout.decode().split() or 'none'}")
        print(f"netns: {ROUNDS} rounds of {MB} MB each way per guest, through ssh")
        for _ in range(ROUNDS):
            for case, port in ports.items():
                for direction, transfer in (("pull", _pull), ("push", _push)):
                    with trio.fail_after(TRANSFER_BOUND):
                        seconds, count = await trio.to_thread.run_sync(transfer, key, port)
                    if count != MB * 10**6:
                        raise RuntimeError(f"{case} {direction}: {count} bytes, not {MB} MB")
                    samples.setdefault(f"{case} {direction}", []).append(MB / seconds)
    finally:
        await backend.delete(spec.vm_id)
        stray = await trio.to_thread.run_sync(processes_mentioning, str(work))
        await trio.to_thread.run_sync(kill_all, [p for p in stray if p.pid != os.getpid()])
        await trio.to_thread.run_sync(shutil.rmtree, work, True)
    return _report(samples)


def _report(samples: dict[str, list[float]]) -> dict[str, float]:
    medians = {name: statistics.median(values) for name, values in samples.items()}
    print(f"{'case':<12} {'median MB/s':>12}   samples")
    for name, value in medians.items():
        shown = ", ".join(f"{v:.2f}" for v in samples[name])
        print(f"{name:<12} {value:>12.2f}   {shown}")
    result = {f"{name.replace(' ', '_')}_mbps": value for name, value in medians.items()}
    for direction in ("pull", "push"):
        ratio = medians[f"new {direction}"] / medians[f"old {direction}"]
        result[f"{direction}_ratio_new_over_old"] = ratio
        print(f"{direction}: new/old = {ratio:.2f}")
    print(f"load average after: {os.getloadavg()[0]:.1f} on {psutil.cpu_count()} cores")
    return result
