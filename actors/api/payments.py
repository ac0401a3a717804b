"""Payment streams as the API sees them: the create gate and the stream views.

Reads go straight to the chain through the StreamPayment client (reads are stateless;
the wallet actor owns only the key, the nonce and transactions). A chain that cannot be
read makes the answer 503 and nothing is created; a stream that cannot pay is a 400 that
names the reason (the rules live in domain/streams.py).

The gate speaks in payment terms (`StreamRefused`, `StreamsUnreadable`), not HTTP: the
API's error translation (errors.py) turns them into those statuses, so the gate can be
used by any part of the node.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from golem_actor.adapters.chain.errors import ChainError
from golem_actor.adapters.chain.stream_payment import StreamPaymentClient, StreamsReading
from golem_actor.domain.resources import Resources
from golem_actor.domain.streams import StreamState, check_stream, computed, price_wei_per_second
from golem_actor.kernel import ActorError

__all__ = [
    "ChainBody",
    "ComputedBody",
    "PaymentGate",
    "StreamRefused",
    "StreamStatus",
    "StreamsUnreadable",
]


class StreamRefused(ActorError):
    """The stream cannot pay for the VM; `reason` is the rule it breaks."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid stream: {reason}")
        self.reason = reason


class StreamsUnreadable(ActorError):
    """The chain could not be read (transient): nothing can be decided about streams."""

    def __init__(self, error: ChainError) -> None:
        super().__init__(f"cannot read payment streams from the chain: {error}")


class ChainBody(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    token: str
    sender: str
    recipient: str
    start_time: int
    stop_time: int
    rate_per_second: int
    deposit: int
    withdrawn: int
    halted: bool


class ComputedBody(msgspec.Struct, frozen=True, kw_only=True):
    now: int
    remaining_seconds: int
    vested_wei: int
    withdrawable_wei: int


class StreamStatus(msgspec.Struct, frozen=True, kw_only=True):
    vm_id: str
    stream_id: int
    chain: ChainBody
    computed: ComputedBody
    verified: bool
    reason: str


@dataclass(frozen=True, kw_only=True)
class PaymentGate:
    client: StreamPaymentClient
    provider: str  # this node's address: the only acceptable recipient
    token: str  # the zero address: native ETH
    min_remaining: int
    wei_per_core_month: int
    wei_per_gb_ram_month: int
    wei_per_gb_disk_month: int

    async def read(self, stream_ids: list[int]) -> StreamsReading:
        try:
            return await self.client.read_streams(stream_ids)
        except ChainError as error:
            raise StreamsUnreadable(error) from error

    def price(self, resources: Resources) -> int:
        return price_wei_per_second(
            resources,
            wei_per_core_month=self.wei_per_core_month,
            wei_per_gb_ram_month=self.wei_per_gb_ram_month,
            wei_per_gb_disk_month=self.wei_per_gb_disk_month,
        )

    def reason(self, stream: StreamState | None, now: int, resources: Resources) -> str | None:
        return check_stream(
            stream,
            provider=self.provider,
            now=now,
            token=self.token,
            min_remaining=self.min_remaining,
            price_wei_per_second=self.price(resources),
            already_used=False,  # vm_lifecycle refuses a stream that backs a live VM
        )

    async def admit(self, stream_id: int, resources: Resources) -> None:
        """Refuse (`StreamRefused`, with the reason) a stream that cannot pay for this VM."""
        reading = await self.read([stream_id])
        why = self.reason(reading.streams.get(stream_id), reading.now, resources)
        if why is not None:
            raise StreamRefused(why)

    def status(
        self, vm_id: str, stream_id: int, reading: StreamsReading, resources: Resources
    ) -> StreamStatus | None:
        stream = reading.streams.get(stream_id)
        if stream is None:
            return None
        why = self.reason(stream, reading.now, resources)
        numbers = computed(stream, reading.now)
        return StreamStatus(
            vm_id=vm_id,
            stream_id=stream_id,
            chain=msgspec.convert(stream.chain_json(), ChainBody),
            computed=ComputedBody(
                now=numbers.now,
                remaining_seconds=numbers.remaining_seconds,
                vested_wei=numbers.vested_wei,
                withdrawable_wei=numbers.withdrawable_wei,
            ),
            verified=why is None,
            reason=why or "ok",
        )
