"""The contract every VM backend (QEMU, Multipass) fulfils for the vm_lifecycle actor.

A backend creates, starts, stops, deletes and observes VMs, and nothing else: no SSH
readiness probing (the lifecycle probes through the public proxy port), no port pool, no
persistence of the node's registry. It keeps whatever it needs to find its own VMs again
after a restart of the node (the QEMU backend: one directory per VM; Multipass: the
instance name prefix), and `list_owned` never returns anything it did not create.

All methods are async and never block the event loop. Each has its own internal time
bounds (a VM operation that hangs is a backend failure, not a hang of the node).
Errors cross this boundary only as `BackendError` subclasses, with a message fit for the
operator's log and, where it is the client's fault, for the client.
"""

from __future__ import annotations

import enum
from typing import Protocol

import msgspec

from golem_actor.domain.resources import Resources

__all__ = [
    "BackendError",
    "BackendState",
    "Endpoint",
    "ImageNotAvailable",
    "LaunchSpec",
    "Observed",
    "VmBackend",
    "VmMissing",
]


class Endpoint(msgspec.Struct, frozen=True):
    host: str
    port: int


class LaunchSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What to create. `vm_id` is the node's id; the backend derives its names from it."""

    vm_id: str
    hostname: str
    resources: Resources
    image: str  # a name from the image catalog, already validated
    authorized_keys: tuple[str, ...]


class BackendState(enum.Enum):
    RUNNING = "running"  # the machine runs (sshd may still be booting)
    STARTING = "starting"
    STOPPING = "stopping"
    STOPPED = "stopped"
    SUSPENDED = "suspended"
    MISSING = "missing"  # the backend has no such VM
    UNKNOWN = "unknown"  # the backend cannot tell (e.g. multipass "Unknown")


class Observed(msgspec.Struct, frozen=True, kw_only=True):
    """What the backend sees of one VM right now."""

    vm_id: str
    state: BackendState
    ssh: Endpoint | None = None  # where the VM's sshd is reachable from this host
    ip_address: str | None = None  # the VM's own address on its network
    resources: Resources | None = None  # as the backend reports them (None: unknown)
    # Why a STOPPED machine is not running, when the backend can tell (None: unknown).
    reason: str | None = None


class BackendError(Exception):
    """A backend operation failed; the message is fit for the operator's log."""


class VmMissing(BackendError):
    """The backend has no VM with that id."""


class ImageNotAvailable(BackendError):
    """The image cannot be had (not in the catalog, not downloadable, bad checksum)."""


class VmBackend(Protocol):
    kind: str  # "qemu" or "multipass"

    async def launch(self, spec: LaunchSpec) -> Observed:
        """Create and boot a VM; returns once the machine runs (sshd may not be up yet).

        Idempotent for one `vm_id`: if the VM already exists it is started if needed and
        observed, so the lifecycle can repeat a launch interrupted by a crash.
        """
        ...

    async def start(self, vm_id: str) -> Observed: ...

    async def stop(self, vm_id: str) -> None:
        """Power off gracefully within the backend's bound, then forcibly."""
        ...

    async def delete(self, vm_id: str) -> None:
        """Remove the VM and its disks; a VM that is already gone is not an error."""
        ...

    async def inspect(self, vm_id: str) -> Observed:
        """Observe one VM; state MISSING when the backend has no such VM."""
        ...

    async def list_owned(self) -> list[Observed]:
        """Every VM this node created and the backend still has."""
        ...

    async def set_vpn_link(self, vm_id: str, *, up: bool) -> None:
        """Set the carrier of the VM's VPN NIC, as a cable pulled or plugged in: a
        guest's DHCP client that watches it starts over when it comes back. Setting
        the state it has changes nothing for the guest. A backend without VPN NICs
        does nothing."""
        ...
