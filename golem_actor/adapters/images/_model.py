"""Public value types of the image builder: a built Debian image and the build error.

Why a module of its own: the builder, the CLI and the QEMU backend all speak these types,
and keeping them apart from the IO code avoids import cycles.
"""

from __future__ import annotations

from pathlib import Path

import msgspec


class DebianImage(msgspec.Struct, frozen=True, kw_only=True):
    """A built Debian image: boot ``kernel``/``initrd`` with ``append``, root on an overlay
    of ``base`` (qcow2 holding one ext4 filesystem, no partition table) as ``/dev/vda``."""

    name: str
    base: Path
    kernel: Path
    initrd: Path
    append: str
    version: str


class ImageBuildError(Exception):
    """A step of an image build failed; ``output`` holds the failing tool's last lines."""

    def __init__(self, step: str, message: str, *, output: str = "") -> None:
        self.step = step
        self.message = message
        self.output = output
        text = f"image build failed at {step!r}: {message}"
        if output.strip():
            text += "\n" + output.strip()[-3000:]
        super().__init__(text)
