"""`python -m bench [name ...] [--against-upstream]`: run the benchmarks (all by default).

`--against-upstream` makes `api` the side-by-side bench against the upstream provider
(bench/api_upstream.py) instead of the in-process one.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable

import trio

from golem_actor.logs import configure_logging

from . import (
    advert,
    api,
    api_upstream,
    boot,
    chain,
    discovery,
    gating,
    images,
    kernel,
    netns,
    relay,
    vpn,
)

Bench = Callable[[], Awaitable[dict[str, float]]]
BENCHES: dict[str, Bench] = {
    "kernel": kernel.run,
    "relay": relay.run,
    "api": api.run,
    "boot": boot.run,
    "chain": chain.run,
    "gating": gating.run,
    "advert": advert.run,
    "discovery": discovery.run,
    "vpn": vpn.run,
    "netns": netns.run,
    "images": images.run,
}


def main() -> None:
    configure_logging(fmt="console", level="warning")  # benchmarks print their own tables
    args = sys.argv[1:]
    if "--against-upstream" in args:
        BENCHES["api"] = api_upstream.run
    names = [arg for arg in args if not arg.startswith("--")] or list(BENCHES)
    for name in names:
        trio.run(BENCHES[name])


main()
