"""What the node's tree is built from: the settings, and everything start-up read or chose.

`prepare_node` (supervisors/node.py) fills these in with IO: the key files (and the
signer that holds the provider key), the operator's token, the image catalog, the VM
backend, the payments resolution. `node_tree` (supervisors/tree.py) turns them into the
supervision tree without any IO, so tests and benchmarks build the node's very tree from
parts of their own (a memory backend, no payments, shorter periods).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from actors.port_verifier.actor import BackendProbe
from actors.pricing import RateSource
from actors.wallet import Wallet
from golem_actor import __version__
from golem_actor.adapters.backend import VmBackend
from golem_actor.adapters.vpn_gate import Gates, RouterPorts
from golem_actor.domain.host_load import HostLoad
from golem_actor.domain.resources import Resources
from golem_actor.images import ImageCatalog
from golem_actor.settings import Settings
from golem_actor.signer import Signer
from golem_actor.state_store import StateStore

from .payments import Payments


@dataclass(frozen=True, kw_only=True)
class NodeParts:
    settings: Settings  # every knob the operator sets
    backend: VmBackend
    catalog: ImageCatalog
    store: StateStore  # where the actors persist their state
    operator_token: str  # the API's bearer token for the operator
    provider_id: str  # the node's Ethereum address
    platform: str  # the host's CPU architecture, as offers name it
    payments: Payments | None = None  # None: rentals are not gated by streams
    wallet: Callable[[], Wallet] | None = None  # None: no wallet, hence no withdrawals
    backend_probe: BackendProbe | None = None  # the port verifier's backend status line
    host_capacity: Resources | None = None  # None: the resource tracker measures the host
    host_load: Callable[[], Awaitable[HostLoad]] | None = None  # live usage; None: unwatched
    price_source: RateSource | None = None  # None: no feed, so no price unless cached
    signer: Signer | None = None  # signs adverts with the provider key; None: no adverts
    clock: Callable[[], float] | None = None  # the pricing actor's wall clock (tests)
    version: str = __version__
    lifecycle_tick: float = 5.0  # how often vm_lifecycle compares its VMs with the backend
    payment_period: float | None = None  # the stream actors' period; None: the settings'
    advert_debounce: float = 5.0  # s from a capacity change to the advert that shows it
    # The Net API's gates, made once by `node_tree` over the router's ports (the
    # vpn_router's AttachPort/DetachPort); None: the gates answer 501.
    gates: Callable[[RouterPorts], Gates] | None = None
