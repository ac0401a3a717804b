"""`WithdrawScheduler`: every interval, each mapped stream with enough vested funds is
withdrawn through the wallet (which checks it is worth the gas). Failures are logged
and simply retried at the next tick; one stream's failure never holds back another's.
"""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
import trio

from actors.vm_lifecycle import ListVms
from actors.wallet import Withdraw, WithdrawOutcome
from golem_actor.adapters.chain.errors import ChainError
from golem_actor.adapters.chain.stream_payment import StreamPaymentClient
from golem_actor.domain.streams import withdrawable_capped
from golem_actor.domain.tenancy import Caller
from golem_actor.kernel import Actor, Address

log = structlog.get_logger("golem_actor.withdraw_scheduler")
NODE = Caller(operator=True)


class WithdrawTick(msgspec.Struct, frozen=True):
    pass


class WithdrawScheduler(Actor[object]):
    def __init__(
        self,
        *,
        client: StreamPaymentClient,
        lifecycle: Address[Any],
        wallet: Address[Any],
        interval: float,
        min_wei: int,
    ) -> None:
        super().__init__()
        self._client = client
        self._lifecycle = lifecycle
        self._wallet = wallet
        self._interval = interval
        self._min_wei = min_wei
        self._pending: set[int] = set()  # streams with a withdrawal under way

    async def on_start(self) -> None:
        self.nursery.start_soon(self._timer)

    async def _timer(self) -> None:
        while True:
            await trio.sleep(self._interval)
            await self.address.cast(WithdrawTick())

    async def handle_cast(self, message: object) -> None:
        match message:
            case WithdrawTick():
                self.nursery.start_soon(self._tick)
            case WithdrawOutcome(stream_id=stream_id, withdrawn=withdrawn):
                self._pending.discard(stream_id)
                level = log.info if withdrawn else log.warning
                level("withdrawal", **msgspec.structs.asdict(message))
            case _:
                await super().handle_cast(message)

    async def _tick(self) -> None:
        views = await self._lifecycle.call(ListVms(NODE))
        ids = [v.stream_id for v in views if v.stream_id is not None]
        ids = [i for i in ids if i not in self._pending]
        if not ids:
            return
        try:
            reading = await self._client.read_streams(ids)
        except ChainError as error:
            log.warning("streams unreadable: withdrawals wait for the next tick", error=str(error))
            return
        for stream_id, stream in reading.streams.items():
            withdrawable = withdrawable_capped(stream, reading.now)
            if withdrawable < max(self._min_wei, 1):
                continue
            self._pending.add(stream_id)
            await self._wallet.cast(
                Withdraw(
                    stream_id=stream_id,
                    withdrawable_wei=withdrawable,
                    min_wei=self._min_wei,
                    reply_to=self.address,
                )
            )
