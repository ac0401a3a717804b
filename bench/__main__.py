"""`python -m bench [name ...]`: run the benchmarks (all by default)."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable

import trio

from golem_actor.logs import configure_logging

from . import api, boot, chain, discovery, gating, images, kernel, netns, relay, vpn

Bench = Callable[[], Awaitable[dict[str, float]]]
BENCHES: dict[str, Bench] = {
    "kernel": kernel.run,
    "relay": relay.run,
    "api": api.run,
    "boot": boot.run,
    "chain": chain.run,
    "gating": gating.run,
    "discovery": discovery.run,
    "vpn": vpn.run,
    "netns": netns.run,
    "images": images.run,
}


def main() -> None:
    configure_logging(fmt="console", level="warning")  # benchmarks print their own tables
    names = sys.argv[1:] or list(BENCHES)
    for name in names:
        trio.run(BENCHES[name])


main()
