"""Is the VM backend present and usable? (for `golem-provider status`)"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import trio

from golem_actor.domain.port_verdict import BackendCheck, MultipassCheck

__all__ = ["check_multipass", "check_qemu", "guest_network_problem"]

TIME_LIMIT = 5.0
TUN = Path("/dev/net/tun")


async def _version(argv: list[str]) -> tuple[bool, str]:
    with trio.move_on_after(TIME_LIMIT):
        try:
            result = await trio.run_process(
                argv,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except OSError as error:
            return False, f"cannot run {argv[0]}: {error.strerror or error}"
        text = (result.stdout or result.stderr).decode(errors="replace").strip()
        first = text.splitlines()[0] if text else ""
        return result.returncode == 0, first or f"exit status {result.returncode}"
    return False, f"{argv[0]} did not answer within {TIME_LIMIT:g}s"


def guest_network_problem(pasta: str = "pasta", tun: Path = TUN) -> str | None:
    """Why QEMU guests could get no network here (see ``adapters/qemu/_network``), or
    None: pasta must be installed and the tun device usable by the VM user (blocking)."""
    if shutil.which(pasta) is None:
        return "pasta not found (Debian package passt): guests need it for their network"
    try:
        mode = tun.stat().st_mode
    except OSError:
        return f"{tun} is missing: pasta needs it"
    usable = mode & 0o006 == 0o006 or (os.geteuid() != 0 and os.access(tun, os.R_OK | os.W_OK))
    if not usable:
        return f"{tun} is not usable by the VM user (chmod 0666, Debian's default)"
    return None


async def check_qemu(binary: str = "qemu-system-x86_64", accel: str | None = None) -> BackendCheck:
    ok, text = await _version([binary, "--version"])
    if not ok:
        return BackendCheck(kind="qemu", ok=False, detail=text)
    problem = await trio.to_thread.run_sync(guest_network_problem)
    if problem is not None:
        return BackendCheck(kind="qemu", ok=False, detail=problem)
    version = text.removeprefix("QEMU emulator version ").split(" ")[0]
    detail = f"{version}, {accel.upper()}" if accel else version
    return BackendCheck(kind="qemu", ok=True, detail=detail)


async def check_multipass(binary: Path | None) -> MultipassCheck:
    if binary is None:
        return MultipassCheck(ok=False, error="multipass is not installed")
    ok, text = await _version([str(binary), "version"])
    if not ok:
        return MultipassCheck(ok=False, path=str(binary), error=text)
    return MultipassCheck(ok=True, path=str(binary), version=text.split()[-1] if text else None)
