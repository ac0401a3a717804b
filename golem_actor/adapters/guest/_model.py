"""Public value types of the test-guest adapter: the built image and the build error.

Why a module of its own: the builder, the CLI and the QEMU side all speak these two
types, and keeping them apart from the IO code avoids import cycles.
"""

from __future__ import annotations

from pathlib import Path

import msgspec


class GuestImage(msgspec.Struct, frozen=True, kw_only=True):
    """A bootable test guest: boot it with ``-kernel kernel -initrd initrd -append append``.

    ``kernel`` is an uncompressed ELF ``vmlinux`` that QEMU boots through the PVH entry
    point (no firmware decompression step, ~2.8 s faster under TCG than the bzImage).
    """

    kernel: Path
    initrd: Path
    append: str
    version: str


class GuestBuildError(Exception):
    """A step of the guest build failed; ``stderr`` holds the failing tool's output."""

    def __init__(self, step: str, message: str, *, stderr: str = "") -> None:
        self.step = step
        self.message = message
        self.stderr = stderr
        text = f"guest build failed at {step!r}: {message}"
        if stderr.strip():
            text += "\n" + stderr.strip()[-4000:]
        super().__init__(text)
