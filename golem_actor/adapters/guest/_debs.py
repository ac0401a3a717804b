"""The apt/dpkg side of the guest build: which packages, download, unpack.

Why here: these are the only host tools the build runs (``apt-cache``, ``apt-get
download``, ``dpkg-deb -x``, ``dpkg --print-architecture``), so their quirks and their
errors are handled in one place.  Every call goes through :func:`run_tool`, which runs
the process without blocking the Trio loop and turns any failure into a
:class:`GuestBuildError` naming the step and carrying the tool's stderr.

Quirks met: ``apt-get download`` needs package lists (a fresh image has none: "Unable to
locate package" means ``apt-get update`` was never run); run as root it warns that the
download is "unsandboxed" because the ``_apt`` user cannot write the scratch directory
(harmless, stderr only).  The kernel ABI package is whatever ``linux-image-amd64``
currently depends on, so the guest follows Debian's security updates on a rebuild.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

import trio

from golem_actor.adapters.guest._model import GuestBuildError

KERNEL_META_PACKAGE = "linux-image-amd64"
USERLAND_PACKAGES = (
    "busybox-static",
    "dropbear-bin",
    "libc6",
    "libcrypt1",
    "libtomcrypt1",
    "libtommath1",
    "zlib1g",
    "libgmp10",
    # nc.openbsd: busybox's nc (Debian's build) has no UDP mode, the VPN tests need one
    "netcat-openbsd",
    "libbsd0",
    "libmd0",
)


async def run_tool(step: str, argv: Sequence[str], *, cwd: Path | None = None) -> str:
    """Run ``argv``; its stdout on success, else :class:`GuestBuildError`."""
    try:
        result = await trio.run_process(
            list(argv), cwd=cwd, capture_stdout=True, capture_stderr=True, check=False
        )
    except OSError as exc:
        raise GuestBuildError(step, f"cannot run {argv[0]}: {exc}") from exc
    if result.returncode != 0:
        raise GuestBuildError(
            step,
            f"{' '.join(argv)} exited with status {result.returncode}",
            stderr=result.stderr.decode(errors="replace"),
        )
    return result.stdout.decode(errors="replace")


async def check_architecture() -> None:
    arch = (await run_tool("check architecture", ["dpkg", "--print-architecture"])).strip()
    if arch != "amd64":
        raise GuestBuildError("check architecture", f"the test guest is amd64-only, host is {arch}")


async def kernel_package() -> str:
    """The versioned kernel package ``linux-image-amd64`` points to (its ABI)."""
    out = await run_tool("choose kernel", ["apt-cache", "depends", KERNEL_META_PACKAGE])
    match = re.search(r"Depends:\s*(linux-image-\d[^\s]*-amd64)\b", out)
    if match is None:
        raise GuestBuildError(
            "choose kernel",
            f"no linux-image-<abi>-amd64 dependency in 'apt-cache depends {KERNEL_META_PACKAGE}'"
            " (run apt-get update?)",
            stderr=out,
        )
    return match.group(1)


async def download(packages: Sequence[str], dest: Path) -> dict[Path, tuple[str, str]]:
    """``apt-get download`` into ``dest``: .deb path -> (package, version)."""
    try:
        await run_tool("download packages", ["apt-get", "download", "-q", *packages], cwd=dest)
    except GuestBuildError as exc:
        if "Unable to locate package" in exc.stderr:
            hint = " (no package lists? run apt-get update, or .ci/install-guest-deps.sh)"
            raise GuestBuildError(exc.step, exc.message + hint, stderr=exc.stderr) from exc
        raise
    debs: dict[Path, tuple[str, str]] = {}
    for deb in sorted(await trio.to_thread.run_sync(lambda: list(dest.glob("*.deb")))):
        name, version, _arch = deb.stem.split("_", 2)
        debs[deb] = (name, urllib.parse.unquote(version))
    missing = set(packages) - {name for name, _v in debs.values()}
    if missing:
        raise GuestBuildError("download packages", f"apt-get left out {sorted(missing)}")
    return debs


async def extract(debs: Sequence[Path], root: Path) -> None:
    """``dpkg-deb -x`` each package into ``root`` (no maintainer scripts run)."""
    for deb in debs:
        await run_tool(f"extract {deb.name}", ["dpkg-deb", "-x", str(deb), str(root)])
