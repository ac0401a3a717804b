"""`GET /metrics`: operator only, Prometheus text, numbers read from the live actors."""

from __future__ import annotations

import base64
import struct
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing
from lifecycle_harness import BANNER, OPERATOR_TOKEN, SMALL, running_api
from payments_fakes import PROVIDER, ScriptedStreams, reading, stream
from prometheus_client.parser import text_string_to_metric_families

from actors.api.payments import PaymentGate
from actors.vm_lifecycle import CreateVm
from golem_actor.adapters.chain.errors import ChainError
from golem_actor.domain.streams import ZERO_ADDRESS
from golem_actor.domain.tenancy import Caller
from golem_actor.domain.vm_machine import VmStatus
from golem_actor.kernel import Call, CallFailed
from supervisors.payments import Payments

OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


def make_key(payload: bytes = b"k" * 32) -> str:
    kind = b"ssh-ed25519"
    blob = struct.pack(">I", len(kind)) + kind + struct.pack(">I", len(payload)) + payload
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} me@laptop"


KEY = make_key()


class Crash(Call[None], frozen=True):
    pass


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(
    client: httpx.AsyncClient, root: str
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    reply = await client.get(f"{root}/metrics", headers=OPERATOR)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    return samples(reply.text)


def vms(status: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return ("golem_vms", (("status", status),))


def of_actor(name: str, actor: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return (name, (("actor", actor),))


async def test_metrics_need_the_operators_token(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api, httpx.AsyncClient() as client:
        root = api.url.removesuffix("/api/v1")
        for headers in ({}, {"Authorization": "Bearer a-tenant-token"}):
            refused = await client.get(f"{root}/metrics", headers=headers)
            assert refused.status_code == 401
            assert "golem_vms" not in refused.text


async def test_metrics_follow_creates_and_restarts(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api, httpx.AsyncClient(timeout=30) as client:
        root = api.url.removesuffix("/api/v1")
        before = await scrape(client, root)
        assert before[vms("running")] == 0
        assert before[of_actor("golem_actor_restarts_total", "vm_lifecycle")] == 0
        assert before[of_actor("golem_actor_up", "vm_lifecycle")] == 1
        assert before[of_actor("golem_actor_inbox_depth", "api")] == 0
        assert before[("golem_vm_creates_total", (("outcome", "running"),))] == 0
        # The harness's node does not advertise (no discovery server configured).
        assert before[("golem_advert_phase", (("phase", "disabled"),))] == 1
        assert before[("golem_advert_phase", (("phase", "advertised"),))] == 0
        assert not any(name == "golem_ssh_connections_active" for name, _ in before)

        body = {"name": "web", "resources": {"cpu": 1, "memory": 1, "storage": 10}, "ssh_key": KEY}
        created = await client.post(f"{api.url}/vms", json=body)
        assert created.status_code == 200, created.text
        refused = await client.post(f"{api.url}/vms", json={**body, "name": "bad name!"})
        assert refused.status_code == 422
        after_create = await scrape(client, root)
        assert after_create[vms("running")] == 1
        assert after_create[("golem_vm_creates_total", (("outcome", "running"),))] == 1
        assert after_create[("golem_vm_creates_total", (("outcome", "failed"),))] == 1
        assert (
            after_create[("golem_vm_create_failures_total", (("reason", "InvalidRequest"),))] == 1
        )

        untyped = api.node.tree.child_address("vm_lifecycle")  # mypy would refuse Crash()
        with pytest.raises(CallFailed):
            await untyped.call(Crash())  # an unknown call crashes the actor
        await api.node.wait_status(created.json()["id"], VmStatus.RUNNING)
        after_crash = await scrape(client, root)
        assert after_crash[of_actor("golem_actor_restarts_total", "vm_lifecycle")] == 1
        assert after_crash[of_actor("golem_actor_restarts_total", "api")] == 0
        assert after_crash[("golem_supervisor_restarts_in_window", ())] == 1
        assert after_crash[vms("running")] == 1  # the new incarnation adopted the VM

        vm_id = created.json()["id"]
        session = await trio.open_tcp_stream("127.0.0.1", created.json()["ssh_port"])
        assert (await session.receive_some(100)).startswith(b"SSH-")
        await session.send_all(b"0123456789")
        assert await session.receive_some(100) == b"0123456789"  # the fake sshd echoes
        await trio.testing.wait_all_tasks_blocked()  # the proxy has counted what it relayed
        open_session = await scrape(client, root)
        vm = (("vm_id", vm_id),)
        moved_in, moved_out = (
            ("golem_ssh_bytes_total", (("direction", way), *vm)) for way in ("in", "out")
        )
        assert open_session[("golem_ssh_connections_active", vm)] == 1
        assert after_crash[("golem_ssh_connections_active", vm)] == 0
        # Counted since the proxy started: the lifecycle's own SSH checks read banners too.
        assert open_session[moved_in] - after_crash[moved_in] == 10
        assert open_session[moved_out] - after_crash[moved_out] == len(BANNER) + 10
        connections = ("golem_ssh_connections_total", vm)
        assert open_session[connections] - after_crash[connections] == 1
        await session.aclose()

        deleted = await client.delete(f"{api.url}/vms/{created.json()['id']}")
        assert deleted.status_code == 200
        after_delete = await scrape(client, root)
        assert after_delete[vms("running")] == 0
        assert after_delete[("golem_vm_deletes_total", (("outcome", "deleted"),))] == 1


async def test_metrics_show_each_streams_runway(tmp_path: Path) -> None:
    chain = ScriptedStreams()
    chain.answer = reading({7: stream(runway=3_600)})
    gate = PaymentGate(
        client=chain,
        provider=PROVIDER,
        token=ZERO_ADDRESS,
        min_remaining=600,
        wei_per_core_month=0,
        wei_per_gb_ram_month=0,
        wei_per_gb_disk_month=0,
    )
    payments = Payments(client=chain, gate=gate)
    async with (
        running_api(tmp_path, payments=payments) as api,
        httpx.AsyncClient(timeout=30) as client,
    ):
        root = api.url.removesuffix("/api/v1")
        assert not any(
            name == "golem_stream_runway_seconds" for name, _ in await scrape(client, root)
        )
        create = CreateVm(
            caller=Caller(operator=True),
            name="paid",
            resources=SMALL,
            image="test-guest",
            authorized_keys=(KEY,),
            stream_id=7,
        )  # straight to the lifecycle: the API's admission is not what this test is about
        view = await api.node.lifecycle.call(create)
        await api.node.wait_status(view.vm_id, VmStatus.RUNNING)
        labels = (("stream_id", "7"), ("vm_id", view.vm_id))
        paid = await scrape(client, root)
        assert paid[("golem_stream_runway_seconds", labels)] == 3_600
        assert paid[("golem_stream_verified", labels)] == 1
        chain.answer = ChainError("the RPC is down")
        down = await scrape(client, root)  # the scrape still answers, without the streams
        assert ("golem_stream_runway_seconds", labels) not in down
        assert down[vms("running")] == 1
