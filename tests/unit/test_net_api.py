"""The Net API through ya-aioclient's `ya_net` client (what yapapi and golem-core call),
against the node's real in-process API: networks, addresses, nodes, statuses, tenants,
persistence. Raw HTTP only where ya_net has no method (query auth, the gates)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
import trio_websocket
from lifecycle_harness import OPERATOR_TOKEN, ApiNode, running_api
from test_api import body as vm_body
from ya_net_client import Failed, ya_net

from actors.vpn_router import GetMembership, GetNetwork
from golem_actor.domain.tenancy import Caller, token_digest
from golem_actor.domain.vpn.networks import Attachment

pytestmark = pytest.mark.tools  # a real client process beside the node

ALICE, BOB = "alice-token-0123456789", "bob-token-9876543210"
GOLEM_NODE = "0x" + "7c" * 20
REQUESTOR = "0x" + "1e" * 20


def net_url(node: ApiNode, version: str = "v1") -> str:
    root = node.url.removesuffix("/api/v1")
    return f"{root}/net-api/v1" if version == "v1" else f"{root}/net-api/v2/vpn"


async def create_vm(node: ApiNode, token: str, name: str) -> str:
    async with httpx.AsyncClient(timeout=20) as client:
        reply = await client.post(
            f"{node.url}/vms", json=vm_body(name), headers={"Authorization": f"Bearer {token}"}
        )
    assert reply.status_code == 200, reply.text
    return str(reply.json()["id"])


async def test_networks_and_addresses_as_the_sdks_use_them(tmp_path: Path) -> None:
    async with running_api(tmp_path) as node, ya_net() as ya:
        base = net_url(node)
        # yapapi: the network address and a dotted mask; it then adds its first host.
        made = await ya.call(base, ALICE, "create_network", ip="192.168.8.0", mask="255.255.255.0")
        assert re.fullmatch("[0-9a-f]{32}", made["id"])
        assert (made["ip"], made["mask"], made["gateway"]) == (
            "192.168.8.0/24",
            "255.255.255.0",
            "192.168.8.1",
        )
        assert (
            await ya.call(base, ALICE, "add_address", network_id=made["id"], ip="192.168.8.1")
            is None
        )
        assert await ya.call(base, ALICE, "get_addresses", network_id=made["id"]) == [
            {"ip": "192.168.8.1/24"}
        ]
        # golem-core documents create_network("192.168.0.1/24"): host bits cleared.
        core = await ya.call(base, ALICE, "create_network", ip="10.3.0.77/16", gateway="10.3.9.9")
        assert (core["ip"], core["mask"], core["gateway"]) == (
            "10.3.0.0/16",
            "255.255.0.0",
            "10.3.9.9",
        )
        assert (
            await ya.call(base, ALICE, "add_address", network_id=core["id"], ip="10.3.0.5") is None
        )
        assert await ya.call(base, ALICE, "get_addresses", network_id=core["id"]) == [
            {"ip": "10.3.0.1/16"},
            {"ip": "10.3.0.5/16"},
        ]
        listed = await ya.call(base, ALICE, "get_networks")
        assert [n["id"] for n in listed] == sorted([made["id"], core["id"]])
        # The same routes under /net-api/v2/vpn.
        assert (
            await ya.call(net_url(node, "v2"), ALICE, "get_network", network_id=made["id"]) == made
        )
        assert await ya.call(base, ALICE, "get_connections", network_id=made["id"]) == []
        assert await ya.call(base, ALICE, "remove_network", network_id=made["id"]) is None
        gone = await ya.call(base, ALICE, "get_network", network_id=made["id"])
        assert gone == Failed(404, gone.body)
        assert "Network not found" in gone.body["message"]
        assert gone.body["detail"] == gone.body["message"]
        assert [n["id"] for n in await ya.call(base, ALICE, "get_networks")] == [core["id"]]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"ip": "10.0.0.0", "mask": "255.0.255.0"}, "not contiguous"),
        ({"ip": "10.0.0.0/24", "mask": "255.255.0.0"}, "disagree"),
        ({"ip": "10.0.0.0/24", "gateway": "10.0.1.1"}, "outside the network"),
        ({"ip": "10.0.0.0/24", "gateway": "10.0.0.255"}, "broadcast"),
        ({"ip": "fd00:1::/64"}, "only IPv4"),
        ({"ip": "10.0.0.0/31"}, "/8 to /30"),
        ({"ip": "127.0.0.0/24"}, "cannot route"),
        ({"ip": "not-an-ip"}, "not an IPv4 address"),
    ],
)
async def test_networks_yagna_would_accept_are_refused_with_a_reason(
    tmp_path: Path, fields: dict[str, str], reason: str
) -> None:
    async with running_api(tmp_path) as node, ya_net() as ya:
        refused = await ya.call(net_url(node), ALICE, "create_network", **fields)
        assert isinstance(refused, Failed)
        assert refused.status == 400
        assert reason in refused.body["message"]
        assert await ya.call(net_url(node), ALICE, "get_networks") == []


async def test_nodes_vms_and_other_ids(tmp_path: Path) -> None:
    async with running_api(tmp_path) as node, ya_net() as ya:
        base = net_url(node)
        vm = await create_vm(node, ALICE, "web")
        foreign_vm = await create_vm(node, BOB, "bobs")
        net = (await ya.call(base, ALICE, "create_network", ip="192.168.0.0/24"))["id"]

        async def add(node_id: str, ip: str) -> object:
            return await ya.call(base, ALICE, "add_node", network_id=net, id=node_id, ip=ip)

        assert await add(vm, "192.168.0.2") is None
        assert await add(vm, "192.168.0.2") is None  # golem-core refreshes its nodes so
        assert await add(GOLEM_NODE, "192.168.0.3") is None  # an id of no VM here: listed
        assert await add(REQUESTOR, "192.168.0.1") is None  # golem-js registers itself so
        assert await add(foreign_vm, "192.168.0.4") is None  # not Alice's: never connected
        assert await ya.call(base, ALICE, "add_address", network_id=net, ip="192.168.0.20") is None
        for node_id, ip, status, why in [
            (GOLEM_NODE, "192.168.0.2", 409, f"held by node {vm}"),
            (vm, "192.168.0.5", 409, "remove it first"),
            (vm, "192.168.0.20", 409, "requestor's side"),
            (vm, "192.168.0.1", 409, f"held by node {REQUESTOR}"),
            (GOLEM_NODE, "192.168.1.7", 400, "outside the network"),
            (GOLEM_NODE, "192.168.0.0", 400, "network address"),
            (GOLEM_NODE, "192.168.0.255", 400, "broadcast address"),
            (GOLEM_NODE, "banana", 400, "not an IPv4 address"),
        ]:
            refused = await add(node_id, ip)
            assert isinstance(refused, Failed), (node_id, ip)
            assert (refused.status, why in refused.body["message"]) == (status, True), refused
        nodes = await ya.call(base, ALICE, "get_nodes", network_id=net)
        assert sorted((n["id"], n["ip"]) for n in nodes) == sorted(
            [
                (vm, "192.168.0.2"),
                (GOLEM_NODE, "192.168.0.3"),
                (REQUESTOR, "192.168.0.1"),
                (foreign_vm, "192.168.0.4"),
            ]
        )
        # The data plane's table: Alice's VM only.
        membership = await node.node.wiring.vpn_router.call(GetMembership())
        assert membership.rows == (Attachment(vm, net, "192.168.0.2", 24, "192.168.0.1"),)
        # An address moves: remove, then add again.
        assert await ya.call(base, ALICE, "remove_node", network_id=net, node_id=vm) is None
        assert await ya.call(base, ALICE, "remove_node", network_id=net, node_id=vm) is None
        assert (await node.node.wiring.vpn_router.call(GetMembership(vm))).rows == ()
        assert await add(vm, "192.168.0.9") is None
        rows = (await node.node.wiring.vpn_router.call(GetMembership(vm))).rows
        assert [r.ip for r in rows] == ["192.168.0.9"]
        # The requestor's side cannot take a VM's address.
        taken = await ya.call(base, ALICE, "add_address", network_id=net, ip="192.168.0.9")
        assert isinstance(taken, Failed)
        assert taken.status == 409


async def test_a_network_is_its_tenants_alone(tmp_path: Path) -> None:
    async with running_api(tmp_path) as node, ya_net() as ya:
        base = net_url(node)
        net = (await ya.call(base, ALICE, "create_network", ip="10.8.0.0/24"))["id"]
        bobs = (await ya.call(base, BOB, "create_network", ip="10.8.0.0/24"))["id"]
        assert [n["id"] for n in await ya.call(base, BOB, "get_networks")] == [bobs]
        for op, args in [
            ("get_network", {}),
            ("get_addresses", {}),
            ("get_nodes", {}),
            ("get_connections", {}),
            ("add_address", {"ip": "10.8.0.9"}),
            ("add_node", {"id": GOLEM_NODE, "ip": "10.8.0.9"}),
            ("remove_node", {"node_id": GOLEM_NODE}),
            ("remove_network", {}),
        ]:
            foreign = await ya.call(base, BOB, op, network_id=net, **args)
            made_up = await ya.call(base, BOB, op, network_id="f" * 32, **args)
            assert isinstance(foreign, Failed), op
            assert isinstance(made_up, Failed), op
            # Never told apart: the same status, the same words (each names its own id).
            assert (foreign.status, made_up.status) == (404, 404), op
            assert foreign.body["message"] == f"Network not found: {net}", op
            assert made_up.body["message"] == f"Network not found: {'f' * 32}", op
        # Alice's network is untouched, and the operator sees both.
        assert await ya.call(base, ALICE, "get_nodes", network_id=net) == []
        everyone = await ya.call(base, OPERATOR_TOKEN, "get_networks")
        assert {n["id"] for n in everyone} == {net, bobs}
        # Even the operator connects only the network owner's VMs to a network.
        alices_vm, bobs_vm = await create_vm(node, ALICE, "amy"), await create_vm(node, BOB, "ben")
        for vm, ip in ((alices_vm, "10.8.0.2"), (bobs_vm, "10.8.0.3")):
            added = await ya.call(base, OPERATOR_TOKEN, "add_node", network_id=bobs, id=vm, ip=ip)
            assert added is None
        rows = (await node.node.wiring.vpn_router.call(GetMembership())).rows
        assert [(r.vm_id, r.network_id) for r in rows] == [(bobs_vm, bobs)]
        assert (await ya.call(base, None, "get_networks")).status == 401


async def test_the_registry_survives_a_restart_of_the_node(tmp_path: Path) -> None:
    async with ya_net() as ya:
        async with running_api(tmp_path) as node:
            base = net_url(node)
            vm = await create_vm(node, ALICE, "web")
            made = await ya.call(base, ALICE, "create_network", ip="172.20.0.0/16")
            net = made["id"]
            assert (
                await ya.call(base, ALICE, "add_address", network_id=net, ip="172.20.0.7") is None
            )
            assert (
                await ya.call(base, ALICE, "add_node", network_id=net, id=vm, ip="172.20.1.2")
                is None
            )
            assert (
                await ya.call(
                    base, ALICE, "add_node", network_id=net, id=GOLEM_NODE, ip="172.20.1.3"
                )
                is None
            )
            before = await node.node.wiring.vpn_router.call(GetMembership())
        async with running_api(tmp_path) as node:
            base = net_url(node)
            assert await ya.call(base, ALICE, "get_networks") == [made]
            assert await ya.call(base, ALICE, "get_addresses", network_id=net) == [
                {"ip": "172.20.0.1/16"},
                {"ip": "172.20.0.7/16"},
            ]
            nodes = await ya.call(base, ALICE, "get_nodes", network_id=net)
            assert nodes == [{"id": vm, "ip": "172.20.1.2"}, {"id": GOLEM_NODE, "ip": "172.20.1.3"}]
            after = await node.node.wiring.vpn_router.call(GetMembership())
            assert after.rows == before.rows != ()
            assert (await ya.call(base, BOB, "get_network", network_id=net)).status == 404


async def test_query_auth_and_the_gates_of_a_node_without_a_data_plane(tmp_path: Path) -> None:
    async with running_api(tmp_path) as node, httpx.AsyncClient() as client:
        base = net_url(node)
        made = await client.post(f"{base}/net?authToken={ALICE}", json={"ip": "10.1.0.0/24"})
        assert made.status_code == 200, made.text
        net = made.json()["id"]
        alice = {"Authorization": f"Bearer {ALICE}"}
        assert (await client.get(f"{base}/net/{net}", headers=alice)).json() == made.json()
        assert (await client.get(f"{base}/net/{net}")).status_code == 401
        basic = await client.get(f"{base}/net/{net}", headers={"Authorization": "Basic eA=="})
        assert basic.status_code == 401
        broken = await client.post(f"{base}/net", headers=alice, content=b"{oops")
        assert (broken.status_code, "malformed" in broken.json()["message"]) == (400, True)
        for gate in (f"/net/{net}/tcp/10.1.0.2/22", f"/net/{net}/raw/from/10.1.0.1/to/10.1.0.2"):
            answer = await client.get(base + gate, headers=alice)  # not an upgrade
            assert answer.status_code == 400
            assert "websocket" in answer.json()["message"]
            foreign = await client.get(f"{base}{gate}?authToken={BOB}")
            assert foreign.status_code == 404
        # A real websocket handshake, as yapapi and websocat make it: this node was built
        # without gates (no data plane), so 501, after auth and ownership.
        ws_base = base.replace("http://", "ws://") + f"/net/{net}/tcp/10.1.0.2/22"
        for query, status in ((f"?authToken={ALICE}", 501), (f"?authToken={BOB}", 404), ("", 401)):
            with pytest.raises(trio_websocket.ConnectionRejected) as rejected:
                async with trio_websocket.open_websocket_url(ws_base + query):
                    pass
            assert rejected.value.status_code == status


async def test_ya_net_client_gets_401_without_a_token(tmp_path: Path) -> None:
    async with running_api(tmp_path) as node, ya_net() as ya:
        refused = await ya.call(net_url(node), None, "create_network", ip="10.0.0.0/24")
        assert isinstance(refused, Failed)
        assert refused.status == 401


async def test_a_network_may_ask_for_jumbo_frames(tmp_path: Path) -> None:
    async with running_api(tmp_path) as node, httpx.AsyncClient() as client:
        base = net_url(node)
        alice = {"Authorization": f"Bearer {ALICE}"}
        made = await client.post(
            f"{base}/net", headers=alice, json={"ip": "10.1.0.0/24", "mtu": 9000}
        )
        assert made.status_code == 200, made.text
        assert set(made.json()) == {"id", "ip", "mask", "gateway"}  # yagna's reply, as ever
        owner = Caller(tenant=token_digest(ALICE))
        saved = await node.node.wiring.vpn_router.call(GetNetwork(owner, made.json()["id"]))
        assert saved.mtu == 9000
        for wrong in (9001, 100, "big"):
            refused = await client.post(
                f"{base}/net", headers=alice, json={"ip": "10.2.0.0/24", "mtu": wrong}
            )
            assert refused.status_code == 400, refused.text
