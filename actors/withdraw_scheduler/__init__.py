"""The withdraw_scheduler actor: periodic, gas-aware withdrawals of vested funds."""

from .actor import WithdrawScheduler
from .messages import SchedulerMsg, Vested, WithdrawTick

__all__ = ["SchedulerMsg", "Vested", "WithdrawScheduler", "WithdrawTick"]
