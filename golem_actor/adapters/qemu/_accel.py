"""Choosing the accelerator: KVM only when a probe shows that it really runs a guest.

Why a probe: ``/dev/kvm`` existing (even being openable) proves nothing. On a host that
is itself a VM with broken nested virtualization, ``-accel kvm`` does not fail: QEMU
starts and the guest never executes an instruction (no serial output, forever), so
``-accel kvm -accel tcg`` never falls back. The probe boots the test guest's kernel under
``-accel kvm`` (no initrd: it panics soon after, which is fine) and requires its first
``Linux version`` line on the serial port within a few seconds; anything else means TCG.

The verdict is cached in ``<cache_dir>/accel-probe.json`` keyed by the host kernel release
and the QEMU version, so it costs one short boot per host (and again after an upgrade of
either). The probe runs QEMU as a direct child (no ``-daemonize``) with no stdio of ours,
and always kills it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Literal

import msgspec
import structlog
import trio

from golem_actor._atomic import ensure_dir, read_if_exists, write_atomic
from golem_actor.adapters.backend import BackendError
from golem_actor.adapters.qemu._argv import QemuSpec, qemu_argv

__all__ = ["CACHE_FILE", "probe_accel", "qemu_version"]

Accel = Literal["kvm", "tcg"]
CACHE_FILE = "accel-probe.json"
PROBE_MARK = b"Linux version"
PROBE_APPEND = "console=ttyS0 earlyprintk=serial,ttyS0 panic=-1"

log = structlog.get_logger("golem_actor.qemu")


async def qemu_version(binary: str, *, time_limit: float = 10.0) -> str:
    """The first line of ``<binary> --version`` (part of the probe's cache key)."""
    try:
        with trio.fail_after(time_limit):
            result = await trio.run_process(
                [binary, "--version"],
                stdin=subprocess.DEVNULL,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
    except (OSError, trio.TooSlowError) as exc:
        raise BackendError(f"cannot run {binary} --version: {exc}") from None
    if result.returncode != 0:
        raise BackendError(f"{binary} --version failed: {result.stderr.decode(errors='replace')}")
    lines = result.stdout.decode(errors="replace").strip().splitlines()
    return lines[0] if lines else "unknown"


def _load_cache(path: Path) -> dict[str, str]:
    data = read_if_exists(path)
    if data is None:
        return {}
    try:
        return msgspec.json.decode(data, type=dict[str, str])
    except (msgspec.DecodeError, msgspec.ValidationError):
        return {}


def _store_cache(path: Path, key: str, verdict: Accel) -> None:
    entries = _load_cache(path)
    entries[key] = verdict
    ensure_dir(path.parent)
    write_atomic(path, msgspec.json.format(msgspec.json.encode(entries)) + b"\n", mode=0o644)


async def _kvm_runs_guest(binary: str, kernel: Path, seconds: float) -> tuple[bool, str]:
    """Boot ``kernel`` under KVM; (whether it printed in time, a note on what happened)."""
    # A short private directory: the QMP socket path must fit in sun_path (108 bytes).
    workdir = Path(await trio.to_thread.run_sync(lambda: tempfile.mkdtemp(prefix="golem-kvm-")))
    serial = workdir / "serial.log"
    argv = qemu_argv(
        QemuSpec(
            cpus=1,
            memory_mib=128,
            kernel=kernel,
            append=PROBE_APPEND,
            qmp_socket=workdir / "qmp.sock",
            serial_log=serial,
            accel="kvm",
            binary=binary,
            name="golem-kvm-probe",
        )
    )
    stderr_path = workdir / "stderr.log"
    try:
        stderr_file = await trio.to_thread.run_sync(lambda: stderr_path.open("wb"))
        try:
            process = await trio.lowlevel.open_process(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=stderr_file,
                stderr=stderr_file,
                cwd=workdir,  # a crashing QEMU (it asserts on some broken KVMs) dumps core here
            )
        except OSError as exc:
            stderr_file.close()
            return False, f"cannot run {binary}: {exc}"
        try:
            with trio.move_on_after(seconds):
                while True:  # read before checking for exit: a guest may print, then panic
                    output = await trio.to_thread.run_sync(lambda: read_if_exists(serial) or b"")
                    if PROBE_MARK in output:
                        return True, "the guest kernel printed under KVM"
                    if process.returncode is not None:
                        break
                    await trio.sleep(0.1)
            if process.returncode is not None:
                errors = await trio.to_thread.run_sync(
                    lambda: stderr_path.read_text(errors="replace").strip()
                )
                return False, f"QEMU exited with {process.returncode}: {errors[-500:]}"
            return False, f"no serial output from a KVM guest within {seconds:g}s"
        finally:
            with trio.CancelScope(shield=True):
                if process.returncode is None:
                    process.kill()
                await process.wait()
                stderr_file.close()
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(lambda: shutil.rmtree(workdir, ignore_errors=True))


async def probe_accel(
    *,
    cache_dir: Path,
    kernel: Path,
    binary: str = "qemu-system-x86_64",
    kvm_device: Path = Path("/dev/kvm"),
    probe_timeout: float = 5.0,
) -> Accel:
    """``"kvm"`` if a guest really runs under KVM on this host, else ``"tcg"`` (cached)."""
    usable = await trio.to_thread.run_sync(lambda: os.access(kvm_device, os.R_OK | os.W_OK))
    if not usable:
        log.info("accel_chosen", accel="tcg", reason=f"{kvm_device} is not usable")
        return "tcg"
    key = f"{os.uname().release}|{await qemu_version(binary)}"
    cache = cache_dir / CACHE_FILE
    cached = (await trio.to_thread.run_sync(_load_cache, cache)).get(key)
    if cached in ("kvm", "tcg"):
        verdict: Accel = "kvm" if cached == "kvm" else "tcg"
        log.info("accel_chosen", accel=verdict, reason="cached probe result", key=key)
        return verdict
    started = trio.current_time()
    works, note = await _kvm_runs_guest(binary, kernel, probe_timeout)
    verdict = "kvm" if works else "tcg"
    await trio.to_thread.run_sync(_store_cache, cache, key, verdict)
    log.info(
        "accel_chosen",
        accel=verdict,
        reason=note,
        key=key,
        probe_seconds=round(trio.current_time() - started, 2),
    )
    return verdict
