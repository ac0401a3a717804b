"""Messages of the port_verifier actor."""

from __future__ import annotations

import msgspec

from golem_actor.kernel import Call

from .checks import Verification


class PortsInUse(msgspec.Struct, frozen=True, kw_only=True):
    """From vm_lifecycle: ports its proxies listen on, and every port a VM holds."""

    running: frozenset[int]
    reserved: frozenset[int]


class UsablePorts(msgspec.Struct, frozen=True, kw_only=True):
    ports: tuple[int, ...]  # lowest first, none reserved by a VM
    verified: bool
    # Ports a running recheck may hold open with its own temporary listeners: not
    # bindable right now, yet free for a VM (its proxy binds once the hold ends).
    held: frozenset[int] = frozenset()


class GetUsablePorts(Call[UsablePorts], frozen=True):
    pass


class GetVerification(Call[Verification], frozen=True):
    pass


class Recheck(msgspec.Struct, frozen=True):
    pass


class Checked(msgspec.Struct, frozen=True):
    verification: Verification


# Everything the port_verifier accepts: its address is an `Address[PortVerifierMsg]`.
PortVerifierMsg = PortsInUse | Recheck | Checked | GetUsablePorts | GetVerification
