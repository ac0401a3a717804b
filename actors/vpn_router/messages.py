"""Messages of the vpn_router actor, and its refusals.

Every request names its `Caller`; the actor decides ownership (a network that is not the
caller's is `NetworkNotFound`, exactly as one that does not exist).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from golem_actor.domain.tenancy import Caller
from golem_actor.domain.vpn.networks import Attachment, VpnNetwork
from golem_actor.kernel import ActorError, Call

from .link_messages import (
    GetLinkHosting,
    GetLinkPeer,
    LinkConnected,
    LinkDropped,
    LinkFailed,
    LinkFrames,
    LinkHosted,
    LinkRetry,
)
from .ports import NicPort

# -- requests of the Net API ---------------------------------------------------------------


class CreateNetwork(Call[VpnNetwork], frozen=True, kw_only=True):
    caller: Caller
    ip: str
    mask: str | None = None
    gateway: str | None = None
    link_secret: str | None = None  # extension: the secret of links to other nodes
    mtu: int | None = None  # extension: the guests' MTU (None: Golem's 1220)


class ListNetworks(Call[list[VpnNetwork]], frozen=True):
    caller: Caller


class GetNetwork(Call[VpnNetwork], frozen=True):
    caller: Caller
    network_id: str


class RemoveNetwork(Call[None], frozen=True):
    caller: Caller
    network_id: str


class AddAddress(Call[None], frozen=True):
    caller: Caller
    network_id: str
    ip: str


class AddNode(Call[None], frozen=True, kw_only=True):
    caller: Caller
    network_id: str
    node_id: str
    ip: str
    vm: bool  # node_id is a VM of this node that the caller owns (the API asked vm_lifecycle)
    location: str | None = None  # extension: another node's link URL for this VM


class RemoveNode(Call[None], frozen=True):
    caller: Caller
    network_id: str
    node_id: str


# -- the data plane's seam -------------------------------------------------------------------


class Membership(msgspec.Struct, frozen=True):
    """Which VMs of this node should be in which networks, on which addresses.

    `version` grows by one whenever the rows change, so a consumer can tell news from
    what it applied already.
    """

    version: int
    rows: tuple[Attachment, ...]


class GetMembership(Call[Membership], frozen=True):
    vm_id: str | None = None  # None: every VM's rows


class AttachPort(Call[None], frozen=True, kw_only=True):
    """Hand the router an fd that carries one Ethernet frame per datagram (a socketpair
    end, a TAP): it becomes the member `endpoint` of `network_id` on `ip` with `mac`
    (default `90:13:<ip>`). The router owns the fd from now on and closes it on detach."""

    endpoint: str
    fd: int
    network_id: str
    ip: str
    mac: bytes | None = None


class DetachPort(Call[None], frozen=True):
    """Forget an attached fd port (its traffic stops at once; a no-op when unknown)."""

    endpoint: str


class VmsGone(msgspec.Struct, frozen=True):
    """vm_lifecycle's notice: these VMs were deleted; their memberships go too (a cast)."""

    vm_ids: tuple[str, ...]


class LeasesChanged(msgspec.Struct, frozen=True):
    """The router's notice to vm_lifecycle: the address these VMs' VPN NICs are offered
    by DHCP changed (joined, moved, or left their last network), so their guests should
    ask again now rather than at their lease's renewal (a cast)."""

    vm_ids: tuple[str, ...]


class VmsKnown(msgspec.Struct, frozen=True):
    """vm_lifecycle's notice at its start: every VM of this node; memberships of VMs
    not among them (deleted while the router did not hear of it) go (a cast)."""

    vm_ids: frozenset[str]


class VpnStats(msgspec.Struct, frozen=True):
    """The data plane's counters: the fabric's totals, the switch's drops by reason,
    and per member (`<endpoint>/<network>`) its rx/tx frames and drops."""

    totals: dict[str, int]
    drops: dict[str, int]
    members: dict[str, dict[str, int]]
    endpoints: tuple[str, ...]  # the attached ones (NICs and fd ports)
    # links to other nodes by endpoint: up (0/1), dials, failures, drops, frames_out, ...
    links: dict[str, dict[str, int | str]] = {}


class GetVpnStats(Call[VpnStats], frozen=True):
    pass


# -- the actor's own (timer ticks and work results) ---------------------------------------


class NicTick(msgspec.Struct, frozen=True):
    """Time to open the VPN NICs of member VMs and reconnect those whose QEMU changed."""


class NicsOpened(msgspec.Struct, frozen=True):
    opened: dict[str, NicPort]  # vm id -> the router's end of its NIC, bound


# -- refusals --------------------------------------------------------------------------------


class NetworkNotFound(ActorError):
    """No such network, or not the caller's: the two are never told apart."""

    def __init__(self, network_id: str) -> None:
        super().__init__(f"Network not found: {network_id}")
        self.network_id = network_id


RefusalKind = Literal["invalid", "taken", "limit"]


class NetRefused(ActorError):
    """The rules refused the request (golem_actor.domain.vpn.networks says why)."""

    def __init__(self, kind: RefusalKind, message: str) -> None:
        super().__init__(message)
        self.kind: RefusalKind = kind
        self.message = message


# Everything the vpn_router accepts: its address is an `Address[VpnMsg]`.
VpnMsg = (
    CreateNetwork
    | ListNetworks
    | GetNetwork
    | RemoveNetwork
    | AddAddress
    | AddNode
    | RemoveNode
    | GetMembership
    | AttachPort
    | DetachPort
    | VmsGone
    | VmsKnown
    | GetVpnStats
    | NicTick
    | NicsOpened
    # links to other nodes (link_messages.py)
    | LinkFrames
    | GetLinkPeer
    | GetLinkHosting
    | LinkConnected
    | LinkFailed
    | LinkDropped
    | LinkRetry
    | LinkHosted
)
