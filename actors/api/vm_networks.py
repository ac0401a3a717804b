"""`networks` in a VM's create body: the VM joins the caller's Golem VPN networks at birth.

Checked before anything is launched, with the Net API's own rules (a dry run of
`add_node` on the network as the router holds it): each network must be the caller's
(another tenant's answers as one that does not exist, 422 here since it is the body
that is wrong), named once, and the address a free host of it. Once vm_lifecycle has
made the VM's record the memberships are added; a join that fails then (another
request took the address meanwhile) deletes the new VM again and answers 409, so a
create never leaves a VM that is not in the networks it asked for. The guest picks its
address up by DHCP on its VPN NIC as it boots.
"""

from __future__ import annotations

import structlog

from actors.vm_lifecycle import DeleteVm
from actors.vpn_router import AddNode, GetNetwork, NetRefused, NetworkNotFound
from golem_actor.domain.tenancy import Caller
from golem_actor.domain.vpn import networks as rules

from .context import ApiContext
from .errors import ApiError
from .schemas import VmNetworkBody

__all__ = ["check_networks", "join_networks"]

log = structlog.get_logger("golem_actor.api")

_PROBE = "vm-create-probe"  # a node id no network holds: the dry run's stand-in
_STATUS = {"invalid": 422, "taken": 409, "limit": 409}


async def check_networks(context: ApiContext, caller: Caller, wanted: list[VmNetworkBody]) -> None:
    """Refuse the body before any VM exists (ApiError with a 4xx status)."""
    seen: set[str] = set()
    for entry in wanted:
        if entry.id in seen:
            raise ApiError(422, f"network {entry.id} is named twice")
        seen.add(entry.id)
        try:
            network = await context.vpn_router.call(GetNetwork(caller, entry.id))
        except NetworkNotFound as exc:
            raise ApiError(422, f"network {entry.id} not found") from exc
        try:
            rules.add_node(network, _PROBE, entry.ip, vm=True)
        except rules.AddressTaken as exc:
            raise ApiError(409, f"network {entry.id}: {exc}") from exc
        except rules.NetRuleError as exc:
            raise ApiError(422, f"network {entry.id}: {exc}") from exc


async def join_networks(
    context: ApiContext, caller: Caller, vm_id: str, wanted: list[VmNetworkBody]
) -> None:
    """Add the new VM to each network; on a refusal, delete it and answer the refusal."""
    for entry in wanted:
        try:
            await context.vpn_router.call(
                AddNode(caller=caller, network_id=entry.id, node_id=vm_id, ip=entry.ip, vm=True)
            )
        except (NetRefused, NetworkNotFound) as exc:
            log.warning("vm left no trace: a network refused it", vm_id=vm_id, reason=str(exc))
            await context.lifecycle.call(DeleteVm(caller, vm_id))
            status = _STATUS[exc.kind] if isinstance(exc, NetRefused) else 422
            raise ApiError(status, f"network {entry.id}: {exc}") from exc
