"""Payment streams as the API sees them: the create gate and the stream views.

Reads go straight to the chain through the StreamPayment client (reads are stateless;
the wallet actor owns only the key, the nonce and transactions). A chain that cannot be
read makes the answer 503 and nothing is created; a stream that cannot pay is a 400 that
names the reason (the rules live in domain/streams.py).

The gate speaks in payment terms (`StreamRefused`, `StreamsUnreadable`), not HTTP: the
API's error translation (errors.py) turns them into those statuses, so the gate can be
used by any part of the node.

The price a stream must pay: with any wei-per-month setting above zero (the explicit
override), that price; otherwise the pricing actor's minimum rate for the VM's resources
in the node's token (GLM: the requestor's own formula on the advertised GLM prices;
native: the USD price at the ETH/USD rate). With neither, or while the pricing actor
knows no usable rate, nothing is admitted (`PriceUnknown`, a 503). The stream views of
VMs already running check their stream against the override only: a stream admitted at
the price of its day stays verified when the exchange rate moves.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from actors.pricing import GetMinimumRate, PriceUnknown
from golem_actor.adapters.chain.errors import ChainError
from golem_actor.adapters.chain.stream_payment import StreamPaymentClient, StreamsReading
from golem_actor.domain.resources import Resources
from golem_actor.domain.streams import (
    ZERO_ADDRESS,
    StreamState,
    check_stream,
    computed,
    price_wei_per_second,
)
from golem_actor.kernel import ActorError, Address, KernelError

__all__ = [
    "ChainBody",
    "ComputedBody",
    "PaymentGate",
    "PriceUnknown",
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
    pricing: Address[GetMinimumRate] | None = None  # the pricing actor, once the tree runs

    @property
    def override(self) -> bool:
        """The wei-per-month settings set the price (any of them above zero)."""
        return any((self.wei_per_core_month, self.wei_per_gb_ram_month, self.wei_per_gb_disk_month))

    @property
    def native(self) -> bool:
        return self.token.lower() == ZERO_ADDRESS

    async def read(self, stream_ids: list[int]) -> StreamsReading:
        try:
            return await self.client.read_streams(stream_ids)
        except ChainError as error:
            raise StreamsUnreadable(error) from error

    def price(self, resources: Resources) -> int:
        """The override's price (0 without one)."""
        return price_wei_per_second(
            resources,
            wei_per_core_month=self.wei_per_core_month,
            wei_per_gb_ram_month=self.wei_per_gb_ram_month,
            wei_per_gb_disk_month=self.wei_per_gb_disk_month,
        )

    async def minimum_rate(self, resources: Resources) -> int:
        """The least wei per second a new VM's stream must pay (`PriceUnknown`: no price)."""
        if self.override:
            return self.price(resources)
        if self.pricing is None:
            raise PriceUnknown("this node has no price feed and no wei price set")
        request = GetMinimumRate(resources=resources, native=self.native)
        try:
            return await self.pricing.call(request)
        except PriceUnknown:
            raise
        except KernelError as error:  # crashed, gone or too slow: no price right now
            raise PriceUnknown(f"the pricing actor did not answer ({error})") from error

    def reason(
        self,
        stream: StreamState | None,
        now: int,
        resources: Resources,
        *,
        price: int | None = None,
    ) -> str | None:
        """Why the stream cannot pay; `price` is the rate required (default: the override's)."""
        return check_stream(
            stream,
            provider=self.provider,
            now=now,
            token=self.token,
            min_remaining=self.min_remaining,
            price_wei_per_second=self.price(resources) if price is None else price,
            already_used=False,  # vm_lifecycle refuses a stream that backs a live VM
        )

    async def admit(self, stream_id: int, resources: Resources) -> None:
        """Refuse (`StreamRefused`, with the reason) a stream that cannot pay for this VM;
        `PriceUnknown` when the node has no price to ask for."""
        price = await self.minimum_rate(resources)
        reading = await self.read([stream_id])
        why = self.reason(reading.streams.get(stream_id), reading.now, resources, price=price)
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
