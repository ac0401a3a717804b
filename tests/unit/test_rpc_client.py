"""RpcClient (and TransactionSender's retries) against a fake JSON-RPC node on 127.0.0.1.

The fake node is a tiny HTTP/1.1 server on trio (keep-alive, Content-Length bodies) whose
answer to each HTTP request is chosen by the test. It records every HTTP request it gets
(and when), so "one batch is one HTTP request" and "retries are bounded" are counted, not
assumed. Time is real (sockets): timeouts and backoffs are a few tenths of a second.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest
import trio

from golem_actor.adapters.chain.errors import ChainUnavailable, RpcError, TransactionTimeout
from golem_actor.adapters.chain.rpc import RpcClient
from golem_actor.adapters.chain.transactions import TransactionSender, TxRequest

# An answer: (HTTP status, body bytes), or "hang" (never answer) or "close" (drop the socket).
Answer = tuple[int, bytes] | str
Behaviour = Callable[[Any, int], Awaitable[Answer]]


def _result(request: dict[str, Any]) -> dict[str, Any]:
    method, params = request["method"], request.get("params", [])
    if method == "fail":
        error = {"code": -32000, "message": "boom", "data": "0xdead"}
        return {"jsonrpc": "2.0", "id": request["id"], "error": error}
    value = params if method == "echo" else "0x10"
    return {"jsonrpc": "2.0", "id": request["id"], "result": value}


async def well_behaved(body: Any, _n: int) -> Answer:
    """Echo ``echo``, fail ``fail``, answer batches in reverse order (ids must be matched)."""
    if isinstance(body, list):
        return 200, json.dumps([_result(r) for r in reversed(body)]).encode()
    return 200, json.dumps(_result(body)).encode()


@dataclass
class FakeNode:
    url: str = ""
    behaviour: Behaviour = well_behaved
    bodies: list[Any] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    async def _serve(self, stream: trio.SocketStream) -> None:
        buffer = b""
        async with stream:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = await stream.receive_some()
                    if not chunk:
                        return
                    buffer += chunk
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buffer) < length:
                    buffer += await stream.receive_some()
                body, buffer = buffer[:length], buffer[length:]
                self.bodies.append(json.loads(body))
                self.times.append(trio.current_time())
                answer = await self.behaviour(self.bodies[-1], len(self.bodies))
                if answer == "hang":
                    await trio.sleep_forever()
                if answer == "close" or isinstance(answer, str):
                    return
                status, payload = answer
                header = (
                    f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
                    f"content-length: {len(payload)}\r\n\r\n"
                )
                await stream.send_all(header.encode() + payload)


@pytest.fixture
async def node() -> AsyncIterator[FakeNode]:
    fake = FakeNode()
    async with trio.open_nursery() as nursery:
        serve = partial(trio.serve_tcp, fake._serve, 0, host="127.0.0.1")
        listeners = await nursery.start(serve)
        port = listeners[0].socket.getsockname()[1]
        fake.url = f"http://127.0.0.1:{port}"
        yield fake
        nursery.cancel_scope.cancel()


def client(node: FakeNode, **kwargs: Any) -> RpcClient:
    options: dict[str, Any] = {"timeout": 2.0, "attempts": 3, "backoff_s": 0.01}
    options.update(kwargs)
    return RpcClient(node.url, **options)


def status_then_ok(status: int, failures: int) -> Behaviour:
    async def behaviour(body: Any, n: int) -> Answer:
        if n <= failures:
            return status, b"upstream trouble"
        return await well_behaved(body, n)

    return behaviour


# --- answers ------------------------------------------------------------------------------


async def test_call_returns_the_result(node: FakeNode) -> None:
    async with client(node) as rpc:
        assert await rpc.call("eth_blockNumber") == "0x10"
        assert await rpc.call("echo", ["a", 1, {"b": None}]) == ["a", 1, {"b": None}]
    assert [b["method"] for b in node.bodies] == ["eth_blockNumber", "echo"]
    assert all(b["jsonrpc"] == "2.0" for b in node.bodies)


async def test_batch_is_one_http_request_matched_by_id(node: FakeNode) -> None:
    async with client(node) as rpc:
        results = await rpc.batch([("echo", [i]) for i in range(100)])
    assert results == [[i] for i in range(100)]  # the node answered in reverse order
    assert len(node.bodies) == 1
    assert len(node.bodies[0]) == 100
    assert len({r["id"] for r in node.bodies[0]}) == 100


async def test_batch_splits_past_max_batch(node: FakeNode) -> None:
    async with client(node, max_batch=40) as rpc:
        results = await rpc.batch([("echo", [i]) for i in range(100)])
    assert results == [[i] for i in range(100)]
    assert [len(b) for b in node.bodies] == [40, 40, 20]
    async with client(node) as rpc:
        assert await rpc.batch([]) == []
    assert len(node.bodies) == 3  # an empty batch sends nothing


async def test_json_rpc_errors_become_rpc_error(node: FakeNode) -> None:
    async with client(node) as rpc:
        with pytest.raises(RpcError) as caught:
            await rpc.call("fail")
        assert (caught.value.code, caught.value.message, caught.value.data) == (
            -32000,
            "boom",
            "0xdead",
        )
        settled = await rpc.batch_settled([("echo", [1]), ("fail", []), ("echo", [2])])
        assert settled[0] == [1]
        assert isinstance(settled[1], RpcError)
        assert settled[2] == [2]
        with pytest.raises(RpcError, match="boom"):
            await rpc.batch([("echo", [1]), ("fail", [])])
    assert len(node.bodies) == 3  # an error answer is never retried


async def test_a_batch_refused_as_a_whole_is_an_rpc_error(node: FakeNode) -> None:
    async def refuse(body: Any, _n: int) -> Answer:
        error = {"code": -32600, "message": "batch too large"}
        return 200, json.dumps({"jsonrpc": "2.0", "id": None, "error": error}).encode()

    node.behaviour = refuse
    async with client(node) as rpc:
        with pytest.raises(RpcError, match="batch too large"):
            await rpc.batch([("echo", [1]), ("echo", [2])])


async def test_a_batch_answer_missing_an_item_is_unavailable(node: FakeNode) -> None:
    async def drop_one(body: Any, n: int) -> Answer:
        return 200, json.dumps([_result(r) for r in body[1:]]).encode()

    node.behaviour = drop_one
    async with client(node, attempts=1) as rpc:
        with pytest.raises(ChainUnavailable, match="no answer for id"):
            await rpc.batch([("echo", [1]), ("echo", [2])])


# --- transient failures -------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_transient_statuses_are_retried_then_succeed(node: FakeNode, status: int) -> None:
    node.behaviour = status_then_ok(status, failures=2)
    async with client(node, attempts=3) as rpc:
        assert await rpc.call("eth_blockNumber") == "0x10"
    assert len(node.bodies) == 3


async def test_retries_are_bounded(node: FakeNode) -> None:
    node.behaviour = status_then_ok(503, failures=1_000)
    async with client(node, attempts=4) as rpc:
        with pytest.raises(ChainUnavailable, match="HTTP 503"):
            await rpc.call("eth_blockNumber")
        assert len(node.bodies) == 4
        with pytest.raises(ChainUnavailable):
            await rpc.call("eth_blockNumber", retry=False)
        assert len(node.bodies) == 5


async def test_backoff_doubles_up_to_its_cap(node: FakeNode) -> None:
    node.behaviour = status_then_ok(503, failures=1_000)
    async with client(node, attempts=5, backoff_s=0.05, max_backoff_s=0.15) as rpc:
        with pytest.raises(ChainUnavailable):
            await rpc.call("eth_blockNumber")
    gaps = [b - a for a, b in zip(node.times, node.times[1:], strict=False)]
    expected = [0.05, 0.10, 0.15, 0.15]
    assert len(gaps) == len(expected)
    for gap, want in zip(gaps, expected, strict=True):
        assert want <= gap < want + 0.25


async def test_a_client_error_status_is_not_retried(node: FakeNode) -> None:
    async def not_found(body: Any, _n: int) -> Answer:
        return 404, b"Not Found"

    node.behaviour = not_found
    async with client(node, attempts=3) as rpc:
        with pytest.raises(ChainUnavailable, match="HTTP 404"):
            await rpc.call("eth_blockNumber")
    assert len(node.bodies) == 1


async def test_garbage_and_dropped_connections_are_unavailable(node: FakeNode) -> None:
    async def garbage_then_close(body: Any, n: int) -> Answer:
        return (200, b"<html>captive portal</html>") if n % 2 else "close"

    node.behaviour = garbage_then_close
    async with client(node, attempts=2) as rpc:
        with pytest.raises(ChainUnavailable):
            await rpc.call("eth_blockNumber")
    assert len(node.bodies) == 2


async def test_connection_refused_is_unavailable() -> None:
    with trio.socket.socket() as sock:  # a port that is bound but never listening
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        async with RpcClient(f"http://127.0.0.1:{port}", attempts=2, backoff_s=0.01) as rpc:
            with pytest.raises(ChainUnavailable, match=f"127.0.0.1:{port}"):
                await rpc.call("eth_chainId")


async def test_a_bad_url_fails_at_once() -> None:
    async with RpcClient("ftp://127.0.0.1:1", attempts=5, backoff_s=1.0) as rpc:
        with trio.fail_after(0.5):
            with pytest.raises(ChainUnavailable, match="bad RPC URL"):
                await rpc.call("eth_chainId")


# --- time bounds --------------------------------------------------------------------------


async def test_each_attempt_is_time_bounded(node: FakeNode) -> None:
    async def hang(body: Any, _n: int) -> Answer:
        return "hang"

    node.behaviour = hang
    began = trio.current_time()
    async with client(node, timeout=0.2, attempts=2, backoff_s=0.05) as rpc:
        with pytest.raises(ChainUnavailable, match=r"no answer within 0\.2 s"):
            await rpc.call("eth_blockNumber")
    elapsed = trio.current_time() - began
    assert len(node.bodies) == 2
    assert 0.45 <= elapsed < 1.5


async def test_a_slow_answer_within_the_bound_is_fine(node: FakeNode) -> None:
    async def slow(body: Any, n: int) -> Answer:
        await trio.sleep(0.1)
        return await well_behaved(body, n)

    node.behaviour = slow
    async with client(node, timeout=1.0) as rpc:
        assert await rpc.call("eth_blockNumber") == "0x10"
    assert len(node.bodies) == 1


def test_invalid_settings_are_refused() -> None:
    for kwargs in ({"attempts": 0}, {"max_batch": 0}, {"timeout": 0.0}, {"timeout": -math.inf}):
        with pytest.raises(ValueError, match="attempts"):
            RpcClient("http://127.0.0.1:1", **kwargs)


# --- TransactionSender over a scripted node: broadcast retries, nonce, receipt bound --------

KEY = "0x" + "42" * 32
RECEIPT: dict[str, Any] = {
    "transactionHash": "0x" + "ab" * 32,
    "blockNumber": "0x2",
    "status": "0x1",
    "gasUsed": "0x5208",
    "effectiveGasPrice": "0x11",
    "contractAddress": None,
    "logs": [],
}


def scripted_chain(raw_answers: list[Answer], *, mined: bool = True) -> Behaviour:
    """A chain whose ``eth_sendRawTransaction`` answers are scripted (then "0x<hash>")."""
    fixed: dict[str, Any] = {
        "eth_chainId": "0x7a69",
        "eth_getBlockByNumber": {"baseFeePerGas": "0x10", "timestamp": "0x1", "number": "0x1"},
        "eth_maxPriorityFeePerGas": "0x1",
        "eth_estimateGas": "0x5208",
        "eth_getTransactionCount": "0x7",
        "eth_getTransactionReceipt": RECEIPT if mined else None,
    }

    def reply(request: dict[str, Any]) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": request["id"], "result": fixed[request["method"]]}

    async def behaviour(body: Any, _n: int) -> Answer:
        if isinstance(body, list):
            return 200, json.dumps([reply(r) for r in body]).encode()
        if body["method"] == "eth_sendRawTransaction":
            if raw_answers:
                answer = raw_answers.pop(0)
                if isinstance(answer, tuple) and answer[0] == 200:
                    error = json.loads(answer[1])
                    return 200, json.dumps({"jsonrpc": "2.0", "id": body["id"], **error}).encode()
                return answer
            return 200, json.dumps({"jsonrpc": "2.0", "id": body["id"], "result": "0x1"}).encode()
        return 200, json.dumps(reply(body)).encode()

    return behaviour


def sender_for(rpc: RpcClient, **kwargs: Any) -> TransactionSender:
    options: dict[str, Any] = {"max_fee_cap_wei": 10**12, "backoff_s": 0.01}
    options.update(kwargs)
    return TransactionSender(rpc, KEY, **options)


def methods(node: FakeNode, name: str) -> list[Any]:
    flat = [b for body in node.bodies for b in (body if isinstance(body, list) else [body])]
    return [b for b in flat if b["method"] == name]


async def test_broadcast_retries_and_already_known_counts_as_sent(node: FakeNode) -> None:
    known = json.dumps({"error": {"code": -32000, "message": "already known"}}).encode()
    node.behaviour = scripted_chain([(503, b""), (200, known)])
    async with client(node) as rpc:
        sender = sender_for(rpc)
        receipt = await sender.send(TxRequest(to=sender.address, value=1))
        assert receipt.status == 1
        assert receipt.fee_wei == 0x5208 * 0x11
        sends = methods(node, "eth_sendRawTransaction")
        assert len(sends) == 2
        assert sends[0]["params"] == sends[1]["params"]  # the same signed bytes, re-sent
        await sender.send(TxRequest(to=sender.address, value=2))
    assert len(methods(node, "eth_getTransactionCount")) == 1  # the nonce is counted locally
    assert len(methods(node, "eth_chainId")) == 1


async def test_broadcast_gives_up_and_forgets_the_nonce(node: FakeNode) -> None:
    node.behaviour = scripted_chain([(503, b"")] * 3)
    async with client(node, attempts=1) as rpc:
        sender = sender_for(rpc, send_attempts=3)
        with pytest.raises(ChainUnavailable, match="HTTP 503"):
            await sender.send(TxRequest(to=sender.address, value=1))
        assert len(methods(node, "eth_sendRawTransaction")) == 3
        await sender.send(TxRequest(to=sender.address, value=1))  # the script ran out: accepted
    assert len(methods(node, "eth_getTransactionCount")) == 2  # re-read after the failure


async def test_the_receipt_wait_is_bounded(node: FakeNode) -> None:
    node.behaviour = scripted_chain([], mined=False)
    async with client(node) as rpc:
        sender = sender_for(rpc, receipt_timeout_s=0.3, max_poll_interval_s=0.05)
        with pytest.raises(TransactionTimeout, match=r"not mined within 0\.3 s"):
            await sender.send(TxRequest(to=sender.address, value=1))
    assert 3 <= len(methods(node, "eth_getTransactionReceipt")) < 20
