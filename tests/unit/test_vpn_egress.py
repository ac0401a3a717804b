from __future__ import annotations

import pytest

from golem_actor.domain.vpn.egress import EgressQueue, EgressQueues


def test_tail_drop_by_frames_and_by_bytes() -> None:
    queue = EgressQueue(max_frames=3, max_bytes=1000)
    assert all(queue.push(bytes([i]) * 100) for i in range(3))
    assert not queue.push(b"late")
    assert (len(queue), queue.queued_bytes, queue.dropped_frames, queue.dropped_bytes) == (
        3,
        300,
        1,
        4,
    )
    assert queue.pop() == b"\0" * 100  # the oldest frames are kept, the newest dropped
    by_bytes = EgressQueue(max_frames=100, max_bytes=250)
    assert by_bytes.push(b"a" * 200)
    assert not by_bytes.push(b"b" * 51)
    assert by_bytes.push(b"c" * 50)
    assert by_bytes.take(10) == [b"a" * 200, b"c" * 50]
    assert (len(by_bytes), by_bytes.queued_bytes, by_bytes.peek()) == (0, 0, None)
    with pytest.raises(ValueError, match="room"):
        EgressQueue(max_frames=0)


def test_queues_track_ready_ports_and_discard_on_leave() -> None:
    queues = EgressQueues(max_frames=2)
    dropped = queues.push_all([("a", b"1"), ("b", b"2"), ("a", b"3"), ("a", b"4")])
    assert dropped == 1
    assert list(queues.ready) == ["a", "b"]
    assert queues.take("a", 1) == [b"1"]
    assert list(queues.ready) == ["a", "b"]
    assert queues.take("a", 5) == [b"3"]
    assert list(queues.ready) == ["b"]
    assert queues.queue("a").dropped_frames == 1
    assert queues.discard("b") == 1
    assert not queues.ready
    assert queues.take("b", 5) == []
    assert queues.take("never", 5) == []
