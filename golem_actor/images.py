"""The image catalog: which names a request may use, and what each backend boots for them.

Shipped in `config/images.toml`; an operator's `<data dir>/images.toml` adds or replaces
entries. Only catalog names reach a backend, so no client string is ever handed to QEMU
or Multipass as an image (the existing provider passed it to `multipass launch` as is).
"""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

import msgspec

__all__ = [
    "CloudImage",
    "DebianBuild",
    "ImageCatalog",
    "ImageEntry",
    "TestGuestImage",
    "UnknownImage",
    "load_catalog",
]

_NAME = re.compile(r"^[a-z0-9][a-z0-9.:-]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SUITE = re.compile(r"^[a-z][a-z0-9-]{1,31}$")


class TestGuestImage(msgspec.Struct, frozen=True, tag_field="kind", tag="test-guest"):
    pass


class CloudImage(msgspec.Struct, frozen=True, tag_field="kind", tag="cloud"):
    sha256: str
    path: str | None = None
    url: str | None = None

    def __post_init__(self) -> None:
        if not _SHA256.match(self.sha256):
            raise ValueError("sha256 must be 64 lowercase hex digits")
        if (self.path is None) == (self.url is None):
            raise ValueError("give exactly one of path or url")


class DebianBuild(msgspec.Struct, frozen=True, tag_field="kind", tag="debian"):
    """An image the node builds itself from Debian packages (mmdebstrap) on first use."""

    suite: str = "bookworm"

    def __post_init__(self) -> None:
        if not _SUITE.match(self.suite):
            raise ValueError("suite must be a Debian suite name such as bookworm")


QemuImage = TestGuestImage | CloudImage | DebianBuild


class ImageEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    description: str = ""
    aliases: list[str] = []
    qemu: QemuImage | None = None
    multipass: str | None = None

    def for_backend(self, kind: str) -> QemuImage | str | None:
        return self.qemu if kind == "qemu" else self.multipass


class _Defaults(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    qemu: str | None = None
    multipass: str | None = None


class _CatalogFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    images: dict[str, ImageEntry] = {}
    default: _Defaults = _Defaults()


class UnknownImage(ValueError):
    """The requested image is not in the catalog, or not available on this backend."""


class ImageCatalog:
    def __init__(self, entries: dict[str, ImageEntry], defaults: dict[str, str]) -> None:
        self.entries = entries
        self.defaults = defaults
        self._names: dict[str, str] = {}
        for name, entry in entries.items():
            for alias in (name, *entry.aliases):
                if not _NAME.match(alias):
                    raise ValueError(f"image name {alias!r} is not a valid catalog name")
                self._names[alias] = name

    def available(self, backend: str) -> list[str]:
        return sorted(n for n, e in self.entries.items() if e.for_backend(backend) is not None)

    def resolve(self, requested: str | None, backend: str) -> str:
        """The catalog name for a request's `image` (None: the backend's default)."""
        if requested is None or requested == "":
            default = self.defaults.get(backend)
            if default is None:
                raise UnknownImage(f"no default image for the {backend} backend; name one")
            requested = default
        name = self._names.get(requested)
        choices = ", ".join(self.available(backend)) or "none"
        if name is None:
            raise UnknownImage(f"unknown image {requested!r}; available images: {choices}")
        if self.entries[name].for_backend(backend) is None:
            raise UnknownImage(
                f"image {requested!r} is not available on this node ({backend}); "
                f"available images: {choices}"
            )
        return name


def _decode(data: bytes, origin: str) -> _CatalogFile:
    try:
        return msgspec.toml.decode(data, type=_CatalogFile)
    except (msgspec.ValidationError, msgspec.DecodeError) as error:
        raise ValueError(f"{origin}: {error}") from None


def load_catalog(data_dir: Path | None = None) -> ImageCatalog:
    """The shipped catalog, overlaid by `<data_dir>/images.toml` when it exists."""
    shipped = _decode(files("config").joinpath("images.toml").read_bytes(), "config/images.toml")
    entries = dict(shipped.images)
    defaults = {k: v for k, v in msgspec.structs.asdict(shipped.default).items() if v}
    local = None if data_dir is None else data_dir / "images.toml"
    if local is not None and local.exists():
        extra = _decode(local.read_bytes(), str(local))
        entries.update(extra.images)
        defaults.update({k: v for k, v in msgspec.structs.asdict(extra.default).items() if v})
    for backend, name in defaults.items():
        if name not in entries:
            raise ValueError(f"default image {name!r} for {backend} is not in the catalog")
    return ImageCatalog(entries, defaults)
