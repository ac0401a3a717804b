"""`python -m golem_actor.portcheck serve ...`: run a port-check server.

Why: the server ships with the product so that operators (and tests) can run their own
checkers; `main(argv)` is also what a `golem-provider port-checker` command calls.
Bad flags fail at start with a message naming the flag; SIGINT/SIGTERM stop gracefully.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Protocol

import trio

from golem_actor.logs import choose_format, configure_logging

from .config import ServerConfig, parse_networks
from .server import run_server

__all__ = [
    "Server",
    "add_serve_command",
    "build_parser",
    "config_from_args",
    "main",
    "run_serve_command",
    "serve_until_signalled",
]


Server = Callable[..., Awaitable[None]]  # run_server bound to its config


def build_parser(prog: str = "python -m golem_actor.portcheck") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="golem-actor port-check server")
    defaults = ServerConfig()
    serve = add_serve_command(
        parser, "serve POST /check-ports and GET /health", defaults.host, defaults.port
    )
    serve.add_argument("--max-ports", type=int, default=defaults.max_ports)
    serve.add_argument(
        "--per-ip-rate", type=float, default=defaults.per_ip_rate, help="requests/minute/source"
    )
    serve.add_argument("--burst", type=int, default=defaults.burst, help="requests at once")
    serve.add_argument("--per-ip-inflight", type=int, default=defaults.max_inflight_per_source)
    serve.add_argument(
        "--concurrency", type=int, default=defaults.concurrency, help="probes at once, in all"
    )
    serve.add_argument("--probe-timeout", type=float, default=defaults.probe_timeout)
    serve.add_argument("--request-timeout", type=float, default=defaults.request_timeout)
    return parser


def add_serve_command(
    parser: argparse.ArgumentParser, summary: str, host: str, port: int
) -> argparse.ArgumentParser:
    """The `serve` command with the flags each of our servers has: where, proxies, logs."""
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help=summary)
    serve.add_argument("--host", default=host, help="address to bind (%(default)s)")
    serve.add_argument("--port", type=int, default=port, help="port (%(default)s)")
    serve.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="CIDR",
        help="a reverse proxy network whose X-Forwarded-For is believed (repeatable)",
    )
    serve.add_argument("--log-format", choices=["auto", "json", "console"], default="auto")
    serve.add_argument("--log-level", default="info")
    return serve


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    return ServerConfig(
        host=args.host,
        port=args.port,
        trusted_proxies=parse_networks(args.trust),
        max_ports=args.max_ports,
        per_ip_rate=args.per_ip_rate,
        burst=args.burst,
        max_inflight_per_source=args.per_ip_inflight,
        concurrency=args.concurrency,
        probe_timeout=args.probe_timeout,
        request_timeout=args.request_timeout,
    )


async def _until_signalled() -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            return


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    parser = build_parser() if prog is None else build_parser(prog)
    return run_serve_command(parser, argv, config_from_args, run_server, "port checker")


class _Bound(Protocol):
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...


def run_serve_command(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    make_config: Callable[[argparse.Namespace], _Bound],
    run: Callable[..., Awaitable[None]],
    name: str,
    failures: tuple[type[Exception], ...] = (OSError,),
) -> int:
    """Parse, check the config (a bad value: usage error), log, `run(config)` until signalled."""
    args = parser.parse_args(argv)
    try:
        config = make_config(args)
        configure_logging(fmt=choose_format(args.log_format, sys.stderr), level=args.log_level)
    except ValueError as exc:
        parser.error(str(exc))
    return serve_until_signalled(
        partial(run, config), name, f"{config.host}:{config.port}", failures
    )


def serve_until_signalled(
    server: Server,
    name: str,
    where: str,
    failures: tuple[type[Exception], ...] = (OSError,),
) -> int:
    """Run `server(shutdown_trigger=...)` until SIGINT/SIGTERM: 0, or 1 (said) on `failures`."""
    failed: list[Exception] = []
    try:
        trio.run(partial(server, shutdown_trigger=_until_signalled))
    except* failures as group:  # e.g. the port is taken
        failed.extend(_leaves(group))
    if failed:
        print(f"{name}: cannot serve on {where}: {failed[0]}", file=sys.stderr)
        return 1
    return 0


def _leaves(group: BaseExceptionGroup[Exception]) -> list[Exception]:
    found: list[Exception] = []
    for item in group.exceptions:
        if isinstance(item, BaseExceptionGroup):
            found.extend(_leaves(item))
        else:
            found.append(item)
    return found
