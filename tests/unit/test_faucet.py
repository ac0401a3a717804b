"""The PoW faucet client against a local server that implements the protocol (127.0.0.1)."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from golem_actor.adapters import faucet
from golem_actor.adapters.faucet import FaucetError, request_funds, solve

KEY = "05381a2cef5e"
ADDRESS = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def _hash(salt: str, nonce: int) -> bytes:
    return hashlib.sha256(f"{salt}{nonce}".encode()).digest()


def _smallest(salt: str, target: str) -> int:
    prefix = bytes.fromhex(target)
    nonce = 0
    while not _hash(salt, nonce).startswith(prefix):
        nonce += 1
    return nonce


@dataclass
class FakeFaucet:
    """The captcha and the faucet in one server; easy challenges (1 byte = ~256 tries)."""

    challenge: list[list[str]] = field(
        default_factory=lambda: [["salt-a", "00"], ["salt-b", "7f"], ["salt-c", "a5"]]
    )
    faucet_answer: dict[str, Any] = field(default_factory=lambda: {"txHash": "0xfeed"})
    funded: list[str] = field(default_factory=list)
    redeemed: list[list[Any]] = field(default_factory=list)
    url: str = ""

    def handle(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if path == f"/{KEY}/api/challenge":
            return 200, {"challenge": self.challenge, "token": "challenge-token"}
        if path == f"/{KEY}/api/redeem":
            if body.get("token") != "challenge-token":
                return 400, {"error": "bad token"}
            solutions = body.get("solutions", [])
            self.redeemed = solutions
            expected = [[s, t, _smallest(s, t)] for s, t in self.challenge]
            if solutions != expected:
                return 400, {"error": "wrong solutions"}
            return 200, {"success": True, "token": "captcha-token"}
        if path == "/faucet/api/faucet":
            if body.get("captchaToken") != "captcha-token":
                return 403, {"error": "captcha"}
            self.funded.append(str(body.get("address")))
            return 200, self.faucet_answer
        return 404, {"error": "not found"}


@pytest.fixture
def fake() -> Iterator[FakeFaucet]:
    state = FakeFaucet()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            code, answer = state.handle(self.path, body)
            data = json.dumps(answer).encode()
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def _ask(fake: FakeFaucet, *, key: str = KEY) -> str:
    async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
        return await request_funds(
            client,
            address=ADDRESS,
            faucet_url=f"{fake.url}/faucet",
            captcha_url=fake.url + "/",
            captcha_api_key=key,
        )


def test_solve_finds_the_smallest_nonce() -> None:
    for salt, target in [("x", "00"), ("y", "abc0"), ("z", "")]:
        nonce = solve(salt, target)
        assert nonce == _smallest(salt, target)
        assert _hash(salt, nonce).startswith(bytes.fromhex(target))


def test_solve_gives_up_at_the_deadline() -> None:
    with pytest.raises(FaucetError, match="in time"):
        solve("s", "ffffffffff", deadline=time.monotonic() + 0.05)


def test_solve_rejects_a_non_hex_target() -> None:
    with pytest.raises(FaucetError, match="not hex"):
        solve("s", "zz")


async def test_full_protocol(fake: FakeFaucet) -> None:
    assert await _ask(fake) == "0xfeed"
    assert fake.funded == [ADDRESS]
    assert [s[:2] for s in fake.redeemed] == fake.challenge


async def test_the_work_runs_in_a_worker_thread(
    fake: FakeFaucet, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[threading.Thread] = []
    real = faucet.solve_all

    def spy(*args: Any, **kwargs: Any) -> list[tuple[str, str, int]]:
        threads.append(threading.current_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(faucet, "solve_all", spy)
    await _ask(fake)
    assert threads
    assert threads[0] is not threading.main_thread()


@pytest.mark.parametrize("answer", [{"tx": "0x1"}, {"hash": "0x1"}])
async def test_other_hash_fields(fake: FakeFaucet, answer: dict[str, Any]) -> None:
    fake.faucet_answer = answer
    assert await _ask(fake) == "0x1"


async def test_an_answer_without_hash_fails(fake: FakeFaucet) -> None:
    fake.faucet_answer = {"ok": True}
    with pytest.raises(FaucetError, match="no transaction hash"):
        await _ask(fake)


async def test_a_refused_captcha_fails(fake: FakeFaucet) -> None:
    with pytest.raises(FaucetError, match="HTTP 404"):
        await _ask(fake, key="wrong")
    assert fake.funded == []


async def test_a_garbled_challenge_fails(fake: FakeFaucet) -> None:
    fake.challenge = [["only-salt"]]
    with pytest.raises(FaucetError, match="captcha challenge: unexpected answer"):
        await _ask(fake)


async def test_a_dead_server_fails() -> None:
    async with httpx.AsyncClient(trust_env=False, timeout=2) as client:
        with pytest.raises(FaucetError, match="did not answer"):
            await request_funds(
                client,
                address=ADDRESS,
                faucet_url="http://127.0.0.1:9/faucet",
                captcha_url="http://127.0.0.1:9",
                captcha_api_key=KEY,
            )
