"""Reading the layers: the packaged defaults file, a ``.env`` file and the environment.

Why: each layer is reduced to the same shape (field name -> raw value, plus the name the
operator wrote and where), so precedence is a plain dict update and every error can name its
variable. Unknown ``GOLEM_PROVIDER_*`` names are errors, not silently ignored: a misspelt
variable would otherwise leave a default in force without anyone noticing.

The ``.env`` syntax is the common subset of shells and dotenv tools: ``KEY=value`` lines, an
optional ``export`` prefix, ``#`` comments, single quotes (literal) and double quotes (with
``\\"``, ``\\\\`` and ``\\n`` escapes). A JSON array may span several lines, as in the upstream
README's ``GOLEM_PROVIDER_PORT_CHECK_SERVERS=[`` example.
"""

from __future__ import annotations

import difflib
import importlib.resources
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from ._errors import SettingsError
from ._model import ALIASES, ENV_PREFIX, FIELD_NAMES, IGNORED, env_var_name

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n"}
_CANONICAL = {env_var_name(f): f for f in FIELD_NAMES}
_ALIAS_RANK = {name: rank for rank, name in enumerate(ALIASES, start=1)}


@dataclass(frozen=True)
class Raw:
    """One value as found: its field, the name written, where, and whether it is text."""

    field: str
    name: str
    source: str
    value: object
    is_text: bool


@dataclass
class Layer:
    values: dict[str, Raw] = field(default_factory=dict)
    shadowed: list[Raw] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def suggestion(name: str, known: Iterable[str], prefix: str = "") -> str:
    """``"; did you mean X?"`` when a known name is close to ``name``, else ``""``."""
    options = {k.removeprefix(prefix): k for k in known}
    close = difflib.get_close_matches(name.removeprefix(prefix), options, n=1, cutoff=0.7)
    return f"; did you mean {options[close[0]]}?" if close else ""


def read_defaults() -> dict[str, Raw]:
    """The packaged ``config/defaults.toml``, keyed by field name."""
    resource = importlib.resources.files("config") / "defaults.toml"
    source = str(resource)
    try:
        data: dict[str, Any] = msgspec.toml.decode(resource.read_bytes())
    except (OSError, ValueError, msgspec.DecodeError) as exc:
        raise SettingsError("defaults.toml", source, f"cannot be read: {exc}") from exc
    values: dict[str, Raw] = {}
    for key, value in data.items():
        if key not in FIELD_NAMES:
            raise SettingsError(key, source, "unknown setting" + suggestion(key, FIELD_NAMES))
        values[key] = Raw(key, key, source, value, is_text=False)
    return values


def scan_variables(items: Iterable[tuple[str, str, str]], *, in_data_dir: bool) -> Layer:
    """Map ``(name, text, source)`` triples of one layer onto fields.

    Within the layer the canonical name beats aliases (in ``ALIASES`` order), and a later
    duplicate of the same name beats an earlier one. Losers are kept in ``shadowed`` so that
    they are validated too.
    """
    layer = Layer()
    found: dict[str, list[Raw]] = {}
    for name, text, source in items:
        if name in IGNORED:
            layer.ignored.append(name)
            if IGNORED[name]:
                layer.warnings.append(f"{name} ({source}) is ignored: {IGNORED[name]}")
            continue
        target = _CANONICAL.get(name) or ALIASES.get(name)
        if target is None:
            known = [*_CANONICAL, *ALIASES, *IGNORED]
            raise SettingsError(
                name, source, "unknown setting" + suggestion(name, known, ENV_PREFIX)
            )
        if target == "data_dir" and in_data_dir:
            raise SettingsError(name, source, "the data directory cannot be set from inside it")
        found.setdefault(target, []).append(Raw(target, name, source, text, is_text=True))
    for target, candidates in found.items():
        best = min(_ALIAS_RANK.get(raw.name, 0) for raw in candidates)
        winner = [raw for raw in candidates if _ALIAS_RANK.get(raw.name, 0) == best][-1]
        layer.values[target] = winner
        for raw in candidates:
            if raw is not winner:
                layer.shadowed.append(raw)
            if raw.name != winner.name:
                layer.warnings.append(
                    f"{raw.name} ({raw.source}) is ignored: {winner.name} is also set"
                )
    return layer


def scan_environment(env: Mapping[str, str]) -> Layer:
    """The ``GOLEM_PROVIDER_*`` (and aliased) variables of a process environment."""
    names = sorted(k for k in env if k.startswith(ENV_PREFIX) or k in ALIASES)
    return scan_variables(((k, env[k], "environment") for k in names), in_data_dir=False)


def read_dotenv(path: Path) -> Layer:
    """The ``.env`` file at ``path``; an empty layer when there is none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Layer()
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(".env", str(path), f"cannot be read: {exc}") from exc
    return scan_variables(parse_dotenv(text, str(path)), in_data_dir=True)


def parse_dotenv(text: str, filename: str) -> list[tuple[str, str, str]]:
    """Parse ``.env`` text into ``(key, value, "<filename> line N")`` triples."""
    entries: list[tuple[str, str, str]] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        source = f"{filename} line {index + 1}"
        line = lines[index].strip()
        index += 1
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line.removeprefix("export ").lstrip()
        key, sep, rest = line.partition("=")
        key = key.strip()
        if not sep or not _KEY.fullmatch(key):
            raise SettingsError(
                key if _KEY.fullmatch(key) else ".env",
                source,
                f"expected KEY=value, got {line[:60]!r}",
            )
        rest = rest.strip()
        if rest[:1] in ("'", '"'):
            value = _quoted(rest, key, source)
        elif rest.startswith("[") and "]" not in rest:
            parts = [rest]
            while "]" not in parts[-1]:
                if index >= len(lines):
                    raise SettingsError(key, source, "unterminated '[': no closing ']' found")
                parts.append(lines[index].strip())
                index += 1
            value = _uncommented("\n".join(parts))
        else:
            value = _uncommented(rest)
        entries.append((key, value, source))
    return entries


def _uncommented(value: str) -> str:
    # An unquoted value ends at " #", so "8080  # the API port" is "8080".
    match = re.search(r"\s#", value)
    return (value[: match.start()] if match else value).strip()


def _quoted(rest: str, key: str, source: str) -> str:
    quote, position = rest[0], 1
    chars: list[str] = []
    while position < len(rest):
        char = rest[position]
        if char == quote:
            tail = rest[position + 1 :].strip()
            if tail and not tail.startswith("#"):
                raise SettingsError(
                    key, source, f"unexpected text after the closing quote: {tail!r}"
                )
            return "".join(chars)
        if char == "\\" and quote == '"' and rest[position + 1 : position + 2] in _ESCAPES:
            chars.append(_ESCAPES[rest[position + 1]])
            position += 2
            continue
        chars.append(char)
        position += 1
    raise SettingsError(key, source, f"unterminated {quote} quote")
