"""From a catalog name to something QEMU can boot: the test guest, or a verified disk image.

Why a module of its own: images are where untrusted bytes enter the node, so the rules
live in one place. A cloud image is never booted unverified:

* ``CloudImage(path=...)``: the operator's file is hashed (SHA-256, in a worker thread)
  the first time, and the verdict is remembered in ``<cache>/images/verified/<sha>.json``
  together with the file's size and mtime, so later launches skip the hash unless the
  file changed.
* ``CloudImage(url=...)``: downloaded once with httpx into ``<cache>/images/<sha>.img``
  (content-addressed). Bytes stream into a ``.part`` temp file while being hashed; only a
  file whose digest matches is fsynced and renamed into place, so the presence of the
  final file means "verified". A wrong digest, an HTTP error or a network failure raises
  :class:`ImageNotAvailable` and leaves nothing behind. Concurrent requests for one image
  in this process share one download (a lock per digest).
* ``TestGuestImage``: the tiny guest, built (once, cached) by the guest adapter.
* ``DebianBuild``: an image built (once, cached, locked) from Debian packages by
  ``adapters.images`` (mmdebstrap). Its progress goes to the log, and the build has a
  time limit (``build_timeout``), so a host without a route to the mirror fails the
  create with the builder's error instead of leaving it hanging.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import httpx
import msgspec
import structlog
import trio

from golem_actor._atomic import ensure_dir, fsync_dir, read_if_exists, write_atomic
from golem_actor.adapters.backend import ImageNotAvailable
from golem_actor.adapters.guest import GuestBuildError, GuestImage, build_test_guest
from golem_actor.adapters.images import (
    DebianImage,
    ImageBuildError,
    build_debian_image,
    default_plan,
)
from golem_actor.images import (
    CloudImage,
    DebianBuild,
    ImageCatalog,
    TestGuestImage,
    UnknownImage,
)

__all__ = ["CloudDisk", "ImageStore", "download_image", "sha256_of", "verify_local_image"]

CHUNK = 1 << 20
log = structlog.get_logger("golem_actor.qemu")


class CloudDisk(msgspec.Struct, frozen=True, kw_only=True):
    """A verified base image on local disk, booted through firmware from an overlay."""

    path: Path
    sha256: str


class _Verified(msgspec.Struct, frozen=True):
    path: str
    size: int
    mtime_ns: int


def sha256_of(path: Path) -> str:
    """The hex SHA-256 of a file (blocking: run it in a worker thread)."""
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _verify_local(path: Path, sha256: str, marker_dir: Path) -> None:
    try:
        stat = path.stat()
    except OSError as exc:
        raise ImageNotAvailable(f"image file {path} is not readable: {exc}") from None
    marker = marker_dir / f"{sha256}.json"
    seen = _Verified(str(path), stat.st_size, stat.st_mtime_ns)
    recorded = read_if_exists(marker)
    if recorded is not None:
        try:
            if msgspec.json.decode(recorded, type=_Verified) == seen:
                return
        except (msgspec.DecodeError, msgspec.ValidationError):
            pass
    try:
        actual = sha256_of(path)
    except OSError as exc:
        raise ImageNotAvailable(f"image file {path} is not readable: {exc}") from None
    if actual != sha256:
        raise ImageNotAvailable(
            f"image file {path} has SHA-256 {actual}, the catalog expects {sha256}"
        )
    ensure_dir(marker_dir)
    write_atomic(marker, msgspec.json.encode(seen), mode=0o644)


async def verify_local_image(path: Path, sha256: str, marker_dir: Path) -> Path:
    """``path`` once its SHA-256 matches (hashing only when the file changed)."""
    if not path.is_absolute():
        raise ImageNotAvailable(f"image path must be absolute, got {str(path)!r}")
    await trio.to_thread.run_sync(_verify_local, path, sha256, marker_dir)
    return path


def _write_chunk(out: BinaryIO, digest: hashlib._Hash, chunk: bytes) -> None:
    out.write(chunk)
    digest.update(chunk)


def _finish(out: BinaryIO, part: Path, final: Path) -> None:
    out.flush()
    os.fsync(out.fileno())
    out.close()
    os.replace(part, final)
    fsync_dir(final.parent)


async def download_image(
    url: str,
    sha256: str,
    dest_dir: Path,
    *,
    read_timeout: float = 30.0,
    client_factory: Callable[[], httpx.AsyncClient] | None = None,
) -> Path:
    """``<dest_dir>/<sha256>.img``, downloading it from ``url`` first if missing.

    ``read_timeout`` bounds connecting and each read (not the whole transfer: an image may
    legitimately take minutes).
    """
    if not url.startswith(("http://", "https://")):
        raise ImageNotAvailable(f"image URL must be http(s): {url!r}")
    final = dest_dir / f"{sha256}.img"
    if await trio.to_thread.run_sync(final.exists):
        return final
    await trio.to_thread.run_sync(ensure_dir, dest_dir)
    part = dest_dir / f".{sha256}.img.part-{secrets.token_hex(6)}"
    digest = hashlib.sha256()
    factory = client_factory or (
        lambda: httpx.AsyncClient(timeout=httpx.Timeout(read_timeout), follow_redirects=True)
    )
    out = await trio.to_thread.run_sync(lambda: part.open("xb"))
    try:
        log.info("image_download_started", url=url, sha256=sha256)
        size = 0
        try:
            async with factory() as client, client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise ImageNotAvailable(
                        f"downloading {url}: HTTP {response.status_code} {response.reason_phrase}"
                    )
                async for chunk in response.aiter_bytes(CHUNK):
                    await trio.to_thread.run_sync(_write_chunk, out, digest, chunk)
                    size += len(chunk)
        except httpx.HTTPError as exc:
            raise ImageNotAvailable(f"downloading {url}: {type(exc).__name__}: {exc}") from None
        actual = digest.hexdigest()
        if actual != sha256:
            raise ImageNotAvailable(
                f"downloaded {url} ({size} bytes) has SHA-256 {actual}, the catalog expects"
                f" {sha256}; discarded"
            )
        await trio.to_thread.run_sync(_finish, out, part, final)
        log.info("image_download_finished", url=url, sha256=sha256, bytes=size)
        return final
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(out.close)
            await trio.to_thread.run_sync(lambda: part.unlink(missing_ok=True))


class ImageStore:
    """Resolves catalog names for the QEMU backend and caches what it fetched."""

    def __init__(
        self,
        *,
        catalog: ImageCatalog,
        cache_dir: Path,
        download_timeout: float = 30.0,
        build_timeout: float = 1200.0,
    ) -> None:
        self._catalog = catalog
        self._cache_dir = cache_dir
        self._images_dir = cache_dir / "images"
        self._download_timeout = download_timeout
        self._build_timeout = build_timeout
        self._locks: dict[str, trio.Lock] = {}

    def _resolve(self, name: str) -> tuple[str, TestGuestImage | CloudImage | DebianBuild]:
        try:
            resolved = self._catalog.resolve(name, "qemu")
        except UnknownImage as exc:
            raise ImageNotAvailable(str(exc)) from None
        image = self._catalog.entries[resolved].qemu
        if image is None:  # resolve() already refused this; keeps the type checker honest
            raise ImageNotAvailable(f"image {name!r} has no QEMU variant")
        return resolved, image

    def lookup(self, name: str) -> TestGuestImage | CloudImage | DebianBuild:
        """The QEMU entry for ``name`` (no IO); :class:`ImageNotAvailable` if none."""
        return self._resolve(name)[1]

    async def test_guest(self) -> GuestImage:
        def progress(message: str) -> None:
            log.info("image_build_progress", image="test-guest", message=message)

        try:
            with trio.fail_after(self._build_timeout):
                return await build_test_guest(self._cache_dir, on_progress=progress)
        except trio.TooSlowError:
            raise ImageNotAvailable(
                f"the test guest was not built within {self._build_timeout:g}s"
            ) from None
        except GuestBuildError as exc:
            raise ImageNotAvailable(f"the test guest cannot be built: {exc}") from None

    async def debian(self, name: str, image: DebianBuild) -> DebianImage:
        """Catalog image ``name``, built from Debian packages first if not cached."""

        def progress(message: str) -> None:
            log.info("image_build_progress", image=name, message=message)

        async with self._locks.setdefault(f"build:{name}", trio.Lock()):
            try:
                return await build_debian_image(
                    self._cache_dir,
                    default_plan(image.suite),
                    name=name,
                    on_progress=progress,
                    time_limit=self._build_timeout,
                )
            except ImageBuildError as exc:
                log.error("image_build_failed", image=name, error=str(exc))
                raise ImageNotAvailable(f"image {name!r} cannot be built: {exc}") from None

    async def materialize(self, name: str) -> GuestImage | CloudDisk | DebianImage:
        """What to boot for catalog name ``name``, fetched and verified if needed."""
        resolved, image = self._resolve(name)
        if isinstance(image, TestGuestImage):
            return await self.test_guest()
        if isinstance(image, DebianBuild):
            return await self.debian(resolved, image)
        lock = self._locks.setdefault(image.sha256, trio.Lock())
        async with lock:
            if image.path is not None:
                path = await verify_local_image(
                    Path(image.path), image.sha256, self._images_dir / "verified"
                )
            else:
                assert image.url is not None
                path = await download_image(
                    image.url, image.sha256, self._images_dir, read_timeout=self._download_timeout
                )
        return CloudDisk(path=path, sha256=image.sha256)
