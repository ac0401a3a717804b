"""A proof-of-work faucet on 127.0.0.1 for tests: the captcha and the faucet in one app.

The protocol is the one golem_actor.adapters.faucet speaks: `POST /<key>/api/challenge`
gives easy challenges (one byte of target: about 256 hashes each), `POST
/<key>/api/redeem` checks each solution really is the smallest nonce and gives a captcha
token, `POST /faucet/api/faucet {address, captchaToken}` checks the token and calls
`fund(address)` (the test wires it to the Golem Base double's balance). `refuse` makes
the faucet answer 429, as a drained or rate-limited faucet does.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio
from quart import request
from quart_trio import QuartTrio

from golem_actor.portcheck.server import serve_app

__all__ = ["KEY", "PowFaucet", "serving_faucet"]

KEY = "05381a2cef5e"


def _smallest(salt: str, target: str) -> int:
    prefix = bytes.fromhex(target)
    nonce = 0
    while not hashlib.sha256(f"{salt}{nonce}".encode()).digest().startswith(prefix):
        nonce += 1
    return nonce


@dataclass
class PowFaucet:
    fund: Callable[[str], None]
    refuse: bool = False
    funded: list[str] = field(default_factory=list)
    challenges: dict[str, list[list[str]]] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    url: str = ""

    def app(self) -> QuartTrio:
        app = QuartTrio("pow_faucet")

        @app.post(f"/{KEY}/api/challenge")
        async def challenge() -> dict[str, Any]:
            token = secrets.token_hex(8)
            pairs = [[secrets.token_hex(4), "00"], [secrets.token_hex(4), "a5"]]
            self.challenges[token] = pairs
            return {"challenge": pairs, "token": token}

        @app.post(f"/{KEY}/api/redeem")
        async def redeem() -> tuple[dict[str, Any], int]:
            body = await request.get_json()
            pairs = self.challenges.pop(str(body.get("token")), None)
            expected = [[s, t, _smallest(s, t)] for s, t in pairs or []]
            if pairs is None or body.get("solutions") != expected:
                return {"error": "wrong solutions"}, 400
            captcha = secrets.token_hex(8)
            self.tokens.add(captcha)
            return {"success": True, "token": captcha}, 200

        @app.post("/faucet/api/faucet")
        async def faucet() -> tuple[dict[str, Any], int]:
            body = await request.get_json()
            if self.refuse:
                return {"error": "too many requests"}, 429
            if str(body.get("captchaToken")) not in self.tokens:
                return {"error": "captcha"}, 403
            self.tokens.discard(str(body.get("captchaToken")))
            address = str(body.get("address"))
            self.funded.append(address)
            self.fund(address)
            return {"txHash": "0x" + secrets.token_hex(32)}, 200

        return app


@asynccontextmanager
async def serving_faucet(faucet: PowFaucet) -> AsyncIterator[PowFaucet]:
    """`faucet` on a free port of 127.0.0.1 (`faucet.url`) until the block ends; its
    FAUCET_URL is `<url>/faucet`, its CAPTCHA_URL `<url>`."""
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(partial(serve_app, faucet.app(), "127.0.0.1", 0))
        faucet.url = binds[0]
        yield faucet
        nursery.cancel_scope.cancel()
