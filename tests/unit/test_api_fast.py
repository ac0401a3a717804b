"""The API's fast routes answer exactly as the Quart app does, from the published listing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import trio
from lifecycle_harness import running_api
from test_api import KEY, OPERATOR, RESOURCES, bearer, body

from actors.vm_lifecycle import VmListing, VmView
from golem_actor.domain.resources import Resources
from golem_actor.domain.tenancy import Caller
from golem_actor.domain.vm_machine import VmStatus

# A request that announces a body (even an empty one) is not taken by the fast routes:
# the Quart app answers it, which gives the reference to compare with.
TO_THE_APP = {"Content-Length": "0"}


def view(vm_id: str) -> VmView:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return VmView(
        vm_id=vm_id,
        name=vm_id,
        status=VmStatus.RUNNING,
        resources=Resources.from_gb(cpus=1, memory_gb=1, storage_gb=10),
        image="ubuntu:24.04",
        ip_address=None,
        ssh_port=2222,
        stream_id=None,
        job_id=None,
        error=None,
        created_at=now,
        updated_at=now,
    )


def test_the_listing_shows_each_caller_what_list_vms_would() -> None:
    listing = VmListing()
    entries = (("alice", view("vm-a")), ("bob", view("vm-b")), (None, view("vm-c")))
    listing.publish(entries)
    assert [v.vm_id for v in listing.visible(Caller(operator=True))] == ["vm-a", "vm-b", "vm-c"]
    assert [v.vm_id for v in listing.visible(Caller(tenant="alice"))] == ["vm-a"]
    assert listing.visible(Caller()) == []  # anonymous: id-only VMs are not listed
    assert listing.version == 1
    listing.publish(tuple(entries))  # equal: no new version (readers keep their caches)
    assert listing.version == 1
    listing.publish(entries[:1])
    assert (listing.version, len(listing.entries)) == (2, 1)


def comparable(reply: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = [(k, v) for k, v in reply.headers.multi_items() if k != "date"]
    return reply.status_code, headers, reply.content


async def test_fast_answers_equal_the_apps_byte_for_byte(tmp_path: Path) -> None:
    async with running_api(tmp_path) as node, httpx.AsyncClient() as client:
        for token in ("alice-token", "bob-token"):
            for name in ("a", "b"):
                created = await client.post(
                    f"{node.url}/vms?async=true",
                    json=body(f"{token[0]}-{name}x"),
                    headers=bearer(token),
                )
                assert created.status_code == 202, created.text
        # Both answers must see the same VMs: wait until no create is still under way
        # (a VM turning running between the two reads changed its size).
        with trio.fail_after(10):
            while True:
                listed = (await client.get(f"{node.url}/vms", headers=OPERATOR)).json()
                if [vm["status"] for vm in listed] == ["running"] * 4:
                    break
                await trio.sleep(0.05)
        cases = [
            ("/provider/info", {}),
            ("/health", {}),
            ("/vms", {}),
            ("/vms", OPERATOR),
            ("/vms", bearer("alice-token")),
            ("/vms", bearer("bob-token")),
            ("/vms", bearer("nobody")),
            ("/vms?async=false", bearer("alice-token")),
        ]
        for path, headers in cases:
            fast = await client.get(f"{node.url}{path}", headers=headers)
            app = await client.get(f"{node.url}{path}", headers={**headers, **TO_THE_APP})
            assert comparable(fast) == comparable(app), path
            assert fast.status_code == 200
        assert len((await client.get(f"{node.url}/vms", headers=OPERATOR)).json()) == 4
        listed = (await client.get(f"{node.url}/vms", headers=bearer("alice-token"))).json()
        assert sorted(vm["name"] for vm in listed) == ["a-ax", "a-bx"]
        assert listed[0]["resources"] == RESOURCES


async def test_a_malformed_authorization_still_gets_the_apps_401(tmp_path: Path) -> None:
    async with running_api(tmp_path) as node, httpx.AsyncClient() as client:
        for value in ("Basic abc", "Bearer", "Bearer " + "x" * 600):
            reply = await client.get(f"{node.url}/vms", headers={"Authorization": value})
            assert reply.status_code == 401, value
            assert reply.headers["access-control-allow-origin"] == "*"
            assert "detail" in reply.json()


async def test_a_vm_is_listed_as_soon_as_its_create_answered(tmp_path: Path) -> None:
    """The lifecycle publishes before it replies: no window where the answer is stale."""
    async with running_api(tmp_path, max_vms=6, ports=8) as node, httpx.AsyncClient() as client:
        seen: list[str] = []
        for i in range(3):
            created = await client.post(f"{node.url}/vms", json=body(f"vm-{i}", ssh_key=KEY))
            assert created.status_code == 200, created.text
            listed = (await client.get(f"{node.url}/vms", headers=OPERATOR)).json()
            by_id = {vm["id"]: vm for vm in listed}
            assert by_id[created.json()["id"]]["status"] == "running"
            seen.append(created.json()["id"])
            deleted = await client.delete(f"{node.url}/vms/{seen[0]}", headers=OPERATOR)
            assert deleted.status_code == 200, deleted.text
            listed = (await client.get(f"{node.url}/vms", headers=OPERATOR)).json()
            assert seen.pop(0) not in {vm["id"] for vm in listed}
