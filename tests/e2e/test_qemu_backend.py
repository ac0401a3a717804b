"""``QemuBackend`` against real QEMU: the whole life of one VM, and a node restart.

Two boots in all (launch, then start after stop), each a few seconds of TCG. Every QEMU
this module starts carries its VM directory (under a private temp root) in its command
line, and the ``vm_root`` fixture kills whatever is left there, whatever happened.
Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import trio

from golem_actor.adapters.backend import BackendState, Endpoint, LaunchSpec, Observed
from golem_actor.adapters.guest import GuestImage
from golem_actor.adapters.qemu import GUEST_IP, QemuBackend, probe_accel
from golem_actor.adapters.qemu._sandbox import VM_USER
from golem_actor.domain.resources import Resources
from golem_actor.images import load_catalog

pytestmark = pytest.mark.e2e

CPUS = 2
MEMORY_MIB = 512
STORAGE_GIB = 2
BANNER_TIMEOUT = 90.0


def qemu_pids(root: Path) -> list[int]:
    """Live (non-zombie) QEMUs of VMs under ``root``: they run in their VM directory,
    and older ones carried it in their command line."""
    found = []
    for process in psutil.process_iter(["cmdline", "status", "cwd", "name"]):
        try:
            if process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if "qemu" not in (process.info["name"] or ""):
                continue
            cwd = process.info["cwd"] or ""
            if (
                cwd == str(root)
                or cwd.startswith(f"{root}/")
                or any(str(root) in arg for arg in process.info["cmdline"] or [])
            ):
                found.append(process.pid)
        except psutil.Error:
            continue
    return found


def pasta_pids(root: Path) -> list[int]:
    """Live pastas of VMs under ``root``, as their ``pasta.json`` names them."""
    found = []
    for record in root.glob("vms/*/pasta.json"):
        with contextlib.suppress(OSError, ValueError, psutil.Error):
            identity = json.loads(record.read_text())
            process = psutil.Process(identity["pid"])
            if process.create_time() == identity["started"] and process.status() != "zombie":
                found.append(process.pid)
    return found


@pytest.fixture
def vm_root() -> Iterator[Path]:
    # short: the QMP socket path inside it must fit in a unix socket address
    root = Path(tempfile.mkdtemp(prefix="gq-", dir="/tmp"))
    try:
        yield root
    finally:
        for pid in qemu_pids(root) + pasta_pids(root):
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).send_signal(signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)


async def wait_for_banner(endpoint: Endpoint, serial: Path) -> float:
    """Seconds until the guest's sshd sends its ``SSH-`` banner. The host side of a
    hostfwd accepts at once, so each try waits only 0.3 s for the banner."""
    started = trio.current_time()
    with trio.move_on_after(BANNER_TIMEOUT):
        while True:
            try:
                stream = await trio.open_tcp_stream(endpoint.host, endpoint.port)
            except OSError:
                stream = None
            if stream is not None:
                async with stream:
                    with trio.move_on_after(0.3):
                        try:
                            if (await stream.receive_some(64)).startswith(b"SSH-"):
                                return trio.current_time() - started
                        except trio.BrokenResourceError:
                            pass
            await trio.sleep(0.05)
    tail = await trio.to_thread.run_sync(
        lambda: serial.read_text(errors="replace")[-3000:] if serial.exists() else ""
    )
    pytest.fail(f"no SSH banner at {endpoint} after {BANNER_TIMEOUT}s\n{tail}")


async def ssh(key: Path, endpoint: Endpoint, user: str, command: str) -> str:
    argv = [
        "ssh", "-F", "/dev/null", "-i", str(key), "-p", str(endpoint.port),
        "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10",
        f"{user}@{endpoint.host}", command,
    ]  # fmt: skip
    with trio.fail_after(30):
        result = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False)
    assert result.returncode == 0, f"ssh {user}: {result.stderr.decode(errors='replace')}"
    return result.stdout.decode()


async def check_guest(key: Path, endpoint: Endpoint) -> None:
    out = await ssh(key, endpoint, "root", "id -u; nproc; grep MemTotal /proc/meminfo")
    uid, nproc, meminfo = out.splitlines()
    assert uid == "0"
    assert int(nproc) == CPUS
    mem_kib = int(meminfo.split()[1])
    # MemTotal excludes what the kernel reserves for itself
    assert 0.75 * MEMORY_MIB * 1024 < mem_kib <= MEMORY_MIB * 1024, meminfo
    out = await ssh(key, endpoint, "ubuntu", "id -un; nproc; grep MemTotal /proc/meminfo")
    user, nproc, meminfo_ubuntu = out.splitlines()
    assert (user, int(nproc), meminfo_ubuntu) == ("ubuntu", CPUS, meminfo)


def alive(pid: int) -> bool:
    with contextlib.suppress(psutil.Error):
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    return False


def check_least_privilege(vm_root: Path, vm_dir: Path) -> int:
    """QEMU and pasta run as the VM user (the node's user when it is not root), QEMU
    under its seccomp filter with no way to gain privileges; the VM directory is that
    user's, mode 0700. Returns pasta's pid."""
    uid = pwd.getpwnam(VM_USER).pw_uid if os.geteuid() == 0 else os.getuid()
    (qemu_pid,) = qemu_pids(vm_dir)
    status = Path(f"/proc/{qemu_pid}/status").read_text()
    assert re.search(r"^Seccomp:\s+2$", status, re.MULTILINE), status
    assert re.search(r"^NoNewPrivs:\s+1$", status, re.MULTILINE), status
    assert re.search(rf"^Uid:\s+{uid}\s+{uid}\s+{uid}\s+{uid}$", status, re.MULTILINE), status
    assert os.stat(f"/proc/{qemu_pid}/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino
    (pasta_pid,) = pasta_pids(vm_root)
    assert psutil.Process(pasta_pid).uids().real == uid
    info = vm_dir.stat()
    assert stat.S_IMODE(info.st_mode) == 0o700
    assert info.st_uid == uid
    return pasta_pid


async def test_vm_life_across_a_node_restart(
    test_guest: GuestImage, ssh_keypair: tuple[Path, str], vm_root: Path
) -> None:
    key, public_key = ssh_keypair
    vms_dir = vm_root / "vms"
    guest_cache = test_guest.kernel.parent.parent  # <cache>/test-guest-<version>/vmlinux
    catalog = load_catalog()
    backend = QemuBackend(vms_dir=vms_dir, guest_cache=guest_cache, catalog=catalog)
    spec = LaunchSpec(
        vm_id="vm-e2e-1",
        hostname="golem-e2e",
        resources=Resources(cpus=CPUS, memory_mib=MEMORY_MIB, storage_gib=STORAGE_GIB),
        image="test-guest",
        authorized_keys=(public_key,),
    )
    vm_dir = vms_dir / spec.vm_id
    serial = vm_dir / "serial.log"

    # launch -> RUNNING, then SSH works with the requested CPUs and memory
    started = trio.current_time()
    observed = await backend.launch(spec)
    launched_in = trio.current_time() - started
    assert observed.state is BackendState.RUNNING
    assert observed.ssh is not None
    assert observed.ssh.host == "127.0.0.1"
    assert observed.ip_address == GUEST_IP
    assert observed.resources == spec.resources
    banner_in = await wait_for_banner(observed.ssh, serial)
    print(f"launch -> RUNNING {launched_in:.2f}s, then SSH banner after {banner_in:.2f}s")

    # launch again: the same VM, still one QEMU
    assert await backend.launch(spec) == observed
    assert len(qemu_pids(vm_dir)) == 1
    first_pasta = check_least_privilege(vm_root, vm_dir)

    await check_guest(key, observed.ssh)
    info = json.loads(
        (
            await trio.run_process(
                ["qemu-img", "info", "--force-share", "--output=json", str(vm_dir / "disk.qcow2")],
                capture_stdout=True,
            )
        ).stdout
    )
    assert info["format"] == "qcow2"
    assert info["virtual-size"] == STORAGE_GIB * 1024**3
    record = json.loads((vm_dir / "vm.json").read_text())
    assert record["ssh_port"] == observed.ssh.port
    assert record["accel"] in ("kvm", "tcg")

    # stop -> STOPPED, QEMU gone, the disk kept
    started = trio.current_time()
    await backend.stop(spec.vm_id)
    print(f"stop (ACPI power-off) {trio.current_time() - started:.2f}s")
    stopped = await backend.inspect(spec.vm_id)
    assert stopped.state is BackendState.STOPPED
    assert stopped.resources == spec.resources
    assert qemu_pids(vm_dir) == []
    assert not alive(first_pasta)  # pasta goes with its QEMU
    assert (vm_dir / "disk.qcow2").exists()
    await backend.stop(spec.vm_id)  # stopping a stopped VM is fine

    # start while someone else holds the old port -> a new port, SSH works again
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # old ssh in TIME_WAIT
        squatter.bind(("127.0.0.1", observed.ssh.port))
        squatter.listen()
        started = trio.current_time()
        restarted = await backend.start(spec.vm_id)
        restarted_in = trio.current_time() - started
    assert restarted.state is BackendState.RUNNING
    assert restarted.ssh is not None
    assert restarted.ssh.port != observed.ssh.port
    banner_in = await wait_for_banner(restarted.ssh, serial)
    print(f"start -> RUNNING {restarted_in:.2f}s, then SSH banner after {banner_in:.2f}s")
    out = await ssh(key, restarted.ssh, "root", "nproc; cat /sys/block/vda/size")
    assert out.split() == [str(CPUS), str(STORAGE_GIB * 1024**3 // 512)]

    # a node restart: a new backend over the same directory adopts the running VM
    adopted = QemuBackend(vms_dir=vms_dir, guest_cache=guest_cache, catalog=catalog)
    assert await adopted.list_owned() == [restarted]
    assert await adopted.inspect(spec.vm_id) == restarted
    adopted_pasta = check_least_privilege(vm_root, vm_dir)
    await adopted.stop(spec.vm_id)
    assert (await adopted.inspect(spec.vm_id)).state is BackendState.STOPPED
    assert qemu_pids(vm_dir) == []
    assert not alive(adopted_pasta)

    # delete -> MISSING, directory gone, no QEMU left; deleting again is fine
    await adopted.delete(spec.vm_id)
    assert (await adopted.inspect(spec.vm_id)).state is BackendState.MISSING
    assert not vm_dir.exists()
    assert qemu_pids(vm_root) == []
    assert await adopted.list_owned() == []
    await adopted.delete(spec.vm_id)
    await backend.delete(spec.vm_id)


async def test_delete_kills_a_running_vm(
    test_guest: GuestImage, ssh_keypair: tuple[Path, str], vm_root: Path
) -> None:
    """Concurrent launches make one VM; delete of a running VM kills QEMU at once."""
    _, public_key = ssh_keypair
    vms_dir = vm_root / "vms"
    backend = QemuBackend(
        vms_dir=vms_dir, guest_cache=test_guest.kernel.parent.parent, catalog=load_catalog()
    )
    spec = LaunchSpec(
        vm_id="vm-e2e-2",
        hostname="golem-e2e-2",
        resources=Resources(cpus=1, memory_mib=256, storage_gib=1),
        image="tiny",
        authorized_keys=(public_key,),
    )
    results: list[Observed] = []

    async def launch() -> None:
        results.append(await backend.launch(spec))

    async with trio.open_nursery() as nursery:  # two launches at once: still one VM
        nursery.start_soon(launch)
        nursery.start_soon(launch)
    assert results[0] == results[1]
    assert results[0].state is BackendState.RUNNING
    assert len(qemu_pids(vms_dir / spec.vm_id)) == 1
    started = trio.current_time()
    await backend.delete(spec.vm_id)
    print(f"delete of a running VM {trio.current_time() - started:.2f}s")
    assert qemu_pids(vm_root) == []
    assert not (vms_dir / spec.vm_id).exists()
    assert (await backend.inspect(spec.vm_id)).state is BackendState.MISSING


async def test_real_kvm_probe(test_guest: GuestImage, vm_root: Path) -> None:
    """The probe on this host's real QEMU and /dev/kvm: a verdict within its bound, cached."""
    started = trio.current_time()
    verdict = await probe_accel(cache_dir=vm_root, kernel=test_guest.kernel)
    print(f"KVM probe: {verdict} in {trio.current_time() - started:.2f}s")
    assert verdict in ("kvm", "tcg")
    assert trio.current_time() - started < 15
    if await trio.to_thread.run_sync(lambda: os.access("/dev/kvm", os.R_OK | os.W_OK)):
        cached = json.loads((vm_root / "accel-probe.json").read_text())
        assert list(cached.values()) == [verdict]
    assert qemu_pids(vm_root) == []
