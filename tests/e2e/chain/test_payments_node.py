"""The node's payment gate and stream monitor on a real anvil chain.

VMs run on the in-memory backend (the payments logic is what is under test; the full
rental on QEMU is tests/e2e/test_rental.py); the HTTP API, vm_lifecycle, the proxies and
the stream monitor are the real actors, and every stream is a real StreamPayment stream.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import trio

from actors.api.payments import PaymentGate
from actors.pricing import GetPrices, PricingMsg
from actors.wallet import GetWalletInfo, Wallet, Withdraw
from golem_actor.adapters.chain.rpc import RpcClient
from golem_actor.adapters.chain.stream_payment import StreamPaymentClient
from golem_actor.adapters.price_feed import PriceFeed
from golem_actor.domain.pricing import UsdPrices, glm_prices, native_min_rate, requestor_rate
from golem_actor.domain.resources import Resources
from golem_actor.domain.streams import SECONDS_PER_MONTH
from golem_actor.identity import ProviderKey
from golem_actor.kernel import Address
from supervisors.payments import Payments

from .chain_helpers import ZERO_ADDRESS, Chain, Contract
from .conftest import AnvilNode, Parties

sys.path.insert(0, str(Path(__file__).parents[2] / "unit"))  # the shared in-process harness
from feed_server import feed_server, prices
from lifecycle_harness import OPERATOR_TOKEN, ApiNode, running_api
from payments_fakes import hosted

pytestmark = pytest.mark.e2e

PRICE = 10**9  # wei per second for one core (memory and disk are free here)
RUNWAY = 1_000  # seconds a good stream pays for
MIN_REMAINING = 600
KEY_LESS = {"name": "paid", "resources": {"cpu": 1, "memory": 1, "storage": 10}}
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


async def open_stream(
    sp: Contract,
    sender: Any,
    recipient: str,
    *,
    rate: int = PRICE,
    seconds: int = RUNWAY,
    token: str = ZERO_ADDRESS,
) -> int:
    deposit = rate * seconds
    value = deposit if token == ZERO_ADDRESS else 0
    receipt = await sp.transact(
        sender, "createStream", token, recipient, deposit, rate, value=value
    )
    (event,) = [e for e in sp.events(receipt) if e.name == "StreamCreated"]
    return int(event.args["streamId"])


@asynccontextmanager
async def paid_node(
    tmp_path: Path, anvil: AnvilNode, sp: Contract, provider: str, wallet: Wallet | None = None
) -> AsyncIterator[tuple[str, RpcClient]]:
    rpc = RpcClient(anvil.url, timeout=2, attempts=1)
    client = StreamPaymentClient(rpc, sp.address)
    gate = PaymentGate(
        client=client,
        provider=provider,
        token=ZERO_ADDRESS,
        min_remaining=MIN_REMAINING,
        wei_per_core_month=PRICE * SECONDS_PER_MONTH,
        wei_per_gb_ram_month=0,
        wei_per_gb_disk_month=0,
    )
    payments = Payments(client=client, gate=gate)
    async with running_api(tmp_path, payments=payments, wallet=wallet) as node:
        yield node.url, rpc
    await rpc.aclose()


def provider_key_dir(tmp_path: Path, provider: Any) -> Path:
    """A key directory holding the provider's key, as the node keeps it."""
    key_dir = tmp_path / "keys"
    key_dir.mkdir()
    key = ProviderKey(address=provider.address, private_key=provider.key.hex())
    (key_dir / "provider_key.json").write_bytes(msgspec.json.encode(key))
    return key_dir


async def create(
    client: httpx.AsyncClient, url: str, name: str, stream_id: int | None
) -> httpx.Response:
    body: dict[str, object] = {**KEY_LESS, "name": name}
    if stream_id is not None:
        body["stream_id"] = stream_id
    return await client.post(f"{url}/vms", json=body)


async def wait_status(client: httpx.AsyncClient, url: str, vm_id: str, status: str) -> None:
    with trio.fail_after(15):
        for _ in range(10_000):  # polling the node over HTTP, as a client would
            if (await client.get(f"{url}/vms/{vm_id}")).json()["status"] == status:
                return
            await trio.sleep(0.05)


async def test_each_invalid_stream_is_refused_with_its_reason(
    tmp_path: Path,
    anvil: AnvilNode,
    chain: Chain,
    parties: Parties,
    deployed_stream_payment: Contract,
    test_token: Contract,
) -> None:
    sp, provider = deployed_stream_payment, parties.recipient.address
    sender = parties.sender
    terminated = await open_stream(sp, sender, provider)
    await sp.transact(sender, "terminate", terminated)
    halted = await open_stream(sp, sender, provider)
    await sp.transact(parties.oracle, "haltStream", halted)
    elsewhere = await open_stream(sp, sender, parties.stranger.address)
    short = await open_stream(sp, sender, provider, seconds=MIN_REMAINING // 2)
    cheap = await open_stream(sp, sender, provider, rate=PRICE - 1, seconds=RUNWAY * 2)
    expiring = await open_stream(sp, sender, provider, seconds=MIN_REMAINING + 50)
    await test_token.transact(parties.sender, "mint", sender.address, PRICE * RUNWAY)
    await test_token.transact(parties.sender, "approve", sp.address, PRICE * RUNWAY)
    in_tokens = await open_stream(sp, sender, provider, token=test_token.address)
    good = await open_stream(sp, sender, provider)
    await chain.increase_time(100)  # `expiring` is now below the required runway
    async with (
        paid_node(tmp_path, anvil, sp, provider) as (url, _),
        httpx.AsyncClient(timeout=30) as client,
    ):
        missing = await create(client, url, "no-stream", None)
        assert (missing.status_code, missing.json()["detail"]) == (
            400,
            "stream_id required when payments are enabled",
        )
        for name, stream_id, reason in [
            ("ghost", 10**6, "stream not found"),
            ("terminated", terminated, "stream terminated"),
            ("halted", halted, "stream halted"),
            ("elsewhere", elsewhere, "recipient mismatch"),
            ("short", short, "runway too short"),
            ("expiring", expiring, "runway too short"),
            ("cheap", cheap, "rate below price"),
            ("tokens", in_tokens, "wrong token"),
        ]:
            refused = await create(client, url, name, stream_id)
            assert refused.status_code == 400, (name, refused.text)
            assert refused.json()["detail"].startswith(f"invalid stream: {reason}"), name
        accepted = await create(client, url, "good", good)
        assert accepted.status_code == 200, accepted.text
        reused = await create(client, url, "again", good)
        assert (reused.status_code, reused.json()["detail"]) == (
            400,
            f"stream {good} already backs another VM",
        )
        listed = (await client.get(f"{url}/vms", headers=OPERATOR)).json()
        assert [v["name"] for v in listed] == ["good"]  # nothing else was created
        status = (await client.get(f"{url}/vms/{accepted.json()['id']}/stream")).json()
        assert (status["stream_id"], status["verified"], status["reason"]) == (good, True, "ok")
        assert status["chain"]["recipient"] == provider
        assert status["chain"]["ratePerSecond"] == PRICE
        assert 0 < status["computed"]["remaining_seconds"] <= RUNWAY


async def test_the_monitor_stops_unpaid_vms_and_starts_topped_up_ones(
    tmp_path: Path,
    anvil: AnvilNode,
    chain: Chain,
    parties: Parties,
    deployed_stream_payment: Contract,
) -> None:
    sp, provider, sender = deployed_stream_payment, parties.recipient.address, parties.sender
    paying = await open_stream(sp, sender, provider)
    async with (
        paid_node(tmp_path, anvil, sp, provider) as (url, _),
        httpx.AsyncClient(timeout=30) as client,
    ):
        vm = (await create(client, url, "paid", paying)).json()
        assert vm["status"] == "running"
        await chain.increase_time(RUNWAY - MIN_REMAINING + 10)  # runway below the threshold
        await wait_status(client, url, vm["id"], "stopped")
        await sp.transact(sender, "topUp", paying, PRICE * RUNWAY, value=PRICE * RUNWAY)
        await wait_status(client, url, vm["id"], "running")  # paid again: started again
        await sp.transact(sender, "terminate", paying)
        await wait_status(client, url, vm["id"], "stopped")  # at the next tick
        streams = (await client.get(f"{url}/payments/streams", headers=OPERATOR)).json()
        assert [s["reason"] for s in streams] == ["stream terminated"]


async def test_a_chain_outage_stops_nothing_and_refuses_creates(
    tmp_path: Path,
    anvil: AnvilNode,
    chain: Chain,
    parties: Parties,
    deployed_stream_payment: Contract,
) -> None:
    sp, provider, sender = deployed_stream_payment, parties.recipient.address, parties.sender
    paying = await open_stream(sp, sender, provider)
    later = await open_stream(sp, sender, provider)
    async with (
        paid_node(tmp_path, anvil, sp, provider) as (url, rpc),
        httpx.AsyncClient(timeout=30) as client,
    ):
        vm = (await create(client, url, "paid", paying)).json()
        rpc.url = "http://127.0.0.1:9/"  # the chain is gone
        await chain.increase_time(RUNWAY)  # even a stream that ran dry must not stop the VM
        await trio.sleep(1.0)  # five monitor ticks
        assert (await client.get(f"{url}/vms/{vm['id']}")).json()["status"] == "running"
        refused = await create(client, url, "during-outage", later)
        assert refused.status_code == 503
        assert "cannot read payment streams" in refused.json()["detail"]
        rpc.url = anvil.url  # the chain is back: the monitor sees the dry stream
        await wait_status(client, url, vm["id"], "stopped")
        fresh = await open_stream(sp, sender, provider)
        assert (await create(client, url, "after", fresh)).status_code == 200


async def test_the_withdraw_scheduler_withdraws_what_vested(
    tmp_path: Path,
    anvil: AnvilNode,
    chain: Chain,
    parties: Parties,
    deployed_stream_payment: Contract,
) -> None:
    sp, sender, provider = deployed_stream_payment, parties.sender, parties.recipient
    key_dir = provider_key_dir(tmp_path, provider)
    rate = 10**12  # enough to be worth the gas of a withdrawal on anvil
    stream_id = await open_stream(sp, sender, provider.address, rate=rate, seconds=10_000)
    reader = StreamPaymentClient(RpcClient(anvil.url), sp.address)
    wallet = Wallet(key_dir=key_dir, rpc_url=anvil.url, contract=sp.address, max_fee_cap_wei=10**12)
    before = await chain.balance(provider.address)
    node = paid_node(tmp_path, anvil, sp, provider.address, wallet)
    async with node as (url, _), httpx.AsyncClient(timeout=30) as client:
        assert (await create(client, url, "earning", stream_id)).status_code == 200
        await chain.increase_time(2_000)
        with trio.fail_after(15):
            for _ in range(10_000):
                state = await reader.get_stream(stream_id)
                assert state is not None
                if state.withdrawn > 0:
                    break
                await trio.sleep(0.1)
    gained = await chain.balance(provider.address) - before
    assert state is not None
    assert state.withdrawn >= rate * 2_000  # at least what had vested at the tick
    assert 0 < state.withdrawn - gained < 10**15  # the balance grew by it, minus the gas
    await reader.rpc.aclose()


async def test_the_wallet_answers_a_withdrawal_once_it_is_mined(
    tmp_path: Path,
    anvil: AnvilNode,
    chain: Chain,
    parties: Parties,
    deployed_stream_payment: Contract,
) -> None:
    sp, sender, provider = deployed_stream_payment, parties.sender, parties.recipient
    rate = 10**12
    stream_id = await open_stream(sp, sender, provider.address, rate=rate, seconds=10_000)
    await chain.increase_time(2_000)
    wallet = Wallet(
        key_dir=provider_key_dir(tmp_path, provider),
        rpc_url=anvil.url,
        contract=sp.address,
        max_fee_cap_wei=10**12,
    )
    async with hosted(wallet, "wallet") as address:
        info = await address.call(GetWalletInfo())
        assert info.address == provider.address
        assert info.balance_wei == await chain.balance(provider.address)
        withdraw = Withdraw(stream_id=stream_id, withdrawable_wei=rate * 2_000, min_wei=1)
        outcome = await address.with_call_timeout(60).call(withdraw)
        after = await address.call(GetWalletInfo())
    assert outcome.withdrawn, outcome
    assert outcome.tx_hash is not None
    assert outcome.fee_wei > 0
    reader = StreamPaymentClient(RpcClient(anvil.url), sp.address)
    state = await reader.get_stream(stream_id)
    await reader.rpc.aclose()
    assert state is not None
    assert state.withdrawn >= rate * 2_000
    assert after.balance_wei == info.balance_wei + state.withdrawn - outcome.fee_wei


# -- priced in USD: the pricing actor, a feed on 127.0.0.1, no wei override ------------

USD = UsdPrices(core=5.0, ram_gb=2.0, disk_gb=0.1)  # the settings' defaults
SIZE = Resources.from_gb(cpus=1, memory_gb=1, storage_gb=10)  # KEY_LESS's resources


@asynccontextmanager
async def priced_node(
    tmp_path: Path, anvil: AnvilNode, sp: Contract, provider: str, feed_url: str, token: str
) -> AsyncIterator[ApiNode]:
    rpc = RpcClient(anvil.url, timeout=2, attempts=1)
    client = StreamPaymentClient(rpc, sp.address)
    gate = PaymentGate(
        client=client,
        provider=provider,
        token=token,
        min_remaining=MIN_REMAINING,
        wei_per_core_month=0,
        wei_per_gb_ram_month=0,
        wei_per_gb_disk_month=0,
    )
    feed = PriceFeed([feed_url], glm_ids=("golem", "golem-network-tokens"))
    payments = Payments(client=client, gate=gate)
    async with running_api(tmp_path, payments=payments, price_source=feed) as node:
        yield node
    await rpc.aclose()


async def fetched(pricing: Address[PricingMsg]) -> None:
    """Wait for the pricing actor's first fetch to have an outcome."""
    with trio.fail_after(10):
        while True:
            info = await pricing.call(GetPrices())
            if info.glm_usd.state != "unknown" or info.last_error is not None:
                return
            await trio.sleep(0.02)


async def test_native_streams_pay_the_usd_price_at_the_eth_rate(
    tmp_path: Path, anvil: AnvilNode, parties: Parties, deployed_stream_payment: Contract
) -> None:
    sp, provider, sender = deployed_stream_payment, parties.recipient.address, parties.sender
    price = native_min_rate(USD, Decimal(2000), SIZE)
    assert price == 4 * 10**15 // SECONDS_PER_MONTH  # 8 USD a month at 2000 USD/ETH
    cheap = await open_stream(sp, sender, provider, rate=price - 1)
    exact = await open_stream(sp, sender, provider, rate=price)
    async with (
        feed_server(prices(glm=0.25, eth=2000)) as feed,
        priced_node(tmp_path, anvil, sp, provider, feed.url, ZERO_ADDRESS) as node,
        httpx.AsyncClient(timeout=30) as client,
    ):
        await fetched(node.node.wiring.pricing)
        refused = await create(client, node.url, "cheap", cheap)
        assert (refused.status_code, refused.json()["detail"]) == (
            400,
            f"invalid stream: rate below price: {price - 1} wei/s, {price} wei/s required",
        )
        accepted = await create(client, node.url, "exact", exact)
        assert accepted.status_code == 200, accepted.text
        status = (await client.get(f"{node.url}/admin/status", headers=OPERATOR)).json()
        pricing = status["pricing"]
        assert (pricing["state"], pricing["eth_usd"]["usd"]) == ("known", "2000")
        assert pricing["glm"]["core"] == "20.00000000"  # 5 USD at 0.25 USD/GLM


async def test_glm_streams_pay_the_requestors_own_rate(
    tmp_path: Path,
    anvil: AnvilNode,
    parties: Parties,
    deployed_stream_payment: Contract,
    test_token: Contract,
) -> None:
    sp, provider, sender = deployed_stream_payment, parties.recipient.address, parties.sender
    glm = glm_prices(USD, Decimal("0.2512"))
    # what the requestor computes from the advertised floats, truncated
    month = 1 * float(glm.core) + 1 * float(glm.ram_gb) + 10 * float(glm.disk_gb)
    price = int(month / (730 * 3600) * 1e18)
    assert price == requestor_rate(glm, SIZE) == 12118391834094  # market.md's worked example
    await test_token.transact(sender, "mint", sender.address, 2 * price * RUNWAY)
    await test_token.transact(sender, "approve", sp.address, 2 * price * RUNWAY)
    token = test_token.address
    cheap = await open_stream(sp, sender, provider, rate=price - 1, token=token)
    exact = await open_stream(sp, sender, provider, rate=price, token=token)
    async with (
        feed_server(prices(glm=0.2512)) as feed,
        priced_node(tmp_path, anvil, sp, provider, feed.url, token) as node,
        httpx.AsyncClient(timeout=30) as client,
    ):
        await fetched(node.node.wiring.pricing)
        refused = await create(client, node.url, "cheap", cheap)
        assert refused.status_code == 400
        assert refused.json()["detail"].endswith(f"{price} wei/s required")
        assert (await create(client, node.url, "exact", exact)).status_code == 200


async def test_without_a_price_creates_are_refused_with_a_503(
    tmp_path: Path, anvil: AnvilNode, parties: Parties, deployed_stream_payment: Contract
) -> None:
    sp, provider, sender = deployed_stream_payment, parties.recipient.address, parties.sender
    rich = await open_stream(sp, sender, provider, rate=10**15)
    async with (
        feed_server((200, b"<html>rate limited</html>")) as feed,
        priced_node(tmp_path, anvil, sp, provider, feed.url, ZERO_ADDRESS) as node,
        httpx.AsyncClient(timeout=30) as client,
    ):
        await fetched(node.node.wiring.pricing)
        refused = await create(client, node.url, "rich", rich)
        assert refused.status_code == 503
        assert refused.json()["detail"] == (
            f"no price known: no ETH/USD rate known yet: {feed.url}: not JSON"
        )
        status = (await client.get(f"{node.url}/admin/status", headers=OPERATOR)).json()
        assert (status["pricing"]["state"], status["pricing"]["glm"]) == ("unknown", None)
        listed = (await client.get(f"{node.url}/vms", headers=OPERATOR)).json()
        assert listed == []
