"""`python -m bench vpn_gate`, run small, so it stays runnable: one real node process and
one QEMU test guest in a network; every case (the TCP gate, ssh through the gate, ssh
through the node's relay) moves all of its bytes, unaltered, and yields a rate. No
timing is asserted: the numbers belong to the bench's output.
"""

from __future__ import annotations

import pytest

from bench import vpn_gate
from golem_actor.adapters.guest import GuestImage

pytestmark = pytest.mark.e2e


async def test_the_gate_bench_moves_every_byte_on_every_path(test_guest: GuestImage) -> None:
    samples = await vpn_gate.measure(mb=1, rounds=1)
    assert samples.size == 10**6
    assert samples.moved == {case: [10**6] for case in vpn_gate.CASES}
    for case in vpn_gate.CASES:
        [rate] = samples.mbps[case]
        assert rate > 0, case
