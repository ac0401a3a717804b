"""``debian-12`` for real: built with mmdebstrap from the Debian mirror, booted by
``QemuBackend`` under TCG, provisioned by the real cloud-init from the node's seed.

Cost: the build (about 1 min on a quiet 2-core host, 3 min under load; 95 MB download)
is paid once per cache (``GOLEM_TEST_CACHE``, as for the test guest): a warm cache costs
a manifest read. Each boot to SSH takes tens of seconds under TCG (systemd + cloud-init in
Python); the VM test boots twice (launch, start after stop). The no-network test runs
the CLI inside a network namespace it creates (``unshare -n``), where nothing can leave.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import trio

from golem_actor.adapters.backend import BackendState, Endpoint, LaunchSpec
from golem_actor.adapters.guest import GuestImage
from golem_actor.adapters.images import DebianImage, build_debian_image, default_plan
from golem_actor.adapters.qemu import QemuBackend
from golem_actor.domain.resources import Resources
from golem_actor.images import load_catalog

pytestmark = pytest.mark.e2e

STORAGE_GIB = 4
MEMORY_MIB = 1024
SSH_READY_TIMEOUT = 300.0
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def debian_image(test_guest: GuestImage) -> DebianImage:
    """debian-12, built once into the test guest's shared cache (printed: how long it
    took); the backend finds both there."""
    for tool in ("mmdebstrap", "qemu-system-x86_64", "ssh"):
        if shutil.which(tool) is None:
            pytest.fail(f"missing {tool} (run .ci/install-guest-deps.sh)")

    def progress(message: str) -> None:
        print(f"debian-12: {message}")

    started = time.monotonic()
    image = trio.run(
        functools.partial(
            build_debian_image, _cache(test_guest), default_plan(), on_progress=progress
        )
    )
    print(f"debian-12 ready after {time.monotonic() - started:.1f}s")
    return image


def _cache(test_guest: GuestImage) -> Path:
    return test_guest.kernel.parent.parent  # <cache>/test-guest-<version>/vmlinux


def _pids_mentioning(root: Path) -> list[int]:
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        try:
            if process.info["status"] != psutil.STATUS_ZOMBIE and any(
                str(root) in arg for arg in process.info["cmdline"] or []
            ):
                found.append(process.pid)
        except psutil.Error:
            continue
    return found


@pytest.fixture
def vm_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="gd-", dir="/tmp"))  # short: QMP socket path
    try:
        yield root
    finally:
        for pid in _pids_mentioning(root):
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).send_signal(signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)


def _ssh_argv(key: Path, endpoint: Endpoint, user: str, command: str) -> list[str]:
    return [
        "ssh", "-F", "/dev/null", "-i", str(key), "-p", str(endpoint.port),
        "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=30",
        f"{user}@{endpoint.host}", command,
    ]  # fmt: skip


async def ssh(key: Path, endpoint: Endpoint, user: str, command: str, limit: float = 60) -> str:
    with trio.fail_after(limit):
        result = await trio.run_process(
            _ssh_argv(key, endpoint, user, command),
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert result.returncode == 0, (
        f"ssh {user} {command!r} -> {result.returncode}: {result.stderr.decode(errors='replace')}"
        f"{result.stdout.decode(errors='replace')}"
    )
    return result.stdout.decode()


async def wait_for_ssh(key: Path, endpoint: Endpoint, serial: Path) -> float:
    """Seconds until ``ssh ubuntu@`` runs a command. Gentle on purpose: a banner probe
    every second with a 5 s read timeout, since under TCG Debian's sshd needs a while per
    connection and a flood of probes trips its MaxStartups throttling."""
    started = trio.current_time()
    with trio.move_on_after(SSH_READY_TIMEOUT):
        while True:
            banner = b""
            with contextlib.suppress(OSError, trio.BrokenResourceError):
                stream = await trio.open_tcp_stream(endpoint.host, endpoint.port)
                async with stream:
                    with trio.move_on_after(5):
                        banner = await stream.receive_some(64)
            if banner.startswith(b"SSH-"):
                with trio.move_on_after(60):
                    result = await trio.run_process(
                        _ssh_argv(key, endpoint, "ubuntu", "true"),
                        capture_stdout=True,
                        capture_stderr=True,
                        check=False,
                    )
                    if result.returncode == 0:
                        return trio.current_time() - started
            await trio.sleep(1)
    tail = await trio.to_thread.run_sync(
        lambda: serial.read_text(errors="replace")[-4000:] if serial.exists() else ""
    )
    pytest.fail(f"no SSH login at {endpoint} after {SSH_READY_TIMEOUT}s\n{tail}")


async def test_debian_12_boots_with_cloud_init_and_keeps_its_disk(
    debian_image: DebianImage, ssh_keypair: tuple[Path, str], vm_root: Path
) -> None:
    key, public_key = ssh_keypair
    cache = debian_image.base.parent.parent
    vms_dir = vm_root / "vms"
    backend = QemuBackend(vms_dir=vms_dir, guest_cache=cache, catalog=load_catalog())
    spec = LaunchSpec(
        vm_id="vm-deb-1",
        hostname="golem-deb",
        resources=Resources(cpus=1, memory_mib=MEMORY_MIB, storage_gib=STORAGE_GIB),
        image="debian-12",
        authorized_keys=(public_key,),
    )
    serial = vms_dir / spec.vm_id / "serial.log"

    started = trio.current_time()
    observed = await backend.launch(spec)
    assert observed.state is BackendState.RUNNING
    assert observed.ssh is not None
    ssh_in = await wait_for_ssh(key, observed.ssh, serial)
    print(f"debian-12 first boot: launch -> ssh ubuntu@ {trio.current_time() - started:.1f}s")
    del ssh_in

    # the real cloud-init read the seed: both users have the key, the hostname is set
    status = await ssh(key, observed.ssh, "ubuntu", "cloud-init status --wait", limit=300)
    assert "status: done" in status, status
    print(f"debian-12 first boot: cloud-init done {trio.current_time() - started:.1f}s")
    assert (await ssh(key, observed.ssh, "ubuntu", "hostname")).strip() == "golem-deb"
    assert (await ssh(key, observed.ssh, "ubuntu", "sudo -n true && sudo -n id -u")).strip() == "0"
    assert (await ssh(key, observed.ssh, "root", "id -un")).strip() == "root"
    assert (await ssh(key, observed.ssh, "ubuntu", "apt-get --version")).startswith("apt ")
    out = await ssh(key, observed.ssh, "ubuntu", "cat /proc/cmdline; systemctl is-system-running")
    assert "root=/dev/vda" in out

    # the root filesystem was grown to the requested storage at first boot
    size = int((await ssh(key, observed.ssh, "ubuntu", "df -B1 --output=size /")).split()[-1])
    assert size >= 0.9 * STORAGE_GIB * 1024**3, size

    # no secret came with the image: this VM made its own host key and machine-id
    host_key = await ssh(key, observed.ssh, "root", "cat /etc/ssh/ssh_host_ed25519_key.pub")
    machine_id = (await ssh(key, observed.ssh, "root", "cat /etc/machine-id")).strip()
    assert len(machine_id) == 32

    # files and identity survive a stop/start and a node restart (a new backend adopts it)
    await ssh(key, observed.ssh, "ubuntu", "echo kept > ~/note && sudo sh -c 'echo r > /root/n'")
    await backend.stop(spec.vm_id)
    assert (await backend.inspect(spec.vm_id)).state is BackendState.STOPPED
    started = trio.current_time()
    adopted = QemuBackend(vms_dir=vms_dir, guest_cache=cache, catalog=load_catalog())
    restarted = await adopted.start(spec.vm_id)
    assert restarted.ssh is not None
    await wait_for_ssh(key, restarted.ssh, serial)
    print(f"debian-12 second boot: start -> ssh ubuntu@ {trio.current_time() - started:.1f}s")
    assert (await ssh(key, restarted.ssh, "ubuntu", "cat ~/note")).strip() == "kept"
    assert (await ssh(key, restarted.ssh, "root", "cat /root/n")).strip() == "r"
    assert await ssh(key, restarted.ssh, "root", "cat /etc/ssh/ssh_host_ed25519_key.pub") == (
        host_key
    )
    again = (await ssh(key, restarted.ssh, "root", "cat /etc/machine-id")).strip()
    assert again == machine_id
    await adopted.delete(spec.vm_id)
    assert not (vms_dir / spec.vm_id).exists()


def test_a_build_without_a_route_to_the_mirror_fails_fast_and_clearly(tmp_path: Path) -> None:
    """`image build` in a network namespace with only a loopback: a clear error, soon."""
    if shutil.which("unshare") is None:
        pytest.fail("missing unshare (util-linux)")
    started = time.monotonic()
    result = subprocess.run(
        ["unshare", "--net", sys.executable, "-m", "golem_actor.cli", "image", "build",
         "debian-12", "--data-dir", str(tmp_path)],
        check=False, capture_output=True, text=True, timeout=300, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    took = time.monotonic() - started
    print(f"no-network build failed after {took:.1f}s")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "image build failed at 'mmdebstrap'" in result.stderr
    assert "apt-get update" in result.stderr
    assert "I: running apt-get update..." in result.stdout  # progress was shown
    assert took < 120
    leftovers = [p.name for p in (tmp_path / "guest").iterdir()]
    assert leftovers == ["debian-12.lock"]
