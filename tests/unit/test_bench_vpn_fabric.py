"""`bench vpn`'s fabric part, bounded, so it stays runnable: the load process drives the
router actor and a bare relay, and every frame is delivered or counted as dropped."""

from __future__ import annotations

from bench import vpn_fabric


async def test_the_fabric_bench_delivers_through_the_router_and_the_bare_relay() -> None:
    # The bench itself raises when the router lost a frame it did not count.
    result = await vpn_fabric.run(n=3000, rounds=1)
    assert result["bare_relay_dropped"] == 0  # the relay stalls the sender, never drops
    assert result["router_dropped"] < 0.5  # the queue drops only what overflows
    assert result["router_frames_per_s"] > 0
    assert result["router_frames_per_cpu_s"] > 0
