"""Image benchmark: boot-to-SSH of `debian-12` against the test guest (the baseline).

What is measured, in the same run, alternating test-guest/debian-12, medians of 3: a fresh
VM (1 vCPU, 1 GiB, 4 GiB disk) created through `QemuBackend.launch` (the node's own path:
catalog, cached image, overlay or data disk, NoCloud seed, QEMU), timed from the launch call
to the first `ssh ubuntu@ true` that succeeds. For debian-12 this is a first boot: the real
cloud-init creates the users, the host keys and grows the root filesystem. The time until
`cloud-init status` says done is printed as well. Each VM is deleted afterwards.

The readiness probe is the node's own (`ssh_probe.wait_for_banner`: attempts of 0.5 s
growing to 5 s), then `ssh` once a banner came. Building the images is not timed here
(a cold debian-12 build is printed as its own line when it happens).
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import trio

from golem_actor.adapters.backend import Endpoint, LaunchSpec
from golem_actor.adapters.guest import build_test_guest
from golem_actor.adapters.images import build_debian_image, default_plan
from golem_actor.adapters.qemu import QemuBackend
from golem_actor.adapters.ssh_probe import wait_for_banner
from golem_actor.domain.resources import Resources
from golem_actor.images import load_catalog

from ._node import guest_cache_dir, idle_gate, kill_all, processes_mentioning

RUNS = 3
IMAGES = ("test-guest", "debian-12")
READY_BOUND = 400.0


def _ssh(key: Path, endpoint: Endpoint, command: str) -> subprocess.CompletedProcess[bytes]:
    argv = [
        "ssh", "-F", "/dev/null", "-i", str(key), "-p", str(endpoint.port),
        "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=30",
        f"ubuntu@{endpoint.host}", command,
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, timeout=300, check=False)


async def _boot_once(
    backend: QemuBackend, image: str, n: int, key: Path, public_key: str
) -> tuple[float, float]:
    """(launch -> ssh ok, launch -> cloud-init done or the same for the test guest)."""
    spec = LaunchSpec(
        vm_id=f"bench-{image}-{n}",
        hostname=f"bench{n}",
        resources=Resources(cpus=1, memory_mib=1024, storage_gib=4),
        image=image,
        authorized_keys=(public_key,),
    )
    started = time.monotonic()
    observed = await backend.launch(spec)
    assert observed.ssh is not None
    endpoint = observed.ssh
    try:
        with trio.fail_after(READY_BOUND):
            while True:
                await wait_for_banner(endpoint.host, endpoint.port)
                result = await trio.to_thread.run_sync(_ssh, key, endpoint, "true")
                if result.returncode == 0:
                    break
                await trio.sleep(1)
        ssh_ok = time.monotonic() - started
        done = ssh_ok
        if image != "test-guest":
            result = await trio.to_thread.run_sync(_ssh, key, endpoint, "cloud-init status --wait")
            assert b"status: done" in result.stdout, result.stdout + result.stderr
            done = time.monotonic() - started
        return ssh_ok, done
    finally:
        await backend.delete(spec.vm_id)


async def run() -> dict[str, float]:
    cache = guest_cache_dir()
    await build_test_guest(cache)
    started = time.monotonic()
    debian = await build_debian_image(cache, default_plan())
    built = time.monotonic() - started
    if built > 5:
        print(f"debian-12 built in {built:.0f}s ({debian.version})")
    with tempfile.TemporaryDirectory(prefix="bi-", dir="/tmp") as tmp:
        root = Path(tmp)
        key = root / "key"
        await trio.run_process(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
        public_key = key.with_suffix(".pub").read_text().strip()
        backend = QemuBackend(
            vms_dir=root / "vms", guest_cache=cache, catalog=load_catalog(), accel="tcg"
        )
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in IMAGES}
        try:
            for n in range(RUNS):
                for image in IMAGES:
                    busy = await idle_gate()
                    ssh_ok, done = await _boot_once(backend, image, n, key, public_key)
                    times[image].append((ssh_ok, done))
                    print(
                        f"  run {n + 1} {image:<10} ssh {ssh_ok:6.1f}s  ready {done:6.1f}s"
                        f"  (cpu busy before: {busy:.0f} %)"
                    )
        finally:
            kill_all(processes_mentioning(str(root)))
    base = statistics.median(t[0] for t in times["test-guest"])
    deb_ssh = statistics.median(t[0] for t in times["debian-12"])
    deb_done = statistics.median(t[1] for t in times["debian-12"])
    print(f"boot to ssh ubuntu@ (median of {RUNS}, TCG, 1 vCPU):")
    print(f"  test-guest (baseline)  {base:6.1f}s")
    print(f"  debian-12              {deb_ssh:6.1f}s  ({deb_ssh / base:.1f}x the test guest)")
    print(f"  debian-12 cloud-init done {deb_done:6.1f}s")
    return {
        "test_guest_ssh_s": base,
        "debian_ssh_s": deb_ssh,
        "debian_cloud_init_done_s": deb_done,
        "ratio": deb_ssh / base,
    }
