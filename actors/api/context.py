"""What the HTTP app needs from the node: actor addresses and fixed facts."""

from __future__ import annotations

from dataclasses import dataclass, field

from actors.port_verifier import PortVerifierMsg
from actors.pricing import GetPrices
from actors.resource_tracker import ResourceMsg
from actors.vm_lifecycle import LifecycleMsg, VmListing
from actors.vpn_router import VpnMsg
from golem_actor.adapters.vpn_gate import Gates
from golem_actor.images import ImageCatalog
from golem_actor.kernel import Address
from golem_actor.runtime import StopHandle

from .faults import FaultHook
from .limits import ApiLimits
from .metrics import Observed
from .payments import PaymentGate
from .schemas import ProviderInfo


@dataclass(frozen=True, kw_only=True)
class ApiContext:
    version: str
    lifecycle: Address[LifecycleMsg]
    # The lifecycle's published VMs: `GET /vms` reads them without a call (None: it calls).
    listing: VmListing | None = None
    port_verifier: Address[PortVerifierMsg] | None  # None: a node without port verification
    resources: Address[ResourceMsg]
    catalog: ImageCatalog
    backend_kind: str
    minimum: tuple[int, int, int]  # cpu, memory GB, storage GB a VM must have at least
    ssh_host: str  # what /access reports as the host to SSH to
    operator_token: str
    provider: ProviderInfo
    payments_enabled: bool
    payments: PaymentGate | None = None  # set when payments are enabled
    pricing: Address[GetPrices] | None = None  # the pricing actor: its state goes in /admin/status
    create_timeout: float  # how long a synchronous create waits for SSH
    stop_timeout: float = 120.0
    stop: StopHandle  # asks the whole node to stop gracefully (the shutdown route)
    vpn_router: Address[VpnMsg]  # the Net API's networks (net_api.py)
    # The Net API's TCP and raw gates (gates.py); None: a node without the VPN data plane,
    # whose gates answer 501.
    gates: Gates | None = None
    # Per-client rates and connection bounds (limits.py).
    limits: ApiLimits = field(default_factory=ApiLimits)
    # What /metrics reads beyond the VMs (the tree's statistics, the SSH proxies, the
    # advert); None: an app running without the node's tree: VMs and outcomes only.
    observed: Observed | None = None
    # The development mode's fault hook (faults.py); None in production: no such route.
    faults: FaultHook | None = None
