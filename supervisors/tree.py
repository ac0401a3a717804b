"""The node's root supervisor, built from its parts without any IO.

Start order is the order below (pricing right after the wallet, before anything that
prices: the API's payment gate asks it); stop order is its reverse, so the API stops taking
requests first and the SSH proxies (tenants' live sessions) go last. Calls only go from
later actors to earlier ones (api -> vm_lifecycle -> ssh_proxies, resource_tracker;
advertiser -> resource_tracker, pricing), so they cannot deadlock; the only casts from an
earlier actor to a later one never wait (resource_tracker's `CapacityChanged` and
pricing's `PricesChanged` to the advertiser, the vpn_router's `LeasesChanged` to
vm_lifecycle, each a `try_cast`).

The root is one_for_one: addresses survive restarts, so a crashed actor comes back
without taking its siblings down with it. rest_for_one would restart every actor started
after the crashed one, and a crash of an early actor would then drop every tenant's SSH
session, which the product promises never to do. A crash of vm_lifecycle leaves the VMs
and their proxies running: the new incarnation reloads the registry and adopts them.
The intensity (5 restarts a minute) is the node-wide burst we tolerate before the process
exits non-zero for its service manager to restart it.

This is the one place the tree is wired: the node (`build_node`), the tests and the
benchmarks all call `node_tree`, each with parts of its own.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from actors.advertiser import Advertiser, AdvertiserMsg
from actors.api import ApiActor, ApiContext, ApiLimits, ProviderInfo
from actors.api.faults import FaultHook
from actors.api.metrics import Observed
from actors.local_chain import LocalChain
from actors.port_verifier import PortVerifier, PortVerifierMsg, VerifierConfig
from actors.pricing import Pricing, PricingMsg
from actors.resource_tracker import ResourceMsg, ResourceTracker
from actors.stream_monitor import StreamMonitor
from actors.vm_lifecycle import LifecycleMsg, Operations, VmLifecycle, VmListing
from actors.vpn_router import LeasesChanged, VpnMsg, VpnRouter
from actors.vpn_router.gate_ports import RouterGatePorts
from actors.vpn_router.kept import KeptPorts
from actors.withdraw_scheduler import WithdrawScheduler
from golem_actor.domain.host_load import Thresholds
from golem_actor.domain.resources import Resources
from golem_actor.kernel import (
    Address,
    ChildSpec,
    DynamicSupervisor,
    DynamicSupervisorMsg,
    Strategy,
    Supervisor,
)
from golem_actor.runtime import StopHandle
from golem_actor.settings import ZERO_ADDRESS, Settings

from .advertising import (
    advert_identity,
    advert_interval,
    advert_minimums,
    advert_poster,
    public_ip_source,
    withdraw_timeout,
)
from .parts import NodeParts
from .pricing import pricing_interval, usd_prices, wei_override

ROOT_INTENSITY = 5
ROOT_PERIOD = 60.0


@dataclass(frozen=True, kw_only=True)
class NodeTree:
    """The root supervisor, its stop handle, and typed addresses of its core children.

    The addresses belong to the tree (stable across restarts of the children).
    """

    root: Supervisor
    stop: StopHandle  # what the API's shutdown route asks; `run_node` watches it
    resources: Address[ResourceMsg]
    port_verifier: Address[PortVerifierMsg]
    proxies: Address[DynamicSupervisorMsg]
    lifecycle: Address[LifecycleMsg]
    vpn_router: Address[VpnMsg]
    pricing: Address[PricingMsg]
    advertiser: Address[AdvertiserMsg]


def verifier_settings(settings: Settings) -> VerifierConfig:
    return VerifierConfig(
        provider_host=settings.host,
        provider_port=settings.port,
        ssh_host=settings.ssh_listen_host,
        ssh_ports=settings.ssh_ports,
        servers=tuple(settings.port_check_servers),
        quorum=settings.port_check_quorum,
        per_server_timeout=settings.port_check_timeout_seconds,
        public_ip=None if settings.public_ip == "auto" else settings.public_ip,
        skip=settings.skip_port_verification,
        public_ip_services=tuple(settings.public_ip_services),
    )


def api_limits(settings: Settings) -> ApiLimits:
    return ApiLimits(
        read_per_minute=settings.api_rate_read_per_minute,
        read_burst=settings.api_rate_read_burst,
        write_per_minute=settings.api_rate_write_per_minute,
        write_burst=settings.api_rate_write_burst,
        max_concurrent_creates=settings.api_max_concurrent_creates_per_client,
        keep_alive_timeout=settings.api_keep_alive_timeout_seconds,
        body_timeout=settings.api_body_timeout_seconds,
        max_header_bytes=settings.api_max_header_bytes,
        max_pending_links=settings.api_max_pending_links,
        max_pending_links_per_peer=settings.api_max_pending_links_per_peer,
    )


def provider_info(parts: NodeParts) -> ProviderInfo:
    """What `/provider/info` says about this node."""
    settings, payments = parts.settings, parts.payments
    return ProviderInfo(
        provider_id=parts.provider_id,
        stream_payment_address=payments.contract if payments else ZERO_ADDRESS,
        glm_token_address=payments.token if payments else settings.glm_token_address,
        ip_address=None if settings.public_ip == "auto" else settings.public_ip,
        country=settings.provider_country,
        platform=parts.platform,
    )


def fault_hook(
    settings: Settings, root: Supervisor, proxies: Address[DynamicSupervisorMsg]
) -> FaultHook | None:
    """Development mode only: the fault-injection tests' way to crash an actor."""
    if settings.environment != "development":
        return None
    return FaultHook(root=lambda: root.address, proxies=proxies)


def vpn_router_spec(
    parts: NodeParts, lifecycle: Callable[[], Address[LeasesChanged]]
) -> ChildSpec[VpnMsg]:
    """The vpn_router: QEMU VMs' VPN NICs are sockets in their VM directories, and
    vm_lifecycle bounces their links when their offered address changes."""
    vms_dir = parts.settings.data_path / "vms"  # the QEMU backend's (supervisors/backend.py)
    qemu = parts.backend.kind == "qemu"
    nic_dir = (lambda vm_id: vms_dir / vm_id) if qemu else None
    kept = KeptPorts()  # one for every incarnation: the gates' ports outlive a restart

    def router() -> VpnRouter:
        return VpnRouter(
            store=parts.store, vm_dir=nic_dir, kept=kept, lifecycle=lifecycle() if qemu else None
        )

    return ChildSpec("vpn_router", router, shutdown=5.0)


def node_tree(parts: NodeParts) -> NodeTree:
    """The whole tree; pure: every actor's IO happens when it starts."""
    settings, store, payments = parts.settings, parts.store, parts.payments
    data = settings.data_path
    stop = StopHandle()
    period = parts.payment_period
    monitor_period = settings.stream_monitor_interval_seconds if period is None else period
    withdraw_period = settings.stream_withdraw_interval_seconds if period is None else period
    proxies = DynamicSupervisor("ssh_proxies", intensity=10, period=60.0)
    listing = VmListing()  # vm_lifecycle publishes, the API reads (outlives restarts)
    reserve = Resources.from_gb(
        cpus=settings.reserve_cpu_cores,
        memory_gb=settings.reserve_memory_gb,
        storage_gb=settings.reserve_storage_gb,
    )

    # The factories run when each child starts, by which time `tree` exists and hands out
    # its children's addresses.
    def resource_tracker() -> ResourceTracker:
        # Bound first: mypy would infer the spec's type from the narrower parameter.
        watcher = tree.address_of(advertiser_spec)
        return ResourceTracker(
            storage_path=data,
            reserve=reserve,
            max_vms=settings.max_vms,
            total=parts.host_capacity,
            watcher=watcher,
            load=parts.host_load,
            thresholds=Thresholds(
                cpu=settings.cpu_threshold,
                memory=settings.memory_threshold,
                storage=settings.storage_threshold,
            ),
            sample_interval=settings.resource_monitor_interval_seconds,
            cpu_overcommit=settings.cpu_overcommit,
        )

    def pricing() -> Pricing:
        watcher = tree.address_of(advertiser_spec)
        return Pricing(
            watcher=watcher,
            usd=usd_prices(settings),
            source=parts.price_source,
            store=store,
            interval=pricing_interval(settings),
            threshold_percent=settings.pricing_update_min_delta_percent,
            max_age=settings.pricing_max_age_seconds,
            override=wei_override(settings).active,
            clock=parts.clock or time.time,
        )

    def port_verifier() -> PortVerifier:
        return PortVerifier(
            verifier_settings(settings),
            interval=settings.port_check_interval_seconds,
            backend_probe=parts.backend_probe,
        )

    def vm_lifecycle() -> VmLifecycle:
        operations = Operations(
            backend=parts.backend,
            proxies=tree.address_of(proxies_spec),
            listen_host=settings.ssh_listen_host,
            launch_timeout=settings.launch_timeout_seconds,
            idle_timeout=settings.ssh_idle_timeout_seconds,
            max_connections=settings.ssh_max_connections_per_vm,
        )
        return VmLifecycle(
            operations=operations,
            store=store,
            resources=tree.address_of(resources_spec),
            port_range=settings.ssh_ports,
            tick_interval=parts.lifecycle_tick,
            streams_file=data / "streams.json",
            port_verifier=tree.address_of(verifier_spec),
            vpn=tree.address_of(vpn_spec),
            listing=listing,
        )

    def api() -> ApiActor:
        prices = tree.address_of(pricing_spec)
        # Bound first: mypy would infer the spec's type from the narrower parameter.
        advertiser, vpn = tree.address_of(advertiser_spec), tree.address_of(vpn_spec)
        gate = None if payments is None else replace(payments.gate, pricing=prices)
        context = ApiContext(
            version=parts.version,
            lifecycle=tree.address_of(lifecycle_spec),
            listing=listing,
            port_verifier=tree.address_of(verifier_spec),
            resources=tree.address_of(resources_spec),
            catalog=parts.catalog,
            backend_kind=parts.backend.kind,
            minimum=(settings.min_cpu_cores, settings.min_memory_gb, settings.min_storage_gb),
            ssh_host="localhost" if settings.public_ip == "auto" else settings.public_ip,
            operator_token=parts.operator_token,
            provider=provider_info(parts),
            payments_enabled=payments is not None,
            payments=gate,
            pricing=prices,
            create_timeout=settings.launch_timeout_seconds + 30.0,
            stop=stop,
            vpn_router=vpn,
            gates=gates,
            limits=api_limits(settings),
            observed=Observed(
                statistics=tree.statistics,
                proxies=tree.address_of(proxies_spec),
                advertiser=advertiser,
                vpn=vpn,
            ),
            faults=fault_hook(settings, tree, tree.address_of(proxies_spec)),
        )
        return ApiActor(context, host=settings.host, port=settings.port)

    def local_chain() -> LocalChain:
        assert payments is not None
        return LocalChain(rpc_url=payments.rpc_url, data_dir=data, provider=parts.provider_id)

    def stream_monitor() -> StreamMonitor:
        assert payments is not None
        lifecycle = tree.address_of(lifecycle_spec)
        return StreamMonitor(
            client=payments.client,
            lifecycle=lifecycle,
            store=store,
            interval=monitor_period,
            min_remaining=settings.stream_min_remaining_seconds,
        )

    def withdraw_scheduler() -> WithdrawScheduler:
        assert payments is not None
        assert wallet_spec is not None
        # Bound first: mypy would infer the spec's type from the narrower parameter.
        lifecycle, wallet = tree.address_of(lifecycle_spec), tree.address_of(wallet_spec)
        return WithdrawScheduler(
            client=payments.client,
            lifecycle=lifecycle,
            wallet=wallet,
            interval=withdraw_period,
            min_wei=settings.stream_min_withdraw_wei,
        )

    def advertiser() -> Advertiser:
        poster, why = advert_poster(settings, parts.signer)
        # Bound first: mypy would infer the spec's type from the narrower parameter.
        resources, prices = tree.address_of(resources_spec), tree.address_of(pricing_spec)
        return Advertiser(
            poster=poster,
            disabled_why=why,
            resources=resources,
            pricing=prices,
            public_ip=public_ip_source(settings),
            identity=advert_identity(settings, parts.platform),
            minimums=advert_minimums(settings),
            interval=advert_interval(settings),
            debounce=parts.advert_debounce,
            withdraw_timeout=withdraw_timeout(settings),
            clock=parts.clock or time.time,
        )

    paid = payments is not None
    local = paid and settings.payments_network == "local"
    wallet_spec = (
        ChildSpec("wallet", parts.wallet, shutdown=30.0) if parts.wallet is not None else None
    )
    pricing_spec = ChildSpec("pricing", pricing, shutdown=5.0)
    resources_spec = ChildSpec("resource_tracker", resource_tracker)
    verifier_spec = ChildSpec("port_verifier", port_verifier, shutdown=5.0)
    vpn_spec = vpn_router_spec(parts, lambda: tree.address_of(lifecycle_spec))
    proxies_spec = ChildSpec("ssh_proxies", lambda: proxies, shutdown=math.inf)
    lifecycle_spec = ChildSpec("vm_lifecycle", vm_lifecycle, shutdown=30.0)
    advertiser_spec = ChildSpec("advertiser", advertiser, shutdown=10.0)
    monitoring = paid and settings.stream_monitor_enabled
    withdrawing = paid and wallet_spec is not None and settings.stream_withdraw_enabled
    children: list[ChildSpec[Any]] = [
        *([ChildSpec("local_chain", local_chain, shutdown=15.0)] if local else []),
        *([wallet_spec] if wallet_spec is not None else []),
        pricing_spec,
        resources_spec,
        verifier_spec,
        vpn_spec,
        proxies_spec,
        lifecycle_spec,
        *([ChildSpec("stream_monitor", stream_monitor)] if monitoring else []),
        *([ChildSpec("withdraw_scheduler", withdraw_scheduler)] if withdrawing else []),
        advertiser_spec,
        ChildSpec("api", api, shutdown=10.0),
    ]
    tree = Supervisor(
        "node",
        children,
        strategy=Strategy.ONE_FOR_ONE,
        intensity=ROOT_INTENSITY,
        period=ROOT_PERIOD,
    )
    resources, verifier = tree.address_of(resources_spec), tree.address_of(verifier_spec)
    # One Gates for every incarnation of the API (its namespaces outlive an API restart).
    gates = None if parts.gates is None else parts.gates(RouterGatePorts(tree.address_of(vpn_spec)))
    return NodeTree(
        root=tree,
        stop=stop,
        resources=resources,
        port_verifier=verifier,
        proxies=tree.address_of(proxies_spec),
        lifecycle=tree.address_of(lifecycle_spec),
        vpn_router=tree.address_of(vpn_spec),
        pricing=tree.address_of(pricing_spec),
        advertiser=tree.address_of(advertiser_spec),
    )
