"""`python -m bench [name ...]`: run the benchmarks (all by default)."""

from __future__ import annotations

import sys

import trio

from golem_actor.logs import configure_logging

from . import kernel, relay

BENCHES = {"kernel": kernel.run, "relay": relay.run}


def main() -> None:
    configure_logging(fmt="console", level="warning")  # benchmarks print their own tables
    names = sys.argv[1:] or list(BENCHES)
    for name in names:
        trio.run(BENCHES[name])


main()
