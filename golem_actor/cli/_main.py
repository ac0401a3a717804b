"""Argument parsing and dispatch for `golem-provider`.

Exit statuses: 0 success, 1 the command failed (the node failed or gave up, a stop
needed SIGKILL), 2 bad usage or an invalid setting (the message names the variable).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence

from golem_actor import discovery, portcheck
from golem_actor.logs import configure_logging
from golem_actor.settings import LoadedSettings, SettingsError, resolve_settings

from ._guest import build_guest
from ._image import build_image
from ._payments import PAYMENT_COMMANDS, add_payment_commands, run_payment_command
from ._pricing import add_pricing_parser, pricing_command
from ._service import add_service_parser, service_command
from ._start import start
from ._status import status
from ._stop import stop
from ._vms import add_vms_parser, vms_command

EXIT_USAGE = 2


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="the node's data directory (default ~/.golem/provider)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="golem-provider", description="A VM on Golem provider node."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("start", help="start the node (foreground unless --daemon)")
    _add_data_dir(run)
    run.add_argument("--daemon", action="store_true", help="detach and write a PID file")
    run.add_argument("--host", help="address the API listens on (default 0.0.0.0)")
    run.add_argument("--port", type=int, help="port the API listens on (default 7466)")
    run.add_argument("--network", choices=["testnet", "mainnet", "development"])
    run.add_argument(
        "--payments-network", help="the payments chain profile (e.g. l2.holesky, or local)"
    )
    run.add_argument("--log-format", choices=["auto", "json", "console"])
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    run.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)

    halt = commands.add_parser("stop", help="ask the running node to drain and stop")
    _add_data_dir(halt)
    halt.add_argument(
        "--timeout", type=float, help="seconds before SIGKILL (default: shutdown_timeout_seconds)"
    )
    check = commands.add_parser("status", help="ports, VM backend and updates, at a glance")
    _add_data_dir(check)
    check.add_argument("--json", action="store_true", help="the machine-readable document")

    checker = commands.add_parser(
        "port-checker", help="run a port-check server (see: port-checker serve --help)"
    )
    checker.add_argument("checker_args", nargs=argparse.REMAINDER)
    finder = commands.add_parser(
        "discovery", help="run a discovery server (see: discovery serve --help)"
    )
    finder.add_argument("discovery_args", nargs=argparse.REMAINDER)

    guest = commands.add_parser("guest", help="the tiny test guest of local mode")
    guest_commands = guest.add_subparsers(dest="guest_command", required=True, metavar="ACTION")
    build = guest_commands.add_parser("build", help="build it now (otherwise: on first use)")
    _add_data_dir(build)
    image = commands.add_parser("image", help="catalog images the node builds (debian-12)")
    image_commands = image.add_subparsers(dest="image_command", required=True, metavar="ACTION")
    build_img = image_commands.add_parser(
        "build", help="build an image now (otherwise: on first use)"
    )
    build_img.add_argument("name", help="catalog name, e.g. debian-12")
    _add_data_dir(build_img)
    add_payment_commands(commands)
    add_pricing_parser(commands)
    add_vms_parser(commands)
    add_service_parser(commands)
    return parser


def settings_from(args: argparse.Namespace, env: Mapping[str, str]) -> LoadedSettings:
    overrides = {
        name: getattr(args, name, None)
        for name in (
            "data_dir",
            "host",
            "port",
            "network",
            "payments_network",
            "log_format",
            "log_level",
        )
    }
    return resolve_settings(env=env, cli=overrides)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "port-checker":
        return portcheck.main(args.checker_args, prog="golem-provider port-checker")
    if args.command == "discovery":
        return discovery.main(args.discovery_args, prog="golem-provider discovery")
    try:
        loaded = settings_from(args, os.environ)
    except SettingsError as error:
        print(f"golem-provider: {error}", file=sys.stderr)
        return EXIT_USAGE
    match args.command:
        case "start":
            return start(loaded, args, sys.argv[1:] if argv is None else list(argv))
        case "stop":
            return stop(loaded.settings, args.timeout)
        case "guest":
            return build_guest(loaded.settings)
        case "image":
            return build_image(loaded.settings, args.name)
        case "status":
            configure_logging(fmt="console", level="warning")
            return status(loaded.settings, args.json)
        case "service":
            return service_command(loaded.settings, args)
        case "vms":
            configure_logging(fmt="console", level="warning")
            return vms_command(loaded.settings, args)
        case "pricing":
            configure_logging(fmt="console", level="warning")
            return pricing_command(loaded.settings, args)
        case command if command in PAYMENT_COMMANDS:
            configure_logging(fmt="console", level="warning")
            return run_payment_command(loaded.settings, args)
    raise AssertionError(args.command)  # pragma: no cover - argparse enforces the choices
