"""`golem-provider streams|wallet|config` as real processes against a real anvil (127.0.0.1).

The chain side is set up with the product's own code (``deploy_stream_payment``, the
``StreamPaymentClient`` builders, ``TransactionSender``); ``<data dir>/streams.json`` is
written here as the node would. Every expectation is computed from what the chain says at
its latest block, read right after the command ran (anvil mines only on transactions, so
the command and the test see the same block).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from eth_account import Account

from golem_actor.adapters.chain.deploy import deploy_stream_payment
from golem_actor.adapters.chain.rpc import RpcClient
from golem_actor.adapters.chain.stream_payment import StreamPaymentClient
from golem_actor.adapters.chain.tools import ToolNotFoundError, find_anvil
from golem_actor.adapters.chain.transactions import TransactionSender
from golem_actor.domain.streams import computed, vested_wei, withdrawable_wei
from golem_actor.identity import load_or_create_provider_key
from golem_actor.settings import load_settings

pytestmark = pytest.mark.e2e

CLI = str(Path(sys.executable).with_name("golem-provider"))
FEE_CAP = 500 * 10**9
ETH = 10**18


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def anvil_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    try:
        binary = find_anvil()
    except ToolNotFoundError as exc:
        pytest.fail(f"{exc}; run .ci/install-chain-deps.sh")
    log = tmp_path_factory.mktemp("anvil") / "anvil.log"
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    for _attempt in range(3):
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [str(binary), "--host", "127.0.0.1", "--port", str(port), "--silent"],
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 20
        with httpx.Client(timeout=1.0, trust_env=False) as client:
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    if client.post(url, json=body).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.05)
            else:
                process.kill()
                process.wait()
                continue
        break
    else:
        pytest.fail(f"anvil did not start: {log.read_text(errors='replace')[-2000:]}")
    try:
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def base_env(data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOLEM_")}
    env.update(
        GOLEM_PROVIDER_DATA_DIR=str(data),
        GOLEM_PROVIDER_PORT_CHECK_SERVERS="[]",
        GOLEM_PROVIDER_PUBLIC_IP_SERVICES="[]",
        GOLEM_PROVIDER_UPDATE_INDEX_URL="http://127.0.0.1:9/",
        GOLEM_PROVIDER_COINGECKO_API_URL="http://127.0.0.1:9/api/v3",
    )
    return env


@dataclass
class Setup:
    rpc: RpcClient
    url: str
    data: Path
    contract: StreamPaymentClient
    provider: str
    streams: dict[str, int]  # vm id -> stream id, as in streams.json

    def env(self, **extra: str) -> dict[str, str]:
        env = base_env(self.data)
        env.update(
            GOLEM_PROVIDER_POLYGON_RPC_URL=self.url,
            GOLEM_PROVIDER_STREAM_PAYMENT_ADDRESS=self.contract.address,
        )
        env.update(extra)
        return env

    async def cli(self, *args: str, **extra: str) -> tuple[int, str, str]:
        return await run_cli(self.env(**extra), *args)

    async def balance(self, address: str) -> int:
        return int(await self.rpc.call("eth_getBalance", [address, "latest"]), 16)


async def run_cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = await trio.run_process(
        [CLI, *args], env=env, capture_stdout=True, capture_stderr=True, check=False
    )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


async def _funded_sender(rpc: RpcClient, wei: int = 100 * ETH) -> TransactionSender:
    account = Account.create()
    await rpc.call("anvil_setBalance", [account.address, hex(wei)])
    return TransactionSender(rpc, account.key.hex(), max_fee_cap_wei=FEE_CAP)


async def _open(
    contract: StreamPaymentClient, sender: TransactionSender, to: str, deposit: int, rate: int
) -> int:
    stream_id = await contract.next_stream_id()
    await sender.send(contract.create_stream_tx(to, deposit, rate))
    return stream_id


@pytest.fixture
async def setup(anvil_url: str, tmp_path: Path) -> AsyncIterator[Setup]:
    data = tmp_path / "node"
    key = load_or_create_provider_key(data / "keys")
    async with RpcClient(anvil_url) as rpc:
        requestor = await _funded_sender(rpc)
        address = await deploy_stream_payment(requestor, requestor.address)
        contract = StreamPaymentClient(rpc, address)
        await rpc.call("anvil_setBalance", [key.address, hex(ETH)])  # gas for withdrawals
        other = Account.create().address
        streams = {
            "vm-a": await _open(contract, requestor, key.address, 36 * 10**15, 10**13),
            "vm-b": await _open(contract, requestor, key.address, 5 * 10**15, 10**12),
            "vm-other": await _open(contract, requestor, other, 10**15, 10**12),
            "vm-gone": 999_999,
        }
        (data / "streams.json").write_text(json.dumps(streams, indent=2))
        await rpc.call("evm_increaseTime", [120])
        await rpc.call("evm_mine", [])
        yield Setup(rpc, anvil_url, data, contract, key.address, streams)


async def test_list_show_earnings_match_the_chain(setup: Setup) -> None:
    code, out, err = await setup.cli("streams", "list", "--json")
    assert code == 0, err
    reading = await setup.contract.read_streams(setup.streams.values())
    now = reading.now
    listed = {entry["vm_id"]: entry for entry in json.loads(out)["streams"]}
    assert set(listed) == set(setup.streams)
    assert listed["vm-gone"] == {
        "vm_id": "vm-gone",
        "stream_id": 999_999,
        "error": "stream not found",
    }
    for vm_id in ("vm-a", "vm-b", "vm-other"):
        stream = reading.streams[setup.streams[vm_id]]
        mine = vm_id != "vm-other"
        assert listed[vm_id] == {
            "vm_id": vm_id,
            "stream_id": setup.streams[vm_id],
            "token": stream.token,
            "recipient": stream.recipient,
            "start": stream.start_time,
            "stop": stream.stop_time,
            "rate": stream.rate_per_second,
            "deposit": stream.deposit,
            "withdrawn": 0,
            "remaining": stream.stop_time - now,
            "verified": mine,
            "reason": "ok" if mine else "recipient mismatch",
            "withdrawable": withdrawable_wei(stream, now),
        }
    a = reading.streams[setup.streams["vm-a"]]
    assert a.deposit == 36 * 10**15
    assert a.rate_per_second == 10**13
    assert a.recipient == setup.provider
    assert withdrawable_wei(a, now) >= 120 * 10**13  # two minutes have vested at least

    code, out, err = await setup.cli("streams", "show", "vm-a", "--json")
    assert code == 0, err
    numbers = computed(a, now)
    assert json.loads(out) == {
        "vm_id": "vm-a",
        "stream_id": setup.streams["vm-a"],
        "chain": a.chain_json(),
        "computed": {
            "now": now,
            "remaining_seconds": numbers.remaining_seconds,
            "vested_wei": numbers.vested_wei,
            "withdrawable_wei": numbers.withdrawable_wei,
        },
        "verified": True,
        "reason": "ok",
    }

    code, out, _ = await setup.cli("streams", "show", "vm-nope", "--json")
    assert code == 1
    assert json.loads(out) == {"error": "no_stream_mapping", "vm_id": "vm-nope"}

    code, out, err = await setup.cli("streams", "earnings", "--json")
    assert code == 0, err
    earnings = json.loads(out)
    expected: list[dict[str, Any]] = [
        {
            "vm_id": vm_id,
            "stream_id": setup.streams[vm_id],
            "token": stream.token,
            "vested": vested_wei(stream, now),
            "withdrawn": stream.withdrawn,
            "withdrawable": withdrawable_wei(stream, now),
        }
        for vm_id in ("vm-a", "vm-b", "vm-other")
        for stream in [reading.streams[setup.streams[vm_id]]]
    ]
    assert earnings["streams"] == expected
    assert earnings["totals"] == {
        name: sum(e[name] for e in expected) for name in ("vested", "withdrawn", "withdrawable")
    }

    for args in (("list",), ("show", "vm-a"), ("earnings",)):
        code, out, err = await setup.cli("streams", *args)
        assert code == 0, err
        assert "vm-a" in out
        assert "ETH" in out


async def test_withdraw_moves_funds(setup: Setup) -> None:
    before = await setup.balance(setup.provider)
    code, out, err = await setup.cli("streams", "withdraw", "--vm-id", "vm-a", "--json")
    assert code == 0, err
    (result,) = json.loads(out)["results"]
    assert result["status"] == "withdrawn"
    stream = await setup.contract.get_stream(setup.streams["vm-a"])
    assert stream is not None
    assert stream.withdrawn == result["amount_wei"] > 0
    after = await setup.balance(setup.provider)
    assert after == before + result["amount_wei"] - result["fee_wei"]

    # Nothing has vested since (no block was mined): skipped, no transaction.
    code, out, err = await setup.cli("streams", "withdraw", "--vm-id", "vm-a")
    assert code == 0, err
    assert "nothing to withdraw" in out
    assert await setup.balance(setup.provider) == after

    code, out, err = await setup.cli("streams", "withdraw", "--all", "--json")
    assert code == 1  # vm-gone's stream does not exist
    results = {r["vm_id"]: r for r in json.loads(out)["results"]}
    assert results["vm-a"]["status"] == "skipped"
    assert results["vm-b"]["status"] == "withdrawn"
    assert results["vm-other"]["status"] == "skipped"
    assert results["vm-gone"]["status"] == "failed"
    b = await setup.contract.get_stream(setup.streams["vm-b"])
    assert b is not None
    assert b.withdrawn == results["vm-b"]["amount_wei"] > 0

    code, out, _ = await setup.cli("streams", "withdraw", "--vm-id", "vm-nope", "--json")
    assert code == 1
    assert json.loads(out) == {"error": "no_stream_mapping", "vm_id": "vm-nope"}


async def test_wallet_shows_address_and_balance(setup: Setup) -> None:
    await setup.rpc.call("anvil_setBalance", [setup.provider, hex(1_234_500_000_000_000_000)])
    code, out, err = await setup.cli("wallet", "--json")
    assert code == 0, err
    assert json.loads(out) == {
        "address": setup.provider,
        "network": "l2.holesky",
        "rpc_url": setup.url,
        "balance_wei": 1_234_500_000_000_000_000,
        "balance_eth": "1.2345",
    }
    code, out, err = await setup.cli("wallet")
    assert code == 0, err
    assert setup.provider in out
    assert "1.2345 ETH" in out


@pytest.mark.parametrize(
    ("variable", "value", "why"),
    [
        ("PAYMENTS_NETWORK", "mainnet", "no StreamPayment address for payments network"),
        # The seed's switch: the default network ships a deployment, the zero address wins.
        ("STREAM_PAYMENT_ADDRESS", "0x" + "00" * 20, "STREAM_PAYMENT_ADDRESS is the zero"),
    ],
)
async def test_streaming_disabled(tmp_path: Path, variable: str, value: str, why: str) -> None:
    env = base_env(tmp_path / "node")
    env[f"GOLEM_PROVIDER_{variable}"] = value
    for args in (("list",), ("show", "x"), ("earnings",), ("withdraw", "--all")):
        code, out, _ = await run_cli(env, "streams", *args, "--json")
        assert code == 1
        assert json.loads(out) == {"error": "streaming_disabled"}
    code, _, err = await run_cli(env, "streams", "list")
    assert code == 1
    assert why in err


async def test_config_monitor_and_withdraw_persist(tmp_path: Path) -> None:
    data = tmp_path / "node"
    data.mkdir()
    (data / ".env").write_text(
        "# operator's notes\nGOLEM_PROVIDER_PROVIDER_NAME=mine\n"
        "GOLEM_PROVIDER_STREAM_MONITOR_INTERVAL_SECONDS=99\n"
    )
    env = base_env(data)
    code, out, err = await run_cli(
        env,
        "config",
        "monitor",
        "--enable",
        "true",
        "--interval",
        "30",
        "--min-remaining",
        "3600",
    )
    assert code == 0, err
    assert "GOLEM_PROVIDER_STREAM_MIN_REMAINING_SECONDS=3600" in out
    code, out, err = await run_cli(
        env,
        "config",
        "withdraw",
        "--enable",
        "yes",
        "--interval",
        "900",
        "--min-wei",
        "1000000000000000",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["settings"] == {
        "stream_withdraw_enabled": True,
        "stream_withdraw_interval_seconds": 900,
        "stream_min_withdraw_wei": 10**15,
    }
    text = (data / ".env").read_text()
    assert text.startswith("# operator's notes\nGOLEM_PROVIDER_PROVIDER_NAME=mine\n")
    assert text.count("STREAM_MONITOR_INTERVAL_SECONDS") == 1
    assert "GOLEM_PROVIDER_STREAM_WITHDRAW_ENABLED=true\n" in text

    settings = load_settings(env=env)  # the node's loader reads them back
    assert settings.provider_name == "mine"
    assert settings.stream_monitor_enabled is True
    assert settings.stream_monitor_interval_seconds == 30
    assert settings.stream_min_remaining_seconds == 3600
    assert settings.stream_withdraw_enabled is True
    assert settings.stream_withdraw_interval_seconds == 900
    assert settings.stream_min_withdraw_wei == 10**15

    code, _, err = await run_cli(env, "config", "monitor", "--interval", "-5")
    assert code == 2
    assert "GOLEM_PROVIDER_STREAM_MONITOR_INTERVAL_SECONDS" in err
    code, _, err = await run_cli(env, "config", "withdraw", "--enable", "maybe")
    assert code == 2
    assert "GOLEM_PROVIDER_STREAM_WITHDRAW_ENABLED" in err
    assert (data / ".env").read_text() == text  # refused values are not written


@pytest.fixture
def fake_faucet(anvil_url: str) -> Iterator[str]:
    """Captcha + faucet on 127.0.0.1: checks the proof of work, then funds via anvil."""
    challenge = [["salt-1", "00"], ["salt-2", "ab"]]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"])) or b"{}")
            code, answer = 404, {}
            if self.path == "/key/api/challenge":
                code, answer = 200, {"challenge": challenge, "token": "t1"}
            elif self.path == "/key/api/redeem":
                ok = body["token"] == "t1" and [s[:2] for s in body["solutions"]] == challenge
                for salt, target, nonce in body["solutions"]:
                    digest = hashlib.sha256(f"{salt}{nonce}".encode()).digest()
                    ok = ok and digest.startswith(bytes.fromhex(target))
                code, answer = (200, {"token": "t2"}) if ok else (400, {})
            elif self.path == "/faucet/api/faucet" and body["captchaToken"] == "t2":
                rpc = {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "anvil_setBalance",
                    "params": [body["address"], hex(ETH)],
                }
                httpx.post(anvil_url, json=rpc, trust_env=False).raise_for_status()
                code, answer = 200, {"txHash": "0x" + "ab" * 32}
            data = json.dumps(answer).encode()
            self.send_response(code)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_wallet_faucet_l2(setup: Setup, fake_faucet: str) -> None:
    await setup.rpc.call("anvil_setBalance", [setup.provider, "0x0"])
    faucet_env = {
        "GOLEM_L2_FAUCET_URL": f"{fake_faucet}/faucet",
        "GOLEM_L2_CAPTCHA_URL": fake_faucet,
        "GOLEM_L2_CAPTCHA_API_KEY": "key",
    }
    code, out, err = await setup.cli("wallet", "faucet-l2", **faucet_env)
    assert code == 0, err
    assert "0x" + "ab" * 32 in out
    assert await setup.balance(setup.provider) == ETH
    # Enough balance now: the faucet is not asked again.
    code, out, err = await setup.cli("wallet", "faucet-l2", **faucet_env)
    assert code == 0, err
    assert "not asking the faucet" in out
    # A profile without faucet refuses.
    code, _, err = await setup.cli(
        "wallet", "faucet-l2", GOLEM_PROVIDER_PAYMENTS_NETWORK="mainnet", **faucet_env
    )
    assert code == 1
    assert "has no faucet" in err
