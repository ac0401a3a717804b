"""State store: atomic replace, corruption and schema detection, quarantine, temp sweeping."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio

from golem_actor import _atomic
from golem_actor.state_store import CorruptStateError, StateSchemaError, StateStore


class Vm(msgspec.Struct, frozen=True):
    vm_id: str
    cpu: int


class Registry(msgspec.Struct, frozen=True):
    vms: list[Vm]
    owner: str = "vm_lifecycle"


class RegistryV1(msgspec.Struct, frozen=True):
    vm_ids: list[str]


class Unrelated(msgspec.Struct, frozen=True):
    address: str


REGISTRY = Registry(vms=[Vm("vm-a", 1), Vm("vm-b", 2)])


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "data" / "state"


@pytest.fixture
def store(root: Path) -> StateStore:
    return StateStore(root)


@pytest.fixture
def umask_zero() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


async def test_round_trip(store: StateStore, root: Path) -> None:
    assert await store.load("vms", Registry, schema_version=1) is None
    await store.save("vms", REGISTRY, schema_version=1)
    assert store.path("vms") == root / "vms.json"
    assert await store.load("vms", Registry, schema_version=1) == REGISTRY


async def test_file_is_a_checksummed_envelope(store: StateStore) -> None:
    await store.save("vms", REGISTRY, schema_version=4)
    envelope = json.loads(store.path("vms").read_bytes())
    assert list(envelope) == ["schema_version", "sha256", "payload"]
    assert envelope["schema_version"] == 4
    assert envelope["sha256"] == hashlib.sha256(msgspec.json.encode(REGISTRY)).hexdigest()
    assert envelope["payload"] == msgspec.to_builtins(REGISTRY)


async def test_save_replaces_and_leaves_no_temp_files(store: StateStore) -> None:
    await store.save("vms", REGISTRY, schema_version=1)
    newer = Registry(vms=[Vm("vm-c", 4)])
    await store.save("vms", newer, schema_version=1)
    assert await store.load("vms", Registry, schema_version=1) == newer
    assert store.stale_temp_files() == []
    assert sorted(p.name for p in store.root.iterdir()) == ["vms.json"]


async def test_failed_write_leaves_the_old_content(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.save("vms", REGISTRY, schema_version=1)
    before = store.path("vms").read_bytes()

    def half_then_disk_full(fd: int, data: bytes) -> None:
        os.write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_atomic, "_write_all", half_then_disk_full)
    with pytest.raises(OSError, match="No space left"):
        await store.save("vms", Registry(vms=[]), schema_version=1)
    assert store.path("vms").read_bytes() == before
    assert await store.load("vms", Registry, schema_version=1) == REGISTRY
    assert store.stale_temp_files() == []


async def test_temp_file_of_a_crash_is_reported_and_swept(store: StateStore) -> None:
    await store.save("vms", REGISTRY, schema_version=1)
    leftover = _atomic.temp_path_for(store.path("vms"))
    leftover.write_bytes(b'{"schema_version":1,"sha2')  # killed mid-write
    assert store.stale_temp_files() == [leftover]
    assert await store.load("vms", Registry, schema_version=1) == REGISTRY
    assert await store.sweep() == [leftover]
    assert not leftover.exists()
    assert store.stale_temp_files() == []
    assert await store.sweep() == []


def test_no_stale_files_before_the_directory_exists(store: StateStore) -> None:
    assert store.stale_temp_files() == []


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: data[:-3], id="truncated-at-end"),
        pytest.param(lambda data: b"", id="empty"),
        pytest.param(lambda data: b"\x00" * len(data), id="zeroed"),
        pytest.param(lambda data: b"not json at all", id="garbage"),
        pytest.param(lambda data: b'{"vms": []}', id="no-envelope"),
        pytest.param(lambda data: data.replace(b'"sha256"', b'"sha1"'), id="bad-envelope"),
    ],
)
async def test_garbled_file_is_corrupt(store: StateStore, damage: Any) -> None:
    await store.save("vms", REGISTRY, schema_version=1)
    path = store.path("vms")
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CorruptStateError) as info:
        await store.load("vms", Registry, schema_version=1)
    assert info.value.path == path
    assert "not a valid state envelope" in info.value.reason


async def test_checksum_mismatch_is_corrupt(store: StateStore) -> None:
    await store.save("vms", REGISTRY, schema_version=1)
    path = store.path("vms")
    path.write_bytes(path.read_bytes().replace(b'"cpu":2', b'"cpu":9'))
    with pytest.raises(CorruptStateError, match="checksum mismatch"):
        await store.load("vms", Registry, schema_version=1)


async def test_payload_of_the_wrong_type_is_corrupt(store: StateStore) -> None:
    await store.save("vms", REGISTRY, schema_version=1)
    with pytest.raises(CorruptStateError, match="does not fit Unrelated") as info:
        await store.load("vms", Unrelated, schema_version=1)
    assert info.value.path == store.path("vms")


async def test_newer_schema_is_refused(store: StateStore) -> None:
    await store.save("vms", REGISTRY, schema_version=3)
    with pytest.raises(StateSchemaError, match="newer than") as info:
        await store.load("vms", Registry, schema_version=2, migrate=lambda v, o: o)
    assert (info.value.found, info.value.expected) == (3, 2)
    assert info.value.path == store.path("vms")


async def test_older_schema_without_migration_is_refused(store: StateStore) -> None:
    await store.save("vms", RegistryV1(vm_ids=["vm-a"]), schema_version=1)
    with pytest.raises(StateSchemaError, match="no migration") as info:
        await store.load("vms", Registry, schema_version=2)
    assert (info.value.found, info.value.expected) == (1, 2)


async def test_older_schema_is_migrated(store: StateStore) -> None:
    await store.save("vms", RegistryV1(vm_ids=["vm-a", "vm-b"]), schema_version=1)
    calls: list[tuple[int, Any]] = []

    def migrate(version: int, payload: Any) -> Any:
        calls.append((version, payload))
        return {"vms": [{"vm_id": vm_id, "cpu": 1} for vm_id in payload["vm_ids"]]}

    loaded = await store.load("vms", Registry, schema_version=2, migrate=migrate)
    assert loaded == Registry(vms=[Vm("vm-a", 1), Vm("vm-b", 1)])
    assert calls == [(1, {"vm_ids": ["vm-a", "vm-b"]})]


async def test_bad_migration_output_is_reported(store: StateStore) -> None:
    await store.save("vms", RegistryV1(vm_ids=["vm-a"]), schema_version=1)
    with pytest.raises(CorruptStateError, match="after migration from version 1"):
        await store.load("vms", Registry, schema_version=2, migrate=lambda v, o: o)


async def test_quarantine_moves_the_file_aside(store: StateStore) -> None:
    await store.save("vms", REGISTRY, schema_version=1)
    store.path("vms").write_bytes(b"garbage")
    moved = await store.quarantine("vms")
    assert re.fullmatch(r"vms\.corrupt-\d{8}T\d{6}Z", moved.name)
    assert moved.parent == store.root
    assert moved.read_bytes() == b"garbage"
    assert not store.path("vms").exists()
    assert await store.load("vms", Registry, schema_version=1) is None

    store.path("vms").write_bytes(b"garbage again")
    again = await store.quarantine("vms")
    assert again != moved
    assert again.name.startswith("vms.corrupt-")
    assert moved.read_bytes() == b"garbage"


async def test_quarantine_of_a_missing_file(store: StateStore) -> None:
    with pytest.raises(FileNotFoundError):
        await store.quarantine("vms")


async def test_delete(store: StateStore) -> None:
    await store.delete("vms")  # nothing there yet
    await store.save("vms", REGISTRY, schema_version=1)
    await store.save("streams", Unrelated(address="0x1"), schema_version=1)
    await store.delete("vms")
    assert await store.load("vms", Registry, schema_version=1) is None
    assert await store.load("streams", Unrelated, schema_version=1) == Unrelated("0x1")


@pytest.mark.parametrize(
    "name",
    ["", ".", "..", "../etc", "a/b", "/abs", ".hidden", "Vms", "a b", "vms\x00", "é", "x" * 101],
)
async def test_invalid_names_are_refused(store: StateStore, name: str) -> None:
    with pytest.raises(ValueError, match="invalid state name"):
        store.path(name)
    with pytest.raises(ValueError, match="invalid state name"):
        await store.save(name, REGISTRY, schema_version=1)
    with pytest.raises(ValueError, match="invalid state name"):
        await store.load(name, Registry, schema_version=1)
    with pytest.raises(ValueError, match="invalid state name"):
        await store.delete(name)
    with pytest.raises(ValueError, match="invalid state name"):
        await store.quarantine(name)


@pytest.mark.parametrize("name", ["vms", "streams.v2", "port_pool-1", "0", "a..b"])
def test_valid_names(store: StateStore, name: str) -> None:
    assert store.path(name) == store.root / f"{name}.json"


async def test_negative_schema_version_is_refused(store: StateStore) -> None:
    with pytest.raises(ValueError, match="schema_version"):
        await store.save("vms", REGISTRY, schema_version=-1)


@pytest.mark.usefixtures("umask_zero")
async def test_permissions(tmp_path: Path, root: Path) -> None:
    store = StateStore(root)
    await store.save("vms", REGISTRY, schema_version=1)
    for directory in (tmp_path / "data", root):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    assert stat.S_IMODE(store.path("vms").stat().st_mode) == 0o600
    await store.save("vms", Registry(vms=[]), schema_version=1)
    assert stat.S_IMODE(store.path("vms").stat().st_mode) == 0o600


async def test_concurrent_saves_are_serialised(store: StateStore) -> None:
    values = [Registry(vms=[Vm(f"vm-{i}", i)]) for i in range(20)]

    async def save(value: Registry) -> None:
        await store.save("vms", value, schema_version=1)

    async with trio.open_nursery() as nursery:
        for value in values:
            nursery.start_soon(save, value)
    assert await store.load("vms", Registry, schema_version=1) in values
    assert store.stale_temp_files() == []


async def test_cancelled_save_is_all_or_nothing(store: StateStore) -> None:
    await store.save("vms", REGISTRY, schema_version=1)
    with trio.CancelScope() as scope:
        scope.cancel()
        await store.save("vms", Registry(vms=[]), schema_version=1)
    assert await store.load("vms", Registry, schema_version=1) == REGISTRY
    assert store.stale_temp_files() == []
