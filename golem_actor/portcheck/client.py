"""Asking port-check servers about our ports (ours or the upstream's: same protocol).

Why: one server is a single point of failure and of trust. Every server is asked at the
same time, each under its own deadline (`per_server_timeout` covers all of its batches),
and each server's answer is kept apart so that `domain.port_verdict.combine` can apply a
quorum. Nothing here raises for a server's failure: a down, slow, refusing (403/429) or
nonsensical server becomes an answer with an `error` and no (or partial) results.
Ports go in batches of at most `batch_size` (our servers cap ports per request), and a
server's claims about ports we did not ask about are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import httpx
import msgspec
import trio

from golem_actor.adapters.tls import tls_context

__all__ = ["PortAnswer", "ServerAnswer", "check_ports"]

DEFAULT_TIMEOUT = 30.0
DEFAULT_BATCH = 128


class PortAnswer(msgspec.Struct, frozen=True):
    accessible: bool
    error: str | None = None


class ServerAnswer(msgspec.Struct, frozen=True, kw_only=True):
    server: str
    results: dict[int, PortAnswer]  # the ports this server answered about
    error: str | None = None  # why some or all ports got no answer

    @property
    def answered(self) -> bool:
        return self.error is None

    def reachable(self) -> dict[int, bool]:
        """The input of `port_verdict.combine`: port -> reached, for answered ports."""
        return {port: answer.accessible for port, answer in self.results.items()}


class _Reply(msgspec.Struct):
    results: dict[str, PortAnswer]


class _Error(msgspec.Struct):
    detail: object = None


_reply_decoder = msgspec.json.Decoder(_Reply)
_error_decoder = msgspec.json.Decoder(_Error)


def _refusal(reply: httpx.Response) -> str:
    text = f"HTTP {reply.status_code}"
    try:
        detail = _error_decoder.decode(reply.content).detail
    except msgspec.MsgspecError:
        detail = None
    if detail is not None:
        text += f": {detail}"
    retry = reply.headers.get("Retry-After")
    if reply.status_code == 429 and retry:
        text += f" (retry after {retry} s)"
    return text


async def _ask_batch(
    client: httpx.AsyncClient, url: str, provider_ip: str | None, batch: list[int]
) -> dict[int, PortAnswer]:
    body: dict[str, object] = {"ports": batch}
    if provider_ip is not None:
        body["provider_ip"] = provider_ip
    reply = await client.post(url, json=body)
    if reply.status_code != 200:
        raise ValueError(_refusal(reply))
    try:
        decoded = _reply_decoder.decode(reply.content)
    except msgspec.MsgspecError as exc:
        raise ValueError(f"unreadable answer: {exc}") from exc
    asked = set(batch)
    answers: dict[int, PortAnswer] = {}
    for key, answer in decoded.results.items():
        if key.isdigit() and int(key) in asked:
            answers[int(key)] = answer
    return answers


async def _ask_server(
    server: str,
    provider_ip: str | None,
    batches: list[list[int]],
    time_limit: float,
    transport: httpx.AsyncBaseTransport | None,
) -> ServerAnswer:
    url = server.rstrip("/") + "/check-ports"
    results: dict[int, PortAnswer] = {}
    error: str | None = f"no answer within {time_limit:g} s"
    with trio.move_on_after(time_limit):
        try:
            tls = await tls_context()
            async with httpx.AsyncClient(
                timeout=time_limit, transport=transport, verify=tls
            ) as client:
                for batch in batches:
                    results.update(await _ask_batch(client, url, provider_ip, batch))
            error = None
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, ValueError, OSError) as exc:
            error = str(exc) or type(exc).__name__
    if error is None and len(results) < sum(len(b) for b in batches):
        error = "the server left some ports out of its answer"
    return ServerAnswer(server=server, results=results, error=error)


async def check_ports(
    servers: Sequence[str],
    ports: Iterable[int],
    *,
    provider_ip: str | None = None,
    per_server_timeout: float = DEFAULT_TIMEOUT,
    batch_size: int = DEFAULT_BATCH,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[ServerAnswer]:
    """Ask every server about `ports`; one answer per server, in the servers' order.

    `provider_ip` is sent when given (the upstream servers require it; ours accept only
    the caller's own address and use it when it is left out).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    unique = list(dict.fromkeys(ports))
    batches = [unique[i : i + batch_size] for i in range(0, len(unique), batch_size)]
    answers: list[ServerAnswer | None] = [None] * len(servers)

    async def ask(index: int, server: str) -> None:
        answers[index] = await _ask_server(
            server, provider_ip, batches, per_server_timeout, transport
        )

    async with trio.open_nursery() as nursery:
        for index, server in enumerate(servers):
            nursery.start_soon(ask, index, server)
    return [answer for answer in answers if answer is not None]
