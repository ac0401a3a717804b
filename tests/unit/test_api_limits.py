"""The API's per-client limits over a real server on loopback: rates, creates, slow clients.

Clients are told apart by their source address, so each client here binds its own
loopback address (127.0.0.1, .2, .3 all reach the node listening on 127.0.0.1).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import trio
from lifecycle_harness import OPERATOR_TOKEN, running_api
from test_api import OPERATOR, bearer, body

TENANT = bearer("a-calm-tenant")


def client_from(address: str, connections: int = 20) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(
        local_address=address, limits=httpx.Limits(max_connections=connections)
    )
    return httpx.AsyncClient(transport=transport, timeout=30)


def assert_limited(reply: httpx.Response, most: int) -> None:
    """A 429 with a whole number of seconds to wait (1..most) and a JSON detail."""
    assert reply.status_code == 429, reply.text
    assert 1 <= int(reply.headers["Retry-After"]) <= most
    assert reply.headers["Content-Type"] == "application/json"
    assert "too many requests" in reply.json()["detail"]


@pytest.mark.slow  # a load test: hundreds of connections
async def test_a_burst_of_500_creates_is_refused_while_another_client_is_served(
    tmp_path: Path,
) -> None:
    limits: dict[str, Any] = {"api_rate_write_burst": 3, "api_rate_write_per_minute": 1.0}
    async with (
        running_api(tmp_path, max_vms=4, **limits) as api,
        client_from("127.0.0.1", connections=20) as flood,
        client_from("127.0.0.2") as calm,
    ):
        replies: list[httpx.Response] = []
        midway = trio.Event()
        calm_replies: list[httpx.Response] = []

        async def create(index: int) -> None:
            async_create = {"async": "true"}
            reply = await flood.post(
                f"{api.url}/vms", params=async_create, json=body(f"flood-{index}")
            )
            replies.append(reply)
            if len(replies) == 100:
                midway.set()

        async def served_meanwhile() -> None:
            await midway.wait()
            created = await calm.post(
                f"{api.url}/vms", params={"async": "true"}, json=body(), headers=TENANT
            )
            calm_replies.extend([created, await calm.get(f"{api.url}/vms", headers=TENANT)])

        async with trio.open_nursery() as nursery:
            for index in range(500):
                nursery.start_soon(create, index)
            nursery.start_soon(served_meanwhile)

        assert Counter(r.status_code for r in replies) == {202: 3, 429: 497}
        for reply in replies:
            if reply.status_code == 429:
                assert_limited(reply, 60)
        created, listed = calm_replies
        assert created.status_code == 202, created.text
        assert listed.status_code == 200
        assert [vm["name"] for vm in listed.json()] == ["web"]
        assert len(replies) == 500  # the flood went on after the calm client was served


async def test_reads_and_writes_have_separate_budgets_that_refill(tmp_path: Path) -> None:
    limits: dict[str, Any] = {
        "api_rate_read_burst": 3,
        "api_rate_read_per_minute": 1.0,
        "api_rate_write_burst": 2,
        "api_rate_write_per_minute": 30.0,  # one every 2 s
    }
    async with running_api(tmp_path, **limits) as api, client_from("127.0.0.1") as client:
        stop = f"{api.url}/vms/nothing-here/stop"
        writes = [await client.post(stop) for _ in range(3)]
        assert [r.status_code for r in writes] == [404, 404, 429]
        assert_limited(writes[-1], 2)
        reads = [await client.get(f"{api.url}/vms") for _ in range(4)]  # untouched by writes
        assert [r.status_code for r in reads] == [200, 200, 200, 429]
        assert_limited(reads[-1], 60)
        await trio.sleep(int(writes[-1].headers["Retry-After"]))
        assert (await client.post(stop)).status_code == 404  # refilled
        assert (await client.get(f"{api.url}/vms")).status_code == 429  # reads still empty


async def test_the_operator_token_is_exempt_and_another_token_is_not(tmp_path: Path) -> None:
    limits: dict[str, Any] = {
        "api_rate_read_burst": 2,
        "api_rate_read_per_minute": 1.0,
        "api_rate_write_burst": 1,
        "api_rate_write_per_minute": 1.0,
        "api_max_concurrent_creates_per_client": 1,
    }
    async with running_api(tmp_path, **limits) as api, client_from("127.0.0.1") as client:
        stop = f"{api.url}/vms/nothing-here/stop"
        for _ in range(30):
            assert (await client.get(f"{api.url}/vms", headers=OPERATOR)).status_code == 200
            assert (await client.post(stop, headers=OPERATOR)).status_code == 404
        tenant = bearer("a-tenant-token")
        reads = [await client.get(f"{api.url}/vms", headers=tenant) for _ in range(3)]
        assert [r.status_code for r in reads] == [200, 200, 429]
        wrong = bearer(OPERATOR_TOKEN + "x")
        writes = [await client.post(stop, headers=wrong) for _ in range(2)]
        assert [r.status_code for r in writes] == [404, 429]


async def test_concurrent_creates_are_bounded_per_client(tmp_path: Path) -> None:
    async with (
        running_api(tmp_path, api_max_concurrent_creates_per_client=2) as api,
        client_from("127.0.0.1") as client,
        client_from("127.0.0.2") as other,
    ):
        backend = api.node.backend
        backend.hold = trio.Event()  # launches wait: synchronous creates stay in flight
        finished: dict[str, int] = {}

        async def create(name: str) -> None:
            finished[name] = (await client.post(f"{api.url}/vms", json=body(name))).status_code

        async with trio.open_nursery() as nursery:
            for name in ("first", "second"):
                nursery.start_soon(create, name)
            for _ in range(250):  # until both creates are in, held at their launch
                if len((await other.get(f"{api.url}/vms", headers=OPERATOR)).json()) == 2:
                    break
                await trio.sleep(0.02)
            third = await client.post(f"{api.url}/vms", json=body("third"))
            assert third.status_code == 429, third.text
            assert third.headers["Retry-After"] == "1"
            assert "2 creates from 127.0.0.1 are still running" in third.json()["detail"]
            elsewhere = await other.post(f"{api.url}/vms", params={"async": "1"}, json=body())
            assert elsewhere.status_code == 202, elsewhere.text  # another client's own bound
            backend.hold.set()
        assert finished == {"first": 200, "second": 200}
        again = await client.post(f"{api.url}/vms", json=body("third"))
        assert again.status_code == 200, again.text


HALF_HEAD = b"GET /api/v1/health HTTP/1.1\r\nHost: node\r\nX-A: "  # headers unfinished
HALF_BODY = (  # whole headers, a tenth of the body
    b"POST /api/v1/vms HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\n"
    b"Content-Length: 1000\r\n\r\n{" + b" " * 99
)


async def drip(stream: trio.SocketStream) -> None:
    """One more byte every 0.2 s until the server closes the connection."""
    try:
        while True:
            await trio.sleep(0.2)
            await stream.send_all(b" ")
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


@pytest.mark.slow  # a load test: hundreds of connections
async def test_slow_clients_do_not_stop_others_and_are_cut_at_the_timeouts(
    tmp_path: Path,
) -> None:
    timeout = 2
    limits: dict[str, Any] = {
        "api_keep_alive_timeout_seconds": float(timeout),
        "api_body_timeout_seconds": float(timeout),
    }
    async with running_api(tmp_path, **limits) as api:
        address = urlsplit(api.url)
        host, port = address.hostname, address.port
        assert host is not None
        assert port is not None
        slow: list[trio.SocketStream] = []
        drippers: list[trio.SocketStream] = []
        try:
            for index in range(500):
                stream = await trio.open_tcp_stream(host, port, local_address="127.0.0.3")
                slow.append(stream)
                await stream.send_all(HALF_BODY if index % 5 in (0, 1) else HALF_HEAD)
                if index % 5 in (1, 2):  # then a byte every 0.2 s: never silent, never done
                    drippers.append(stream)
            sent = trio.current_time()
            closed_at: list[float] = []
            all_closed = trio.Event()

            async def until_closed(stream: trio.SocketStream) -> None:
                try:
                    while await stream.receive_some(4096):
                        pass  # a refusal may come first; the connection must end
                except trio.BrokenResourceError:
                    pass
                closed_at.append(trio.current_time())
                if len(closed_at) == len(slow):
                    all_closed.set()

            async with trio.open_nursery() as nursery:
                for stream in slow:
                    nursery.start_soon(until_closed, stream)
                for stream in drippers:
                    nursery.start_soon(drip, stream)
                async with client_from("127.0.0.1") as client:
                    health = await client.get(f"{api.url}/health")
                    listed = await client.get(f"{api.url}/vms")
                    created = await client.post(f"{api.url}/vms", json=body())
                served = trio.current_time()
                with trio.fail_after(timeout + 5):
                    await all_closed.wait()
            assert (health.status_code, listed.status_code, created.status_code) == (200, 200, 200)
            assert served < min(closed_at)  # served while every slow connection was held
            assert max(closed_at) - sent <= timeout + 3
        finally:
            for stream in slow:
                await stream.aclose()


async def test_a_client_waiting_quietly_for_a_long_create_is_not_cut(tmp_path: Path) -> None:
    limits: dict[str, Any] = {
        "api_keep_alive_timeout_seconds": 0.5,
        "api_body_timeout_seconds": 0.5,
    }
    async with running_api(tmp_path, **limits) as api, client_from("127.0.0.1") as client:
        api.node.backend.hold = trio.Event()

        async def release_later() -> None:
            await trio.sleep(1.5)  # three times either timeout
            assert api.node.backend.hold is not None
            api.node.backend.hold.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(release_later)
            created = await client.post(f"{api.url}/vms", json=body())
        assert created.status_code == 200, created.text
        assert created.json()["status"] == "running"


async def test_request_heads_past_the_header_limit_are_refused_and_429_is_documented(
    tmp_path: Path,
) -> None:
    async with (
        running_api(tmp_path, api_max_header_bytes=8192) as api,
        client_from("127.0.0.1") as client,
    ):
        document = (await client.get(f"{api.url}/openapi.json")).json()
        operations = [op for path in document["paths"].values() for op in path.values()]
        assert all("429" in op["responses"] for op in operations)
        fits = await client.get(f"{api.url}/health", headers={"X-Pad": "a" * 6000})
        assert fits.status_code == 200
        too_big = await client.get(f"{api.url}/health", headers={"X-Pad": "a" * 10_000})
        assert too_big.status_code in (400, 431)
        assert (await client.get(f"{api.url}/health")).status_code == 200


async def _handshake(
    url: str, token: str, local: str = "127.0.0.1"
) -> tuple[int, bytes, dict[bytes, bytes]]:
    """A gate handshake from `local`: the status, body and headers of its refusal."""
    parts = urlsplit(url)
    stream = await trio.open_tcp_stream(parts.hostname or "", parts.port or 80, local_address=local)
    async with stream:
        await stream.send_all(
            f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
        )
        data = b""
        with trio.fail_after(10):
            while b"\r\n\r\n" not in data:
                data += await stream.receive_some(4096)
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            headers = dict(line.lower().split(b": ", 1) for line in lines[1:])
            while len(body) < int(headers.get(b"content-length", b"0")):
                body += await stream.receive_some(4096)
        return int(lines[0].split()[1]), body, headers


async def test_gate_handshakes_take_the_changing_budget_before_any_upgrade(
    tmp_path: Path,
) -> None:
    """A gate opens a TCP connection inside a network: a tenant cannot open them without
    bound. Past the budget the handshake is a 429 (Retry-After, the Net API's error shape)
    before the gate looks at anything; the operator and other addresses go on."""
    limits: dict[str, Any] = {"api_rate_write_burst": 2, "api_rate_write_per_minute": 1.0}
    async with running_api(tmp_path, **limits) as api:
        root = api.url.removesuffix("/api/v1").replace("http://", "ws://")
        gate = f"{root}/net-api/v1/net/no-such-network/tcp/10.0.0.2/22"
        seen = [(await _handshake(gate, "a-tenant-token"))[0] for _ in range(3)]
        assert seen == [404, 404, 429]  # two reach the gate (no such network), then refused
        status, body, headers = await _handshake(gate, "a-tenant-token")
        assert status == 429
        assert 1 <= int(headers[b"retry-after"]) <= 60
        assert "too many gate connections" in json.loads(body)["message"]
        assert (await _handshake(gate, "a-tenant-token", local="127.0.0.2"))[0] == 404
        assert (await _handshake(gate, OPERATOR_TOKEN))[0] == 404  # the operator is exempt
        # plain HTTP on the Net API shares the same budget: this address has none left
        async with client_from("127.0.0.1") as client:
            made = await client.post(
                f"{api.url.removesuffix('/api/v1')}/net-api/v1/net",
                json={"ip": "10.0.0.0/24"},
                headers=bearer("a-tenant-token"),
            )
            assert made.status_code == 429
