"""The link route's bound on unauthenticated connections (actors/api/link_admission.py):
global and per source, refusals counted by reason and logged once per source."""

from __future__ import annotations

from collections import Counter
from contextlib import ExitStack

import pytest
from structlog.testing import capture_logs

from actors.api.link_admission import LinkAdmission, peer_key


def test_a_source_past_its_bound_is_refused_with_429_until_one_of_its_connections_ends() -> None:
    refusals: Counter[str] = Counter()
    admission = LinkAdmission(max_pending=10, max_per_peer=2, refusals=refusals)
    with ExitStack() as held:
        for _ in range(2):
            assert admission.refusal("10.0.0.1") is None
            held.enter_context(admission.hold("10.0.0.1"))
        refusal = admission.refusal("10.0.0.1")
        assert refusal is not None
        assert (refusal.status, refusal.reason) == (429, "peer_busy")
        assert "10.0.0.1" in refusal.detail
        assert admission.refusal("10.0.0.2") is None  # another source is not affected
        assert admission.pending == 2
    assert admission.pending == 0
    assert admission.refusal("10.0.0.1") is None


def test_the_node_past_its_bound_refuses_every_source_with_503() -> None:
    admission = LinkAdmission(max_pending=3, max_per_peer=2, refusals=Counter())
    with ExitStack() as held:
        for peer in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
            held.enter_context(admission.hold(peer))
        refusal = admission.refusal("10.0.0.4")
        assert refusal is not None
        assert (refusal.status, refusal.reason) == (503, "node_busy")
    assert admission.refusal("10.0.0.4") is None


def test_refusals_are_counted_each_time_and_logged_once_per_source_until_admitted() -> None:
    refusals: Counter[str] = Counter()
    admission = LinkAdmission(max_pending=1, max_per_peer=1, refusals=refusals)
    with capture_logs() as logs:
        with admission.hold("10.0.0.9"):
            for peer in ("10.0.0.1", "10.0.0.1", "10.0.0.2"):
                refusal = admission.refusal(peer)
                assert refusal is not None
                admission.refused(peer, refusal, "net")
        with admission.hold("10.0.0.1"):  # admitted: its next refusal is news again
            refusal = admission.refusal("10.0.0.1")
            assert refusal is not None
            admission.refused("10.0.0.1", refusal, "net")
    assert refusals == Counter(node_busy=4)
    logged = [(e["event"], e["peer"]) for e in logs]
    assert logged == [
        ("vpn link refused", "10.0.0.1"),
        ("vpn link refused", "10.0.0.2"),
        ("vpn link refused", "10.0.0.1"),
    ]


def test_a_source_is_its_address_and_an_ipv6_source_its_64() -> None:
    assert peer_key(("127.0.0.1", 5000)) == "127.0.0.1"
    assert peer_key(("2001:db8::1", 1)) == peer_key(("2001:db8::ffff", 2)) == "2001:db8::/64"
    assert peer_key(None) == "unknown"
    assert peer_key(("not-an-ip", 1)) == "not-an-ip"


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        LinkAdmission(max_pending=0, max_per_peer=1, refusals=Counter())
