"""Wire models of the HTTP API (msgspec: strict decoding, and the OpenAPI schemas).

The create body takes both known shapes: the seed README's flat form and the existing
requestor's `resources`/`size` form. Responses carry the seed's fields and what the
existing requestor reads (`id`, `name`, `status`, `ssh_port`, `vm_id` on jobs and access).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

Count = Annotated[int, Meta(ge=0, le=1_000_000, description="a whole number")]
StreamId = Annotated[int, Meta(ge=0, description="the StreamPayment stream backing the VM")]


class ResourcesBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    cpu: Count
    memory: Annotated[Count, Meta(description="GB of RAM")]
    storage: Annotated[Count, Meta(description="GB of disk")]


class VmNetworkBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A Golem VPN network of the caller's (Net API id) and the VM's address in it."""

    id: Annotated[str, Meta(min_length=1, max_length=64)]
    ip: Annotated[str, Meta(min_length=7, max_length=15, examples=["192.168.0.2"])]


Amount = Annotated[int, Meta(ge=0)]


class Amounts(msgspec.Struct, frozen=True):
    """Resources in answers. Unlike a request's (`ResourcesBody`) they have no upper
    bound: a host's capacity is whatever the host has."""

    cpu: Amount
    memory: Annotated[Amount, Meta(description="GB of RAM")]
    storage: Annotated[Amount, Meta(description="GB of disk")]


class CreateVmBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Give the size one way: `resources`, a `size` preset, or the three flat fields."""

    name: Annotated[str, Meta(max_length=64, examples=["my-webserver"])]
    resources: ResourcesBody | None = None
    size: Literal["small", "medium", "large", "xlarge"] | None = None
    cpu_cores: Count | None = None
    memory_gb: Count | None = None
    storage_gb: Count | None = None
    ssh_key: (
        Annotated[
            str,
            Meta(
                max_length=16384,
                description="an OpenSSH public key line; without it the node makes a key pair"
                " and returns its private half once, in this response",
            ),
        ]
        | None
    ) = None
    stream_id: StreamId | None = None
    image: Annotated[str, Meta(max_length=64)] | None = None
    networks: (
        Annotated[
            list[VmNetworkBody],
            Meta(
                max_length=8,
                description="Golem VPN networks (Net API) the VM joins at once, with its address"
                " in each; it configures them by DHCP",
            ),
        ]
        | None
    ) = None


class VmInfo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    id: str
    name: str
    status: str
    resources: Amounts
    image: str
    ip_address: str | None
    ssh_port: int | None
    created_at: datetime
    updated_at: datetime
    error_message: str | None
    stream_id: int | None = None
    job_id: str | None = None
    ssh_private_key: str | None = None  # only in the create response, when the node made it


class CreateJob(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    job_id: str
    vm_id: str
    status: Literal["creating"]
    ssh_private_key: str | None = None


class JobInfo(msgspec.Struct, frozen=True, kw_only=True):
    job_id: str
    vm_id: str
    status: Literal["creating", "ready", "failed"]
    error: str | None
    created_at: datetime
    updated_at: datetime


class AccessInfo(msgspec.Struct, frozen=True, kw_only=True):
    vm_id: str
    status: str
    ssh_host: str
    ssh_port: int | None
    multipass_name: str  # the backend's instance name; only displayed by clients


class ProviderInfo(msgspec.Struct, frozen=True, kw_only=True):
    provider_id: str
    stream_payment_address: str
    glm_token_address: str
    ip_address: str | None
    country: str | None
    platform: str | None


class HostLoadInfo(msgspec.Struct, frozen=True, kw_only=True):
    """The host's usage at the last reading (percent), and the thresholds."""

    cpu_percent: float
    memory_percent: float
    storage_percent: float
    cpu_threshold: float
    memory_threshold: float
    storage_threshold: float


class CapacityInfo(msgspec.Struct, frozen=True, kw_only=True):
    total: Amounts
    sellable: Amounts
    allocated: Amounts
    free: Amounts  # what the node offers now: the books and the thresholds
    vms: int
    max_vms: int
    cpu_overcommit: float = 1.0  # VM cores sold per host core: sellable cores follow it
    load: HostLoadInfo | None = None  # None: the host's usage is not watched
    limited: list[str] = msgspec.field(default_factory=list)  # a threshold holds, and why


class NodeState(msgspec.Struct, frozen=True, kw_only=True):
    version: str
    backend: str
    capacity: CapacityInfo
    vms: list[VmInfo]


class Health(msgspec.Struct, frozen=True):
    status: str
    version: str


class ErrorBody(msgspec.Struct, frozen=True):
    detail: str


class Deleted(msgspec.Struct, frozen=True, kw_only=True):
    vm_id: str
    status: str
