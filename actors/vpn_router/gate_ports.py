"""`RouterGatePorts`: the gates' `RouterPorts` over the vpn_router's address.

The Net API's gates (golem_actor/adapters/vpn_gate) attach their TAPs and socketpair
ends as switch ports; on the node that is the router's `AttachPort` / `DetachPort`. The
fd belongs to the router from the call on, as the seam promises: the router closes a
refused one, and keeps an attached one across its own restarts (`kept.py`).
"""

from __future__ import annotations

from golem_actor.adapters.vpn_gate import GatePort
from golem_actor.kernel import Address

from .messages import AttachPort, DetachPort, VpnMsg

__all__ = ["RouterGatePorts"]


class RouterGatePorts:
    def __init__(self, router: Address[VpnMsg]) -> None:
        self._router = router

    async def attach_port(self, port: GatePort, fd: int) -> None:
        await self._router.call(
            AttachPort(
                endpoint=port.port_id,
                fd=fd,
                network_id=port.network_id,
                ip=str(port.ip),
                mac=port.mac,
            )
        )

    async def detach_port(self, port_id: str) -> None:
        await self._router.call(DetachPort(port_id))
