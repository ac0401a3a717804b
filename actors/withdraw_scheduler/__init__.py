"""The withdraw_scheduler actor: periodic, gas-aware withdrawals of vested funds."""

from .actor import WithdrawScheduler, WithdrawTick

__all__ = ["WithdrawScheduler", "WithdrawTick"]
