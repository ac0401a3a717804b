from __future__ import annotations

import pytest
from kernel_helpers import Recorder

from golem_actor.kernel import ChildSpec, RestartIntensity


def test_more_than_max_restarts_in_the_period_is_refused() -> None:
    window = RestartIntensity(2, period=10.0)
    assert window.allow(0.0)
    assert window.allow(1.0)
    assert not window.allow(2.0)


def test_old_restarts_leave_the_window() -> None:
    window = RestartIntensity(1, period=5.0)
    assert window.allow(0.0)
    assert window.allow(5.0)  # the first one is exactly one period old: forgotten
    assert window.in_window(5.0) == 1
    assert window.in_window(10.1) == 0


def test_zero_intensity_never_restarts() -> None:
    assert not RestartIntensity(0, period=1.0).allow(0.0)


@pytest.mark.parametrize(("restarts", "period"), [(-1, 1.0), (1, 0.0)])
def test_nonsense_intensity_is_refused(restarts: int, period: float) -> None:
    with pytest.raises(ValueError, match="intensity"):
        RestartIntensity(restarts, period)


@pytest.mark.parametrize(
    ("options", "message"),
    [({"shutdown": -1.0}, "shutdown"), ({"inbox_size": 0}, "inbox"), ({}, "id")],
)
def test_bad_child_specs_are_refused(options: dict[str, float], message: str) -> None:
    child_id = "" if message == "id" else "x"
    with pytest.raises(ValueError, match=message):
        ChildSpec(child_id, lambda: Recorder("x", []), **options)  # type: ignore[arg-type]
