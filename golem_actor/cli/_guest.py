"""`golem-provider guest build`: build (or find cached) the tiny test guest."""

from __future__ import annotations

import sys

import trio

from golem_actor.adapters.guest import GuestBuildError, build_test_guest
from golem_actor.settings import Settings


def build_guest(settings: Settings) -> int:
    cache = settings.data_path / "guest"

    def progress(message: str) -> None:
        print(f"  {message}", flush=True)

    print(f"building the test guest in {cache}")
    try:
        image = trio.run(lambda: build_test_guest(cache, on_progress=progress))
    except GuestBuildError as error:
        print(f"golem-provider: {error}", file=sys.stderr)
        return 1
    print(f"test guest {image.version} ready: {image.kernel.parent}")
    return 0
