"""StreamPayment on a real anvil chain: creation, vesting, withdraw, top-up, terminate, halt.

Expectations are computed from the timestamps of the blocks the transactions landed in,
with the contract's formula ``vested = min((clamp(t, start, stop) - start) * rate, deposit)``.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import pytest

from golem_actor.adapters.chain.artifacts import load_artifact

from .chain_helpers import ZERO_ADDRESS, Chain, Contract, Receipt, Reverted
from .conftest import Parties

pytestmark = pytest.mark.e2e

RATE = 10**9  # wei per second
DURATION = 1_000  # seconds
REMAINDER = 7  # wei that never vest (deposit is not a multiple of the rate)
DEPOSIT = RATE * DURATION + REMAINDER


class StreamRow(NamedTuple):
    token: str
    sender: str
    recipient: str
    start_time: int
    stop_time: int
    rate_per_second: int
    deposit: int
    withdrawn: int
    halted: bool


async def stream(sp: Contract, stream_id: int) -> StreamRow:
    return StreamRow(*await sp.call("streams", stream_id))


def vested(row: StreamRow, t: int) -> int:
    clamped = min(max(t, row.start_time), row.stop_time)
    return min((clamped - row.start_time) * row.rate_per_second, row.deposit)


def only_event(sp: Contract, receipt: Receipt, name: str) -> dict[str, Any]:
    events = [e for e in sp.events(receipt) if e.name == name]
    assert len(events) == 1, sp.events(receipt)
    return dict(events[0].args)


async def create_native(
    sp: Contract, parties: Parties, *, deposit: int = DEPOSIT, rate: int = RATE
) -> int:
    receipt = await sp.transact(
        parties.sender,
        "createStream",
        ZERO_ADDRESS,
        parties.recipient.address,
        deposit,
        rate,
        value=deposit,
    )
    stream_id: int = only_event(sp, receipt, "StreamCreated")["streamId"]
    return stream_id


async def withdraw(sp: Contract, parties: Parties, stream_id: int) -> tuple[int, Receipt]:
    receipt = await sp.transact(parties.recipient, "withdraw", stream_id)
    event = only_event(sp, receipt, "Withdraw")
    assert event["streamId"] == stream_id
    assert event["recipient"] == parties.recipient.address
    amount: int = event["amount"]
    return amount, receipt


# --- create -------------------------------------------------------------------------------


async def test_create_native_stream(
    chain: Chain, parties: Parties, deployed_stream_payment: Contract
) -> None:
    sp = deployed_stream_payment
    assert await sp.call("oracle") == (parties.oracle.address,)
    assert await sp.call("nextStreamId") == (1,)
    # The return value, seen through a dry run.
    data = sp.encode_call("createStream", ZERO_ADDRESS, parties.recipient.address, DEPOSIT, RATE)
    raw = await chain.call(sp.address, data, sender=parties.sender.address, value=DEPOSIT)
    assert int.from_bytes(raw, "big") == 1

    receipt = await sp.transact(
        parties.sender,
        "createStream",
        ZERO_ADDRESS,
        parties.recipient.address,
        DEPOSIT,
        RATE,
        value=DEPOSIT,
    )
    start = receipt.timestamp
    assert only_event(sp, receipt, "StreamCreated") == {
        "streamId": 1,
        "sender": parties.sender.address,
        "recipient": parties.recipient.address,
        "token": ZERO_ADDRESS,
        "deposit": DEPOSIT,
        "ratePerSecond": RATE,
        "startTime": start,
        "stopTime": start + DURATION,
    }
    assert await stream(sp, 1) == StreamRow(
        token=ZERO_ADDRESS,
        sender=parties.sender.address,
        recipient=parties.recipient.address,
        start_time=start,
        stop_time=start + DURATION,
        rate_per_second=RATE,
        deposit=DEPOSIT,
        withdrawn=0,
        halted=False,
    )
    assert await sp.call("nextStreamId") == (2,)
    assert await chain.balance(sp.address) == DEPOSIT

    assert await create_native(sp, parties, deposit=5 * RATE) == 2
    assert await sp.call("nextStreamId") == (3,)
    assert await chain.balance(sp.address) == DEPOSIT + 5 * RATE


async def test_stream_zero_and_unknown_ids_do_not_exist(
    parties: Parties, deployed_stream_payment: Contract
) -> None:
    sp = deployed_stream_payment
    assert await stream(sp, 0) == StreamRow(
        ZERO_ADDRESS, ZERO_ADDRESS, ZERO_ADDRESS, 0, 0, 0, 0, 0, False
    )
    for stream_id in (0, 1, 99):
        with pytest.raises(Reverted, match="no-stream"):
            await sp.transact(parties.recipient, "withdraw", stream_id)
        with pytest.raises(Reverted, match="no-stream"):
            await sp.transact(parties.sender, "terminate", stream_id)
        with pytest.raises(Reverted, match="no-stream"):
            await sp.transact(parties.sender, "topUp", stream_id, RATE, value=RATE)
        with pytest.raises(Reverted, match="no-stream"):
            await sp.transact(parties.oracle, "haltStream", stream_id)


@pytest.mark.parametrize(
    ("recipient", "deposit", "rate", "value", "reason"),
    [
        pytest.param(
            ZERO_ADDRESS, DEPOSIT, RATE, DEPOSIT, "recipient is zero", id="zero-recipient"
        ),
        pytest.param(None, 0, RATE, 0, "deposit is zero", id="zero-deposit"),
        pytest.param(None, DEPOSIT, 0, DEPOSIT, "rate is zero", id="zero-rate"),
        pytest.param(None, RATE - 1, RATE, RATE - 1, "deposit below rate", id="deposit-below-rate"),
        pytest.param(None, DEPOSIT, RATE, DEPOSIT - 1, "msg.value != amount", id="value-too-low"),
        pytest.param(None, DEPOSIT, RATE, DEPOSIT + 1, "msg.value != amount", id="value-too-high"),
        pytest.param(None, DEPOSIT, RATE, 0, "msg.value != amount", id="no-value"),
    ],
)
async def test_create_rejects_bad_input(
    chain: Chain,
    parties: Parties,
    deployed_stream_payment: Contract,
    recipient: str | None,
    deposit: int,
    rate: int,
    value: int,
    reason: str,
) -> None:
    sp = deployed_stream_payment
    to = parties.recipient.address if recipient is None else recipient
    with pytest.raises(Reverted, match=re.escape(reason)):
        await sp.transact(
            parties.sender, "createStream", ZERO_ADDRESS, to, deposit, rate, value=value
        )
    assert await sp.call("nextStreamId") == (1,)
    assert await chain.balance(sp.address) == 0


async def test_constructor_rejects_zero_oracle(chain: Chain, parties: Parties) -> None:
    with pytest.raises(Reverted, match="oracle is zero"):
        await Contract.deploy(chain, parties.deployer, load_artifact("StreamPayment"), ZERO_ADDRESS)


# --- vesting and withdraw -----------------------------------------------------------------


async def test_vesting_follows_time_through_withdrawals(
    chain: Chain, parties: Parties, deployed_stream_payment: Contract
) -> None:
    sp = deployed_stream_payment
    stream_id = await create_native(sp, parties)
    row = await stream(sp, stream_id)

    await chain.increase_time(100)
    first, receipt = await withdraw(sp, parties, stream_id)
    assert receipt.timestamp - row.start_time >= 100
    assert first == vested(row, receipt.timestamp) == (receipt.timestamp - row.start_time) * RATE
    assert (await stream(sp, stream_id)).withdrawn == first

    await chain.increase_time(250)
    second, receipt = await withdraw(sp, parties, stream_id)
    assert second == vested(row, receipt.timestamp) - first
    assert (await stream(sp, stream_id)).withdrawn == first + second

    # Past the stop time only duration * rate has vested: the remainder never does.
    await chain.increase_time(2 * DURATION)
    third, receipt = await withdraw(sp, parties, stream_id)
    assert receipt.timestamp > row.stop_time
    assert first + second + third == DURATION * RATE == DEPOSIT - REMAINDER
    assert await chain.balance(sp.address) == REMAINDER

    with pytest.raises(Reverted, match="nothing to withdraw"):
        await sp.transact(parties.recipient, "withdraw", stream_id)
    final = await stream(sp, stream_id)
    assert final == row._replace(withdrawn=DURATION * RATE)


async def test_withdraw_is_for_the_recipient_and_pays_them(
    chain: Chain, parties: Parties, deployed_stream_payment: Contract
) -> None:
    sp = deployed_stream_payment
    stream_id = await create_native(sp, parties)
    await chain.increase_time(10)
    for intruder in (parties.sender, parties.stranger, parties.oracle):
        with pytest.raises(Reverted, match="not recipient"):
            await sp.transact(intruder, "withdraw", stream_id)

    before = await chain.balance(parties.recipient.address)
    held = await chain.balance(sp.address)
    amount, receipt = await withdraw(sp, parties, stream_id)
    assert amount > 0
    assert await chain.balance(parties.recipient.address) == before + amount - receipt.fee
    assert await chain.balance(sp.address) == held - amount


# --- top-up -------------------------------------------------------------------------------


async def test_top_up_extends_a_running_stream(
    chain: Chain, parties: Parties, deployed_stream_payment: Contract
) -> None:
    sp = deployed_stream_payment
    stream_id = await create_native(sp, parties)
    row = await stream(sp, stream_id)
    amount = 500 * RATE + 3

    for intruder in (parties.recipient, parties.stranger, parties.oracle):
        with pytest.raises(Reverted, match="not sender"):
            await sp.transact(intruder, "topUp", stream_id, amount, value=amount)
    with pytest.raises(Reverted, match=r"msg\.value != amount"):
        await sp.transact(parties.sender, "topUp", stream_id, amount, value=amount - 1)
    with pytest.raises(Reverted, match="amount below rate"):
        await sp.transact(parties.sender, "topUp", stream_id, RATE - 1, value=RATE - 1)

    receipt = await sp.transact(parties.sender, "topUp", stream_id, amount, value=amount)
    assert receipt.timestamp < row.stop_time
    new_stop = row.stop_time + 500
    assert only_event(sp, receipt, "ToppedUp") == {
        "streamId": stream_id,
        "amount": amount,
        "newStopTime": new_stop,
    }
    assert await stream(sp, stream_id) == row._replace(stop_time=new_stop, deposit=DEPOSIT + amount)
    assert await chain.balance(sp.address) == DEPOSIT + amount


async def test_top_up_after_expiry_restarts_and_credits_the_gap(
    chain: Chain, parties: Parties, deployed_stream_payment: Contract
) -> None:
    sp = deployed_stream_payment
    stream_id = await create_native(sp, parties, deposit=100 * RATE)
    row = await stream(sp, stream_id)
    await chain.increase_time(150)  # expired 50 s ago

    receipt = await sp.transact(parties.sender, "topUp", stream_id, 100 * RATE, value=100 * RATE)
    topped_at = receipt.timestamp
    assert topped_at > row.stop_time
    assert only_event(sp, receipt, "ToppedUp")["newStopTime"] == topped_at + 100
    row = await stream(sp, stream_id)
    assert row.stop_time == topped_at + 100
    assert row.deposit == 200 * RATE

    # Vesting still counts from startTime: the time the stream sat expired is credited now.
    amount, receipt = await withdraw(sp, parties, stream_id)
    assert amount == vested(row, receipt.timestamp) == (receipt.timestamp - row.start_time) * RATE
    assert amount > 100 * RATE

    # The whole deposit has vested at start + 200 s, before the new stopTime.
    await chain.increase_time(60)
    rest, receipt = await withdraw(sp, parties, stream_id)
    assert receipt.timestamp < row.stop_time
    assert amount + rest == 200 * RATE
    assert await chain.balance(sp.address) == 0


# --- terminate ----------------------------------------------------------------------------


@pytest.mark.parametrize("by", ["sender", "recipient"])
async def test_terminate_splits_and_removes_the_stream(
    chain: Chain, parties: Parties, deployed_stream_payment: Contract, by: str
) -> None:
    sp = deployed_stream_payment
    stream_id = await create_native(sp, parties)
    row = await stream(sp, stream_id)
    await chain.increase_time(100)
    withdrawn, _ = await withdraw(sp, parties, stream_id)
    await chain.increase_time(200)

    for intruder in (parties.stranger, parties.oracle):
        with pytest.raises(Reverted, match="not a party"):
            await sp.transact(intruder, "terminate", stream_id)

    terminator = parties.sender if by == "sender" else parties.recipient
    sender_before = await chain.balance(parties.sender.address)
    recipient_before = await chain.balance(parties.recipient.address)
    receipt = await sp.transact(terminator, "terminate", stream_id)

    at_end = vested(row, receipt.timestamp)
    refund, payout = DEPOSIT - at_end, at_end - withdrawn
    assert payout > 0
    assert refund > REMAINDER
    assert only_event(sp, receipt, "Terminated") == {
        "streamId": stream_id,
        "senderRefund": refund,
        "recipientPayout": payout,
    }
    sender_fee = receipt.fee if by == "sender" else 0
    recipient_fee = receipt.fee if by == "recipient" else 0
    assert await chain.balance(parties.sender.address) == sender_before + refund - sender_fee
    assert await chain.balance(parties.recipient.address) == (
        recipient_before + payout - recipient_fee
    )
    assert await chain.balance(sp.address) == 0
    # Only the recipient is zeroed; it marks the stream as gone.
    assert await stream(sp, stream_id) == row._replace(recipient=ZERO_ADDRESS, withdrawn=withdrawn)

    await chain.increase_time(10)
    with pytest.raises(Reverted, match="no-stream"):
        await sp.transact(parties.recipient, "withdraw", stream_id)
    with pytest.raises(Reverted, match="no-stream"):
        await sp.transact(parties.sender, "terminate", stream_id)
    with pytest.raises(Reverted, match="no-stream"):
        await sp.transact(parties.sender, "topUp", stream_id, RATE, value=RATE)
    with pytest.raises(Reverted, match="no-stream"):
        await sp.transact(parties.oracle, "haltStream", stream_id)


# --- halt ---------------------------------------------------------------------------------


async def test_halt_is_for_the_oracle_and_freezes_the_stream(
    chain: Chain, parties: Parties, deployed_stream_payment: Contract
) -> None:
    sp = deployed_stream_payment
    stream_id = await create_native(sp, parties)
    row = await stream(sp, stream_id)
    await chain.increase_time(100)

    for intruder in (parties.sender, parties.recipient, parties.stranger):
        with pytest.raises(Reverted, match="not oracle"):
            await sp.transact(intruder, "haltStream", stream_id)

    receipt = await sp.transact(parties.oracle, "haltStream", stream_id)
    halted_at = receipt.timestamp
    assert only_event(sp, receipt, "Halted") == {"streamId": stream_id}
    assert await stream(sp, stream_id) == row._replace(stop_time=halted_at, halted=True)

    with pytest.raises(Reverted, match="halted"):
        await sp.transact(parties.sender, "topUp", stream_id, RATE, value=RATE)
    with pytest.raises(Reverted, match="halted"):
        await sp.transact(parties.oracle, "haltStream", stream_id)

    # Nothing vests after the halt: the recipient gets exactly what vested until then.
    await chain.increase_time(300)
    amount, _ = await withdraw(sp, parties, stream_id)
    assert amount == (halted_at - row.start_time) * RATE
    with pytest.raises(Reverted, match="nothing to withdraw"):
        await sp.transact(parties.recipient, "withdraw", stream_id)

    receipt = await sp.transact(parties.sender, "terminate", stream_id)
    assert only_event(sp, receipt, "Terminated") == {
        "streamId": stream_id,
        "senderRefund": DEPOSIT - amount,
        "recipientPayout": 0,
    }


async def test_halt_after_expiry_keeps_the_stop_time(
    chain: Chain, parties: Parties, deployed_stream_payment: Contract
) -> None:
    sp = deployed_stream_payment
    stream_id = await create_native(sp, parties, deposit=10 * RATE)
    row = await stream(sp, stream_id)
    await chain.increase_time(30)
    await sp.transact(parties.oracle, "haltStream", stream_id)
    assert await stream(sp, stream_id) == row._replace(halted=True)


# --- ERC20 mode ---------------------------------------------------------------------------


async def test_erc20_stream_create_withdraw_terminate(
    chain: Chain, parties: Parties, deployed_stream_payment: Contract, test_token: Contract
) -> None:
    sp, token = deployed_stream_payment, test_token
    await token.transact(parties.stranger, "mint", parties.sender.address, 2 * DEPOSIT)

    args = (token.address, parties.recipient.address, DEPOSIT, RATE)
    with pytest.raises(Reverted, match="token transfer failed"):  # no allowance yet
        await sp.transact(parties.sender, "createStream", *args)
    await token.transact(parties.sender, "approve", sp.address, DEPOSIT)
    with pytest.raises(Reverted, match="ETH sent to token stream"):
        await sp.transact(parties.sender, "createStream", *args, value=DEPOSIT)

    receipt = await sp.transact(parties.sender, "createStream", *args)
    created = only_event(sp, receipt, "StreamCreated")
    stream_id: int = created["streamId"]
    assert created["token"] == token.address
    assert await token.call("balanceOf", sp.address) == (DEPOSIT,)
    assert await token.call("balanceOf", parties.sender.address) == (DEPOSIT,)
    assert await token.call("allowance", parties.sender.address, sp.address) == (0,)
    assert await chain.balance(sp.address) == 0
    row = await stream(sp, stream_id)
    assert row.token == token.address

    await chain.increase_time(100)
    amount, receipt = await withdraw(sp, parties, stream_id)
    assert amount == vested(row, receipt.timestamp)
    assert await token.call("balanceOf", parties.recipient.address) == (amount,)
    assert await token.call("balanceOf", sp.address) == (DEPOSIT - amount,)

    receipt = await sp.transact(parties.sender, "terminate", stream_id)
    ended = only_event(sp, receipt, "Terminated")
    assert ended["senderRefund"] == DEPOSIT - vested(row, receipt.timestamp)
    assert await token.call("balanceOf", sp.address) == (0,)
    assert await token.call("balanceOf", parties.sender.address) == (
        DEPOSIT + ended["senderRefund"],
    )
    assert await token.call("balanceOf", parties.recipient.address) == (
        amount + ended["recipientPayout"],
    )
