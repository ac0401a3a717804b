"""The HTTP API over a real server: input checking, tenancy, the requestor's flow."""

from __future__ import annotations

import base64
import struct
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing
from lifecycle_harness import OPERATOR_TOKEN, Node, running_api, running_node
from openapi_spec_validator import validate
from quart_trio import QuartTrio

from actors.api import ApiContext, ProviderInfo
from actors.api.app import create_app
from actors.vm_lifecycle import ListVms, VmLifecycle
from golem_actor.adapters.backend import Endpoint
from golem_actor.adapters.backend.memory import MemoryBackend
from golem_actor.domain.tenancy import Caller
from golem_actor.domain.vm_machine import VmStatus
from golem_actor.images import load_catalog
from golem_actor.kernel import Call, CallFailed
from golem_actor.runtime import StopHandle
from golem_actor.settings import ZERO_ADDRESS, load_settings
from supervisors.node import with_local_chain
from supervisors.payments import payments_for


def make_key(payload: bytes = b"k" * 32) -> str:
    kind = b"ssh-ed25519"
    blob = struct.pack(">I", len(kind)) + kind + struct.pack(">I", len(payload)) + payload
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} me@laptop"


KEY = make_key()
RESOURCES = {"cpu": 1, "memory": 1, "storage": 10}


def body(name: str = "web", **extra: object) -> dict[str, object]:
    return {"name": name, "resources": RESOURCES, "ssh_key": KEY, **extra}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


OPERATOR = bearer(OPERATOR_TOKEN)


async def wait_running(
    client: httpx.AsyncClient, node: Node, url: str, vm_id: str
) -> dict[str, object]:
    """The VM as the API shows it, once the lifecycle says it runs (no polling)."""
    await node.wait_status(vm_id, VmStatus.RUNNING, Caller())
    reply = await client.get(f"{url}/vms/{vm_id}")
    assert (reply.status_code, reply.json()["status"]) == (200, "running")
    return dict(reply.json())


async def test_the_existing_requestors_rental_flow(tmp_path: Path) -> None:
    """As the existing requestor client does it (reference section 9), no credentials."""
    async with running_api(tmp_path) as node, httpx.AsyncClient() as client:
        info = (await client.get(f"{node.url}/provider/info")).json()
        assert info["provider_id"].startswith("0x")
        created = await client.post(f"{node.url}/vms?async=true", json=body(stream_id=7))
        assert created.status_code == 202
        job = created.json()
        assert job["status"] == "creating"
        assert job["vm_id"].startswith("vm-")
        assert "ssh_private_key" not in job  # the client brought its own key
        vm = await wait_running(client, node.node, node.url, job["vm_id"])
        assert (vm["name"], vm["stream_id"], vm["resources"]) == ("web", 7, RESOURCES)
        access = (await client.get(f"{node.url}/vms/{job['vm_id']}/access")).json()
        assert access["vm_id"] == job["vm_id"]
        assert access["ssh_port"] == vm["ssh_port"]
        polled = (await client.get(f"{node.url}/vms/jobs/{job['job_id']}")).json()
        assert (polled["vm_id"], polled["status"]) == (job["vm_id"], "ready")
        stopped = await client.post(f"{node.url}/vms/{job['vm_id']}/stop")
        assert (stopped.status_code, stopped.json()["status"]) == (200, "stopped")
        started = await client.post(f"{node.url}/vms/{job['vm_id']}/start")
        assert (started.status_code, started.json()["status"]) == (200, "running")
        deleted = await client.delete(f"{node.url}/vms/{job['vm_id']}")
        assert deleted.status_code == 200
        again = await client.delete(f"{node.url}/vms/{job['vm_id']}")
        assert again.status_code == 404
        assert "Not Found" in again.json()["detail"]  # the requestor ignores errors saying so


async def test_the_seed_form_without_a_key_hands_out_a_private_key_once(tmp_path: Path) -> None:
    async with running_api(tmp_path) as node, httpx.AsyncClient(timeout=20) as client:
        created = await client.post(
            f"{node.url}/vms",
            json={"name": "seed-form", "cpu_cores": 1, "memory_gb": 1, "storage_gb": 10},
        )
        assert created.status_code == 200, created.text
        vm = created.json()
        assert vm["status"] == "running"
        assert vm["ssh_private_key"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
        assert vm["resources"] == {"cpu": 1, "memory": 1, "storage": 10}
        later = (await client.get(f"{node.url}/vms/{vm['id']}")).json()
        assert "ssh_private_key" not in later


@pytest.mark.parametrize(
    ("payload", "status", "detail"),
    [
        (b"{not json", 400, "malformed"),
        (b"", 400, "JSON body is required"),
        (b"[]", 422, "Expected `object`"),
        (b'{"name": "web"}', 422, "say how big"),
        (
            b'{"name": "web", "resources": {"cpu": 1, "memory": 1, "storage": 10}, "bogus": 1}',
            422,
            "unknown field `bogus`",
        ),
        (
            b'{"name": "web", "resources": {"cpu": "1", "memory": 1, "storage": 10}}',
            422,
            "Expected `int`, got `str`",
        ),
        (b'{"name": "Bad_Name", "size": "small"}', 422, "invalid name"),
        (b'{"name": "web", "size": "small", "image": "--mount=/:/host"}', 422, "unknown image"),
        (b'{"name": "web", "size": "small", "image": "http://evil/img"}', 422, "unknown image"),
        (b'{"name": "web", "size": "small", "image": "24.04"}', 422, "not available on this node"),
        (
            b'{"name": "web", "size": "small", "ssh_key": "ssh-ed25519 AAAA\\nssh-rsa BBBB"}',
            422,
            "single line",
        ),
        (b'{"name": "web", "size": "small", "ssh_key": "hello"}', 422, "look like"),
        (
            b'{"name": "web", "resources": {"cpu": 9999, "memory": 1, "storage": 10}}',
            422,
            "cpu must be between",
        ),
        (
            b'{"name": "web", "resources": {"cpu": 1, "memory": 1, "storage": 1}}',
            422,
            "storage (GB) must be between 10",
        ),
        (
            b'{"name": "web", "resources": {"cpu": 4, "memory": 64, "storage": 10}}',
            409,
            "not enough memory",
        ),
        (b'{"name": "web", "size": "small", "stream_id": -1}', 422, "Expected `int` >= 0"),
    ],
)
async def test_bad_input_gets_a_clear_4xx(
    tmp_path: Path, payload: bytes, status: int, detail: str
) -> None:
    async with running_api(tmp_path) as node, httpx.AsyncClient() as client:
        reply = await client.post(
            f"{node.url}/vms", content=payload, headers={"content-type": "application/json"}
        )
        assert reply.status_code == status, reply.text
        assert detail in reply.json()["detail"]


async def test_other_errors_are_json_with_honest_statuses(tmp_path: Path) -> None:
    async with running_api(tmp_path) as node, httpx.AsyncClient() as client:
        huge = await client.post(f"{node.url}/vms", content=b"x" * (65 * 1024))
        assert huge.status_code == 413
        assert "detail" in huge.json()
        assert (await client.get(f"{node.url}/vms/vm-unknown")).status_code == 404
        assert (await client.get(f"{node.url}/nothing")).json()["detail"]
        wrong_method = await client.put(f"{node.url}/vms")
        assert wrong_method.status_code == 405
        assert "detail" in wrong_method.json()
        bad_flag = await client.post(f"{node.url}/vms?async=maybe", json=body())
        assert bad_flag.status_code == 400
        first = await client.post(f"{node.url}/vms?async=1", json=body())
        assert first.status_code == 202
        taken = await client.post(f"{node.url}/vms?async=1", json=body())
        assert (taken.status_code, taken.json()["detail"]) == (
            409,
            "a VM named 'web' already exists on this node",
        )
        early = await client.post(f"{node.url}/vms/{first.json()['vm_id']}/start")
        assert early.status_code in (200, 409)  # already running, or still creating


async def test_tenants_cannot_touch_each_others_vms(tmp_path: Path) -> None:
    async with running_api(tmp_path) as node, httpx.AsyncClient() as client:
        alice, bob = bearer("alice-secret-token"), bearer("bob-secret-token")
        created = await client.post(f"{node.url}/vms?async=1", json=body("alices"), headers=alice)
        vm_id = created.json()["vm_id"]
        for method, path in [
            ("GET", f"/vms/{vm_id}"),
            ("GET", f"/vms/{vm_id}/access"),
            ("POST", f"/vms/{vm_id}/stop"),
            ("POST", f"/vms/{vm_id}/start"),
            ("DELETE", f"/vms/{vm_id}"),
            ("GET", f"/vms/jobs/{created.json()['job_id']}"),
        ]:
            for who in (bob, {}):
                reply = await client.request(method, node.url + path, headers=who)
                assert reply.status_code == 404, (method, path, who, reply.text)
        assert (await client.get(f"{node.url}/vms/{vm_id}", headers=alice)).status_code == 200
        assert [v["id"] for v in (await client.get(f"{node.url}/vms", headers=alice)).json()] == [
            vm_id
        ]
        assert (await client.get(f"{node.url}/vms", headers=bob)).json() == []
        assert (await client.get(f"{node.url}/vms")).json() == []
        everyone = (await client.get(f"{node.url}/vms", headers=OPERATOR)).json()
        assert [v["id"] for v in everyone] == [vm_id]
        malformed = await client.get(f"{node.url}/vms", headers={"Authorization": "Basic xyz"})
        assert malformed.status_code == 401


async def test_operator_routes_need_the_operators_token(tmp_path: Path) -> None:
    async with running_api(tmp_path) as node, httpx.AsyncClient() as client:
        for headers in ({}, bearer("a-tenant-token")):
            assert (await client.get(f"{node.url}/admin/state", headers=headers)).status_code == 401
            refused = await client.post(f"{node.url}/admin/shutdown", headers=headers)
            assert refused.status_code == 401
        state = (await client.get(f"{node.url}/admin/state", headers=OPERATOR)).json()
        assert state["capacity"]["total"] == {"cpu": 4, "memory": 8, "storage": 100}
        assert state["vms"] == []


async def test_openapi_document_is_valid_and_complete(tmp_path: Path) -> None:
    async with running_api(tmp_path) as node, httpx.AsyncClient() as client:
        document = (await client.get(f"{node.url}/openapi.json")).json()
    validate(document)
    assert set(document["paths"]) >= {
        "/api/v1/vms",
        "/api/v1/vms/{vm_id}",
        "/api/v1/vms/{vm_id}/access",
        "/api/v1/vms/{vm_id}/stop",
        "/api/v1/vms/{vm_id}/start",
        "/api/v1/vms/jobs/{job_id}",
        "/api/v1/provider/info",
        "/api/v1/health",
    }
    create = document["paths"]["/api/v1/vms"]["post"]
    ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert {"name", "resources", "cpu_cores", "ssh_key", "stream_id"} <= set(schema["properties"])
    assert "ResourcesBody" in document["components"]["schemas"]  # nested refs resolve
    # A request's sizes are bounded; a host's capacity in an answer is not (the 10 000
    # case fuzz run found a big host's /admin/state breaking its own schema).
    schemas = document["components"]["schemas"]
    total = schemas["CapacityInfo"]["properties"]["total"]["$ref"].rsplit("/", 1)[1]
    assert all("maximum" not in field for field in schemas[total]["properties"].values())
    assert schemas["ResourcesBody"]["properties"]["memory"]["maximum"] == 1_000_000


@pytest.mark.parametrize("network", ["l2.holesky", "local"])
async def test_an_explicit_zero_stream_payment_address_turns_payments_off(
    tmp_path: Path, network: str
) -> None:
    """The seed's switch, from the environment to the API: unset means the network's
    deployment (payments on), the zero address written explicitly means payments off."""
    env = {
        "GOLEM_PROVIDER_DATA_DIR": str(tmp_path / "data"),
        "GOLEM_PROVIDER_PAYMENTS_NETWORK": network,
        "GOLEM_PROVIDER_POLYGON_RPC_URL": "http://127.0.0.1:9/",  # never read here
    }
    provider = "0x" + "ab" * 20
    on = payments_for(with_local_chain(load_settings(env=env)), provider)
    assert on is not None  # the shipped l2.json, or the node's own chain
    settings = load_settings(env={**env, "GOLEM_PROVIDER_STREAM_PAYMENT_ADDRESS": ZERO_ADDRESS})
    off = payments_for(with_local_chain(settings), provider)
    assert off is None
    # On, the streams route reads the chain (503: nothing listens on port 9); off, it is 400.
    for payments, create_status, streams_status in ((on, 400, 503), (off, 200, 400)):
        node = running_api(tmp_path / f"node-{create_status}", payments=payments)
        async with node as api, httpx.AsyncClient() as client:
            created = await client.post(f"{api.url}/vms", json=body())  # no stream_id
            assert created.status_code == create_status, created.text
            streams = await client.get(f"{api.url}/payments/streams", headers=OPERATOR)
            assert streams.status_code == streams_status, streams.text
    assert streams.json()["detail"] == "streaming payments not enabled on this provider"


# -- waiting for a VM: the bound, and a lifecycle restart meanwhile -----------------------


def app_over(node: Node, *, bound: float) -> QuartTrio:
    """The HTTP app over `node`'s actors, with `bound` seconds for a synchronous wait."""
    context = ApiContext(
        version="test",
        lifecycle=node.lifecycle,
        port_verifier=None,
        resources=node.resources,
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
            country=None,
            platform=None,
        ),
        payments_enabled=False,
        create_timeout=bound,
        stop_timeout=bound,
        stop=StopHandle(),
        vpn_router=node.wiring.vpn_router,
    )
    return create_app(context)


async def test_a_create_that_outlasts_its_bound_answers_202_with_the_vm(tmp_path: Path) -> None:
    backend = MemoryBackend(ssh=Endpoint("127.0.0.1", 1))
    backend.hold = trio.Event()  # the launch outlasts the bound
    async with running_node(tmp_path, backend) as node:
        client = app_over(node, bound=0.2).test_client()
        reply = await client.post("/api/v1/vms", json=body())
        assert reply.status_code == 202
        vm = await reply.get_json()
        assert (vm["name"], vm["status"], vm["ssh_port"]) == ("web", "creating", vm["ssh_port"])
        backend.hold.set()
        await node.wait_status(vm["id"], VmStatus.RUNNING)
        again = await client.post(f"/api/v1/vms/{vm['id']}/start")  # already there: 200
        assert (again.status_code, (await again.get_json())["status"]) == (200, "running")


class Crash(Call[None], frozen=True):
    """Not a lifecycle request: calling it crashes the lifecycle actor."""


async def test_a_lifecycle_restart_does_not_fail_a_waiting_create(tmp_path: Path) -> None:
    backend = MemoryBackend(ssh=Endpoint("127.0.0.1", 1))
    backend.hold = trio.Event()
    async with running_node(tmp_path, backend) as node, trio.open_nursery() as nursery:
        client = app_over(node, bound=10).test_client()
        replies: list[tuple[int, dict[str, object]]] = []
        answered = trio.Event()

        async def create() -> None:
            reply = await client.post("/api/v1/vms", json=body())
            replies.append((reply.status_code, await reply.get_json()))
            answered.set()

        nursery.start_soon(create)
        lifecycle: VmLifecycle = node.tree.child_actor("vm_lifecycle")
        with trio.fail_after(10):
            while lifecycle.waiting == 0:  # the route's WaitVm is held (the launch is)
                await trio.testing.wait_all_tasks_blocked(cushion=0.01)
        assert replies == []
        with pytest.raises(CallFailed):  # untyped: Crash is no lifecycle request
            await node.tree.child_address("vm_lifecycle").call(Crash())
        # The next incarnation answers once it has reloaded its registry.
        [held] = await node.lifecycle.call(ListVms(Caller(operator=True)))
        assert held.status is VmStatus.CREATING
        await trio.testing.wait_all_tasks_blocked()
        assert replies == []  # the API asked the next incarnation to go on waiting
        backend.hold.set()  # which resumed the launch from its registry
        with trio.fail_after(10):
            await answered.wait()
    [(status, vm)] = replies
    assert (status, vm["status"], vm["name"]) == (200, "running", "web")
