"""The payments side of `golem-provider`: `streams`, `config` and `wallet`.

Why one entry point: ``_main`` registers and dispatches these with two calls, so the shared
dispatcher stays small. Every command here works with or without a running node (it talks
to the chain directly) and follows the CLI's convention: ``(settings, args) -> exit status``.
"""

from __future__ import annotations

import argparse

from golem_actor.settings import Settings

from ._config import add_config_parser, config_command
from ._streams import add_streams_parser, streams_command
from ._wallet import add_wallet_parser, wallet_command

__all__ = ["PAYMENT_COMMANDS", "add_payment_commands", "run_payment_command"]

PAYMENT_COMMANDS = frozenset({"streams", "config", "wallet"})


def add_payment_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    add_streams_parser(commands)
    add_config_parser(commands)
    add_wallet_parser(commands)


def run_payment_command(settings: Settings, args: argparse.Namespace) -> int:
    match args.command:
        case "streams":
            return streams_command(settings, args)
        case "config":
            return config_command(settings, args)
        case "wallet":
            return wallet_command(settings, args)
    raise AssertionError(args.command)  # pragma: no cover - argparse enforces the choices
