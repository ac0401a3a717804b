"""Is the VM backend present and usable? (for `golem-provider status`)"""

from __future__ import annotations

import subprocess
from pathlib import Path

import trio

from golem_actor.domain.port_verdict import BackendCheck, MultipassCheck

__all__ = ["check_multipass", "check_qemu"]

TIME_LIMIT = 5.0


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


async def check_qemu(binary: str = "qemu-system-x86_64", accel: str | None = None) -> BackendCheck:
    ok, text = await _version([binary, "--version"])
    if not ok:
        return BackendCheck(kind="qemu", ok=False, detail=text)
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
