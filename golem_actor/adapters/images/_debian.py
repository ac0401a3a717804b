"""``build_debian_image``: build a Debian image once with mmdebstrap, cache it, share it.

Theory of operation (the same contract as the test guest's builder):

* **Versioning.** ``CACHE/<name>-<plan version>/`` holds ``base.qcow2``, ``vmlinuz``,
  ``initrd.img`` and ``manifest.json``; a manifest naming the current version with files
  of the recorded sizes means "done", and that check is all a warm call does. Older
  versions are kept: VMs made from them have overlays whose backing file is the old base.
* **Concurrency.** Builds run under an exclusive ``flock`` on ``CACHE/<name>.lock``,
  polled with ``LOCK_NB`` so the Trio loop never blocks; whoever gets the lock second
  finds the finished image.
* **Atomicity.** Everything is made in a scratch directory ``CACHE/.image-build-*``; only
  the finished output directory is renamed into place. Scratch directories of a crashed
  build are removed by the next build, but never while something is mounted inside
  (mmdebstrap mounts ``/proc`` and ``/sys`` in its chroot; removing a tree through a
  mount would delete the host's files).
* **Bounded.** The whole build has a time limit; mmdebstrap gets SIGTERM (it unmounts
  and cleans up) and then SIGKILL for its process group. Without a route to the mirror
  mmdebstrap fails within seconds ("apt-get update ... failed"), which is reported with
  its last output lines.
* **Progress.** mmdebstrap's step lines (``I:``/``W:``/``E:``) go to ``on_progress``
  as they come (the CLI prints them, the node logs them); a failure reports the last 40
  lines of all its output.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import trio

from golem_actor.adapters.build_lock import acquire_build_lock
from golem_actor.adapters.images._model import DebianImage, ImageBuildError
from golem_actor.adapters.images._plan import DebianPlan, mmdebstrap_argv, plan_version
from golem_actor.adapters.images._tools import (
    check_unmounted,
    remove_scratch,
    run_streaming,
    run_tool,
    sbin_tool,
)

__all__ = ["build_debian_image", "image_dir"]

BASE_FILE = "base.qcow2"
KERNEL_FILE = "vmlinuz"
INITRD_FILE = "initrd.img"
MANIFEST_FILE = "manifest.json"
SCRATCH_PREFIX = ".image-build-"
ROOT_LABEL = "golem-root"
MIB = 1 << 20
# ext4 features Linux 6.1 understands (a newer host mke2fs must not add others)
EXT4_FEATURES = (
    "has_journal,ext_attr,resize_inode,dir_index,filetype,extent,64bit,flex_bg,"
    "sparse_super,large_file,huge_file,dir_nlink,extra_isize,metadata_csum"
)
DEFAULT_TIME_LIMIT = 1200.0

Progress = Callable[[str], None]


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    version: str
    suite: str
    kernel_release: str
    append: str
    sizes: dict[str, int]
    fs_bytes: int
    built_at: str
    build_seconds: float


def image_dir(cache_dir: Path, name: str, plan: DebianPlan) -> Path:
    return cache_dir / f"{name}-{plan_version(plan)}"


def fs_size_for(used_bytes: int) -> int:
    """The root filesystem's size for ``used_bytes`` of files: room for first-boot writes
    (host keys, logs, cloud-init state) before ``resizefs`` grows it, in 64 MiB steps."""
    wanted = used_bytes * 13 // 10 + 256 * MIB
    step = 64 * MIB
    return -(-wanted // step) * step


def _load(directory: Path, name: str, version: str) -> DebianImage | None:
    try:
        manifest = msgspec.json.decode((directory / MANIFEST_FILE).read_bytes(), type=Manifest)
    except (OSError, msgspec.ValidationError, msgspec.DecodeError):
        return None
    if manifest.version != version or manifest.name != name:
        return None
    for file, size in manifest.sizes.items():
        try:
            if (directory / file).stat().st_size != size:
                return None
        except OSError:
            return None
    return DebianImage(
        name=name,
        base=directory / BASE_FILE,
        kernel=directory / KERNEL_FILE,
        initrd=directory / INITRD_FILE,
        append=manifest.append,
        version=version,
    )


def _remove_stale(cache_dir: Path, final: Path) -> None:
    for stale in cache_dir.glob(f"{SCRATCH_PREFIX}*"):
        remove_scratch(stale)
    if final.exists():  # a directory that failed verification
        shutil.rmtree(final, ignore_errors=True)


async def build_debian_image(
    cache_dir: Path,
    plan: DebianPlan,
    *,
    name: str = "debian-12",
    on_progress: Progress | None = None,
    time_limit: float = DEFAULT_TIME_LIMIT,
    mmdebstrap: str = "mmdebstrap",
    qemu_img: str = "qemu-img",
) -> DebianImage:
    """The image ``name`` built from ``plan`` in ``cache_dir``, built first if missing.

    Raises :class:`ImageBuildError` naming the failing step, also when the build takes
    longer than ``time_limit`` seconds (waiting for another builder's lock included).
    """
    progress: Progress = on_progress or (lambda _msg: None)
    version = plan_version(plan)
    cache_dir = await trio.to_thread.run_sync(cache_dir.absolute)
    final = image_dir(cache_dir, name, plan)
    image = await trio.to_thread.run_sync(_load, final, name, version)
    if image is not None:
        progress(f"{name} {version} is cached in {final}")
        return image
    try:
        with trio.fail_after(time_limit):
            return await _build_locked(
                cache_dir, final, plan, name, version, progress, mmdebstrap, qemu_img
            )
    except trio.TooSlowError:
        raise ImageBuildError("build", f"{name} was not built within {time_limit:g}s") from None
    except OSError as exc:
        raise ImageBuildError("build", f"{type(exc).__name__}: {exc}") from exc


async def _build_locked(
    cache_dir: Path,
    final: Path,
    plan: DebianPlan,
    name: str,
    version: str,
    progress: Progress,
    mmdebstrap: str,
    qemu_img: str,
) -> DebianImage:
    await trio.to_thread.run_sync(lambda: cache_dir.mkdir(parents=True, exist_ok=True))
    lock_fd = await acquire_build_lock(
        cache_dir / f"{name}.lock", progress, what="image lock", poll=0.5
    )
    try:
        image = await trio.to_thread.run_sync(_load, final, name, version)
        if image is not None:
            progress(f"{name} {version} was built by another process")
            return image
        await trio.to_thread.run_sync(_remove_stale, cache_dir, final)
        scratch = Path(
            await trio.to_thread.run_sync(
                lambda: tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=cache_dir)
            )
        )
        try:
            out = await _build(scratch, plan, name, version, progress, mmdebstrap, qemu_img)
            await trio.to_thread.run_sync(_install, out, final)
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(remove_scratch, scratch)
    finally:
        os.close(lock_fd)
    image = await trio.to_thread.run_sync(_load, final, name, version)
    if image is None:
        raise ImageBuildError("install", f"the image in {final} does not verify")
    progress(f"{name} {version} ready in {final}")
    return image


def _install(out: Path, final: Path) -> None:
    for file in (BASE_FILE, KERNEL_FILE, INITRD_FILE, MANIFEST_FILE):
        with (out / file).open("rb") as f:
            os.fsync(f.fileno())
    os.rename(out, final)


def _preflight(mmdebstrap: str) -> None:
    if os.geteuid() != 0:
        raise ImageBuildError(
            "preflight", "building a Debian image needs root (mmdebstrap --mode=root)"
        )
    if shutil.which(mmdebstrap) is None:
        raise ImageBuildError(
            "preflight",
            f"{mmdebstrap} not found; install the Debian package `mmdebstrap`"
            " (.ci/install-guest-deps.sh does)",
        )


def _used_bytes(root: Path) -> int:
    total = 0
    for directory, _dirs, files in os.walk(root):
        for file in files:
            try:
                total += os.lstat(os.path.join(directory, file)).st_blocks * 512
            except OSError:
                continue
    return total


def _take_boot_files(root: Path, out: Path) -> str:
    """Copy the kernel and initrd out of ``root/boot``; the kernel release."""
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    if len(kernels) != 1:
        raise ImageBuildError("boot files", f"expected one kernel in /boot, found {kernels}")
    release = kernels[0].name.removeprefix("vmlinuz-")
    initrd = root / "boot" / f"initrd.img-{release}"
    if not initrd.is_file():
        raise ImageBuildError("boot files", f"{initrd.name} missing (initramfs-tools failed?)")
    shutil.copyfile(kernels[0], out / KERNEL_FILE)
    shutil.copyfile(initrd, out / INITRD_FILE)
    return release


def mke2fs_argv(root: Path, raw: Path, mke2fs: str = "mke2fs") -> list[str]:
    """Format ``raw`` (an existing sparse file of the filesystem's size) as ext4 holding
    the tree ``root``."""
    return [
        mke2fs,
        "-q",
        "-F",
        "-t",
        "ext4",
        "-O",
        f"none,{EXT4_FEATURES}",
        "-m",
        "0",
        "-L",
        ROOT_LABEL,
        "-E",
        "assume_storage_prezeroed=1,nodiscard",
        "-d",
        str(root),
        str(raw),
    ]


async def _build(
    scratch: Path,
    plan: DebianPlan,
    name: str,
    version: str,
    progress: Progress,
    mmdebstrap: str,
    qemu_img: str,
) -> Path:
    started = time.monotonic()
    root, out, raw = scratch / "root", scratch / "out", scratch / "root.ext4"
    await trio.to_thread.run_sync(_preflight, mmdebstrap)
    await trio.to_thread.run_sync(out.mkdir)
    progress(f"building {name} ({plan.suite}, {len(plan.packages)} packages) with mmdebstrap")
    await run_streaming("mmdebstrap", mmdebstrap_argv(plan, root, binary=mmdebstrap), progress)
    await trio.to_thread.run_sync(check_unmounted, root)
    release = await trio.to_thread.run_sync(_take_boot_files, root, out)
    used = await trio.to_thread.run_sync(_used_bytes, root)
    fs_bytes = fs_size_for(used)
    progress(f"making the ext4 root filesystem ({fs_bytes // MIB} MiB, {used // MIB} MiB used)")

    def sparse_file() -> None:
        with raw.open("xb") as f:
            f.truncate(fs_bytes)

    await trio.to_thread.run_sync(sparse_file)
    mke2fs = await trio.to_thread.run_sync(sbin_tool, "mke2fs")
    await run_tool("mke2fs", mke2fs_argv(root, raw, mke2fs))
    progress("converting to qcow2")
    convert = [
        qemu_img,
        "convert",
        "-q",
        "-f",
        "raw",
        "-O",
        "qcow2",
        str(raw),
        str(out / BASE_FILE),
    ]
    await run_tool("qemu-img convert", convert)

    def write_manifest() -> None:
        manifest = Manifest(
            name=name,
            version=version,
            suite=plan.suite,
            kernel_release=release,
            append=plan.append,
            sizes={f: (out / f).stat().st_size for f in (BASE_FILE, KERNEL_FILE, INITRD_FILE)},
            fs_bytes=fs_bytes,
            built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            build_seconds=round(time.monotonic() - started, 2),
        )
        (out / MANIFEST_FILE).write_bytes(msgspec.json.format(msgspec.json.encode(manifest)))

    await trio.to_thread.run_sync(write_manifest)
    progress(f"built in {time.monotonic() - started:.0f}s (kernel {release})")
    return out
