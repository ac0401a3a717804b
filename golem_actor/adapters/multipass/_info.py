"""Reading ``multipass info/list --format json``, leniently, into ``Observed``.

Why lenient: the JSON differs between multipass versions and instance states. Numbers are
strings (``"cpu_count": "2"``, disk totals), memory is a number in newer clients and a string
in older ones, and a stopped instance has ``""`` or no key at all where a running one has a
size; ``ipv4`` is empty while the guest has no address; ``disks`` is a map of device name to
``{total, used}``. Anything we cannot read as a number becomes "unknown" (None) instead of a
default that looks real (upstream reported 1 GiB / 10 GiB for every stopped VM).

Every multipass state maps to a ``BackendState`` (upstream answered 500 for all but three):
Restarting counts as starting, Delayed Shutdown and Suspending as stopping (they are on their
way down), Deleted (deleted but not purged) as missing, and anything unheard of as unknown.
Sizes are the guest's own view, so memory reads a little below what was allocated; memory is
rounded to MiB and disk to GiB.
"""

from __future__ import annotations

import ipaddress
import math

import msgspec

from golem_actor.adapters.backend import BackendError, BackendState, Endpoint, Observed
from golem_actor.domain.resources import Resources

SSH_PORT = 22
_MIB = 1 << 20
_GIB = 1 << 30

Size = int | float | str | None

STATES: dict[str, BackendState] = {
    "running": BackendState.RUNNING,
    "stopped": BackendState.STOPPED,
    "starting": BackendState.STARTING,
    "restarting": BackendState.STARTING,
    "delayed shutdown": BackendState.STOPPING,
    "suspending": BackendState.STOPPING,
    "suspended": BackendState.SUSPENDED,
    "deleted": BackendState.MISSING,
    "unknown": BackendState.UNKNOWN,
}


class DiskInfo(msgspec.Struct):
    total: Size = None
    used: Size = None


class MemoryInfo(msgspec.Struct):
    total: Size = None
    used: Size = None


class InstanceInfo(msgspec.Struct):
    """One entry of ``info --format json`` (only the fields we read)."""

    state: str
    ipv4: list[str] = msgspec.field(default_factory=list)
    cpu_count: Size = None
    memory: MemoryInfo = msgspec.field(default_factory=MemoryInfo)
    disks: dict[str, DiskInfo] = msgspec.field(default_factory=dict)
    release: str = ""
    image_release: str = ""


class InfoReply(msgspec.Struct):
    info: dict[str, InstanceInfo]
    errors: list[msgspec.Raw] = msgspec.field(default_factory=list)


class ListEntry(msgspec.Struct):
    name: str
    state: str
    ipv4: list[str] = msgspec.field(default_factory=list)
    release: str = ""


class ListReply(msgspec.Struct):
    entries: list[ListEntry] = msgspec.field(name="list")


def backend_state(state: str) -> BackendState:
    """The backend state of a multipass state string; UNKNOWN for anything unheard of."""
    return STATES.get(" ".join(state.split()).lower(), BackendState.UNKNOWN)


def _number(value: Size) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        number = float(value)
    else:
        try:
            number = float(value.strip())
        except ValueError:
            return None
    return number if math.isfinite(number) and number > 0 else None


def resources_of(info: InstanceInfo) -> Resources | None:
    """What the instance reports of its size; None unless cpus, memory and disk all read."""
    cpus = _number(info.cpu_count)
    memory = _number(info.memory.total)
    disk_totals = [_number(disk.total) for disk in info.disks.values()]
    if cpus is None or memory is None or not disk_totals or None in disk_totals:
        return None
    disk = sum(total for total in disk_totals if total is not None)
    return Resources(
        cpus=int(cpus),
        memory_mib=round(memory / _MIB),
        storage_gib=round(disk / _GIB),
    )


def first_ipv4(addresses: list[str]) -> str | None:
    for address in addresses:
        try:
            return str(ipaddress.IPv4Address(address.strip()))
        except ValueError:
            continue
    return None


def observed(
    vm_id: str, state_text: str, ipv4: list[str], resources: Resources | None = None
) -> Observed:
    state = backend_state(state_text)
    address = first_ipv4(ipv4) if state is BackendState.RUNNING else None
    return Observed(
        vm_id=vm_id,
        state=state,
        ssh=Endpoint(address, SSH_PORT) if address is not None else None,
        ip_address=address,
        resources=resources if state is not BackendState.MISSING else None,
    )


def observe_info(vm_id: str, info: InstanceInfo) -> Observed:
    return observed(vm_id, info.state, info.ipv4, resources_of(info))


def parse_info(raw: bytes, name: str) -> InstanceInfo:
    """The entry for instance ``name`` in ``info --format json`` output."""
    try:
        reply = msgspec.json.decode(raw, type=InfoReply)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BackendError(
            f"multipass info {name}: unreadable output ({exc}): {_excerpt(raw)}"
        ) from None
    entry = reply.info.get(name)
    if entry is None:
        raise BackendError(f"multipass info {name}: no entry for it in {_excerpt(raw)}")
    return entry


def parse_list(raw: bytes) -> list[ListEntry]:
    try:
        return msgspec.json.decode(raw, type=ListReply).entries
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BackendError(f"multipass list: unreadable output ({exc}): {_excerpt(raw)}") from None


def _excerpt(raw: bytes, limit: int = 300) -> str:
    text = raw.decode(errors="replace").strip()
    return repr(text if len(text) <= limit else text[:limit] + "...")
