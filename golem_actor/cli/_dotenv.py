"""Rewriting ``KEY=value`` lines of the data directory's ``.env`` without disturbing the rest.

Why: ``config monitor|withdraw`` persist settings where the node reads them
(``<data dir>/.env``), and an operator's hand-written file must survive: other lines,
comments and blank lines stay as they were. A key set on several lines (the loader lets the
last one win) keeps one line, at the place of its first, so what is written is what is read.
Multi-line JSON arrays (``KEY=[`` up to the line holding ``]``, as the loader reads them) are
skipped over, or removed whole when their key is replaced. The file is replaced atomically.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Mapping
from pathlib import Path

from golem_actor._atomic import ensure_dir, write_atomic

__all__ = ["format_value", "restore_dotenv", "set_dotenv_values", "update_dotenv_text"]

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLAIN = re.compile(r"[A-Za-z0-9_.,:/@+\-\[\]]*")


def format_value(value: str) -> str:
    """``value`` as the loader will read it back: bare when safe, else double-quoted."""
    if _PLAIN.fullmatch(value) and not value.startswith("["):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _entry(line: str) -> tuple[str, str] | None:
    """``(key, raw value)`` of a ``KEY=value`` line, ``None`` for anything else."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    if text.startswith("export "):
        text = text.removeprefix("export ").lstrip()
    key, sep, rest = text.partition("=")
    key = key.strip()
    if not sep or not _KEY.fullmatch(key):
        return None
    return key, rest.strip()


def update_dotenv_text(text: str, values: Mapping[str, str]) -> str:
    """``text`` with each key of ``values`` set (replaced in place, or appended)."""
    lines = text.splitlines()
    out: list[str] = []
    written: set[str] = set()
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        entry = _entry(line)
        block = [line]
        if entry is not None and entry[1].startswith("[") and "]" not in entry[1]:
            while index < len(lines) and "]" not in block[-1]:
                block.append(lines[index])
                index += 1
        if entry is None or entry[0] not in values:
            out.extend(block)
            continue
        key = entry[0]
        if key not in written:
            out.append(f"{key}={format_value(values[key])}")
            written.add(key)
    missing = [key for key in values if key not in written]
    out.extend(f"{key}={format_value(values[key])}" for key in missing)
    return "\n".join(out) + "\n" if out else ""


def set_dotenv_values(path: Path, values: Mapping[str, str]) -> str | None:
    """Set ``values`` in the file at ``path`` (created 0600 if missing); returns the old text.

    Blocking (file IO).
    """
    try:
        old: str | None = path.read_text(encoding="utf-8")
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        old, mode = None, 0o600
        ensure_dir(path.parent)
    new = update_dotenv_text(old or "", values)
    write_atomic(path, new.encode("utf-8"), mode=mode)
    return old


def restore_dotenv(path: Path, old: str | None) -> None:
    """Put back what ``set_dotenv_values`` returned (``None``: the file did not exist)."""
    if old is None:
        path.unlink(missing_ok=True)
    else:
        write_atomic(path, old.encode("utf-8"), mode=stat.S_IMODE(path.stat().st_mode))
