"""The adverts: an in-memory index written through to one SQLite table.

Why: adverts must survive a restart (a provider posts every few minutes, requestors list
far more often), so SQLite holds them (stdlib `sqlite3`, WAL, one connection used by one
worker thread at a time) while reads are served from memory, loaded once at open: a list
of a thousand adverts never touches the disk or a thread. Every write goes to the table
first and then to memory, under one lock, shielded from cancellation so the two never
disagree; this process is the table's only writer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import trio

from .schemas import Advert, Resources

__all__ = ["AdvertStore", "Record", "StoreError", "timestamp_text"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS adverts (
    key TEXT PRIMARY KEY,
    provider_id TEXT NOT NULL,
    ip_address TEXT NOT NULL,
    country TEXT NOT NULL,
    platform TEXT NOT NULL,
    provider_name TEXT NOT NULL,
    cpu INTEGER NOT NULL,
    memory INTEGER NOT NULL,
    storage INTEGER NOT NULL,
    pricing TEXT,
    verified INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    signed_at REAL
)
"""
_VERSION = 1  # PRAGMA user_version of this schema
_COLUMNS = (
    "key, provider_id, ip_address, country, platform, provider_name, cpu, memory, storage,"
    " pricing, verified, created_at, updated_at, signed_at"
)
_UPSERT = f"INSERT OR REPLACE INTO adverts ({_COLUMNS}) VALUES ({', '.join('?' * 14)})"


class StoreError(Exception):
    """The database cannot be opened or written."""


def timestamp_text(seconds: float) -> str:
    """Upstream's timestamp format: naive UTC ISO-8601 with microseconds."""
    moment = datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds")


class Record(msgspec.Struct, frozen=True):
    """One advert as stored: the wire item and its times in Unix seconds."""

    key: str  # the provider id in lower case
    advert: Advert
    created: float
    updated: float
    signed_at: float | None = None  # the signed body's `timestamp`, when it had one

    def row(self) -> tuple[Any, ...]:
        a = self.advert
        pricing = None if a.pricing is None else msgspec.json.encode(a.pricing).decode()
        return (
            self.key,
            a.provider_id,
            a.ip_address,
            a.country,
            a.platform,
            a.provider_name,
            a.resources.cpu,
            a.resources.memory,
            a.resources.storage,
            pricing,
            int(a.verified),
            self.created,
            self.updated,
            self.signed_at,
        )

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Record:
        key, pid, ip, country, platform, name, cpu, memory, storage, pricing, verified = row[:11]
        created, updated, signed_at = float(row[11]), float(row[12]), row[13]
        advert = Advert(
            provider_id=pid,
            ip_address=ip,
            country=country,
            resources=Resources(cpu=cpu, memory=memory, storage=storage),
            pricing=None if pricing is None else msgspec.json.decode(pricing),
            created_at=timestamp_text(created),
            updated_at=timestamp_text(updated),
            platform=platform,
            provider_name=name,
            verified=bool(verified),
        )
        return cls(key, advert, created, updated, signed_at)


def _connect(path: Path) -> tuple[sqlite3.Connection, dict[str, Record]]:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > _VERSION:
            raise ValueError(f"it was written by a newer version (schema {version})")
        conn.execute(_SCHEMA)
        conn.execute(f"PRAGMA user_version={_VERSION}")
        rows = conn.execute(f"SELECT {_COLUMNS} FROM adverts").fetchall()
        return conn, {record.key: record for record in map(Record.from_row, rows)}
    except BaseException:
        conn.close()
        raise


class AdvertStore:
    def __init__(self, conn: sqlite3.Connection, records: dict[str, Record]) -> None:
        self._conn = conn
        self._records = records
        self._lock = trio.Lock()

    @classmethod
    async def open(cls, path: Path) -> AdvertStore:
        try:
            conn, records = await trio.to_thread.run_sync(_connect, path)
        except (sqlite3.Error, OSError, ValueError, msgspec.DecodeError) as exc:
            raise StoreError(f"cannot open the advert database {path}: {exc}") from exc
        return cls(conn, records)

    def __len__(self) -> int:
        return len(self._records)

    def get(self, key: str) -> Record | None:
        return self._records.get(key)

    def records(self) -> Collection[Record]:
        return self._records.values()

    async def _write(self, sql: str, params: tuple[Any, ...]) -> int:
        def run() -> int:
            return self._conn.execute(sql, params).rowcount

        try:
            return await trio.to_thread.run_sync(run)
        except sqlite3.Error as exc:
            raise StoreError(f"the advert database refused a write: {exc}") from exc

    async def upsert(self, key: str, make: Callable[[Record | None], Record]) -> Record:
        """Store `make(current record)`, atomically: `make` may refuse by raising."""
        with trio.CancelScope(shield=True):
            async with self._lock:
                record = make(self._records.get(key))
                await self._write(_UPSERT, record.row())
                self._records[key] = record
        return record

    async def delete(self, key: str, check: Callable[[Record], None] | None = None) -> bool:
        """Delete `key`'s advert (after `check(it)`, which may refuse by raising); was there one?"""
        with trio.CancelScope(shield=True):
            async with self._lock:
                record = self._records.get(key)
                if record is None:
                    return False
                if check is not None:
                    check(record)
                await self._write("DELETE FROM adverts WHERE key = ?", (key,))
                del self._records[key]
        return True

    async def purge(self, before: float) -> int:
        """Delete every advert last updated before `before`; how many were."""
        with trio.CancelScope(shield=True):
            async with self._lock:
                await self._write("DELETE FROM adverts WHERE updated_at < ?", (before,))
                stale = [key for key, record in self._records.items() if record.updated < before]
                for key in stale:
                    del self._records[key]
        return len(stale)

    async def close(self) -> None:
        with trio.CancelScope(shield=True):
            async with self._lock:
                await trio.to_thread.run_sync(self._conn.close)
