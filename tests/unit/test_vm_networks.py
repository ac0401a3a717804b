"""`networks` in the create body: the VM joins the caller's networks, or nothing is made."""

from __future__ import annotations

from pathlib import Path

import httpx
from lifecycle_harness import ApiNode, running_api
from test_api import OPERATOR, bearer, body

ALICE, BOB = bearer("alice-token-0123456789"), bearer("bob-token-9876543210")


def net_url(node: ApiNode) -> str:
    return node.url.removesuffix("/api/v1") + "/net-api/v1/net"


async def test_a_vm_joins_its_networks_at_create(tmp_path: Path) -> None:
    async with running_api(tmp_path) as node, httpx.AsyncClient(timeout=20) as client:
        one = (await client.post(net_url(node), json={"ip": "10.1.0.0/24"}, headers=ALICE)).json()
        two = (await client.post(net_url(node), json={"ip": "10.2.0.0/24"}, headers=ALICE)).json()
        wanted = [{"id": one["id"], "ip": "10.1.0.7"}, {"id": two["id"], "ip": "10.2.0.7"}]
        made = await client.post(
            f"{node.url}/vms", json=body("joined", networks=wanted), headers=ALICE
        )
        assert made.status_code == 200, made.text
        vm_id = made.json()["id"]
        for network, ip in ((one, "10.1.0.7"), (two, "10.2.0.7")):
            nodes = await client.get(f"{net_url(node)}/{network['id']}/nodes", headers=ALICE)
            assert nodes.json() == [{"id": vm_id, "ip": ip}]
        # the operator's status counts them (`golem-provider status` shows this block)
        status = await client.get(f"{node.url}/admin/status", headers=OPERATOR)
        assert status.status_code == 200, status.text
        vpn = status.json()["vpn"]
        assert (vpn["networks"], vpn["vm_addresses"], vpn["links"]) == (2, 2, [])
        assert vpn["dropped"] == {}


async def test_bad_networks_are_refused_before_any_vm_exists(tmp_path: Path) -> None:
    async with running_api(tmp_path) as node, httpx.AsyncClient(timeout=20) as client:
        mine = (await client.post(net_url(node), json={"ip": "10.1.0.0/24"}, headers=ALICE)).json()
        bobs = (await client.post(net_url(node), json={"ip": "10.1.0.0/24"}, headers=BOB)).json()
        taken = await client.post(
            f"{net_url(node)}/{mine['id']}/nodes",
            json={"id": "0xabc", "ip": "10.1.0.9"},
            headers=ALICE,
        )
        assert taken.status_code == 200
        cases = [
            ([{"id": bobs["id"], "ip": "10.1.0.7"}], 422, "not found"),  # another tenant's
            ([{"id": "f" * 32, "ip": "10.1.0.7"}], 422, "not found"),
            ([{"id": mine["id"], "ip": "10.9.0.7"}], 422, "10.9.0.7"),  # outside the network
            ([{"id": mine["id"], "ip": "10.1.0.255"}], 422, "10.1.0.255"),  # its broadcast
            ([{"id": mine["id"], "ip": "10.1.0.9"}], 409, "held by"),
            ([{"id": mine["id"], "ip": "10.1.0.1"}], 409, "requestor"),  # the gateway
            ([{"id": mine["id"], "ip": "10.1.0.7"}] * 2, 422, "twice"),
            ([{"id": mine["id"], "ip": "not an ip"}], 422, ""),
            ([{"id": mine["id"]}], 422, "ip"),
        ]
        for networks, status, detail in cases:
            reply = await client.post(
                f"{node.url}/vms", json=body("refused", networks=networks), headers=ALICE
            )
            assert reply.status_code == status, (networks, reply.text)
            assert detail in reply.json()["detail"]
        listed = await client.get(f"{node.url}/vms", headers=ALICE)
        assert listed.json() == []
