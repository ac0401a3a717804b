"""Bounded per-port egress queues: what the router owes each port, and what it dropped.

A VM that stops reading must not stall the others (the prototype switch's `sendall`
did, guest-vm.md §6): the actor queues routed frames here and drains each port when its
socket is writable. A full queue drops the newest frame (tail drop) and counts it, the
way a NIC ring does; TCP in the guests repairs the loss. Bounds are in frames and bytes.
Removing a port discards what was queued for it, so leaving a network cuts its traffic
at once.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_FRAMES",
    "EgressQueue",
    "EgressQueues",
]

DEFAULT_MAX_FRAMES = 256
DEFAULT_MAX_BYTES = 512 * 1024


@dataclass(slots=True)
class EgressQueue:
    max_frames: int = DEFAULT_MAX_FRAMES
    max_bytes: int = DEFAULT_MAX_BYTES
    queued_bytes: int = 0
    dropped_frames: int = 0
    dropped_bytes: int = 0
    _frames: deque[bytes] = field(default_factory=deque, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_frames < 1 or self.max_bytes < 1:
            raise ValueError("an egress queue needs room for one frame")

    def __len__(self) -> int:
        return len(self._frames)

    def push(self, frame: bytes) -> bool:
        """Queue `frame`; False (and counted) when the queue is full."""
        size = len(frame)
        frames = self._frames
        if len(frames) >= self.max_frames or self.queued_bytes + size > self.max_bytes:
            self.dropped_frames += 1
            self.dropped_bytes += size
            return False
        frames.append(frame)
        self.queued_bytes += size
        return True

    def peek(self) -> bytes | None:
        return self._frames[0] if self._frames else None

    def pop(self) -> bytes:
        frame = self._frames.popleft()
        self.queued_bytes -= len(frame)
        return frame

    def take(self, limit: int) -> list[bytes]:
        """Up to `limit` frames, oldest first (a batch for one writable socket)."""
        frames = self._frames
        batch = [frames.popleft() for _ in range(min(limit, len(frames)))]
        self.queued_bytes -= sum(map(len, batch))
        return batch


class EgressQueues:
    """One queue per port, created on first use; `ready` lists the ports with frames."""

    def __init__(
        self, max_frames: int = DEFAULT_MAX_FRAMES, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        self._limits = (max_frames, max_bytes)
        self._queues: dict[str, EgressQueue] = {}
        self.ready: dict[str, None] = {}  # an ordered set: ports in the order they filled

    def queue(self, port_id: str) -> EgressQueue:
        queue = self._queues.get(port_id)
        if queue is None:
            queue = self._queues[port_id] = EgressQueue(*self._limits)
        return queue

    def push_all(self, routed: list[tuple[str, bytes]]) -> int:
        """Queue what `Switch.route` returned; the number of frames dropped."""
        dropped = 0
        queues, ready = self._queues, self.ready
        for port_id, frame in routed:
            queue = queues.get(port_id) or self.queue(port_id)
            if queue.push(frame):
                ready[port_id] = None
            else:
                dropped += 1
        return dropped

    def take(self, port_id: str, limit: int) -> list[bytes]:
        queue = self._queues.get(port_id)
        if queue is None:
            return []
        batch = queue.take(limit)
        if not queue:
            self.ready.pop(port_id, None)
        return batch

    def discard(self, port_id: str) -> int:
        """Forget a port's queue (it left); the number of frames thrown away."""
        self.ready.pop(port_id, None)
        queue = self._queues.pop(port_id, None)
        return 0 if queue is None else len(queue)
