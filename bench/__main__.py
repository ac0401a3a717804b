"""`python -m bench [name ...] [--against-upstream] [--OPTION=VALUE ...]`: run the benchmarks.

All of them by default. `--against-upstream` makes `api` the side-by-side bench against
the upstream provider (bench/api_upstream.py) instead of the in-process one. Any other
`--option=value` is a keyword argument of the benches that take it (a number), e.g.
`python -m bench cycles --cycles=200 --every=50` or `python -m bench soak --seconds=10`.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Awaitable, Callable
from functools import partial

import trio

from golem_actor.logs import configure_logging

from . import (
    advert,
    api,
    api_upstream,
    boot,
    chain,
    connections,
    cycles,
    discovery,
    gating,
    images,
    kernel,
    netns,
    relay,
    soak,
    vpn,
    vpn_gate,
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
    "vpn_gate": vpn_gate.run,
    "netns": netns.run,
    "images": images.run,
    "cycles": cycles.run,
    "connections": connections.run,
    "soak": soak.run,
}


def _options(args: list[str]) -> dict[str, float]:
    """`--name=value` arguments as numbers (ints where they are whole)."""
    options: dict[str, float] = {}
    for arg in args:
        name, equals, raw = arg.removeprefix("--").partition("=")
        if arg.startswith("--") and equals:
            value = float(raw)
            options[name.replace("-", "_")] = int(value) if value.is_integer() else value
    return options


def main() -> None:
    configure_logging(fmt="console", level="warning")  # benchmarks print their own tables
    args = sys.argv[1:]
    if "--against-upstream" in args:
        BENCHES["api"] = api_upstream.run
    names = [arg for arg in args if not arg.startswith("--")] or list(BENCHES)
    options = _options(args)
    known = {param for name in names for param in inspect.signature(BENCHES[name]).parameters}
    if unknown := sorted(options.keys() - known):
        sys.exit(f"no benchmark among {', '.join(names)} takes {', '.join(unknown)}")
    for name in names:
        bench = BENCHES[name]
        accepted = inspect.signature(bench).parameters
        trio.run(partial(bench, **{k: v for k, v in options.items() if k in accepted}))


main()
