"""`Wallet`: the only holder of the provider key and the only sender of transactions.

One `TransactionSender` (one nonce) for the whole node. A withdrawal is slow work (fee
estimate, signing, broadcast, receipt), so the `Withdraw` call is deferred: the work runs
in the wallet's nursery and its outcome comes back to the wallet as `Withdrawn`, whose
handler answers the caller; the inbox keeps flowing meanwhile, and if the wallet crashes
the callers fail at once instead of waiting for ever. Whether a withdrawal is worth its
gas is decided here, with the fee estimate at hand, by the domain rule `should_withdraw`.
A balance read for `GetWalletInfo` is deferred the same way.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import structlog
import trio

from golem_actor.adapters.chain.errors import ChainError
from golem_actor.adapters.chain.rpc import RpcClient
from golem_actor.adapters.chain.stream_payment import StreamPaymentClient
from golem_actor.adapters.chain.transactions import TransactionSender
from golem_actor.domain.streams import should_withdraw
from golem_actor.identity import load_or_create_provider_key
from golem_actor.kernel import Actor, Deferred

from .messages import (
    BalanceRead,
    GetWalletInfo,
    WalletInfo,
    WalletMsg,
    WalletUnavailable,
    Withdraw,
    Withdrawn,
    WithdrawOutcome,
)

log = structlog.get_logger("golem_actor.wallet")


class Wallet(Actor[WalletMsg]):
    def __init__(self, *, key_dir: Path, rpc_url: str, contract: str, max_fee_cap_wei: int) -> None:
        super().__init__()
        self._key_dir = key_dir
        self._rpc_url = rpc_url
        self._contract = contract
        self._max_fee = max_fee_cap_wei
        self._rpc: RpcClient | None = None
        self._sender: TransactionSender | None = None
        self._provider = ""

    async def on_start(self) -> None:
        key = await trio.to_thread.run_sync(load_or_create_provider_key, self._key_dir)
        self._provider = key.address
        self._rpc = RpcClient(self._rpc_url)
        self._sender = TransactionSender(self._rpc, key.private_key, max_fee_cap_wei=self._max_fee)
        log.info("wallet ready", address=key.address)

    async def on_stop(self) -> None:
        if self._rpc is not None:
            await self._rpc.aclose()

    async def handle_call(self, request: WalletMsg) -> Any:
        match request:
            case GetWalletInfo():
                asking = self.defer(request)
                self.start_work(partial(self._read_balance, asking), then=lambda read: read)
                return None
            case Withdraw():
                waiting = self.defer(request)
                self.start_work(partial(self._withdraw, request), then=partial(Withdrawn, waiting))
                return None
        return await super().handle_call(request)

    async def handle_cast(self, message: WalletMsg) -> None:
        match message:
            case Withdrawn(reply=reply, outcome=outcome):
                reply.reply(outcome)
            case BalanceRead(reply=reply, balance_wei=None, error=error):
                reply.refuse(WalletUnavailable(f"cannot read the wallet's balance: {error}"))
            case BalanceRead(reply=reply, balance_wei=int(balance)):
                reply.reply(WalletInfo(address=self._provider, balance_wei=balance))
            case _:
                await super().handle_cast(message)

    async def _read_balance(self, reply: Deferred[WalletInfo]) -> BalanceRead:
        assert self._sender is not None
        try:
            return BalanceRead(reply, await self._sender.balance())
        except ChainError as error:
            return BalanceRead(reply, None, str(error))

    async def _withdraw(self, request: Withdraw) -> WithdrawOutcome:
        assert self._sender is not None
        assert self._rpc is not None
        tx = StreamPaymentClient(self._rpc, self._contract).withdraw_tx(request.stream_id)
        try:
            cost = await self._sender.estimate_cost(tx)
            if not should_withdraw(
                request.withdrawable_wei, min_wei=request.min_wei, gas_cost_wei=cost
            ):
                return WithdrawOutcome(
                    stream_id=request.stream_id,
                    withdrawn=False,
                    detail=f"not worth it: {request.withdrawable_wei} wei withdrawable,"
                    f" gas up to {cost} wei, minimum {request.min_wei} wei",
                )
            receipt = await self._sender.send(tx)
        except ChainError as error:
            return WithdrawOutcome(
                stream_id=request.stream_id, withdrawn=False, detail=f"failed: {error}"
            )
        return WithdrawOutcome(
            stream_id=request.stream_id,
            withdrawn=True,
            tx_hash=receipt.tx_hash,
            fee_wei=receipt.fee_wei,
        )
