"""Per-actor persisted state: atomic, checksummed, versioned JSON files.

Why: each owning actor persists its own state (VM registry, stream mappings, port pool) and
must, after any crash, either read back exactly what it last saved or learn loudly that it
cannot. Theory of operation:

- One file per name, ``<root>/<name>.json``, holding one envelope
  ``{"schema_version": N, "sha256": "<hex of the payload bytes>", "payload": {...}}``. The
  payload bytes are embedded verbatim, so the checksum covers exactly what was encoded.
- Writes go to a temp file in the same directory, are fsynced, renamed over the old file,
  and the directory is fsynced (``golem_actor._atomic``). A crash leaves the old file intact
  and at worst a temp file, which ``stale_temp_files``/``sweep`` report and remove.
- Reading detects truncation or garbage, checksum mismatches and payloads that no longer fit
  the type (``CorruptStateError``) and versions it cannot read (``StateSchemaError``). A
  corrupt file is never dropped or overwritten silently: the caller decides, and may move it
  aside with ``quarantine``.
- All disk IO (and the encoding work) runs in ``trio.to_thread.run_sync``, which is not
  abandoned on cancellation, so a cancelled ``save`` still completes or fails as a whole.
  Operations of one store are serialised by a ``trio.Lock``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import trio

from golem_actor import _atomic

T = TypeVar("T", bound=msgspec.Struct)
Migration = Callable[[int, Any], Any]

_NAME = re.compile(r"[a-z0-9_-][a-z0-9_.-]{0,99}")
_SUFFIX = ".json"
_CORRUPT_MARKER = ".corrupt-"


class StateError(Exception):
    """A state file that cannot be used as it is."""


class CorruptStateError(StateError):
    """Truncated, garbled, checksum-failing, or not decodable into the requested type."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"corrupt state file {path}: {reason}")
        self.path = path
        self.reason = reason


class StateSchemaError(StateError):
    """Written with a schema version this code cannot read (newer, or older without migration)."""

    def __init__(self, path: Path, found: int, expected: int) -> None:
        why = "newer than" if found > expected else "older than, with no migration to,"
        super().__init__(f"state file {path}: schema version {found} is {why} version {expected}")
        self.path = path
        self.found = found
        self.expected = expected


class _Envelope(msgspec.Struct, forbid_unknown_fields=True):
    schema_version: int
    sha256: str
    payload: msgspec.Raw


def _digest(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def _encode(value: msgspec.Struct, schema_version: int) -> bytes:
    payload = msgspec.json.encode(value)
    envelope = _Envelope(schema_version, _digest(payload), msgspec.Raw(payload))
    return msgspec.json.encode(envelope) + b"\n"


def _decode(path: Path, data: bytes, type_: type[T], expected: int, migrate: Migration | None) -> T:
    try:
        envelope = msgspec.json.decode(data, type=_Envelope)
    except msgspec.DecodeError as exc:
        raise CorruptStateError(path, f"not a valid state envelope ({exc})") from None
    payload = bytes(envelope.payload)
    if _digest(payload) != envelope.sha256.lower():
        raise CorruptStateError(path, "checksum mismatch")
    found = envelope.schema_version
    if found > expected or (found < expected and migrate is None):
        raise StateSchemaError(path, found, expected)
    try:
        if found == expected:
            return msgspec.json.decode(payload, type=type_)
        assert migrate is not None
        return msgspec.convert(migrate(found, msgspec.json.decode(payload)), type_)
    except msgspec.DecodeError as exc:
        step = "" if found == expected else f" after migration from version {found}"
        raise CorruptStateError(
            path, f"payload does not fit {type_.__name__}{step} ({exc})"
        ) from None


class StateStore:
    """Atomic, checksummed, versioned state files under one directory (created 0o700)."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._lock = trio.Lock()
        self._in_flight: set[Path] = set()

    @property
    def root(self) -> Path:
        """The directory holding the state files."""
        return self._root

    def path(self, name: str) -> Path:
        """The file of ``name``; ``ValueError`` unless ``name`` matches ``[a-z0-9_.-]+``.

        Names may not start with a dot (no ``..``, no hidden files) and are at most 100
        characters long.
        """
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"invalid state name {name!r}: expected [a-z0-9_.-]+, no leading dot")
        return self._root / (name + _SUFFIX)

    async def save(self, name: str, value: msgspec.Struct, *, schema_version: int) -> None:
        """Persist ``value`` under ``name``, replacing any previous version atomically."""
        path = self.path(name)
        if schema_version < 0:
            raise ValueError(f"schema_version must be >= 0, got {schema_version}")
        tmp = _atomic.temp_path_for(path)

        def write() -> None:
            data = _encode(value, schema_version)
            _atomic.ensure_dir(self._root)
            _atomic.write_atomic(path, data, tmp=tmp)

        async with self._lock:
            self._in_flight.add(tmp)
            try:
                await trio.to_thread.run_sync(write)
            finally:
                self._in_flight.discard(tmp)

    async def load(
        self,
        name: str,
        type_: type[T],
        *,
        schema_version: int,
        migrate: Migration | None = None,
    ) -> T | None:
        """The value saved under ``name``, or None when there is none.

        A file of an older schema version is passed through ``migrate(found_version,
        payload_object)``, which returns the payload in the current form; it runs in a
        worker thread, so keep it pure. Raises ``CorruptStateError`` or ``StateSchemaError``.
        """
        path = self.path(name)

        def read() -> T | None:
            data = _atomic.read_if_exists(path)
            return None if data is None else _decode(path, data, type_, schema_version, migrate)

        async with self._lock:
            return await trio.to_thread.run_sync(read)

    async def delete(self, name: str) -> None:
        """Remove the state of ``name``; nothing happens when there is none."""
        path = self.path(name)
        async with self._lock:
            await trio.to_thread.run_sync(_atomic.remove_durably, path)

    async def quarantine(self, name: str) -> Path:
        """Move the file of ``name`` aside to ``<name>.corrupt-<UTC timestamp>``; its new path.

        Raises ``FileNotFoundError`` when there is no file.
        """
        path = self.path(name)

        def move() -> Path:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            target = path.with_name(f"{name}{_CORRUPT_MARKER}{stamp}")
            counter = 0
            while target.exists():
                counter += 1
                target = path.with_name(f"{name}{_CORRUPT_MARKER}{stamp}-{counter}")
            _atomic.rename_durably(path, target)
            return target

        async with self._lock:
            return await trio.to_thread.run_sync(move)

    def stale_temp_files(self) -> list[Path]:
        """Temp files left by an interrupted write (a quick directory listing)."""
        try:
            entries = sorted(self._root.iterdir())
        except FileNotFoundError:
            return []
        return [p for p in entries if _atomic.is_temp_name(p.name) and p not in self._in_flight]

    async def sweep(self) -> list[Path]:
        """Remove the stale temp files and return them (call at start, before serving)."""
        async with self._lock:

            def remove_all() -> list[Path]:
                stale = self.stale_temp_files()
                for temp in stale:
                    temp.unlink(missing_ok=True)
                if stale:
                    _atomic.fsync_dir(self._root)
                return stale

            return await trio.to_thread.run_sync(remove_all)
