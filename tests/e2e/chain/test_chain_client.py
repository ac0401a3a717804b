"""The node's chain client on a real anvil: batched reads, withdraws, nonces, reverts, fees.

The provider is ``parties.recipient`` and the requestor ``parties.sender``; both send
through :class:`TransactionSender` (the node's code). The test helpers of
``chain_helpers`` are used only where the oracle or "another wallet" must act, and to
cross-check decoding against an independent path.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from golem_actor.adapters.chain.deployments import find_deployment, read_deployment
from golem_actor.adapters.chain.errors import FeeCapExceeded, TransactionReverted
from golem_actor.adapters.chain.rpc import RpcClient
from golem_actor.adapters.chain.stream_payment import StreamPaymentClient
from golem_actor.adapters.chain.transactions import TransactionSender, TxReceipt, TxRequest
from golem_actor.domain.streams import (
    StreamState,
    should_withdraw,
    vested_capped,
    withdrawable_capped,
)

from .chain_helpers import Chain, Contract
from .conftest import AnvilNode, Parties

pytestmark = pytest.mark.e2e

RATE = 10**12  # wei per second: a withdraw must be worth its gas on anvil
DEPOSIT = RATE * 10_000
FEE_CAP = 1_000 * 10**9


class Counter:
    def __init__(self) -> None:
        self.requests = 0

    async def __call__(self, request: httpx.Request) -> None:
        self.requests += 1


@pytest.fixture
async def counted() -> AsyncIterator[tuple[httpx.AsyncClient, Counter]]:
    counter = Counter()
    async with httpx.AsyncClient(trust_env=False, event_hooks={"request": [counter]}) as http:
        yield http, counter


@pytest.fixture
async def rpc(
    anvil: AnvilNode, counted: tuple[httpx.AsyncClient, Counter]
) -> AsyncIterator[RpcClient]:
    async with RpcClient(anvil.url, client=counted[0], timeout=10.0) as client:
        yield client


@pytest.fixture
def sp(rpc: RpcClient, deployed_stream_payment: Contract) -> StreamPaymentClient:
    return StreamPaymentClient(rpc, deployed_stream_payment.address)


@pytest.fixture
def provider(rpc: RpcClient, parties: Parties) -> TransactionSender:
    return TransactionSender(rpc, parties.recipient.key, max_fee_cap_wei=FEE_CAP)


@pytest.fixture
def requestor(rpc: RpcClient, parties: Parties) -> TransactionSender:
    return TransactionSender(rpc, parties.sender.key, max_fee_cap_wei=FEE_CAP)


def created_id(receipt: TxReceipt) -> int:
    return int(receipt.logs[0]["topics"][1], 16)  # StreamCreated(uint256 indexed streamId, ...)


async def open_stream(
    requestor: TransactionSender, sp: StreamPaymentClient, recipient: str, deposit: int = DEPOSIT
) -> int:
    return created_id(await requestor.send(sp.create_stream_tx(recipient, deposit, RATE)))


async def block_timestamp(chain: Chain, number: int) -> int:
    block = await chain.rpc.request("eth_getBlockByNumber", hex(number), False)
    return int(block["timestamp"], 16)


async def tx_count(chain: Chain, address: str) -> int:
    return int(await chain.rpc.request("eth_getTransactionCount", address, "latest"), 16)


async def test_batched_reads_equal_one_by_one_reads(
    chain: Chain,
    parties: Parties,
    deployed_stream_payment: Contract,
    sp: StreamPaymentClient,
    requestor: TransactionSender,
    provider: TransactionSender,
    counted: tuple[httpx.AsyncClient, Counter],
) -> None:
    # 100 streams opened by quick concurrent submits: the sender's local nonce keeps them apart.
    hashes: list[str] = []

    async def submit(i: int) -> None:
        tx = sp.create_stream_tx(parties.recipient.address, DEPOSIT + i * RATE, RATE)
        hashes.append(await requestor.submit(tx))

    async with trio.open_nursery() as nursery:
        for i in range(100):
            nursery.start_soon(submit, i)
    receipts = [await requestor.wait_receipt(h) for h in hashes]
    assert all(r.status == 1 for r in receipts)
    ids = sorted(created_id(r) for r in receipts)
    assert ids == list(range(1, 101))

    # Vary the rows: terminated, halted, partly withdrawn.
    await chain.increase_time(50)
    await requestor.send(sp.terminate_tx(ids[0]))
    await deployed_stream_payment.transact(parties.oracle, "haltStream", ids[1])
    await provider.send(sp.withdraw_tx(ids[2]))

    _, counter = counted
    before = counter.requests
    batched = await sp.get_streams([*ids, 10_000])
    assert counter.requests == before + 1  # one HTTP request for 101 reads
    one_by_one = {i: await sp.get_stream(i) for i in ids}
    assert await sp.get_stream(10_000) is None
    assert batched == one_by_one
    assert len(batched) == 100

    assert batched[ids[0]].recipient == "0x0000000000000000000000000000000000000000"
    assert batched[ids[1]].halted
    assert batched[ids[2]].withdrawn > 0
    for stream_id in (ids[2], ids[50]):  # decoding agrees with the test helper's path
        row = await deployed_stream_payment.call("streams", stream_id)
        assert tuple(msgspec_fields(batched[stream_id])) == row

    before = counter.requests
    reading = await sp.read_streams(ids)
    assert counter.requests == before + 1
    assert reading.streams == batched
    assert reading.now == await sp.latest_block_timestamp() == await chain.latest_timestamp()


def msgspec_fields(state: StreamState) -> list[object]:
    return [getattr(state, name) for name in state.__struct_fields__]


async def test_withdraw_pays_vested_minus_gas(
    chain: Chain,
    parties: Parties,
    sp: StreamPaymentClient,
    requestor: TransactionSender,
    provider: TransactionSender,
) -> None:
    stream_id = await open_stream(requestor, sp, provider.address)
    await chain.increase_time(120)
    stream = await sp.get_stream(stream_id)
    assert stream is not None
    now = await sp.latest_block_timestamp()
    tx = sp.withdraw_tx(stream_id)
    cost = await provider.estimate_cost(tx)
    assert 0 < cost < withdrawable_capped(stream, now)
    assert should_withdraw(withdrawable_capped(stream, now), min_wei=0, gas_cost_wei=cost)

    balance = await provider.balance()
    receipt = await provider.send(tx)
    mined_at = await block_timestamp(chain, receipt.block_number)
    paid = vested_capped(stream, mined_at)
    assert paid >= 120 * RATE
    assert receipt.fee_wei <= cost
    assert await provider.balance() == balance + paid - receipt.fee_wei
    after = await sp.get_stream(stream_id)
    assert after is not None
    assert after.withdrawn == paid
    assert await provider.balance(parties.stranger.address) == await chain.balance(
        parties.stranger.address
    )


async def test_nonces_across_quick_transactions_and_a_resync(
    chain: Chain,
    parties: Parties,
    sp: StreamPaymentClient,
    requestor: TransactionSender,
) -> None:
    stream_id = await open_stream(requestor, sp, parties.recipient.address)
    start = await tx_count(chain, requestor.address)
    receipts: list[TxReceipt] = []

    async def top_up() -> None:
        receipts.append(await requestor.send(sp.top_up_tx(stream_id, 100 * RATE)))

    async with trio.open_nursery() as nursery:
        for _ in range(8):
            nursery.start_soon(top_up)
    nonces = []
    for receipt in receipts:
        tx = await chain.rpc.request("eth_getTransactionByHash", receipt.tx_hash)
        nonces.append(int(tx["nonce"], 16))
    assert sorted(nonces) == list(range(start, start + 8))
    stream = await sp.get_stream(stream_id)
    assert stream is not None
    assert stream.deposit == DEPOSIT + 8 * 100 * RATE

    # Another wallet with the same key spends the next nonce: "nonce too low", resync, retry.
    await chain.send(parties.sender, to=parties.stranger.address, data=b"", value=1)
    receipt = await requestor.send(TxRequest(to=parties.stranger.address, value=2))
    assert receipt.status == 1
    assert await tx_count(chain, requestor.address) == start + 10


async def test_a_revert_raises_with_the_contract_reason(
    chain: Chain,
    parties: Parties,
    sp: StreamPaymentClient,
    requestor: TransactionSender,
    provider: TransactionSender,
) -> None:
    stream_id = await open_stream(requestor, sp, parties.stranger.address)
    await chain.increase_time(10)
    sent = await tx_count(chain, provider.address)

    # Caught by the gas estimate: nothing is signed or sent.
    with pytest.raises(TransactionReverted) as caught:
        await provider.send(sp.withdraw_tx(stream_id))
    assert caught.value.reason == "not recipient"
    assert caught.value.tx_hash is None
    assert await tx_count(chain, provider.address) == sent

    # Mined and reverted (gas given, no estimate): the receipt's status is checked and the
    # reason comes from replaying the call.
    forced = TxRequest(to=sp.address, data=sp.withdraw_tx(stream_id).data, gas=200_000)
    with pytest.raises(TransactionReverted) as caught:
        await provider.send(forced)
    assert caught.value.reason == "not recipient"
    assert caught.value.tx_hash is not None
    receipt = await chain.rpc.request("eth_getTransactionReceipt", caught.value.tx_hash)
    assert int(receipt["status"], 16) == 0
    assert await tx_count(chain, provider.address) == sent + 1

    # The spent nonce was counted: the next transaction goes through.
    assert (await provider.send(TxRequest(to=parties.stranger.address, value=1))).status == 1


async def test_fee_cap(chain: Chain, parties: Parties, rpc: RpcClient) -> None:
    poor = TransactionSender(rpc, parties.recipient.key, max_fee_cap_wei=1)
    sent = await tx_count(chain, poor.address)
    with pytest.raises(FeeCapExceeded, match="above the cap 1 wei/gas") as caught:
        await poor.send(TxRequest(to=parties.stranger.address, value=1))
    assert caught.value.needed_wei > 1
    assert await tx_count(chain, poor.address) == sent

    # A cap between baseFee + tip and 2 * baseFee + tip bounds maxFee instead of refusing.
    tight = TransactionSender(
        rpc, parties.recipient.key, max_fee_cap_wei=FEE_CAP, priority_fee_wei=1
    )
    base = (await tight.fees()).base_fee_per_gas
    tight.max_fee_cap_wei = base + base // 2 + 1
    fees = await tight.fees()
    assert fees.max_fee_per_gas == tight.max_fee_cap_wei
    receipt = await tight.send(TxRequest(to=parties.stranger.address, value=1))
    assert receipt.effective_gas_price <= tight.max_fee_cap_wei


async def test_deploy_command_writes_a_usable_file(
    anvil: AnvilNode, parties: Parties, rpc: RpcClient, tmp_path: Path
) -> None:
    out = tmp_path / "deployments" / "local.json"
    argv = [
        sys.executable, "-m", "golem_actor.adapters.chain.deploy",
        "--rpc", anvil.url, "--key", "0x" + bytes(parties.deployer.key).hex(),
        "--out", str(out), "--oracle", parties.oracle.address,
    ]  # fmt: skip
    done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert b"StreamPayment at" in done.stdout

    deployment = read_deployment(out)
    assert find_deployment("local", data_dir=tmp_path, env={}) == deployment
    assert deployment.network == "local"
    assert deployment.oracle == parties.oracle.address
    assert deployment.token == "0x0000000000000000000000000000000000000000"

    sp = StreamPaymentClient(rpc, deployment.address)
    assert await sp.oracle() == parties.oracle.address
    assert await sp.next_stream_id() == 1
    requestor = TransactionSender(rpc, parties.sender.key, max_fee_cap_wei=FEE_CAP)
    stream_id = await open_stream(requestor, sp, parties.recipient.address)
    stream = await sp.get_stream(stream_id)
    assert stream is not None
    assert (stream.sender, stream.deposit) == (parties.sender.address, DEPOSIT)


async def test_deploy_command_reports_failures(anvil: AnvilNode, tmp_path: Path) -> None:
    out = tmp_path / "local.json"
    base = [sys.executable, "-m", "golem_actor.adapters.chain.deploy", "--out", str(out)]
    bad_key = [*base, "--rpc", anvil.url, "--key", "0x1234"]
    done = await trio.run_process(bad_key, capture_stdout=True, capture_stderr=True, check=False)
    assert done.returncode == 2
    assert b"--key" in done.stderr
    # A funded key is needed: a fresh one cannot pay for the deployment.
    fresh = "0x" + "11" * 32
    broke = [*base, "--rpc", anvil.url, "--key", fresh]
    done = await trio.run_process(broke, capture_stdout=True, capture_stderr=True, check=False)
    assert done.returncode == 1
    assert b"deploy:" in done.stderr
    assert not out.exists()
