"""Stream payment rules: runway math, the create gate, pricing, monitor and withdraw decisions.

Why here: every payment decision of the node is a pure function of one ``streams(id)`` row
and the chain's "now" (the latest block's timestamp), so it is tested without a chain.

Two vesting formulas exist on purpose:
- ``vested_wei`` is the upstream provider's formula, shown in the API's ``computed`` block
  for wire compatibility: ``max(min(now, stop) - start, 0) * rate``, **not** capped at the
  deposit (after a top-up of an expired stream it can exceed the deposit);
- ``vested_capped`` is what the contract computes and what a ``withdraw`` pays:
  ``min((clamp(now, start, stop) - start) * rate, deposit)``.
The create gate and the monitor only use the runway (``remaining_seconds``), never vesting.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from golem_actor.domain.resources import MIB_PER_GIB, Resources

__all__ = [
    "HOURS_PER_MONTH",
    "SECONDS_PER_MONTH",
    "ZERO_ADDRESS",
    "MonitorVerdict",
    "StreamComputed",
    "StreamState",
    "check_stream",
    "computed",
    "is_terminated",
    "monitor_verdict",
    "price_wei_per_second",
    "remaining_seconds",
    "should_withdraw",
    "vested_capped",
    "vested_wei",
    "withdrawable_capped",
    "withdrawable_wei",
]

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
HOURS_PER_MONTH = 730
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600

MonitorVerdict = Literal["keep", "stop", "start"]


class StreamState(msgspec.Struct, frozen=True, kw_only=True):
    """The nine values of ``StreamPayment.streams(id)``, in the getter's order."""

    token: str
    sender: str
    recipient: str
    start_time: int
    stop_time: int
    rate_per_second: int
    deposit: int
    withdrawn: int
    halted: bool

    def chain_json(self) -> dict[str, str | int | bool]:
        """The API's ``chain`` block (the upstream's camelCase keys)."""
        return {
            "token": self.token,
            "sender": self.sender,
            "recipient": self.recipient,
            "startTime": self.start_time,
            "stopTime": self.stop_time,
            "ratePerSecond": self.rate_per_second,
            "deposit": self.deposit,
            "withdrawn": self.withdrawn,
            "halted": self.halted,
        }


class StreamComputed(msgspec.Struct, frozen=True, kw_only=True):
    """The API's ``computed`` block (upstream formulas)."""

    now: int
    remaining_seconds: int
    vested_wei: int
    withdrawable_wei: int


def _same_address(a: str, b: str) -> bool:
    return a.lower() == b.lower()


def is_terminated(stream: StreamState) -> bool:
    """``terminate`` zeroes the recipient; every contract function then treats the id as gone."""
    return _same_address(stream.recipient, ZERO_ADDRESS)


def remaining_seconds(stream: StreamState, now: int) -> int:
    return max(stream.stop_time - now, 0)


def vested_wei(stream: StreamState, now: int) -> int:
    """Upstream's uncapped formula (for the API's ``computed`` block only)."""
    return max(min(now, stream.stop_time) - stream.start_time, 0) * stream.rate_per_second


def withdrawable_wei(stream: StreamState, now: int) -> int:
    """Upstream's formula: ``max(vested_wei - withdrawn, 0)``."""
    return max(vested_wei(stream, now) - stream.withdrawn, 0)


def vested_capped(stream: StreamState, now: int) -> int:
    """The contract's ``_vested``: clamped to the stream's window and capped at the deposit."""
    t = min(max(now, stream.start_time), stream.stop_time)
    return min((t - stream.start_time) * stream.rate_per_second, stream.deposit)


def withdrawable_capped(stream: StreamState, now: int) -> int:
    """What ``withdraw`` would pay at ``now`` (0 for a terminated stream: it reverts)."""
    if is_terminated(stream):
        return 0
    return max(vested_capped(stream, now) - stream.withdrawn, 0)


def computed(stream: StreamState, now: int) -> StreamComputed:
    return StreamComputed(
        now=now,
        remaining_seconds=remaining_seconds(stream, now),
        vested_wei=vested_wei(stream, now),
        withdrawable_wei=withdrawable_wei(stream, now),
    )


def price_wei_per_second(
    resources: Resources,
    *,
    wei_per_core_month: int,
    wei_per_gb_ram_month: int,
    wei_per_gb_disk_month: int,
) -> int:
    """The least rate that pays for ``resources`` (month = 730 h), rounded up.

    Memory is counted exactly in MiB (1 GB = 1024 MiB), and the division happens once at the
    end, so no per-unit rounding can add up to an undercharge.
    """
    if min(wei_per_core_month, wei_per_gb_ram_month, wei_per_gb_disk_month) < 0:
        raise ValueError("prices must not be negative")
    per_month_mib_units = (
        resources.cpus * wei_per_core_month * MIB_PER_GIB
        + resources.memory_mib * wei_per_gb_ram_month
        + resources.storage_gib * wei_per_gb_disk_month * MIB_PER_GIB
    )
    return -(-per_month_mib_units // (SECONDS_PER_MONTH * MIB_PER_GIB))


def check_stream(
    stream: StreamState | None,
    *,
    provider: str,
    now: int,
    token: str,
    min_remaining: int,
    price_wei_per_second: int,
    already_used: bool,
) -> str | None:
    """Why the stream cannot pay for a new VM, or ``None`` when it can.

    ``stream`` is ``None`` when the id was never created; ``already_used`` says whether
    another live VM is mapped to this stream (one stream pays for one VM).
    """
    if stream is None:
        return "stream not found"
    if is_terminated(stream):
        return "stream terminated"
    if not _same_address(stream.recipient, provider):
        return "recipient mismatch"
    if stream.deposit <= 0:
        return "no deposit"
    if stream.start_time > now:
        return "stream not started"
    if stream.halted:
        return "stream halted"
    if already_used:
        return "stream already used by another VM"
    remaining = remaining_seconds(stream, now)
    if remaining == 0:
        return "stream expired"
    if remaining < min_remaining:
        return f"runway too short: {remaining} s left, {min_remaining} s required"
    if not _same_address(stream.token, token):
        return f"wrong token: {stream.token}, expected {token}"
    if stream.rate_per_second < price_wei_per_second:
        return (
            f"rate below price: {stream.rate_per_second} wei/s, "
            f"{price_wei_per_second} wei/s required"
        )
    return None


def _pays(stream: StreamState | None, now: int, min_remaining: int) -> bool:
    if stream is None or is_terminated(stream) or stream.halted:
        return False
    remaining = remaining_seconds(stream, now)
    return remaining > 0 and remaining >= min_remaining


def monitor_verdict(
    stream: StreamState | None,
    *,
    now: int,
    min_remaining: int,
    read_failed: bool,
    stopped_for_payment: bool = False,
) -> MonitorVerdict:
    """What the monitor does with one VM after one reading of its stream.

    - a failed read (RPC down, timeout) is not evidence: ``"keep"``, whatever the VM's state;
    - a running VM whose stream is gone (``None``), terminated, halted, or whose runway is
      below ``min_remaining`` (or used up): ``"stop"``;
    - a VM stopped for payment whose stream pays again (topped up): ``"start"``;
    - anything else: ``"keep"``.
    The caller may still require several consecutive ``"stop"`` verdicts before acting.
    """
    if read_failed:
        return "keep"
    pays = _pays(stream, now, min_remaining)
    if stopped_for_payment:
        return "start" if pays else "keep"
    return "keep" if pays else "stop"


def should_withdraw(withdrawable: int, *, min_wei: int, gas_cost_wei: int) -> bool:
    """Worth a transaction: more than the gas it costs, and at least the operator's minimum."""
    return withdrawable > 0 and withdrawable > gas_cost_wei and withdrawable >= min_wei
