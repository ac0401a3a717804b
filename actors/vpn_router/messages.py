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

# -- requests of the Net API ---------------------------------------------------------------


class CreateNetwork(Call[VpnNetwork], frozen=True, kw_only=True):
    caller: Caller
    ip: str
    mask: str | None = None
    gateway: str | None = None


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
)
