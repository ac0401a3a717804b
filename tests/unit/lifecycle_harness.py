"""A small real tree (resource tracker, ssh_proxies, vm_lifecycle) over a MemoryBackend."""

from __future__ import annotations

import contextlib
import math
import random
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import trio

from actors.port_verifier import PortVerifier, VerifierConfig
from actors.resource_tracker import ResourceTracker
from actors.vm_lifecycle import Operations, VmLifecycle, VmNotFound, VmView, WaitVm
from golem_actor.adapters.backend import Endpoint
from golem_actor.adapters.backend.memory import MemoryBackend
from golem_actor.domain.resources import Resources
from golem_actor.domain.tenancy import Caller
from golem_actor.domain.vm_machine import VmStatus
from golem_actor.kernel import Address, ChildSpec, DynamicSupervisor, Inbox, Supervisor
from golem_actor.state_store import StateStore

BANNER = b"SSH-2.0-fake_sshd\r\n"
OPERATOR = Caller(operator=True)
SMALL = Resources.from_gb(cpus=1, memory_gb=1, storage_gb=10)
WAIT_BOUND = 10.0  # seconds a test waits for a VM's status before it fails


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
    tree: Supervisor
    backend: MemoryBackend
    store: StateStore
    ports: range

    @property
    def lifecycle(self) -> Address[Any]:
        return self.tree.child_address("vm_lifecycle")

    @property
    def proxies(self) -> Address[Any]:
        return self.tree.child_address("ssh_proxies")

    @property
    def resources(self) -> Address[Any]:
        return self.tree.child_address("resource_tracker")

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


HOST = Resources.from_gb(cpus=4, memory_gb=8, storage_gb=100)


def build_tree(
    backend: MemoryBackend,
    store: StateStore,
    ports: range,
    *,
    host: Resources = HOST,
    max_vms: int = 4,
) -> Supervisor:
    proxies = DynamicSupervisor("ssh_proxies", intensity=10, period=60)

    def lifecycle() -> VmLifecycle:
        operations = Operations(
            backend=backend,
            proxies=tree.child_address("ssh_proxies"),
            listen_host="127.0.0.1",
            launch_timeout=5.0,
            idle_timeout=60.0,
            max_connections=4,
        )
        return VmLifecycle(
            operations=operations,
            store=store,
            resources=tree.child_address("resource_tracker"),
            port_range=ports,
            tick_interval=0.05,
            streams_file=store.root / "streams.json",
            port_verifier=tree.child_address("port_verifier"),
        )

    tree = Supervisor(
        "node",
        [
            ChildSpec(
                "resource_tracker",
                lambda: ResourceTracker(
                    storage_path=Path("/"),
                    reserve=Resources.from_gb(cpus=0, memory_gb=0, storage_gb=0),
                    max_vms=max_vms,
                    total=host,
                ),
            ),
            ChildSpec(
                "port_verifier",
                lambda: PortVerifier(
                    VerifierConfig(
                        provider_host="127.0.0.1",
                        provider_port=ports.start - 1,
                        ssh_host="127.0.0.1",
                        ssh_ports=ports,
                        servers=(),
                        quorum=1,
                        per_server_timeout=1,
                        public_ip=None,
                        skip=True,
                    ),
                    interval=3600,
                ),
            ),
            ChildSpec("ssh_proxies", lambda: proxies, shutdown=math.inf),
            ChildSpec("vm_lifecycle", lifecycle),
        ],
        intensity=5,
        period=60,
    )
    return tree


@asynccontextmanager
async def running_node(data: Path, backend: MemoryBackend | None = None) -> AsyncIterator[Node]:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, fake_sshd, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        backend = backend or MemoryBackend(ssh=Endpoint("127.0.0.1", port))
        backend.ssh = Endpoint("127.0.0.1", port)
        for vm_id, machine in backend.machines.items():  # this run's fake sshd
            if machine.ssh is not None:
                backend.machines[vm_id] = msgspec.structs.replace(machine, ssh=backend.ssh)
        store = StateStore(data)
        ports = port_block()
        tree = build_tree(backend, store, ports)
        await nursery.start(tree.run, Inbox("node"))
        yield Node(tree, backend, store, ports)
        tree.request_stop()
        nursery.cancel_scope.cancel()


OPERATOR_TOKEN = "operator-token-for-tests-0123456789abcdef"


def build_tree_with_api(
    backend: MemoryBackend,
    store: StateStore,
    ports: range,
    *,
    host: Resources,
    max_vms: int,
    payments: Any = None,
    monitor_interval: float = 0.2,
    wallet: Any = None,
) -> Supervisor:
    from actors.api import ApiActor, ApiContext, ProviderInfo  # noqa: PLC0415
    from golem_actor.images import load_catalog  # noqa: PLC0415

    inner = build_tree(backend, store, ports, host=host, max_vms=max_vms)

    def api() -> ApiActor:
        context = ApiContext(
            version="test",
            lifecycle=inner.child_address("vm_lifecycle"),
            port_verifier=inner.child_address("port_verifier"),
            resources=inner.child_address("resource_tracker"),
            catalog=load_catalog(None),
            backend_kind="qemu",
            minimum=(1, 1, 10),
            ssh_host="127.0.0.1",
            operator_token=OPERATOR_TOKEN,
            provider=ProviderInfo(
                provider_id="0x" + "ab" * 20,
                stream_payment_address="0x" + "00" * 20,
                glm_token_address="0x" + "00" * 20,
                ip_address=None,
                country="SE",
                platform="x86_64",
            ),
            payments_enabled=payments is not None,
            payments=None if payments is None else payments.gate,
            create_timeout=10.0,
        )
        return ApiActor(context, host="127.0.0.1", port=0)

    def monitor() -> Any:
        from actors.stream_monitor import StreamMonitor  # noqa: PLC0415

        return StreamMonitor(
            client=payments.client,
            lifecycle=inner.child_address("vm_lifecycle"),
            store=store,
            interval=monitor_interval,
            min_remaining=payments.gate.min_remaining,
        )

    def scheduler() -> Any:
        from actors.withdraw_scheduler import WithdrawScheduler  # noqa: PLC0415

        return WithdrawScheduler(
            client=payments.client,
            lifecycle=inner.child_address("vm_lifecycle"),
            wallet=root.child_address("wallet"),
            interval=monitor_interval,
            min_wei=1,
        )

    children = [ChildSpec("node", lambda: inner, shutdown=math.inf), ChildSpec("api", api)]
    if payments is not None:
        children.insert(1, ChildSpec("stream_monitor", monitor))
    if wallet is not None:  # a Wallet actor: it comes first, and withdrawals are on
        children.insert(0, ChildSpec("wallet", lambda: wallet))
        children.insert(2, ChildSpec("withdraw_scheduler", scheduler))
    root = Supervisor("root", children, intensity=5, period=60)
    return root


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
    payments: Any = None,
    wallet: Any = None,
) -> AsyncIterator[ApiNode]:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, fake_sshd, 0, host="127.0.0.1"))
        backend = MemoryBackend(ssh=Endpoint("127.0.0.1", listeners[0].socket.getsockname()[1]))
        store = StateStore(data)
        block = port_block(ports)
        root = build_tree_with_api(
            backend, store, block, host=host, max_vms=max_vms, payments=payments, wallet=wallet
        )
        await nursery.start(root.run, Inbox("root"))
        inner = root.child_actor("node")
        api = root.child_actor("api")
        yield ApiNode(Node(inner, backend, store, block), api.bound[0] + "/api/v1")
        root.request_stop()
        nursery.cancel_scope.cancel()
