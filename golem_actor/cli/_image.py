"""`golem-provider image build NAME`: build (or find cached) a catalog image the node makes
itself (``debian-12``), with mmdebstrap's progress on the terminal."""

from __future__ import annotations

import sys
import time

import trio

from golem_actor.adapters.images import ImageBuildError, build_debian_image, default_plan
from golem_actor.images import DebianBuild, UnknownImage, load_catalog
from golem_actor.settings import Settings


def build_image(settings: Settings, name: str) -> int:
    try:
        catalog = load_catalog(settings.data_path)
        resolved = catalog.resolve(name, "qemu")
    except (UnknownImage, ValueError) as error:
        print(f"golem-provider: {error}", file=sys.stderr)
        return 2
    image = catalog.entries[resolved].qemu
    if not isinstance(image, DebianBuild):
        print(
            f'golem-provider: {resolved!r} is not built by the node (only kind = "debian"'
            " images are); the test guest has `golem-provider guest build`",
            file=sys.stderr,
        )
        return 2
    cache = settings.data_path / "guest"  # the QEMU backend's image cache

    def progress(message: str) -> None:
        print(f"  {message}", flush=True)

    print(f"building {resolved} in {cache}")
    started = time.monotonic()
    try:
        built = trio.run(
            lambda: build_debian_image(
                cache, default_plan(image.suite), name=resolved, on_progress=progress
            )
        )
    except ImageBuildError as error:
        print(f"golem-provider: {error}", file=sys.stderr)
        return 1
    print(
        f"{resolved} {built.version} ready: {built.base.parent} ({time.monotonic() - started:.0f}s)"
    )
    return 0
