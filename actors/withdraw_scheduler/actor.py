"""`WithdrawScheduler`: every interval, each mapped stream with enough vested funds is
withdrawn through the wallet (which checks it is worth the gas). Failures are logged
and simply retried at the next tick; one stream's failure never holds back another's.

A round (list the VMs, read their streams) is work that reports back `Vested`; each
withdrawal is then its own work, a call to the wallet that reports back the wallet's
`WithdrawOutcome`. The set of streams with a withdrawal under way changes only in those
two handlers: a stream is not withdrawn twice at once, and a wallet that crashes or
stops answering frees its streams for the next round. One round at a time: a tick while
a round runs is dropped.
"""

from __future__ import annotations

from functools import partial

import msgspec
import structlog

from actors.vm_lifecycle import ListVms
from actors.wallet import Withdraw, WithdrawOutcome
from golem_actor.adapters.chain.errors import ChainError
from golem_actor.adapters.chain.stream_payment import StreamPaymentClient
from golem_actor.domain.streams import withdrawable_capped
from golem_actor.domain.tenancy import Caller
from golem_actor.kernel import Actor, ActorError, Address, KernelError

from .messages import SchedulerMsg, Vested, WithdrawTick

log = structlog.get_logger("golem_actor.withdraw_scheduler")
NODE = Caller(operator=True)
ROUND = "round"  # the key of the running round
# How long a withdrawal may take: fee estimate, broadcast with retries, and the wait
# for the receipt (two minutes by default in TransactionSender), with room to spare.
WITHDRAW_DEADLINE = 600.0


class WithdrawScheduler(Actor[SchedulerMsg]):
    def __init__(
        self,
        *,
        client: StreamPaymentClient,
        lifecycle: Address[ListVms],
        wallet: Address[Withdraw],
        interval: float,
        min_wei: int,
    ) -> None:
        super().__init__()
        self._client = client
        self._lifecycle = lifecycle
        self._wallet = wallet.with_call_timeout(WITHDRAW_DEADLINE)
        self._interval = interval
        self._min_wei = min_wei
        self._pending: set[int] = set()  # streams with a withdrawal under way

    async def on_start(self) -> None:
        self.every(self._interval, WithdrawTick())

    async def handle_cast(self, message: SchedulerMsg) -> None:
        match message:
            case WithdrawTick():
                if self.work_for(ROUND) is None:  # one round at a time
                    read = partial(self._vested, frozenset(self._pending))
                    self.start_work(read, then=Vested, key=ROUND)
            case Vested(amounts=amounts):
                for stream_id, withdrawable in amounts.items():
                    if stream_id in self._pending:
                        continue  # a withdrawal started since the round began
                    self._pending.add(stream_id)
                    withdraw = partial(self._withdraw, stream_id, withdrawable)
                    self.start_work(withdraw, then=lambda outcome: outcome)
            case WithdrawOutcome(stream_id=stream_id, withdrawn=withdrawn):
                self._pending.discard(stream_id)
                level = log.info if withdrawn else log.warning
                level("withdrawal", **msgspec.structs.asdict(message))
            case _:
                await super().handle_cast(message)

    async def _vested(self, pending: frozenset[int]) -> dict[int, int]:
        """The streams worth withdrawing now, except those in `pending`."""
        views = await self._lifecycle.call(ListVms(NODE))
        ids = [v.stream_id for v in views if v.stream_id is not None]
        ids = [i for i in ids if i not in pending]
        if not ids:
            return {}
        try:
            reading = await self._client.read_streams(ids)
        except ChainError as error:
            log.warning("streams unreadable: withdrawals wait for the next tick", error=str(error))
            return {}
        amounts = {
            stream_id: withdrawable_capped(stream, reading.now)
            for stream_id, stream in reading.streams.items()
        }
        return {i: wei for i, wei in amounts.items() if wei >= max(self._min_wei, 1)}

    async def _withdraw(self, stream_id: int, withdrawable: int) -> WithdrawOutcome:
        request = Withdraw(
            stream_id=stream_id, withdrawable_wei=withdrawable, min_wei=self._min_wei
        )
        try:
            return await self._wallet.call(request)
        except (ActorError, KernelError) as error:  # refused, crashed, gone or too slow
            return WithdrawOutcome(stream_id=stream_id, withdrawn=False, detail=f"failed: {error}")
