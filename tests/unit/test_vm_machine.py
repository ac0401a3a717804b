from __future__ import annotations

import pytest

from golem_actor.domain.vm_machine import (
    ENTRY_EFFECTS,
    TRANSITIONS,
    Effect,
    Event,
    InvalidTransition,
    VmStatus,
    next_status,
)

S, E = VmStatus, Event


def walk(start: VmStatus, *events: Event) -> list[VmStatus]:
    path, status = [start], start
    for event in events:
        after = next_status(status, event)
        status = status if after is None else after
        path.append(status)
    return path


def test_the_rental_journey() -> None:
    assert walk(
        S.CREATING,
        E.READY,
        E.REQUEST_STOP,
        E.POWERED_OFF,
        E.REQUEST_START,
        E.READY,
        E.REQUEST_DELETE,
        E.DELETED,
    ) == [
        S.CREATING,
        S.RUNNING,
        S.STOPPING,
        S.STOPPED,
        S.STARTING,
        S.RUNNING,
        S.DELETING,
        S.DELETED,
    ]


def test_running_only_after_ssh_is_ready() -> None:
    assert all(
        after is not S.RUNNING or event is E.READY for (_, event), after in TRANSITIONS.items()
    )


@pytest.mark.parametrize(
    ("status", "event", "message"),
    [
        (S.CREATING, E.REQUEST_STOP, "cannot stop a VM that is creating"),
        (S.CREATING, E.REQUEST_START, "cannot start a VM that is creating"),
        (S.STOPPING, E.REQUEST_START, "cannot start a VM that is stopping"),
        (S.DELETING, E.REQUEST_STOP, "cannot stop a VM that is deleting"),
        (S.DELETED, E.REQUEST_DELETE, "cannot delete a VM that is deleted"),
    ],
)
def test_requests_that_make_no_sense_are_refused_with_a_reason(
    status: VmStatus, event: Event, message: str
) -> None:
    with pytest.raises(InvalidTransition, match=message):
        next_status(status, event)


@pytest.mark.parametrize(
    ("status", "event"),
    [(S.STOPPED, E.REQUEST_STOP), (S.RUNNING, E.REQUEST_START), (S.DELETING, E.REQUEST_DELETE)],
)
def test_satisfied_requests_are_no_ops(status: VmStatus, event: Event) -> None:
    assert next_status(status, event) is None


def test_every_live_state_can_be_deleted() -> None:
    for status in VmStatus:
        if status in (S.DELETING, S.DELETED):
            continue
        assert next_status(status, E.REQUEST_DELETE) is S.DELETING


def test_a_guest_that_powers_itself_off_is_stopped() -> None:
    assert next_status(S.RUNNING, E.POWERED_OFF) is S.STOPPED


def test_failures_and_vanished_machines_end_in_error() -> None:
    for status in (S.CREATING, S.STARTING, S.STOPPING):
        assert next_status(status, E.FAILED) is S.ERROR
    for status in (S.CREATING, S.RUNNING, S.STOPPED):
        assert next_status(status, E.VANISHED) is S.ERROR
    assert next_status(S.ERROR, E.REQUEST_START) is S.STARTING


def test_entry_effects_cover_every_state_and_close_the_proxy_when_ssh_must_stop() -> None:
    assert set(ENTRY_EFFECTS) == set(VmStatus)
    for status in (S.STOPPING, S.STOPPED, S.DELETING, S.ERROR):
        assert Effect.CLOSE_PROXY in ENTRY_EFFECTS[status]
    assert ENTRY_EFFECTS[S.DELETED] == (Effect.RELEASE,)
    assert ENTRY_EFFECTS[S.CREATING] == (Effect.LAUNCH,)


def test_a_failed_clean_up_of_a_stopped_vm_is_an_error() -> None:
    assert next_status(S.STOPPED, E.FAILED) is S.ERROR
