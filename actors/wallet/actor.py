"""`Wallet`: the only holder of the provider key and the only sender of transactions.

One `TransactionSender` (one nonce) for the whole node. A withdrawal is slow work (fee
estimate, signing, broadcast, receipt), so it runs in the wallet's nursery and its
outcome is cast back to whoever asked; the inbox keeps flowing meanwhile. Whether a
withdrawal is worth its gas is decided here, with the fee estimate at hand, by the
domain rule `should_withdraw`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import structlog
import trio

from golem_actor.adapters.chain.errors import ChainError
from golem_actor.adapters.chain.rpc import RpcClient
from golem_actor.adapters.chain.stream_payment import StreamPaymentClient
from golem_actor.adapters.chain.transactions import TransactionSender
from golem_actor.domain.streams import should_withdraw
from golem_actor.identity import load_or_create_provider_key
from golem_actor.kernel import Actor, Address, Call

log = structlog.get_logger("golem_actor.wallet")


class WalletInfo(msgspec.Struct, frozen=True, kw_only=True):
    address: str
    balance_wei: int


class GetWalletInfo(Call[WalletInfo], frozen=True):
    pass


class Withdraw(msgspec.Struct, frozen=True, kw_only=True):
    """Withdraw a stream's vested funds if they are worth the gas; the outcome is cast."""

    stream_id: int
    withdrawable_wei: int
    min_wei: int
    reply_to: Address[Any]


class WithdrawOutcome(msgspec.Struct, frozen=True, kw_only=True):
    stream_id: int
    withdrawn: bool
    tx_hash: str | None = None
    fee_wei: int = 0
    detail: str = ""


class Wallet(Actor[object]):
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

    async def handle_call(self, request: Call[Any]) -> Any:
        match request:
            case GetWalletInfo():
                assert self._sender is not None
                return WalletInfo(address=self._provider, balance_wei=await self._sender.balance())
        return await super().handle_call(request)

    async def handle_cast(self, message: object) -> None:
        match message:
            case Withdraw():
                self.nursery.start_soon(self._withdraw, message)
            case _:
                await super().handle_cast(message)

    async def _withdraw(self, request: Withdraw) -> None:
        assert self._sender is not None
        assert self._rpc is not None
        tx = StreamPaymentClient(self._rpc, self._contract).withdraw_tx(request.stream_id)
        outcome: WithdrawOutcome
        try:
            cost = await self._sender.estimate_cost(tx)
            if not should_withdraw(
                request.withdrawable_wei, min_wei=request.min_wei, gas_cost_wei=cost
            ):
                outcome = WithdrawOutcome(
                    stream_id=request.stream_id,
                    withdrawn=False,
                    detail=f"not worth it: {request.withdrawable_wei} wei withdrawable,"
                    f" gas up to {cost} wei, minimum {request.min_wei} wei",
                )
            else:
                receipt = await self._sender.send(tx)
                outcome = WithdrawOutcome(
                    stream_id=request.stream_id,
                    withdrawn=True,
                    tx_hash=receipt.tx_hash,
                    fee_wei=receipt.fee_wei,
                )
        except ChainError as error:
            outcome = WithdrawOutcome(
                stream_id=request.stream_id, withdrawn=False, detail=f"failed: {error}"
            )
        await request.reply_to.cast(outcome)
