"""`python -m golem_actor.discovery serve ...`: run a discovery server.

Why: the service ships with the product so that anyone (and tests) can run a discovery
server that requestors' `central` driver reads; `main(argv)` is also what
`golem-provider discovery` calls. Bad flags fail at start with a message naming the flag;
a port that is taken or a database that cannot be opened exits 1 with the reason;
SIGINT/SIGTERM stop gracefully.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from golem_actor.portcheck.cli import add_serve_command, run_serve_command
from golem_actor.portcheck.config import parse_networks

from .config import DiscoveryConfig
from .server import run_server
from .store import StoreError

__all__ = ["build_parser", "config_from_args", "main"]


def build_parser(prog: str = "python -m golem_actor.discovery") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="golem-actor discovery server")
    d = DiscoveryConfig()
    summary = "serve /api/v1/advertisements and GET /health"
    serve = add_serve_command(parser, summary, d.host, d.port)
    serve.add_argument("--db", type=Path, default=d.db_path, help="SQLite file (%(default)s)")
    serve.add_argument(
        "--allow-unsigned",
        action="store_true",
        help="admit legacy unsigned adverts (listed with verified=false)",
    )
    serve.add_argument("--ttl", type=float, default=d.ttl, help="advert lifetime, s")
    serve.add_argument("--read-rate", type=float, default=d.read_rate, help="GETs/minute/source")
    serve.add_argument("--read-burst", type=int, default=d.read_burst)
    serve.add_argument(
        "--write-rate", type=float, default=d.write_rate, help="POST+DELETE/minute/source"
    )
    serve.add_argument("--write-burst", type=int, default=d.write_burst)
    serve.add_argument("--max-body", type=int, default=d.max_body, help="bytes (%(default)s)")
    serve.add_argument("--max-adverts", type=int, default=d.max_adverts)
    return parser


def config_from_args(args: argparse.Namespace) -> DiscoveryConfig:
    return DiscoveryConfig(
        host=args.host,
        port=args.port,
        db_path=args.db.expanduser(),
        allow_unsigned=args.allow_unsigned,
        trusted_proxies=parse_networks(args.trust),
        ttl=args.ttl,
        read_rate=args.read_rate,
        read_burst=args.read_burst,
        write_rate=args.write_rate,
        write_burst=args.write_burst,
        max_body=args.max_body,
        max_adverts=args.max_adverts,
    )


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    parser = build_parser() if prog is None else build_parser(prog)
    failures = (OSError, StoreError)
    return run_serve_command(parser, argv, config_from_args, run_server, "discovery", failures)
