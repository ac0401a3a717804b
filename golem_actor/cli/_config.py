"""`golem-provider config monitor|withdraw`: persist the stream automation settings.

Why: the operator tunes the payment monitor and auto-withdraw without editing files by hand.
Values are written as ``GOLEM_PROVIDER_STREAM_*`` lines of ``<data dir>/.env`` (where the
node reads them), but only after the settings loader accepted them: a bad value is refused
with the variable's name and nothing is written. After writing, the settings are loaded again
and the effective values printed (an environment variable still wins over ``.env``: that is
reported).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping

from golem_actor.settings import Settings, SettingsError, env_var_name, resolve_settings

from ._dotenv import restore_dotenv, set_dotenv_values

__all__ = ["CONFIG_FIELDS", "add_config_parser", "config_command"]

EXIT_USAGE = 2

# action -> (option dest, settings field) in display order.
CONFIG_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "monitor": (
        ("enable", "stream_monitor_enabled"),
        ("interval", "stream_monitor_interval_seconds"),
        ("min_remaining", "stream_min_remaining_seconds"),
    ),
    "withdraw": (
        ("enable", "stream_withdraw_enabled"),
        ("interval", "stream_withdraw_interval_seconds"),
        ("min_wei", "stream_min_withdraw_wei"),
    ),
}


def add_config_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    config = commands.add_parser("config", help="persist stream monitor/withdraw settings")
    actions = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    monitor = actions.add_parser("monitor", help="the runway monitor (stops unpaid VMs)")
    withdraw = actions.add_parser("withdraw", help="periodic withdrawal of vested funds")
    for parser in (monitor, withdraw):
        parser.add_argument("--data-dir", help="the node's data directory")
        parser.add_argument("--enable", metavar="BOOL", help="true/false")
        parser.add_argument("--interval", metavar="N", help="seconds between checks")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")
    monitor.add_argument("--min-remaining", metavar="N", help="least runway (s) a VM needs")
    withdraw.add_argument("--min-wei", metavar="N", help="least amount worth a withdrawal")


def _text(value: object) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _reload(settings: Settings, env: Mapping[str, str], extra: Mapping[str, str]) -> Settings:
    return resolve_settings(
        env={**env, **extra}, cli={"data_dir": str(settings.data_path)}
    ).settings


def config_command(settings: Settings, args: argparse.Namespace) -> int:
    fields = CONFIG_FIELDS[args.config_command]
    requested = {
        env_var_name(field): str(getattr(args, dest))
        for dest, field in fields
        if getattr(args, dest) is not None
    }
    if not requested:
        options = ", ".join("--" + dest.replace("_", "-") for dest, _ in fields)
        print(f"golem-provider config: give at least one of {options}", file=sys.stderr)
        return EXIT_USAGE
    env = dict(os.environ)
    try:  # as if the new values were set: the loader names a bad variable
        candidate = _reload(settings, env, requested)
    except SettingsError as error:
        print(f"golem-provider config: {error.variable}: {error.problem}", file=sys.stderr)
        return EXIT_USAGE
    names = {env_var_name(field): field for _, field in fields}
    values = {name: _text(getattr(candidate, names[name])) for name in requested}
    path = settings.env_file
    old = set_dotenv_values(path, values)
    try:
        effective = _reload(settings, env, {})
    except SettingsError as error:
        restore_dotenv(path, old)
        print(f"golem-provider config: {error} (nothing changed)", file=sys.stderr)
        return EXIT_USAGE
    shown = {field: getattr(effective, field) for _, field in fields}
    overridden = [name for name in values if name in env]
    if args.json:
        document = {"env_file": str(path), "written": values, "settings": shown}
        print(json.dumps(document, indent=2))
    else:
        print(f"wrote {path}")
        for _, field in fields:
            print(f"  {env_var_name(field)}={_text(shown[field])}")
    for name in overridden:
        print(f"note: {name} is set in the environment, which wins over {path}", file=sys.stderr)
    return 0
