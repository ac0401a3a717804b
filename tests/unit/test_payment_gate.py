"""The payment gate refuses in payment terms; the API turns them into the same HTTP answers."""

from __future__ import annotations

import pytest
from payments_fakes import PROVIDER, RESOURCES, ScriptedStreams, reading, stream

from actors.api.errors import translate
from actors.api.payments import PaymentGate, StreamRefused, StreamsUnreadable
from golem_actor.adapters.chain.errors import ChainUnavailable
from golem_actor.domain.streams import ZERO_ADDRESS, StreamState


def gate(client: ScriptedStreams) -> PaymentGate:
    return PaymentGate(
        client=client,
        provider=PROVIDER,
        token=ZERO_ADDRESS,
        min_remaining=600,
        wei_per_core_month=0,
        wei_per_gb_ram_month=0,
        wei_per_gb_disk_month=0,
    )


async def test_an_unreadable_chain_is_a_503_naming_the_cause() -> None:
    client = ScriptedStreams()
    outage = ChainUnavailable("http://127.0.0.1:9/: connection refused")
    client.answer = outage
    with pytest.raises(StreamsUnreadable) as refused:
        await gate(client).admit(7, RESOURCES)
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
    with pytest.raises(StreamRefused) as refused:
        await gate(client).admit(7, RESOURCES)
    assert refused.value.reason.startswith(reason)
    answer = translate(refused.value)
    assert answer is not None
    assert answer.status == 400
    assert answer.detail.startswith(f"invalid stream: {reason}")


async def test_a_good_stream_is_admitted() -> None:
    client = ScriptedStreams()
    client.answer = reading({7: stream(runway=5_000)})
    await gate(client).admit(7, RESOURCES)
    assert client.reads == [[7]]
