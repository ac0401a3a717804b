"""The VPN's part of `golem-provider status`: what an operator asks first of the Golem
VPN on their node. How many networks and VM addresses it holds, how many VPN NICs the
router has open, how much it routed and dropped (by reason), and each link to another
node: up or not, and why not. Built from the router's counters (`VpnStats`) and its
membership; plain data, rendered by golem_actor.status_render."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgspec

__all__ = ["VpnLinkStatus", "VpnStatus", "vpn_status"]


class VpnLinkStatus(msgspec.Struct, frozen=True, kw_only=True):
    network_id: str
    location: str  # the far node's link URL
    up: bool
    failures: int  # dials that failed since the router started
    last_error: str  # empty while up, or before any failure


class VpnStatus(msgspec.Struct, frozen=True, kw_only=True):
    networks: int
    vm_addresses: int  # this node's VMs in networks (one per VM and network)
    nics_open: int  # VPN NICs and gate ports the router has attached
    frames_routed: int  # delivered to a port, since the router started
    dropped: dict[str, int]  # by reason, only those that happened
    links: list[VpnLinkStatus]


def vpn_status(
    *,
    networks: int,
    vm_addresses: int,
    endpoints: Iterable[str],
    totals: Mapping[str, int],
    drops: Mapping[str, int],
    links: Mapping[str, Mapping[str, int | str]],
) -> VpnStatus:
    """The summary of the router's counters (`VpnStats`' fields) and its membership."""
    return VpnStatus(
        networks=networks,
        vm_addresses=vm_addresses,
        nics_open=len(set(endpoints) - set(links)),  # links are the fabric's endpoints too
        frames_routed=int(totals.get("frames_out", 0)),
        dropped={reason: n for reason, n in sorted(drops.items()) if n},
        links=[
            VpnLinkStatus(
                network_id=str(link["network_id"]),
                location=str(link["location"]),
                up=bool(link["up"]),
                failures=int(link["failures"]),
                last_error=str(link["last_error"]),
            )
            for _, link in sorted(links.items())
        ],
    )
