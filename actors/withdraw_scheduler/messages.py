"""Messages of the withdraw_scheduler actor (all its own: nothing else sends it anything)."""

from __future__ import annotations

import msgspec

from actors.wallet import WithdrawOutcome


class WithdrawTick(msgspec.Struct, frozen=True):
    """Time for a round: read the mapped streams and withdraw what vested."""


class Vested(msgspec.Struct, frozen=True):
    """A round's reading: stream id -> wei worth withdrawing now (empty: nothing to do,
    or the chain could not be read)."""

    amounts: dict[int, int]


# Everything the withdraw_scheduler accepts: its address is an `Address[SchedulerMsg]`.
# `WithdrawOutcome` is the wallet's answer to one withdrawal, reported by that work.
SchedulerMsg = WithdrawTick | Vested | WithdrawOutcome
