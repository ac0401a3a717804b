"""``build_test_guest``: build the tiny test guest once, cache it, share it safely.

Theory of operation:

* **Versioning.** The builder's version is ``BUILDER_REVISION`` plus a hash of everything
  that shapes the image (the guest scripts, the package and module lists, the kernel
  cmdline).  The image lives in ``CACHE/test-guest-<version>/`` with a ``manifest.json``;
  a manifest with the current version and files of the recorded sizes means "done", and
  that check is all a warm call does (no apt, no lock).
* **Concurrency.** Two nodes (or test sessions) may build into one cache at once.  The
  build runs under an exclusive ``flock`` on ``CACHE/test-guest.lock`` (polled with
  ``LOCK_NB`` so the Trio loop never blocks and a cancelled waiter leaves nothing behind);
  whoever gets the lock second finds the finished image and returns it.
* **Atomicity.** Everything is built in a scratch directory ``CACHE/.guest-build-*`` and
  only the finished output directory is renamed into place, so a crash leaves either no
  image or a complete one.  Scratch directories left by a crashed build are removed by
  the next build (under the lock, so they cannot belong to a live one).  Older image
  versions are deleted after a successful build; a running VM keeps its open files.
* **No blocking.** Tools run through ``trio.run_process``; file and CPU work (module
  scan, cpio, XZ decompression) through ``trio.to_thread.run_sync``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec
import trio

from golem_actor.adapters.build_lock import acquire_build_lock
from golem_actor.adapters.guest import _debs, _kernel, _rootfs
from golem_actor.adapters.guest._model import GuestBuildError, GuestImage

# Bump when the Python build logic changes the image (the guest scripts and the lists
# below are hashed into the version automatically).
BUILDER_REVISION = 1
KERNEL_FILE = "vmlinux"
INITRD_FILE = "initrd.cpio"
MANIFEST_FILE = "manifest.json"
LOCK_FILE = "test-guest.lock"
IMAGE_PREFIX = "test-guest-"
SCRATCH_PREFIX = ".guest-build-"
# Static address for QEMU user networking (the guest falls back to DHCP without it);
# cryptomgr.notests and pci=noacpi each save ~0.2-0.3 s of TCG boot time.
APPEND = (
    "console=ttyS0 panic=-1 quiet cryptomgr.notests pci=noacpi"
    " golem.ip=10.0.2.15/24 golem.gw=10.0.2.2 golem.dns=10.0.2.3"
)

Progress = Callable[[str], None]


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    builder_version: str
    version: str
    kernel_release: str
    append: str
    packages: dict[str, str]
    sizes: dict[str, int]
    built_at: str
    build_seconds: float


def builder_version() -> str:
    digest = hashlib.sha256()
    for name in _rootfs.GUEST_FILES:
        digest.update(name.encode() + b"\0" + _rootfs.guest_file(name) + b"\0")
    for part in (
        _debs.USERLAND_PACKAGES,
        _kernel.BOOT_MODULES,
        _kernel.ON_DEMAND_MODULES,
        _rootfs.DROPBEAR_LIBS,
        _rootfs.NETCAT_LIBS,
        (APPEND,),
    ):
        digest.update("\0".join(part).encode() + b"\1")
    return f"{BUILDER_REVISION}-{digest.hexdigest()[:12]}"


def _load(image_dir: Path, version: str) -> GuestImage | None:
    try:
        manifest = msgspec.json.decode((image_dir / MANIFEST_FILE).read_bytes(), type=Manifest)
    except (OSError, msgspec.ValidationError, msgspec.DecodeError):
        return None
    if manifest.builder_version != version:
        return None
    for name, size in manifest.sizes.items():
        try:
            if (image_dir / name).stat().st_size != size:
                return None
        except OSError:
            return None
    return GuestImage(
        kernel=image_dir / KERNEL_FILE,
        initrd=image_dir / INITRD_FILE,
        append=manifest.append,
        version=manifest.version,
    )


@contextmanager
def _io_step(step: str) -> Iterator[None]:
    """Translate filesystem errors (disk full, permissions) into :class:`GuestBuildError`."""
    try:
        yield
    except OSError as exc:
        raise GuestBuildError(step, f"{type(exc).__name__}: {exc}") from exc


async def build_test_guest(cache_dir: Path, *, on_progress: Progress | None = None) -> GuestImage:
    """The test guest in ``cache_dir``, built first if missing or outdated.

    Raises :class:`GuestBuildError` naming the failing step (with the tool's stderr).
    """
    progress: Progress = on_progress or (lambda _msg: None)
    cache_dir, version = await trio.to_thread.run_sync(
        lambda: (cache_dir.absolute(), builder_version())
    )
    final = cache_dir / f"{IMAGE_PREFIX}{version}"
    image = await trio.to_thread.run_sync(_load, final, version)
    if image is not None:
        progress(f"test guest {image.version} is cached in {final}")
        return image
    with _io_step("prepare cache"):
        await trio.to_thread.run_sync(lambda: cache_dir.mkdir(parents=True, exist_ok=True))
        lock_fd = await acquire_build_lock(
            cache_dir / LOCK_FILE, progress, what="cache lock", poll=0.2
        )
    try:
        image = await trio.to_thread.run_sync(_load, final, version)
        if image is not None:
            progress(f"test guest {image.version} was built by another process")
            return image
        with _io_step("prepare cache"):
            await trio.to_thread.run_sync(_remove_stale, cache_dir, final)
            scratch = Path(
                await trio.to_thread.run_sync(
                    lambda: tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=cache_dir)
                )
            )
        try:
            out = await _build(scratch, version, progress)
            with _io_step("install"):
                await trio.to_thread.run_sync(_install, out, final)
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(shutil.rmtree, scratch, True)
        await trio.to_thread.run_sync(_remove_old_versions, cache_dir, final)
    finally:
        os.close(lock_fd)  # releases the lock
    image = await trio.to_thread.run_sync(_load, final, version)
    if image is None:
        raise GuestBuildError("install", f"the image in {final} does not verify")
    progress(f"test guest {image.version} ready in {final}")
    return image


def _remove_stale(cache_dir: Path, final: Path) -> None:
    for stale in cache_dir.glob(f"{SCRATCH_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)
    if final.exists():  # a directory that failed verification
        shutil.rmtree(final, ignore_errors=True)


def _install(out: Path, final: Path) -> None:
    for name in (KERNEL_FILE, INITRD_FILE, MANIFEST_FILE):
        with (out / name).open("rb") as f:
            os.fsync(f.fileno())
    os.rename(out, final)


def _remove_old_versions(cache_dir: Path, final: Path) -> None:
    for old in cache_dir.glob(f"{IMAGE_PREFIX}*"):
        if old != final and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)


async def _build(scratch: Path, version: str, progress: Progress) -> Path:
    started = time.monotonic()
    debs_dir, root, out = scratch / "debs", scratch / "root", scratch / "out"
    with _io_step("prepare scratch"):
        for d in (debs_dir, root, out):
            await trio.to_thread.run_sync(d.mkdir)
    await _debs.check_architecture()
    kernel_pkg = await _debs.kernel_package()
    kernel_release = kernel_pkg.removeprefix("linux-image-")
    packages = (kernel_pkg, *_debs.USERLAND_PACKAGES)
    progress(f"downloading {len(packages)} packages (kernel {kernel_pkg})")
    debs = await _debs.download(packages, debs_dir)
    progress("unpacking packages")
    await _debs.extract(sorted(debs), root)
    bzimage = root / "boot" / f"vmlinuz-{kernel_release}"
    if not await trio.to_thread.run_sync(bzimage.is_file):
        raise GuestBuildError("unpack", f"{bzimage.name} missing from {kernel_pkg}")
    applets = (
        await _debs.run_tool("list busybox applets", [str(root / "bin/busybox"), "--list-full"])
    ).split()

    progress("resolving kernel modules")
    plan = await trio.to_thread.run_sync(
        _kernel.plan_modules, root / "lib" / "modules" / kernel_release
    )
    progress(f"writing initramfs ({len(plan.files)} modules, {len(applets)} applets)")
    with _io_step("write initramfs"):
        await trio.to_thread.run_sync(
            _rootfs.write_initramfs, root, kernel_release, applets, plan, out / INITRD_FILE
        )
    progress("extracting the uncompressed vmlinux for PVH boot")

    def write_vmlinux() -> None:
        (out / KERNEL_FILE).write_bytes(_kernel.extract_vmlinux(bzimage.read_bytes()))

    with _io_step("extract vmlinux"):
        await trio.to_thread.run_sync(write_vmlinux)
    versions = dict(debs.values())

    def write_manifest() -> None:
        manifest = Manifest(
            builder_version=version,
            version=f"{version}+linux-{versions[kernel_pkg]}",
            kernel_release=kernel_release,
            append=APPEND,
            packages=versions,
            sizes={n: (out / n).stat().st_size for n in (KERNEL_FILE, INITRD_FILE)},
            built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            build_seconds=round(time.monotonic() - started, 2),
        )
        (out / MANIFEST_FILE).write_bytes(msgspec.json.format(msgspec.json.encode(manifest)))

    with _io_step("write manifest"):
        await trio.to_thread.run_sync(write_manifest)
    return out
