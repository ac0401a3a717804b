"""The payment gate refuses in payment terms; the API turns them into the same HTTP answers.

The price comes from the pricing actor (here a fake that answers a set rate or refuses),
unless the wei-per-month settings override it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from payments_fakes import PROVIDER, RESOURCES, ScriptedStreams, hosted, reading, stream

from actors.api.errors import translate
from actors.api.payments import PaymentGate, PriceUnknown, StreamRefused, StreamsUnreadable
from actors.pricing import GetMinimumRate
from golem_actor.adapters.chain.errors import ChainUnavailable
from golem_actor.domain.streams import SECONDS_PER_MONTH, ZERO_ADDRESS, StreamState
from golem_actor.kernel import Actor, Address

STREAM_RATE = 10  # wei/s, what `stream()` pays


class FakePricing(Actor[GetMinimumRate]):
    """Answers every `GetMinimumRate` with `rate`, or refuses with `PriceUnknown`."""

    def __init__(self, rate: int | None) -> None:
        super().__init__()
        self.rate = rate
        self.asked: list[GetMinimumRate] = []

    async def handle_call(self, request: GetMinimumRate) -> Any:
        self.asked.append(request)
        if self.rate is None:
            raise PriceUnknown("no GLM/USD rate known yet: http://127.0.0.1:9/api/v3: HTTP 500")
        return self.rate


@asynccontextmanager
async def priced(rate: int | None) -> AsyncIterator[tuple[FakePricing, Address[GetMinimumRate]]]:
    actor = FakePricing(rate)
    async with hosted(actor, "pricing") as address:
        yield actor, address


def gate(
    client: ScriptedStreams,
    pricing: Address[GetMinimumRate] | None = None,
    *,
    wei_per_core_month: int = 0,
) -> PaymentGate:
    return PaymentGate(
        client=client,
        provider=PROVIDER,
        token=ZERO_ADDRESS,
        min_remaining=600,
        wei_per_core_month=wei_per_core_month,
        wei_per_gb_ram_month=0,
        wei_per_gb_disk_month=0,
        pricing=pricing,
    )


async def test_an_unreadable_chain_is_a_503_naming_the_cause() -> None:
    client = ScriptedStreams()
    outage = ChainUnavailable("http://127.0.0.1:9/: connection refused")
    client.answer = outage
    async with priced(1) as (_, pricing):
        with pytest.raises(StreamsUnreadable) as refused:
            await gate(client, pricing).admit(7, RESOURCES)
    assert refused.value.__cause__ is outage
    answer = translate(refused.value)
    assert answer is not None
    assert (answer.status, answer.detail) == (
        503,
        "cannot read payment streams from the chain: http://127.0.0.1:9/: connection refused",
    )


@pytest.mark.parametrize(
    ("streams", "reason"),
    [
        ({}, "stream not found"),
        ({7: stream(runway=5_000, halted=True)}, "stream halted"),
        ({7: stream(runway=100)}, "runway too short"),
    ],
)
async def test_a_stream_that_cannot_pay_is_a_400_with_its_reason(
    streams: dict[int, StreamState], reason: str
) -> None:
    client = ScriptedStreams()
    client.answer = reading(streams)
    async with priced(1) as (_, pricing):
        with pytest.raises(StreamRefused) as refused:
            await gate(client, pricing).admit(7, RESOURCES)
    assert refused.value.reason.startswith(reason)
    answer = translate(refused.value)
    assert answer is not None
    assert answer.status == 400
    assert answer.detail.startswith(f"invalid stream: {reason}")


async def test_a_good_stream_is_admitted() -> None:
    client = ScriptedStreams()
    client.answer = reading({7: stream(runway=5_000)})
    async with priced(STREAM_RATE) as (pricing, address):
        await gate(client, address).admit(7, RESOURCES)  # paying exactly the price is enough
    assert client.reads == [[7]]
    (asked,) = pricing.asked
    assert (asked.resources, asked.native) == (RESOURCES, True)  # the token is native ETH


async def test_a_stream_below_the_price_is_a_400_naming_the_rate_needed() -> None:
    client = ScriptedStreams()
    client.answer = reading({7: stream(runway=5_000)})
    async with priced(STREAM_RATE + 1) as (_, pricing):
        with pytest.raises(StreamRefused) as refused:
            await gate(client, pricing).admit(7, RESOURCES)
    answer = translate(refused.value)
    assert answer is not None
    assert (answer.status, answer.detail) == (
        400,
        "invalid stream: rate below price: 10 wei/s, 11 wei/s required",
    )


async def test_without_a_known_price_creates_are_a_503_saying_why() -> None:
    client = ScriptedStreams()
    client.answer = reading({7: stream(runway=5_000)})
    async with priced(None) as (_, pricing):
        with pytest.raises(PriceUnknown) as refused:
            await gate(client, pricing).admit(7, RESOURCES)
    answer = translate(refused.value)
    assert answer is not None
    assert (answer.status, answer.detail) == (
        503,
        "no price known: no GLM/USD rate known yet: http://127.0.0.1:9/api/v3: HTTP 500",
    )
    assert client.reads == []  # nothing asked of the chain without a price
    with pytest.raises(PriceUnknown, match="no price feed and no wei price"):
        await gate(client).admit(7, RESOURCES)  # no pricing actor at all


async def test_the_wei_settings_override_the_pricing_actor() -> None:
    client = ScriptedStreams()
    client.answer = reading({7: stream(runway=5_000)})
    async with priced(None) as (pricing, address):  # it would refuse: not even asked
        await gate(client, address, wei_per_core_month=STREAM_RATE * SECONDS_PER_MONTH).admit(
            7, RESOURCES
        )
        over = (STREAM_RATE + 1) * SECONDS_PER_MONTH
        with pytest.raises(StreamRefused, match="11 wei/s required"):
            await gate(client, address, wei_per_core_month=over).admit(7, RESOURCES)
    assert pricing.asked == []
