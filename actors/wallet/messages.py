"""Messages of the wallet actor: what it answers, and the reports of its own work."""

from __future__ import annotations

import msgspec

from golem_actor.kernel import ActorError, Call, Deferred


class WalletInfo(msgspec.Struct, frozen=True, kw_only=True):
    address: str
    balance_wei: int


class GetWalletInfo(Call[WalletInfo], frozen=True):
    pass


class WithdrawOutcome(msgspec.Struct, frozen=True, kw_only=True):
    stream_id: int
    withdrawn: bool
    tx_hash: str | None = None
    fee_wei: int = 0
    detail: str = ""


class Withdraw(Call[WithdrawOutcome], frozen=True, kw_only=True):
    """Withdraw a stream's vested funds if they are worth the gas.

    Answered once the transaction is mined (or found not worth it, or failed: see
    `WithdrawOutcome.detail`), which can take minutes: call it with a long deadline.
    """

    stream_id: int
    withdrawable_wei: int
    min_wei: int


class WalletUnavailable(ActorError):
    """The chain could not be read to answer (transient)."""


# -- the wallet's own reports: work that answers a deferred call -------------------------


class Withdrawn(msgspec.Struct, frozen=True):
    reply: Deferred[WithdrawOutcome]
    outcome: WithdrawOutcome


class BalanceRead(msgspec.Struct, frozen=True):
    reply: Deferred[WalletInfo]
    balance_wei: int | None  # None: the chain could not be read
    error: str = ""


# Everything the wallet accepts: its address is an `Address[WalletMsg]`.
WalletMsg = GetWalletInfo | Withdraw | Withdrawn | BalanceRead
