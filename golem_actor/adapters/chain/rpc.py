"""An async JSON-RPC client for EVM nodes, on ``httpx.AsyncClient`` (runs under trio).

Why not web3's providers: its async provider is asyncio-only, its sync one blocks the loop,
and its middleware adds round trips. Here web3's libraries (eth-abi, eth-account) are
used offline by the modules above this one, and this module only moves JSON.

Theory of operation:
- ``call(method, params)`` posts one request; ``batch([(method, params), ...])`` posts a
  JSON array in **one** HTTP request (split only past ``max_batch`` items) and matches
  the answers back by id, whatever order the node returns them in.
- Each attempt is bounded by ``timeout`` seconds (a trio deadline around the whole HTTP
  exchange, not only httpx's per-phase timeouts).
- Failures are translated here, at the boundary: transport errors, timeouts, HTTP 429
  and 5xx, and undecodable bodies become :class:`ChainUnavailable`; a JSON-RPC error
  object becomes :class:`RpcError`. Transient failures are retried ``attempts`` times in
  all, sleeping ``backoff_s * 2**k`` (at most ``max_backoff_s``) in between; an RpcError
  is an answer, never retried. Other HTTP statuses (a wrong URL's 404) fail at once.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Final

import httpx
import msgspec
import trio

from golem_actor.adapters.chain.errors import ChainUnavailable, RpcError

__all__ = ["RpcCall", "RpcClient", "hex_bytes", "hex_int"]

RpcCall = tuple[str, Sequence[Any]]
"""One request of a batch: ``(method, params)``."""

_HEADERS: Final = {"content-type": "application/json", "accept": "application/json"}


class _ErrorObject(msgspec.Struct):
    code: int = 0
    message: str = ""
    data: Any = None


class _Reply(msgspec.Struct):
    jsonrpc: str = "2.0"
    id: int | str | None = None
    result: Any = None
    error: _ErrorObject | None = None


class _NotRetryable(ChainUnavailable):
    """A ChainUnavailable that another attempt would not fix (a 404, a bad URL)."""


def hex_int(value: Any) -> int:
    """A JSON-RPC quantity (``"0x1a"``) as an int; a malformed one is a bad answer."""
    if isinstance(value, str) and value.startswith(("0x", "0X")):
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise ChainUnavailable(f"malformed quantity in answer: {value!r}")


def hex_bytes(value: Any) -> bytes:
    """JSON-RPC data (``"0x..."``) as bytes."""
    if isinstance(value, str) and value.startswith("0x"):
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            pass
    raise ChainUnavailable(f"malformed data in answer: {str(value)[:80]!r}")


def _rpc_error(error: _ErrorObject) -> RpcError:
    return RpcError(error.code, error.message, error.data)


class RpcClient:
    """JSON-RPC over HTTP; pass ``client`` to share a connection pool (it is not closed)."""

    def __init__(
        self,
        url: str,
        *,
        client: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
        attempts: int = 3,
        backoff_s: float = 0.2,
        max_backoff_s: float = 2.0,
        max_batch: int = 500,
    ) -> None:
        if attempts < 1 or max_batch < 1 or timeout <= 0:
            raise ValueError("attempts and max_batch must be >= 1, timeout > 0")
        self.url = url
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(trust_env=False, timeout=timeout)
        self.timeout = timeout
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_batch = max_batch
        self._ids = itertools.count(1)

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    async def __aenter__(self) -> RpcClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def call(self, method: str, params: Sequence[Any] = (), *, retry: bool = True) -> Any:
        """The ``result`` of one request; raises RpcError or ChainUnavailable."""
        request_id = next(self._ids)
        body = msgspec.json.encode(
            {"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)}
        )
        reply: _Reply = await self._exchange(body, method, _Reply, retry=retry)
        if reply.error is not None:
            raise _rpc_error(reply.error)
        return reply.result

    async def batch(self, calls: Sequence[RpcCall], *, retry: bool = True) -> list[Any]:
        """The results of ``calls`` in order; the first failed item raises its RpcError."""
        results = await self.batch_settled(calls, retry=retry)
        for item in results:
            if isinstance(item, RpcError):
                raise item
        return results

    async def batch_settled(
        self, calls: Sequence[RpcCall], *, retry: bool = True
    ) -> list[Any | RpcError]:
        """The results of ``calls`` in order, with an RpcError in place of each failed item."""
        results: list[Any | RpcError] = []
        for start in range(0, len(calls), self.max_batch):
            results.extend(await self._batch_chunk(calls[start : start + self.max_batch], retry))
        return results

    async def _batch_chunk(self, calls: Sequence[RpcCall], retry: bool) -> list[Any | RpcError]:
        ids = [next(self._ids) for _ in calls]
        body = msgspec.json.encode(
            [
                {"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)}
                for request_id, (method, params) in zip(ids, calls, strict=True)
            ]
        )
        what = f"batch of {len(calls)}"
        decoded: list[_Reply] | _Reply = await self._exchange(
            body, what, list[_Reply] | _Reply, retry=retry
        )
        if isinstance(decoded, _Reply):  # the node refused the batch as a whole
            if decoded.error is not None:
                raise _rpc_error(decoded.error)
            raise ChainUnavailable(f"{what}: a single answer to a batch")
        by_id = {reply.id: reply for reply in decoded}
        results: list[Any | RpcError] = []
        for request_id in ids:
            reply = by_id.get(request_id)
            if reply is None:
                raise ChainUnavailable(f"{what}: no answer for id {request_id}")
            results.append(reply.result if reply.error is None else _rpc_error(reply.error))
        return results

    async def _exchange(self, body: bytes, what: str, answer: Any, *, retry: bool) -> Any:
        """Post ``body`` and decode the answer as ``answer``, retrying transient failures."""
        attempts = self.attempts if retry else 1
        for attempt in range(attempts):
            try:
                raw = await self._post(body, what)
                try:
                    return msgspec.json.decode(raw, type=answer)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    raise ChainUnavailable(f"{what}: undecodable answer: {exc}") from exc
            except _NotRetryable as exc:
                raise ChainUnavailable(str(exc)) from exc.__cause__
            except ChainUnavailable:
                if attempt + 1 >= attempts:
                    raise
            await trio.sleep(min(self.backoff_s * 2**attempt, self.max_backoff_s))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _post(self, body: bytes, what: str) -> bytes:
        response: httpx.Response | None = None
        with trio.move_on_after(self.timeout):
            try:
                response = await self._client.post(self.url, content=body, headers=_HEADERS)
            except httpx.UnsupportedProtocol as exc:
                raise _NotRetryable(f"{what}: bad RPC URL {self.url!r}: {exc}") from exc
            except httpx.TransportError as exc:
                detail = str(exc) or type(exc).__name__
                raise ChainUnavailable(f"{what}: {self.url}: {detail}") from exc
        if response is None:
            raise ChainUnavailable(f"{what}: {self.url}: no answer within {self.timeout:g} s")
        status = response.status_code
        if status == 429 or status >= 500:
            raise ChainUnavailable(f"{what}: {self.url}: HTTP {status}")
        if status >= 400 and not response.content.lstrip().startswith((b"{", b"[")):
            raise _NotRetryable(f"{what}: {self.url}: HTTP {status}")
        return response.content
