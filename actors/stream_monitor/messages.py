"""Messages of the stream_monitor actor (all its own: nothing else sends it anything)."""

from __future__ import annotations

import msgspec


class MonitorTick(msgspec.Struct, frozen=True):
    """Time for a round: read every mapped stream and act on the verdicts."""


class RoundDone(msgspec.Struct, frozen=True, kw_only=True):
    """The end of one round: the VMs with a stream that still exist, and those the round
    stopped for payment (even if vm_lifecycle refused) or started again."""

    seen: frozenset[str]
    stopped: frozenset[str] = frozenset()
    started: frozenset[str] = frozenset()


# Everything the stream_monitor accepts: its address is an `Address[MonitorMsg]`.
MonitorMsg = MonitorTick | RoundDone
