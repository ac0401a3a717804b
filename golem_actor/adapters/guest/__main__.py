"""``python -m golem_actor.adapters.guest build --cache-dir DIR``: build the test guest.

Why a module entry point: CI and developers pre-build (and cache) the guest outside of
any test; the product CLI will expose the same as ``golem-provider guest build``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import trio

from golem_actor.adapters.guest._builder import build_test_guest
from golem_actor.adapters.guest._model import GuestBuildError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m golem_actor.adapters.guest")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build (or find cached) the tiny test guest")
    build.add_argument("--cache-dir", type=Path, required=True, help="where images are cached")
    args = parser.parse_args(argv)

    started = time.monotonic()

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - started:6.2f}s] {message}", flush=True)

    try:
        image = trio.run(lambda: build_test_guest(args.cache_dir, on_progress=progress))
    except GuestBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"kernel: {image.kernel}")
    print(f"initrd: {image.initrd}")
    print(f"append: {image.append}")
    print(f"version: {image.version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
