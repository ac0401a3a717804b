"""What the payments commands share: the resolved setup, the VM -> stream map, amounts.

Why: ``streams``, ``wallet`` and their JSON all need the same few things (the payments
config, the provider's key, ``<data dir>/streams.json``, exact wei -> ETH text) and the same
way of failing: one JSON document ``{"error": ...}`` on stdout with ``--json``, a sentence
on stderr otherwise, exit status 1.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
from pathlib import Path
from typing import Any

import msgspec

from golem_actor.identity import ProviderKey, load_or_create_provider_key
from golem_actor.payments_config import DeploymentError, PaymentsConfig, resolve_payments
from golem_actor.settings import Settings

__all__ = [
    "EXIT_FAILED",
    "CommandFailed",
    "emit_json",
    "fail",
    "format_duration",
    "format_time",
    "format_units",
    "payments_setup",
    "provider_key",
    "read_stream_map",
    "table",
]

EXIT_FAILED = 1
WEI_PER_ETH = 10**18


class CommandFailed(Exception):
    """A failure to report: ``code`` is the JSON ``error``, ``message`` the sentence."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


def fail(error: CommandFailed, as_json: bool) -> int:
    if as_json:
        emit_json({"error": error.code, **error.details})
    print(f"golem-provider: {error.message}", file=sys.stderr)
    return EXIT_FAILED


def emit_json(document: object) -> None:
    # stdlib json: wei amounts exceed 64 bits, which msgspec cannot encode as integers.
    sys.stdout.write(json.dumps(document, indent=2) + "\n")


def payments_setup(settings: Settings, *, need_rpc: bool = True) -> PaymentsConfig:
    try:
        config = resolve_payments(settings, env=os.environ)
    except DeploymentError as exc:
        raise CommandFailed("deployment_error", str(exc)) from exc
    if need_rpc and not config.rpc_url:
        raise CommandFailed(
            "no_rpc_url",
            f"payments network {config.network!r} has no default RPC URL: "
            "set GOLEM_PROVIDER_POLYGON_RPC_URL",
        )
    return config


def provider_key(settings: Settings) -> ProviderKey:
    try:
        return load_or_create_provider_key(settings.key_dir)
    except (OSError, ValueError, msgspec.DecodeError) as exc:
        raise CommandFailed("key_error", f"cannot load the provider key: {exc}") from exc


def read_stream_map(data_dir: Path) -> dict[str, int]:
    """``<data dir>/streams.json`` (``{"<vm_id>": <stream_id>}``); empty when absent."""
    path = data_dir / "streams.json"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise CommandFailed("stream_map_unreadable", f"{path}: {exc}") from exc
    try:
        return msgspec.json.decode(data, type=dict[str, int]) if data.strip() else {}
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise CommandFailed("stream_map_unreadable", f"{path}: {exc}") from exc


def format_units(wei: int, decimals: int = 18) -> str:
    """Exact decimal text of ``wei`` in whole units: ``1500000000000000000`` -> ``"1.5"``."""
    sign = "-" if wei < 0 else ""
    whole, frac = divmod(abs(wei), 10**decimals)
    tail = str(frac).rjust(decimals, "0").rstrip("0")
    return f"{sign}{whole}.{tail}" if tail else f"{sign}{whole}"


def format_duration(seconds: int) -> str:
    days, rest = divmod(max(seconds, 0), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h {minutes:02d}m"
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def format_time(timestamp: int) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def table(header: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns separated by two spaces."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    return "\n".join(lines) + "\n"
