"""The L2 testnet faucet: a proof-of-work captcha, then a funding request.

Why here: it is the only HTTP dialogue of the payments side that is not JSON-RPC. The
protocol (the upstream provider's ``golem_faucet.PowFaucetClient``):
1. ``POST {captcha}/{key}/api/challenge`` gives ``{challenge: [[salt, target_hex], ...], token}``;
2. for each pair, the smallest ``nonce`` whose ``sha256(f"{salt}{nonce}")`` digest starts with
   the bytes of ``target_hex``;
3. ``POST {captcha}/{key}/api/redeem {token, solutions: [[salt, target, nonce], ...]}`` gives
   ``{token}`` (the captcha token);
4. ``POST {faucet}/api/faucet {address, captchaToken}`` gives ``{txHash | tx | hash}``.
The search is CPU-bound: it runs in a worker thread (``trio.to_thread``), never on the event
loop, and gives up at a deadline so an absurd difficulty cannot hang the caller.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, TypeVar

import httpx
import msgspec
import trio

__all__ = ["FaucetError", "request_funds", "solve", "solve_all"]

DEFAULT_SOLVE_TIMEOUT_S = 300.0
_CHECK_EVERY = 4096
_T = TypeVar("_T")


class FaucetError(Exception):
    """The captcha or the faucet refused, answered garbage, or the work took too long."""


class _Challenge(msgspec.Struct):
    challenge: list[tuple[str, str]]
    token: str


class _Redeemed(msgspec.Struct):
    token: str


class _Funded(msgspec.Struct, rename={"tx_hash": "txHash"}):
    tx_hash: str | None = None
    tx: str | None = None
    hash: str | None = None


def solve(salt: str, target_hex: str, *, deadline: float | None = None) -> int:
    """The smallest nonce whose ``sha256(salt + str(nonce))`` starts with ``target_hex``.

    Blocking and CPU-bound. ``deadline`` is a ``time.monotonic()`` value.
    """
    try:
        prefix = bytes.fromhex(target_hex)
    except ValueError:
        raise FaucetError(f"the challenge's target {target_hex!r} is not hex") from None
    base = hashlib.sha256(salt.encode())
    nonce = 0
    while True:
        digest = base.copy()
        digest.update(str(nonce).encode())
        if digest.digest().startswith(prefix):
            return nonce
        nonce += 1
        if deadline is not None and nonce % _CHECK_EVERY == 0 and time.monotonic() > deadline:
            raise FaucetError(f"no solution for target {target_hex!r} in time ({nonce} tries)")


def solve_all(
    challenges: list[tuple[str, str]], *, deadline: float | None = None
) -> list[tuple[str, str, int]]:
    """``[salt, target, nonce]`` for each challenge (blocking)."""
    return [(salt, target, solve(salt, target, deadline=deadline)) for salt, target in challenges]


async def _post(client: httpx.AsyncClient, url: str, body: dict[str, Any], what: str) -> bytes:
    try:
        reply = await client.post(url, json=body)
    except httpx.HTTPError as exc:
        raise FaucetError(f"{what}: {url} did not answer: {exc}") from exc
    if reply.status_code >= 400:
        raise FaucetError(f"{what}: HTTP {reply.status_code} from {url}: {reply.text[:200]}")
    return reply.content


def _decode(data: bytes, kind: type[_T], what: str) -> _T:
    try:
        return msgspec.json.decode(data, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise FaucetError(f"{what}: unexpected answer: {exc}") from exc


async def request_funds(
    client: httpx.AsyncClient,
    *,
    address: str,
    faucet_url: str,
    captcha_url: str,
    captcha_api_key: str,
    solve_timeout_s: float = DEFAULT_SOLVE_TIMEOUT_S,
) -> str:
    """Solve the captcha and ask the faucet to fund ``address``; returns the tx hash."""
    captcha = f"{captcha_url.rstrip('/')}/{captcha_api_key}/api"
    raw = await _post(client, f"{captcha}/challenge", {}, "captcha challenge")
    challenge = _decode(raw, _Challenge, "captcha challenge")
    deadline = time.monotonic() + solve_timeout_s
    solutions = await trio.to_thread.run_sync(
        lambda: solve_all(challenge.challenge, deadline=deadline), abandon_on_cancel=True
    )
    body = {"token": challenge.token, "solutions": [list(s) for s in solutions]}
    raw = await _post(client, f"{captcha}/redeem", body, "captcha redeem")
    captcha_token = _decode(raw, _Redeemed, "captcha redeem").token
    body = {"address": address, "captchaToken": captcha_token}
    raw = await _post(client, f"{faucet_url.rstrip('/')}/api/faucet", body, "faucet")
    funded = _decode(raw, _Funded, "faucet")
    tx_hash = funded.tx_hash or funded.tx or funded.hash
    if not tx_hash:
        raise FaucetError(f"faucet: no transaction hash in the answer: {raw[:200]!r}")
    return tx_hash
