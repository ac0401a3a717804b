"""Boot the tiny test guest under QEMU with a NoCloud seed, as the node will boot VMs.

Checks the whole provisioning contract: the seed's keys reach ``root`` and ``ubuntu``,
its hostname is applied, ``-smp``/``-m`` are what the guest sees, the tools the tests rely
on are there (busybox ``nc`` for TCP, ``nc.openbsd`` for UDP: busybox's has no ``-u``), and
an ACPI power-down through QMP makes QEMU exit. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
import trio

from golem_actor.adapters.guest import GuestImage, make_nocloud_seed
from golem_actor.adapters.qemu import QemuSpec, qemu_argv

pytestmark = pytest.mark.e2e

CPUS = 2
MEMORY_MIB = 384
BANNER_TIMEOUT = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


async def wait_for_banner(proc: trio.Process, port: int, serial: Path) -> None:
    """Poll for dropbear's ``SSH-`` banner. With user networking the host-side connect
    succeeds at once even before the guest is up, so each attempt only waits 0.3 s for
    the banner and then retries (a plain ssh retry loop would stall for seconds)."""
    with trio.move_on_after(BANNER_TIMEOUT) as scope:
        while True:
            if proc.returncode is not None:
                pytest.fail(f"qemu exited with {proc.returncode}\n{tail(serial)}")
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", port)
            except OSError:
                stream = None
            if stream is not None:
                async with stream:
                    with trio.move_on_after(0.3):
                        try:
                            if (await stream.receive_some(64)).startswith(b"SSH-"):
                                return
                        except trio.BrokenResourceError:
                            pass
            await trio.sleep(0.05)
    if scope.cancelled_caught:
        pytest.fail(f"no SSH banner after {BANNER_TIMEOUT}s\n{tail(serial)}")


async def ssh(key: Path, port: int, user: str, command: str) -> str:
    argv = [
        "ssh", "-F", "/dev/null", "-i", str(key), "-p", str(port),
        "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10",
        f"{user}@127.0.0.1", command,
    ]  # fmt: skip
    with trio.fail_after(30):
        result = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False)
    assert result.returncode == 0, f"ssh {user}: {result.stderr.decode(errors='replace')}"
    return result.stdout.decode()


class Qmp:
    """Just enough QMP: one JSON object per line; events interleave with replies."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self._stream = stream
        self._buffer = b""

    async def _message(self) -> dict[str, Any]:
        while b"\n" not in self._buffer:
            data = await self._stream.receive_some(4096)
            if not data:
                raise EOFError("QMP connection closed")
            self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        return message

    async def execute(self, command: str) -> Any:
        await self._stream.send_all(json.dumps({"execute": command}).encode() + b"\n")
        while True:
            reply = await self._message()
            if "error" in reply:
                raise RuntimeError(reply["error"])
            if "return" in reply:
                return reply["return"]

    @classmethod
    async def connect(cls, path: Path) -> Qmp:
        qmp = cls(await trio.open_unix_socket(str(path)))
        greeting = await qmp._message()
        assert "QMP" in greeting
        await qmp.execute("qmp_capabilities")
        return qmp


async def test_guest_boots_honours_seed_and_powers_off(
    test_guest: GuestImage, ssh_keypair: tuple[Path, str], tmp_path: Path
) -> None:
    key, public_key = ssh_keypair
    hostname = f"golem-e2e-{secrets.token_hex(3)}"
    seed = tmp_path / "seed.iso"
    await trio.to_thread.run_sync(
        lambda: make_nocloud_seed(
            seed, authorized_keys=[public_key], hostname=hostname, instance_id=f"iid-{hostname}"
        )
    )
    port = free_port()
    serial = tmp_path / "serial.log"
    spec = QemuSpec(
        cpus=CPUS,
        memory_mib=MEMORY_MIB,
        kernel=test_guest.kernel,
        initrd=test_guest.initrd,
        append=test_guest.append,
        seed=seed,
        ssh_port=port,
        qmp_socket=tmp_path / "qmp.sock",
        serial_log=serial,
        name="golem-e2e",
    )
    log = await trio.to_thread.run_sync(lambda: (tmp_path / "qemu.log").open("wb"))
    started = trio.current_time()
    proc = await trio.lowlevel.open_process(
        qemu_argv(spec), stdin=subprocess.DEVNULL, stdout=log, stderr=log
    )
    try:
        await wait_for_banner(proc, port, serial)
        banner_at = trio.current_time() - started
        out = await ssh(key, port, "root", "id -u; nproc; hostname; grep MemTotal /proc/meminfo")
        ssh_at = trio.current_time() - started
        print(f"banner after {banner_at:.2f}s, first ssh after {ssh_at:.2f}s")
        uid, nproc, guest_hostname, meminfo = out.splitlines()
        assert uid == "0"
        assert int(nproc) == CPUS
        assert guest_hostname == hostname
        mem_kib = int(meminfo.split()[1])
        # MemTotal excludes what the kernel reserves for itself (~50 MiB here)
        assert 0.75 * MEMORY_MIB * 1024 < mem_kib <= MEMORY_MIB * 1024, meminfo

        out = await ssh(key, port, "ubuntu", "id -un; echo $HOME; nproc; hostname")
        assert out.splitlines() == ["ubuntu", "/home/ubuntu", str(CPUS), hostname]
        out = await ssh(key, port, "ubuntu", "stat -c '%a %U' ~ ~/.ssh ~/.ssh/authorized_keys")
        assert out.splitlines() == ["755 ubuntu", "700 ubuntu", "600 ubuntu"]
        # UDP over loopback through nc.openbsd (its libraries load), and busybox's nc stays nc
        out = await ssh(
            key,
            port,
            "root",
            "(nc.openbsd -u -l -n -d -W 1 127.0.0.1 7000 > /tmp/udp &);"
            " for i in 1 2 3 4 5; do echo udp-loop | nc.openbsd -u -n -w 1 -q 0 127.0.0.1 7000;"
            " grep -q udp-loop /tmp/udp && break; sleep 0.2; done; cat /tmp/udp;"
            " nc --help 2>&1 | head -n 1",
        )
        udp, nc = out.splitlines()
        assert udp == "udp-loop", out
        assert nc.startswith("BusyBox"), out

        qmp = await Qmp.connect(spec.qmp_socket)
        powerdown_at = trio.current_time()
        await qmp.execute("system_powerdown")
        with trio.fail_after(30):
            await proc.wait()
        print(f"powered off in {trio.current_time() - powerdown_at:.2f}s")
        assert proc.returncode == 0, tail(tmp_path / "qemu.log")
        assert "Power down" in tail(serial)
    finally:
        if proc.returncode is None:
            proc.kill()
        with trio.CancelScope(shield=True):
            await proc.wait()
        log.close()
