"""``debian-12`` for real: built with mmdebstrap from the Debian mirror, booted by
``QemuBackend`` under TCG, provisioned by the real cloud-init from the node's seed.

Cost: the build (about 1 min on a quiet 2-core host, 3 min under load; 95 MB download)
is paid once per cache (``GOLEM_TEST_CACHE``, as for the test guest): a warm cache costs
a manifest read. Each boot to SSH takes tens of seconds under TCG (systemd + cloud-init in
Python); the backend test boots once, the API test twice (create, start after stop; the
node's SIGKILL and restart adopt the running VM). The no-network test runs
the CLI inside a network namespace it creates (``unshare -n``), where nothing can leave.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import trio
from node_helpers import NodeProcess, free_block, free_port, running, ssh as node_ssh, wait_status

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
HERE = Path(__file__).resolve().parent


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


async def _image_files(image: DebianImage, machine_id: str, ssh_dir: str) -> str:
    """The image's machine-id content and its SSH host key files, read with debugfs."""
    raw = Path(tempfile.mkdtemp(prefix="gd-img-")) / "root.raw"
    try:
        await trio.run_process(
            ["qemu-img", "convert", "-U", "-O", "raw", str(image.base), str(raw)]
        )
        cat = await trio.run_process(
            ["/sbin/debugfs", "-R", f"cat {machine_id}", str(raw)],
            capture_stdout=True,
            capture_stderr=True,
        )
        listing = await trio.run_process(
            ["/sbin/debugfs", "-R", f"ls -l {ssh_dir}", str(raw)],
            capture_stdout=True,
            capture_stderr=True,
        )
    finally:
        await trio.to_thread.run_sync(shutil.rmtree, raw.parent, True)
    names = listing.stdout.decode().split()
    assert "sshd_config" in names  # the listing worked
    host_keys = [n for n in names if n.startswith("ssh_host_")]
    return cat.stdout.decode() + "".join(host_keys)


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


async def test_debian_12_boots_with_cloud_init_from_the_seed(
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
    assert host_key.startswith("ssh-ed25519 ")
    machine_id = (await ssh(key, observed.ssh, "root", "cat /etc/machine-id")).strip()
    assert len(machine_id) == 32
    image_files = await _image_files(debian_image, "/etc/machine-id", "/etc/ssh")
    assert image_files == ""  # empty machine-id, no host keys in the shipped image

    await backend.delete(spec.vm_id)
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


# -- through the node's API ---------------------------------------------------------------

API_STORAGE_GIB = 10  # the node's smallest accepted VM


@pytest.fixture
async def node(tmp_path: Path, debian_image: DebianImage) -> AsyncIterator[NodeProcess]:
    process = NodeProcess(
        data=tmp_path / "node",
        port=free_port(),
        ports=free_block(4),
        guest_cache=debian_image.base.parent.parent,  # holds the test guest too
        extra_env=(("GOLEM_PROVIDER_LAUNCH_TIMEOUT_SECONDS", "300"),),  # TCG: systemd boot
    )
    async with running(process):
        yield process


async def _run(key: Path, port: int, user: str, command: str) -> str:
    result = await node_ssh(key, port, user, command)
    assert result.returncode == 0, f"{user}: {command}: {result.stderr.decode(errors='replace')}"
    return result.stdout.decode()


async def test_debian_12_rented_through_the_api_keeps_files_and_host_key(
    node: NodeProcess, ssh_keypair: tuple[Path, str]
) -> None:
    key, public = ssh_keypair
    async with httpx.AsyncClient(timeout=400) as client:
        started = time.monotonic()
        created = await client.post(
            f"{node.url}/vms",
            json={
                "name": "deb",
                "image": "debian-12",
                "resources": {"cpu": 1, "memory": 1, "storage": API_STORAGE_GIB},
                "ssh_key": public,
            },
        )
        assert created.status_code == 200, created.text
        vm_id, port = created.json()["id"], created.json()["ssh_port"]
        print(f"debian-12 via the API: create -> 200 after {time.monotonic() - started:.1f}s")

        status = await _run(key, port, "ubuntu", "cloud-init status --wait")
        assert "status: done" in status, status
        assert (await _run(key, port, "ubuntu", "sudo -n true && echo ok")).strip() == "ok"
        assert (await _run(key, port, "ubuntu", "apt-get --version")).startswith("apt ")
        size = int((await _run(key, port, "ubuntu", "df -B1 --output=size /")).split()[-1])
        assert size >= 0.9 * API_STORAGE_GIB * 1024**3, size
        await _run(key, port, "root", "echo by-root > /root/keep.txt")
        await _run(key, port, "ubuntu", "echo by-ubuntu > ~/keep.txt")
        first_key = await _run(key, port, "root", "cat /etc/ssh/ssh_host_ed25519_key.pub")

        async def check() -> None:
            assert await _run(key, port, "root", "cat /root/keep.txt") == "by-root\n"
            assert await _run(key, port, "ubuntu", "cat ~/keep.txt") == "by-ubuntu\n"
            again = await _run(key, port, "root", "cat /etc/ssh/ssh_host_ed25519_key.pub")
            assert again == first_key

        stopped = await client.post(f"{node.url}/vms/{vm_id}/stop")
        assert (stopped.status_code, stopped.json()["status"]) == (200, "stopped")
        started = time.monotonic()
        restarted = await client.post(f"{node.url}/vms/{vm_id}/start")
        assert (restarted.status_code, restarted.json()["status"]) == (200, "running")
        print(f"debian-12 via the API: start -> 200 after {time.monotonic() - started:.1f}s")
        await check()

        node.kill()  # SIGKILL: the guest keeps running and the next node adopts it
        await node.start()
        assert (await wait_status(client, node, vm_id, "running"))["ssh_port"] == port
        await check()

        deleted = await client.delete(f"{node.url}/vms/{vm_id}")
        assert deleted.status_code == 200, deleted.text
        assert not (node.data / "vms" / vm_id).exists()


def test_an_offline_node_fails_a_debian_create_with_the_reason_in_bounded_time(
    tmp_path: Path, ssh_keypair: tuple[Path, str]
) -> None:
    """A node in a network namespace with only a loopback (nothing can leave it), with an
    empty image cache: the create ends in ``error`` within seconds, saying why, and the
    node's log shows the build's steps."""
    _key, public = ssh_keypair
    script = f'ip link set lo up && exec {sys.executable} {HERE / "offline_create.py"} "$@"'
    result = subprocess.run(
        ["unshare", "--net", "sh", "-c", script, "sh", str(tmp_path / "w"), public],
        check=False, capture_output=True, text=True, timeout=400, cwd=REPO,
        env={**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{HERE}"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"offline create ended '{seen['vm'].get('status')}' after {seen['seconds']:.1f}s")
    assert seen["create_status"] == 202, seen["create"]
    assert seen["vm"]["status"] == "error", seen["vm"]
    error = seen["vm"]["error_message"]
    assert "'debian-12' cannot be built" in error, error
    assert "apt-get update" in error, error
    assert seen["seconds"] < 120
    messages = [e.get("message", "") for e in seen["build_events"]]
    assert "I: running apt-get update..." in messages, messages
    assert any(e["event"] == "image_build_failed" for e in seen["build_events"])
