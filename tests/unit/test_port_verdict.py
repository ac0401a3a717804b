"""Quorum verdicts and the seed's status severity rules (pure functions)."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from golem_actor.domain.port_verdict import (
    LocalState,
    MultipassCheck,
    ProviderCheck,
    SshCheck,
    Verdict,
    build_status,
    combine,
    ssh_status,
)

R, U, K = Verdict.REACHABLE, Verdict.UNREACHABLE, Verdict.UNKNOWN
START, END = 50800, 50810  # ten ports


def provider(
    external: Verdict = R,
    local: LocalState = LocalState.LISTENING,
    *,
    local_error: str | None = None,
    external_error: str | None = None,
) -> ProviderCheck:
    return ProviderCheck(
        port=7466,
        host="0.0.0.0",
        local=local,
        local_error=local_error,
        external=external,
        external_error=external_error,
    )


def ssh(
    verdicts: dict[int, Verdict] | None = None,
    in_use: Iterable[int] = (),
    listening: Iterable[int] = (),
) -> SshCheck:
    every = dict.fromkeys(range(START, END), R) if verdicts is None else verdicts
    return SshCheck(
        start=START,
        end=END,
        verdicts=every,
        in_use=frozenset(in_use),
        listening=frozenset(listening),
    )


# --- quorum ---------------------------------------------------------------------------


def test_servers_that_agree_decide_each_port() -> None:
    answers = [{1: True, 2: False}, {1: True, 2: False}]
    assert combine([1, 2], answers, quorum=2) == {1: R, 2: U}


def test_disagreement_is_settled_by_the_quorum() -> None:
    answers = [{1: True, 2: True}, {1: True, 2: False}, {1: False, 2: False}]
    assert combine([1, 2], answers, quorum=2) == {1: R, 2: U}
    assert combine([1, 2], answers, quorum=1) == {1: R, 2: R}  # the upstream's "any"
    assert combine([1, 2], answers, quorum=3) == {1: U, 2: U}


def test_too_few_answers_make_the_verdict_unknown() -> None:
    down: dict[int, bool] = {}
    assert combine([1], [{1: True}, down, down], quorum=2) == {1: K}
    assert combine([1], [down, down], quorum=1) == {1: K}
    assert combine([1], [], quorum=1) == {1: K}
    # A server that left a port out of its answer did not answer about that port.
    assert combine([1, 2], [{1: True, 2: True}, {1: True}], quorum=2) == {1: R, 2: K}


def test_a_quorum_below_one_is_a_mistake() -> None:
    with pytest.raises(ValueError, match="quorum"):
        combine([1], [{1: True}], quorum=0)


# --- severity rules ---------------------------------------------------------------------


def test_all_reachable_and_listening_is_healthy() -> None:
    report = build_status(
        provider(), ssh(in_use={50801}, listening={50801}), multipass=MultipassCheck(ok=True)
    )
    assert (report.overall.status, report.overall.issues) == ("healthy", ())
    assert report.ports.provider.status == "reachable"
    assert report.ports.provider.external.status == "reachable"
    assert report.ports.ssh.status == "ok"
    assert (report.ports.ssh.usable_free, report.ports.ssh.in_use) == (9, 1)


def test_every_checker_down_is_an_error_with_unknown_ports() -> None:
    answers: list[dict[int, bool]] = [{}, {}]
    verdicts = combine(range(START, END), answers, quorum=1)
    provider_verdict = combine([7466], answers, quorum=1)[7466]
    report = build_status(
        provider(provider_verdict, external_error="no port-check server answered"),
        ssh(verdicts, in_use={50802, 50803}, listening={50802}),
    )
    assert report.overall.status == "error"
    assert report.overall.issues == (
        "No externally reachable SSH ports",
        "1 SSH port(s) not listening",
        "Provider API port not reachable externally",
        "Ports not verified: no port-check server answered",  # why, in the overall verdict
    )
    part = report.ports.ssh
    assert part.status == "blocked"
    assert part.usable_free == 0
    assert (part.issues.unreachable, part.issues.not_listening) == (10, 1)
    assert {p.status for p in part.ports} == {"unknown"}
    # `listening` still reflects the local state of in-use ports.
    assert [p.port for p in part.ports if p.listening] == [50802]
    external = report.ports.provider.external
    assert (external.status, external.error) == ("check_failed", "no port-check server answered")
    assert report.ports.provider.status == "unreachable"


def test_disagreeing_servers_below_quorum_block_ssh() -> None:
    answers = [dict.fromkeys(range(START, END), True), dict.fromkeys(range(START, END), False)]
    verdicts = combine(range(START, END), answers, quorum=2)
    report = build_status(provider(), ssh(verdicts))
    assert report.ports.ssh.status == "blocked"
    assert {p.status for p in report.ports.ssh.ports} == {"unreachable"}
    assert report.overall.status == "error"
    assert report.overall.issues == ("No externally reachable SSH ports",)


def test_in_use_ports_that_are_unreachable_or_not_listening_limit_ssh() -> None:
    verdicts = {**dict.fromkeys(range(START, END), R), 50801: U, 50802: K}
    report = build_status(
        provider(), ssh(verdicts, in_use={50801, 50802, 50803, 50804}, listening={50801, 50802})
    )
    part = report.ports.ssh
    assert part.status == "limited"
    # 50801 unreachable, 50802 unknown (cannot be promised); 50803 and 50804 not listening.
    assert (part.issues.unreachable, part.issues.not_listening) == (2, 2)
    assert part.in_use == 4
    assert part.usable_free == 6  # free AND reachable: 50800 and 50805..50809
    assert report.overall.status == "issues"
    assert report.overall.issues == (
        "2 SSH port(s) unreachable externally",
        "2 SSH port(s) not listening",
    )


def test_unreachable_free_ports_only_reduce_usable_free() -> None:
    verdicts = {**dict.fromkeys(range(START, END), U), 50800: R}
    report = build_status(provider(), ssh(verdicts))
    assert report.ports.ssh.status == "ok"
    assert report.ports.ssh.usable_free == 1
    assert report.overall.status == "healthy"


def test_provider_port_not_ready_locally_is_an_error() -> None:
    report = build_status(
        provider(local=LocalState.UNAVAILABLE, local_error="[Errno 98] Address already in use"),
        ssh(),
    )
    assert report.overall.status == "error"
    assert report.overall.issues == ("Provider port 7466 not ready",)
    part = report.ports.provider
    assert (part.local_ok, part.local_detail) == (False, "[Errno 98] Address already in use")


def test_a_free_provider_port_is_locally_fine() -> None:
    part = build_status(provider(local=LocalState.BINDABLE), ssh()).ports.provider
    assert (part.local_ok, part.local_detail) == (True, "port is free (bindable)")


def test_provider_port_unreachable_from_outside_is_an_error() -> None:
    report = build_status(provider(U, external_error="Connection refused"), ssh())
    assert report.overall.status == "error"
    assert report.overall.issues == ("Provider API port not reachable externally",)
    assert report.ports.provider.external.error == "Connection refused"


def test_missing_multipass_is_an_error_and_no_multipass_check_is_fine() -> None:
    missing = build_status(provider(), ssh(), multipass=MultipassCheck(ok=False, error="absent"))
    assert missing.overall.status == "error"
    assert missing.overall.issues == ("Multipass not available",)
    assert build_status(provider(), ssh()).multipass is None


def test_in_use_counts_only_proxy_ports_of_the_range() -> None:
    part = ssh_status(ssh(in_use={50801, 60000}, listening={50801, 60000}))
    assert part.in_use == 1
    assert part.ports[1].listening is True
    assert not any(p.listening for p in part.ports if p.port != 50801)


def test_an_empty_range_is_blocked() -> None:
    part = ssh_status(SshCheck(start=START, end=START, verdicts={}))
    assert (part.status, part.ports, part.issues.unreachable) == ("blocked", (), 0)
