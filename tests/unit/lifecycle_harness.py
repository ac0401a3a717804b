"""The node's own tree (`supervisors.node_tree`) over a MemoryBackend, for in-process tests.

A fake sshd answers for every VM, ports are on 127.0.0.1, the periods are short; the
parts differ from a real node's, the wiring is the same.
"""

from __future__ import annotations

import contextlib
import random
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import trio

from actors.port_verifier import PortVerifierMsg
from actors.pricing import RateSource
from actors.resource_tracker import ResourceMsg
from actors.vm_lifecycle import LifecycleMsg, VmNotFound, VmView, WaitVm
from actors.wallet import Wallet
from golem_actor.adapters.backend import Endpoint
from golem_actor.adapters.backend.memory import MemoryBackend
from golem_actor.adapters.vpn_gate import Gates
from golem_actor.domain.resources import Resources
from golem_actor.domain.tenancy import Caller
from golem_actor.domain.vm_machine import VmStatus
from golem_actor.images import load_catalog
from golem_actor.kernel import Address, DynamicSupervisorMsg, Inbox, Supervisor
from golem_actor.settings import Settings
from golem_actor.state_store import StateStore
from supervisors import NodeParts, NodeTree, node_tree
from supervisors.payments import Payments

BANNER = b"SSH-2.0-fake_sshd\r\n"
OPERATOR = Caller(operator=True)
SMALL = Resources.from_gb(cpus=1, memory_gb=1, storage_gb=10)


async def fake_sshd(stream: trio.SocketStream) -> None:
    """Says an SSH banner, then echoes: enough to see a session survive."""
    async with stream:
        try:
            await stream.send_all(BANNER)
            async for chunk in stream:
                await stream.send_all(chunk)
        except trio.BrokenResourceError:
            pass


def port_block(size: int = 6) -> range:
    for _ in range(50):
        base = random.randrange(20000, 30000)
        ports = range(base, base + size)
        try:
            for port in ports:
                with socket.socket() as probe:
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return ports
    raise RuntimeError("no free port block")


@dataclass
class Node:
    wiring: NodeTree
    backend: MemoryBackend
    store: StateStore
    ports: range

    @property
    def tree(self) -> Supervisor:
        return self.wiring.root

    @property
    def lifecycle(self) -> Address[LifecycleMsg]:
        return self.wiring.lifecycle

    @property
    def proxies(self) -> Address[DynamicSupervisorMsg]:
        return self.wiring.proxies

    @property
    def resources(self) -> Address[ResourceMsg]:
        return self.wiring.resources

    @property
    def port_verifier(self) -> Address[PortVerifierMsg]:
        return self.wiring.port_verifier

    async def wait_status(self, vm_id: str, status: VmStatus, caller: Caller = OPERATOR) -> VmView:
        """The VM once it is `status`: the lifecycle answers on the transition."""
        wait = WaitVm(caller, vm_id, frozenset({status}))
        return await self.lifecycle.with_call_timeout(WAIT_BOUND).call(wait)

    async def wait_gone(self, vm_id: str) -> None:
        """Returns once the VM is deleted (waiting for no status: only the refusal ends it)."""
        with contextlib.suppress(VmNotFound):
            await self.lifecycle.with_call_timeout(WAIT_BOUND).call(
                WaitVm(OPERATOR, vm_id, frozenset())
            )
            raise AssertionError(f"{vm_id} answered a wait for no status")


WAIT_BOUND = 10.0  # seconds a test waits for a VM's status before it fails
HOST = Resources.from_gb(cpus=4, memory_gb=8, storage_gb=100)
OPERATOR_TOKEN = "operator-token-for-tests-0123456789abcdef"
PROVIDER = "0x" + "ab" * 20


def node_settings(data: Path, ports: range, *, max_vms: int = 4, **overrides: Any) -> Settings:
    """A loopback node in `data` whose SSH ports are `ports`, without port checks.

    The API's port is 0 (any free one) unless `port` is among `overrides`: built directly,
    not through `load_settings`, which would refuse it.
    """
    settings = Settings(
        data_dir=str(data),
        host="127.0.0.1",
        port=0,
        payments_network="none",
        max_vms=max_vms,
        launch_timeout_seconds=5.0,
        reserve_cpu_cores=0,
        reserve_memory_gb=0,
        reserve_storage_gb=0,
        ssh_listen_host="127.0.0.1",
        ssh_idle_timeout_seconds=60.0,
        ssh_max_connections_per_vm=4,
        port_range_start=ports.start,
        port_range_end=ports.stop,
        public_ip="127.0.0.1",
        port_check_servers=[],
        skip_port_verification=True,
        port_check_interval_seconds=3600,
        stream_min_withdraw_wei=1,
    )
    return msgspec.structs.replace(settings, **overrides)


def node_parts(
    settings: Settings,
    backend: MemoryBackend,
    *,
    store: StateStore | None = None,
    host: Resources = HOST,
    payments: Payments | None = None,
    wallet: Wallet | None = None,
    payment_period: float = 0.2,
    price_source: RateSource | None = None,
) -> NodeParts:
    """The node's parts with a memory backend, a fixed token and identity, short periods."""
    return NodeParts(
        settings=settings,
        backend=backend,
        catalog=load_catalog(None),
        store=StateStore(settings.data_path) if store is None else store,
        operator_token=OPERATOR_TOKEN,
        provider_id=PROVIDER,
        platform="x86_64",
        payments=payments,
        wallet=None if wallet is None else (lambda: wallet),
        host_capacity=host,
        version="test",
        lifecycle_tick=0.05,
        payment_period=payment_period,
        price_source=price_source,
    )


@asynccontextmanager
async def running_tree(parts: NodeParts) -> AsyncIterator[NodeTree]:
    """`node_tree(parts)` running until the block ends (then cancelled)."""
    tree = node_tree(parts)
    async with trio.open_nursery() as nursery:
        await nursery.start(tree.root.run, Inbox("node"))
        yield tree
        tree.root.request_stop()
        nursery.cancel_scope.cancel()


async def _serve_fake_sshd(nursery: trio.Nursery) -> Endpoint:
    listeners = await nursery.start(partial(trio.serve_tcp, fake_sshd, 0, host="127.0.0.1"))
    return Endpoint("127.0.0.1", listeners[0].socket.getsockname()[1])


@asynccontextmanager
async def running_node(data: Path, backend: MemoryBackend | None = None) -> AsyncIterator[Node]:
    async with trio.open_nursery() as nursery:
        ssh = await _serve_fake_sshd(nursery)
        backend = backend or MemoryBackend(ssh=ssh)
        backend.ssh = ssh
        for vm_id, machine in backend.machines.items():  # this run's fake sshd
            if machine.ssh is not None:
                backend.machines[vm_id] = msgspec.structs.replace(machine, ssh=backend.ssh)
        store = StateStore(data)
        ports = port_block()
        parts = node_parts(node_settings(data, ports), backend, store=store)
        async with running_tree(parts) as tree:
            yield Node(tree, backend, store, ports)
        nursery.cancel_scope.cancel()


@dataclass
class ApiNode:
    node: Node
    url: str


@asynccontextmanager
async def running_api(
    data: Path,
    *,
    host: Resources = HOST,
    max_vms: int = 4,
    ports: int = 6,
    payments: Payments | None = None,
    wallet: Wallet | None = None,
    price_source: RateSource | None = None,
    gates: Gates | None = None,
    **overrides: Any,
) -> AsyncIterator[ApiNode]:
    """The node's tree with its API; `wallet` (with `payments`) turns withdrawals on;
    `price_source` gives the pricing actor its rates (none: no price but the wei one);
    `overrides` are settings (see `node_settings`)."""
    async with trio.open_nursery() as nursery:
        backend = MemoryBackend(ssh=await _serve_fake_sshd(nursery))
        store = StateStore(data)
        block = port_block(ports)
        settings = node_settings(
            data,
            block,
            max_vms=max_vms,
            stream_min_remaining_seconds=0 if payments is None else payments.gate.min_remaining,
            stream_withdraw_enabled=wallet is not None,
            **overrides,
        )
        parts = node_parts(
            settings,
            backend,
            store=store,
            host=host,
            payments=payments,
            wallet=wallet,
            price_source=price_source,
        )
        made = None if gates is None else (lambda _router: gates)  # a stand-in router's
        async with running_tree(replace(parts, gates=made)) as tree:
            api = tree.root.child_actor("api")
            yield ApiNode(Node(tree, backend, store, block), api.bound[0] + "/api/v1")
        nursery.cancel_scope.cancel()
