"""The vpn_router actor through its address: persistence, restarts, a corrupt registry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from actors.vpn_router import (
    REGISTRY,
    AddNode,
    CreateNetwork,
    GetMembership,
    GetNetwork,
    ListNetworks,
    NetRefused,
    NetworkNotFound,
    RemoveNetwork,
    VpnMsg,
    VpnRegistry,
    VpnRouter,
)
from golem_actor.domain.tenancy import Caller
from golem_actor.kernel import Address, ChildSpec, Inbox, Supervisor
from golem_actor.state_store import StateStore

ALICE = Caller(tenant="a" * 64)


@asynccontextmanager
async def router(state: Path) -> AsyncIterator[tuple[Supervisor, Address[VpnMsg]]]:
    spec = ChildSpec("vpn_router", lambda: VpnRouter(store=StateStore(state)))
    tree = Supervisor("root", [spec], intensity=3, period=60.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(tree.run, Inbox("root"))
        yield tree, tree.address_of(spec)
        nursery.cancel_scope.cancel()


async def test_an_answered_change_is_on_disk_and_survives_a_crash(tmp_path: Path) -> None:
    async with router(tmp_path) as (tree, vpn):
        made = await vpn.call(CreateNetwork(caller=ALICE, ip="10.4.0.0/24"))
        await vpn.call(
            AddNode(caller=ALICE, network_id=made.id, node_id="vm-x", ip="10.4.0.2", vm=True)
        )
        saved = await StateStore(tmp_path).load(REGISTRY, VpnRegistry, schema_version=1)
        assert saved is not None
        assert [n.id for n in saved.networks] == [made.id]
        first = tree.child_actor("vpn_router")
        vpn.try_cast("not a message")  # type: ignore[arg-type]  # crashes the actor
        again = await vpn.call(GetNetwork(ALICE, made.id))  # reaches the next incarnation
        assert tree.child_actor("vpn_router") is not first
        assert again == (await vpn.call(ListNetworks(ALICE)))[0]
        assert [n.node_id for n in again.nodes] == ["vm-x"]
        assert [r.vm_id for r in (await vpn.call(GetMembership())).rows] == ["vm-x"]


async def test_refusals_leave_the_actor_running(tmp_path: Path) -> None:
    async with router(tmp_path) as (tree, vpn):
        first = tree.child_actor("vpn_router")
        with pytest.raises(NetRefused) as refused:
            await vpn.call(CreateNetwork(caller=ALICE, ip="10.0.0.0", mask="255.0.255.0"))
        assert refused.value.kind == "invalid"
        with pytest.raises(NetRefused, match="needs a tenant"):
            await vpn.call(CreateNetwork(caller=Caller(), ip="10.0.0.0/24"))
        with pytest.raises(NetworkNotFound):
            await vpn.call(RemoveNetwork(ALICE, "0" * 32))
        made = await vpn.call(CreateNetwork(caller=ALICE, ip="10.0.0.0/24"))
        await vpn.call(
            AddNode(caller=ALICE, network_id=made.id, node_id="0xa", ip="10.0.0.2", vm=False)
        )
        with pytest.raises(NetRefused) as taken:
            await vpn.call(
                AddNode(caller=ALICE, network_id=made.id, node_id="0xb", ip="10.0.0.2", vm=False)
            )
        assert taken.value.kind == "taken"
        assert tree.child_actor("vpn_router") is first


def corrupt_copies(state: Path) -> list[str]:
    return [p.name for p in state.iterdir() if ".corrupt-" in p.name]


async def test_a_corrupt_registry_is_moved_aside_and_the_node_starts(tmp_path: Path) -> None:
    (tmp_path / f"{REGISTRY}.json").write_bytes(b'{"schema_version": 1, "sha256": "00", "pa')
    async with router(tmp_path) as (_, vpn):
        assert await vpn.call(ListNetworks(Caller(operator=True))) == []
        await vpn.call(CreateNetwork(caller=ALICE, ip="10.0.0.0/24"))
    aside = corrupt_copies(tmp_path)
    assert len(aside) == 1
    assert aside[0].startswith(f"{REGISTRY}.corrupt-")
