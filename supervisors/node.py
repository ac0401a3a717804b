"""Starting a node: the IO that gathers its parts, then the tree built from them.

`prepare_node` blocks (it reads or creates the key files and the operator's token, loads
the image catalog, looks for Multipass, resolves payments): call it before trio runs or
through `trio.to_thread.run_sync`. The wiring itself is `supervisors.tree.node_tree`.
"""

from __future__ import annotations

import platform
from functools import partial

import msgspec

from actors.local_chain import LOCAL_STREAM_PAYMENT
from actors.wallet import Wallet
from golem_actor.adapters.host_load import PsutilHostLoad
from golem_actor.adapters.qemu import VM_USER, vm_user
from golem_actor.adapters.vpn_gate import Gates, HelperUser
from golem_actor.identity import load_or_create_operator_token, load_or_create_provider_key
from golem_actor.images import load_catalog
from golem_actor.settings import Settings
from golem_actor.signer import Signer
from golem_actor.state_store import StateStore

from .backend import choose_backend, probe_backend
from .parts import NodeParts
from .payments import payments_for
from .pricing import rate_source
from .tree import NodeTree, node_tree


def host_platform() -> str:
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64", "x64"):
        return "x86_64"
    return "arm64" if machine in ("aarch64", "arm64") else machine


def with_local_chain(settings: Settings) -> Settings:
    """The `local` payments profile: the node's own anvil holds StreamPayment.

    Only when no address is set: one set explicitly (the zero address turns payments off)
    wins, as on every other network.
    """
    if settings.payments_network != "local" or settings.stream_payment_address:
        return settings
    return msgspec.structs.replace(settings, stream_payment_address=LOCAL_STREAM_PAYMENT)


def gate_user() -> HelperUser | None:
    """Who the gates' namespace helpers run as: the VM user (as QEMU) when the node is
    root, so no helper is root on the host's files; None: the node's own user. Blocking
    (creates the VM user when missing)."""
    runas = vm_user(VM_USER)
    return None if runas is None else HelperUser(runas.uid, runas.gid, runas.groups)


def prepare_node(settings: Settings) -> NodeParts:
    """Everything the tree is built from (blocking IO)."""
    settings = with_local_chain(settings)
    catalog = load_catalog(settings.data_path)
    backend = choose_backend(settings, catalog)
    key = load_or_create_provider_key(settings.key_dir)
    operator_token = load_or_create_operator_token(settings.data_path)
    payments = payments_for(settings, key.address)
    wallet = None
    if payments is not None:
        wallet = partial(
            Wallet,
            key_dir=settings.key_dir,
            rpc_url=payments.rpc_url,
            contract=payments.contract,
            max_fee_cap_wei=settings.tx_max_fee_wei,
        )
    return NodeParts(
        settings=settings,
        backend=backend,
        catalog=catalog,
        store=StateStore(settings.state_dir),
        operator_token=operator_token,
        provider_id=key.address,
        platform=host_platform(),
        payments=payments,
        wallet=wallet,
        backend_probe=partial(probe_backend, settings, backend.kind),
        price_source=rate_source(settings),
        signer=Signer(key),
        host_load=PsutilHostLoad(settings.data_path),
        gates=partial(Gates, runas=gate_user()),
    )


def build_node(settings: Settings) -> NodeTree:
    """The node's tree for `settings` (blocking, as `prepare_node`)."""
    return node_tree(prepare_node(settings))
