"""The node's root supervisor.

Start order is the order below; stop order is its reverse, so the API stops taking
requests first and the SSH proxies (tenants' live sessions) go last. Calls only go from
later actors to earlier ones (api -> vm_lifecycle -> ssh_proxies, resource_tracker), so
they cannot deadlock.

The root is one_for_one: addresses survive restarts, so a crashed actor comes back
without taking its siblings down with it. rest_for_one would restart every actor started
after the crashed one, and a crash of an early actor would then drop every tenant's SSH
session, which the product promises never to do. A crash of vm_lifecycle leaves the VMs
and their proxies running: the new incarnation reloads the registry and adopts them.
The intensity (5 restarts a minute) is the node-wide burst we tolerate before the process
exits non-zero for its service manager to restart it.
"""

from __future__ import annotations

import math
import platform
from functools import partial

import msgspec

from actors.api import ApiActor, ApiContext, ProviderInfo
from actors.local_chain import LOCAL_STREAM_PAYMENT, LocalChain
from actors.port_verifier import PortVerifier, VerifierConfig
from actors.resource_tracker import ResourceTracker
from actors.stream_monitor import StreamMonitor
from actors.vm_lifecycle import Operations, VmLifecycle
from actors.wallet import Wallet
from actors.withdraw_scheduler import WithdrawScheduler
from golem_actor import __version__
from golem_actor.domain.resources import Resources
from golem_actor.identity import load_or_create_operator_token, load_or_create_provider_key
from golem_actor.images import load_catalog
from golem_actor.kernel import ChildSpec, DynamicSupervisor, Strategy, Supervisor
from golem_actor.settings import ZERO_ADDRESS, Settings
from golem_actor.state_store import StateStore

from .backend import choose_backend, probe_backend
from .payments import payments_for

ROOT_INTENSITY = 5
ROOT_PERIOD = 60.0


def _platform() -> str:
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64", "x64"):
        return "x86_64"
    return "arm64" if machine in ("aarch64", "arm64") else machine


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


def with_local_chain(settings: Settings) -> Settings:
    """The `local` payments profile: the node's own anvil holds StreamPayment.

    Only when no address is set: one set explicitly (the zero address turns payments off)
    wins, as on every other network.
    """
    if settings.payments_network != "local" or settings.stream_payment_address:
        return settings
    return msgspec.structs.replace(settings, stream_payment_address=LOCAL_STREAM_PAYMENT)


def build_node(settings: Settings) -> Supervisor:
    """The whole tree (blocking: reads or creates the node's key files)."""
    settings = with_local_chain(settings)
    data = settings.data_path
    catalog = load_catalog(data)
    backend = choose_backend(settings, catalog)
    key = load_or_create_provider_key(settings.key_dir)
    operator_token = load_or_create_operator_token(data)
    store = StateStore(settings.state_dir)
    payments = payments_for(settings, key.address)

    reserve = Resources.from_gb(
        cpus=settings.reserve_cpu_cores,
        memory_gb=settings.reserve_memory_gb,
        storage_gb=settings.reserve_storage_gb,
    )
    ssh_proxies = DynamicSupervisor("ssh_proxies", intensity=10, period=60.0)

    # The factories run when each child starts, by which time `tree` exists and its
    # children's addresses (owned by the tree, stable across restarts) can be handed out.
    def resource_tracker() -> ResourceTracker:
        return ResourceTracker(storage_path=data, reserve=reserve, max_vms=settings.max_vms)

    verifier_config = verifier_settings(settings)

    def port_verifier() -> PortVerifier:
        return PortVerifier(
            verifier_config,
            interval=settings.port_check_interval_seconds,
            backend_probe=partial(probe_backend, settings, backend.kind),
        )

    def vm_lifecycle() -> VmLifecycle:
        operations = Operations(
            backend=backend,
            proxies=tree.child_address("ssh_proxies"),
            listen_host=settings.ssh_listen_host,
            launch_timeout=settings.launch_timeout_seconds,
            idle_timeout=settings.ssh_idle_timeout_seconds,
            max_connections=settings.ssh_max_connections_per_vm,
        )
        return VmLifecycle(
            operations=operations,
            store=store,
            resources=tree.child_address("resource_tracker"),
            port_range=settings.ssh_ports,
            streams_file=data / "streams.json",
            port_verifier=tree.child_address("port_verifier"),
        )

    def api() -> ApiActor:
        context = ApiContext(
            version=__version__,
            lifecycle=tree.child_address("vm_lifecycle"),
            port_verifier=tree.child_address("port_verifier"),
            resources=tree.child_address("resource_tracker"),
            catalog=catalog,
            backend_kind=backend.kind,
            minimum=(settings.min_cpu_cores, settings.min_memory_gb, settings.min_storage_gb),
            ssh_host="localhost" if settings.public_ip == "auto" else settings.public_ip,
            operator_token=operator_token,
            provider=provider,
            payments_enabled=payments is not None,
            payments=None if payments is None else payments.gate,
            create_timeout=settings.launch_timeout_seconds + 30.0,
        )
        return ApiActor(context, host=settings.host, port=settings.port)

    provider = ProviderInfo(
        provider_id=key.address,
        stream_payment_address=payments.contract if payments else ZERO_ADDRESS,
        glm_token_address=payments.token if payments else settings.glm_token_address,
        ip_address=None if settings.public_ip == "auto" else settings.public_ip,
        country=settings.provider_country,
        platform=_platform(),
    )

    def stream_monitor() -> StreamMonitor:
        assert payments is not None
        return StreamMonitor(
            client=payments.client,
            lifecycle=tree.child_address("vm_lifecycle"),
            store=store,
            interval=settings.stream_monitor_interval_seconds,
            min_remaining=settings.stream_min_remaining_seconds,
        )

    def local_chain() -> LocalChain:
        assert payments is not None
        return LocalChain(rpc_url=payments.rpc_url, data_dir=data, provider=key.address)

    def wallet() -> Wallet:
        assert payments is not None
        return Wallet(
            key_dir=settings.key_dir,
            rpc_url=payments.rpc_url,
            contract=payments.contract,
            max_fee_cap_wei=settings.tx_max_fee_wei,
        )

    def withdraw_scheduler() -> WithdrawScheduler:
        assert payments is not None
        return WithdrawScheduler(
            client=payments.client,
            lifecycle=tree.child_address("vm_lifecycle"),
            wallet=tree.child_address("wallet"),
            interval=settings.stream_withdraw_interval_seconds,
            min_wei=settings.stream_min_withdraw_wei,
        )

    local = payments is not None and settings.payments_network == "local"
    monitoring = payments is not None and settings.stream_monitor_enabled
    withdrawing = payments is not None and settings.stream_withdraw_enabled
    tree = Supervisor(
        "node",
        [
            *([ChildSpec("local_chain", local_chain, shutdown=15.0)] if local else []),
            *([ChildSpec("wallet", wallet, shutdown=30.0)] if payments is not None else []),
            ChildSpec("resource_tracker", resource_tracker),
            ChildSpec("port_verifier", port_verifier, shutdown=5.0),
            ChildSpec("ssh_proxies", lambda: ssh_proxies, shutdown=math.inf),
            ChildSpec("vm_lifecycle", vm_lifecycle, shutdown=30.0),
            *([ChildSpec("stream_monitor", stream_monitor)] if monitoring else []),
            *([ChildSpec("withdraw_scheduler", withdraw_scheduler)] if withdrawing else []),
            ChildSpec("api", api, shutdown=10.0),
        ],
        strategy=Strategy.ONE_FOR_ONE,
        intensity=ROOT_INTENSITY,
        period=ROOT_PERIOD,
    )
    return tree
