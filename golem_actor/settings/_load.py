"""Layering: defaults file < ``<data_dir>/.env`` < environment < command line.

Why: the loader is a pure function of its inputs (the caller passes the environment; only the
packaged defaults and the ``.env`` file are read), so every precedence rule is testable
without touching the process. The data directory is resolved first, from the command line,
then ``GOLEM_PROVIDER_DATA_DIR``, then the defaults, because the ``.env`` lives inside it.

Every value of every layer is converted, even one a higher layer overrides: a broken line in
``.env`` fails today rather than on the day the override is removed. Cross-field rules run
last and name the variable that set the offending field.
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from ._convert import FIELD_TYPES, ConversionError, from_text, from_value
from ._errors import SettingsError
from ._model import FIELD_NAMES, Settings, cli_flag
from ._sources import Layer, Raw, read_defaults, read_dotenv, scan_environment, suggestion


class LoadedSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The settings with what the loader noticed on the way.

    ``warnings`` are worth logging at start (ignored or shadowed variables), ``ignored``
    lists the known non-setting variables that were present, and ``origins`` maps each
    field set by some layer to ``"<variable> (<source>)"`` (for ``config show``-style output).
    """

    settings: Settings
    warnings: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()
    origins: dict[str, str] = msgspec.field(default_factory=dict)


def load_settings(*, env: Mapping[str, str], cli: Mapping[str, object] | None = None) -> Settings:
    """Build the settings from defaults, ``<data_dir>/.env``, ``env`` and ``cli``.

    ``cli`` keys are field names; ``None`` values are ignored. Raises ``SettingsError``.
    """
    return resolve_settings(env=env, cli=cli).settings


def resolve_settings(
    *, env: Mapping[str, str], cli: Mapping[str, object] | None = None
) -> LoadedSettings:
    """Like ``load_settings``, also returning warnings and where each value came from."""
    defaults = read_defaults()
    environment = scan_environment(env)
    command_line = _scan_cli(cli or {})

    data_raw = (
        command_line.values.get("data_dir")
        or environment.values.get("data_dir")
        or defaults.get("data_dir")
        or Raw("data_dir", "data_dir", "built-in default", Settings().data_dir, is_text=False)
    )
    data_dir = _absolute(_convert(data_raw), env)
    dotenv = read_dotenv(Path(data_dir) / ".env")

    for raw in (*dotenv.shadowed, *environment.shadowed):
        _convert(raw)  # validated although overridden: it would bite once the winner goes
    merged: dict[str, Any] = {}
    origins: dict[str, Raw] = {}
    for values in (defaults, dotenv.values, environment.values, command_line.values):
        for name, raw in values.items():
            merged[name] = _convert(raw)
            origins[name] = raw
    merged["data_dir"] = data_dir
    origins.setdefault("data_dir", data_raw)

    _development_overrides(merged, origins)
    try:
        settings = msgspec.convert(merged, Settings)
    except msgspec.ValidationError as exc:  # every field was checked: a bug if it happens
        raise SettingsError("settings", "all sources", str(exc)) from exc
    _check_consistency(settings, origins)

    layers = (dotenv, environment)
    return LoadedSettings(
        settings=settings,
        warnings=tuple(w for layer in layers for w in layer.warnings),
        ignored=tuple(sorted({n for layer in layers for n in layer.ignored})),
        origins={name: f"{raw.name} ({raw.source})" for name, raw in origins.items()},
    )


# Upstream's development mode reads Golem Base from GOLEM_BASE_DEV_* when they are set.
_DEVELOPMENT_URLS = {
    "golem_base_rpc_url": "golem_base_dev_rpc_url",
    "golem_base_ws_url": "golem_base_dev_ws_url",
}


def _development_overrides(merged: dict[str, Any], origins: dict[str, Raw]) -> None:
    """With ENVIRONMENT=development, a non-empty dev URL replaces its Golem Base URL
    (and `origins` says where it came from)."""
    environment = merged.get("environment", Settings().environment)
    if environment != "development":
        return
    for field, dev in _DEVELOPMENT_URLS.items():
        if merged.get(dev):
            merged[field] = merged[dev]
            origins[field] = origins[dev]


def _scan_cli(cli: Mapping[str, object]) -> Layer:
    layer = Layer()
    for name, value in cli.items():
        if value is None:
            continue
        if name not in FIELD_NAMES:
            hint = suggestion(cli_flag(name), [cli_flag(f) for f in FIELD_NAMES], "--")
            raise SettingsError(cli_flag(name), "command line", "unknown setting" + hint)
        layer.values[name] = Raw(name, cli_flag(name), "command line", value, is_text=False)
    return layer


def _convert(raw: Raw) -> Any:
    field_type = FIELD_TYPES[raw.field]
    try:
        if raw.is_text:
            assert isinstance(raw.value, str)
            return from_text(raw.value, field_type)
        return from_value(raw.value, field_type, text_ok=raw.source == "command line")
    except ConversionError as exc:
        raise SettingsError(raw.name, raw.source, str(exc)) from None


def _absolute(path: str, env: Mapping[str, str]) -> str:
    # Expand "~" with the HOME the caller passed, so tests never depend on the real one.
    if path == "~" or path.startswith("~/"):
        home = env.get("HOME") or str(Path.home())
        path = home + path[1:]
    elif path.startswith("~"):
        path = os.path.expanduser(path)
    return os.path.abspath(path)


def _check_consistency(settings: Settings, origins: Mapping[str, Raw]) -> None:
    def where(name: str) -> tuple[str, str]:
        raw = origins.get(name)
        return (raw.name, raw.source) if raw else (name, "built-in default")

    start, end = settings.port_range_start, settings.port_range_end
    if end <= start:
        other = "{} ({})".format(*where("port_range_start"))
        raise SettingsError(
            *where("port_range_end"),
            f"the end of the SSH port range ({end}, excluded) must be greater than its "
            f"start ({start}, from {other})",
        )
    if start <= settings.port < end:
        raise SettingsError(
            *where("port"),
            f"the API port {settings.port} is inside the SSH port range {start}-{end - 1}",
        )
    if not math.isfinite(settings.cpu_overcommit):
        raise SettingsError(
            *where("cpu_overcommit"),
            f"expected a finite ratio of at least 1.0, e.g. 2.0, got {settings.cpu_overcommit}",
        )
    if settings.public_ip != "auto":
        try:
            ipaddress.ip_address(settings.public_ip)
        except ValueError:
            raise SettingsError(
                *where("public_ip"),
                f"expected 'auto' or an IP address, got {settings.public_ip!r}",
            ) from None
