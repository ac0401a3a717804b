"""Fixtures for contract tests on a real anvil chain.

``anvil`` starts one ``anvil --silent`` on 127.0.0.1 (a free port) for the whole session
and kills it at teardown; every test then gets fresh funded accounts and a fresh
deployment, so tests do not share contract state (block time only moves forward, and
tests compute expectations from the timestamps of their own blocks).

Without anvil installed the tests fail and say how to install it
(``.ci/install-chain-deps.sh``): a missing tool never hides behind a skip.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from golem_actor.adapters.chain.artifacts import load_artifact
from golem_actor.adapters.chain.tools import ToolNotFoundError, find_anvil

from .chain_helpers import Chain, Contract

STARTUP_TIMEOUT_S = 20.0
FUNDING_WEI = 10_000 * 10**18


@dataclass(frozen=True)
class AnvilNode:
    url: str
    process: subprocess.Popen[bytes]


@dataclass(frozen=True)
class Parties:
    deployer: LocalAccount
    oracle: LocalAccount
    sender: LocalAccount
    recipient: LocalAccount
    stranger: LocalAccount


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    with httpx.Client(timeout=1.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            try:
                if client.post(url, json=body).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnvilNode]:
    try:
        binary = find_anvil()
    except ToolNotFoundError as exc:
        pytest.fail(f"{exc}; run .ci/install-chain-deps.sh")
    log: Path = tmp_path_factory.mktemp("anvil") / "anvil.log"
    for _attempt in range(3):  # the free port may be taken between probe and bind
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [str(binary), "--host", "127.0.0.1", "--port", str(port), "--silent"],
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        if _wait_ready(url, process):
            break
        _stop(process)
    else:
        pytest.fail(f"anvil did not start: {log.read_text(errors='replace')[-2000:]}")
    try:
        yield AnvilNode(url, process)
    finally:
        _stop(process)


@pytest.fixture
async def chain(anvil: AnvilNode) -> AsyncIterator[Chain]:
    async with httpx.AsyncClient(timeout=10.0, trust_env=False) as client:
        yield await Chain.connect(client, anvil.url)


@pytest.fixture
async def parties(chain: Chain) -> Parties:
    accounts: list[LocalAccount] = [Account.create() for _ in range(5)]
    for account in accounts:
        await chain.set_balance(account.address, FUNDING_WEI)
    return Parties(*accounts)


@pytest.fixture
async def deployed_stream_payment(chain: Chain, parties: Parties) -> Contract:
    artifact = load_artifact("StreamPayment")
    return await Contract.deploy(chain, parties.deployer, artifact, parties.oracle.address)


@pytest.fixture
async def test_token(chain: Chain, parties: Parties) -> Contract:
    return await Contract.deploy(chain, parties.deployer, load_artifact("TestToken"))
