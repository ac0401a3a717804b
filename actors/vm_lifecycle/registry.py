"""The VM registry: the node's single source of truth about its VMs, and its file.

One record per VM holds everything that must survive a crash: the status (written
*before* the work it starts, so a restart knows what was under way), the public SSH port
reserved for the VM's whole life, the resources, the owner's token digest, the stream.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from golem_actor.adapters.backend import Endpoint
from golem_actor.domain.resources import Resources
from golem_actor.domain.vm_machine import VmStatus

__all__ = ["REGISTRY", "SCHEMA_VERSION", "Registry", "VmRecord", "utcnow"]

REGISTRY = "vms"
SCHEMA_VERSION = 1


def utcnow() -> datetime:
    return datetime.now(UTC)


class VmRecord(msgspec.Struct, frozen=True, kw_only=True):
    vm_id: str
    name: str
    owner: str | None  # sha256 of the tenant's bearer token; None: the id is the capability
    status: VmStatus
    resources: Resources
    image: str
    authorized_keys: tuple[str, ...]
    ssh_port: int  # public, reserved until the VM is deleted
    target: Endpoint | None = None  # where the VM's sshd is reachable from this host
    ip_address: str | None = None
    stream_id: int | None = None
    job_id: str | None = None
    error: str | None = None
    created_at: datetime
    updated_at: datetime

    def evolve(self, **changes: object) -> VmRecord:
        return msgspec.structs.replace(self, updated_at=utcnow(), **changes)


class Registry(msgspec.Struct, frozen=True):
    vms: list[VmRecord] = []
