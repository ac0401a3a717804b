"""Stream payment rules: runway math, the create gate, pricing, monitor and withdraw decisions."""

from __future__ import annotations

import pytest

from golem_actor.domain.resources import Resources
from golem_actor.domain.streams import (
    SECONDS_PER_MONTH,
    ZERO_ADDRESS,
    StreamState,
    check_stream,
    computed,
    is_terminated,
    monitor_verdict,
    price_wei_per_second,
    remaining_seconds,
    should_withdraw,
    vested_capped,
    vested_wei,
    withdrawable_capped,
    withdrawable_wei,
)

PROVIDER = "0x70997970C51812dc3A010C7d01b50e0d4dc79C8f"
SENDER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
OTHER_TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
START, STOP, RATE = 1_000, 2_000, 10
DEPOSIT = (STOP - START) * RATE + 7


def make(**changes: object) -> StreamState:
    fields: dict[str, object] = {
        "token": ZERO_ADDRESS,
        "sender": SENDER,
        "recipient": PROVIDER,
        "start_time": START,
        "stop_time": STOP,
        "rate_per_second": RATE,
        "deposit": DEPOSIT,
        "withdrawn": 0,
        "halted": False,
    }
    fields.update(changes)
    return StreamState(**fields)  # type: ignore[arg-type]


# --- math ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "remaining", "vested"),
    [
        (START - 5, STOP - START + 5, 0),
        (START, STOP - START, 0),
        (START + 1, STOP - START - 1, RATE),
        (STOP - 1, 1, (STOP - START - 1) * RATE),
        (STOP, 0, (STOP - START) * RATE),
        (STOP + 100, 0, (STOP - START) * RATE),
    ],
)
def test_runway_and_vesting_at_boundaries(now: int, remaining: int, vested: int) -> None:
    stream = make()
    assert remaining_seconds(stream, now) == remaining
    assert vested_wei(stream, now) == vested
    assert vested_capped(stream, now) == vested  # below the deposit both agree
    assert withdrawable_wei(stream, now) == vested
    assert withdrawable_capped(stream, now) == vested


def test_upstream_vesting_is_uncapped_the_contracts_is_capped() -> None:
    # After a top-up of an expired stream, stop moves far ahead while vesting counts from start.
    stream = make(stop_time=START + 5_000, deposit=1_500 * RATE)
    now = START + 3_000
    assert vested_wei(stream, now) == 3_000 * RATE > stream.deposit
    assert vested_capped(stream, now) == stream.deposit


def test_withdrawable_subtracts_withdrawn_and_never_goes_negative() -> None:
    stream = make(withdrawn=50 * RATE)
    assert withdrawable_wei(stream, START + 80) == 30 * RATE
    assert withdrawable_capped(stream, START + 80) == 30 * RATE
    assert withdrawable_wei(stream, START + 20) == 0
    assert withdrawable_capped(stream, START + 20) == 0


def test_terminated_stream() -> None:
    stream = make(recipient=ZERO_ADDRESS)
    assert is_terminated(stream)
    assert not is_terminated(make())
    assert withdrawable_capped(stream, START + 100) == 0  # withdraw would revert


def test_computed_block_uses_upstream_formulas() -> None:
    stream = make(withdrawn=RATE)
    result = computed(stream, START + 100)
    assert (result.now, result.remaining_seconds) == (START + 100, STOP - START - 100)
    assert (result.vested_wei, result.withdrawable_wei) == (100 * RATE, 99 * RATE)
    assert stream.chain_json()["ratePerSecond"] == RATE
    assert list(stream.chain_json()) == [
        "token", "sender", "recipient", "startTime", "stopTime",
        "ratePerSecond", "deposit", "withdrawn", "halted",
    ]  # fmt: skip


# --- pricing ------------------------------------------------------------------------------


def test_price_is_exact_when_it_divides() -> None:
    one_core = Resources.from_gb(cpus=1, memory_gb=0, storage_gb=0)
    assert (
        price_wei_per_second(
            one_core,
            wei_per_core_month=SECONDS_PER_MONTH * 3,
            wei_per_gb_ram_month=0,
            wei_per_gb_disk_month=0,
        )
        == 3
    )
    assert SECONDS_PER_MONTH == 730 * 3600


def test_price_rounds_up_never_undercharges() -> None:
    resources = Resources.from_gb(cpus=2, memory_gb=4, storage_gb=20)
    prices = {"wei_per_core_month": 10**15, "wei_per_gb_ram_month": 3, "wei_per_gb_disk_month": 1}
    rate = price_wei_per_second(resources, **prices)
    monthly = 2 * 10**15 + 4 * 3 + 20 * 1
    assert rate * SECONDS_PER_MONTH >= monthly
    assert (rate - 1) * SECONDS_PER_MONTH < monthly
    # One wei per month is still one wei per second, not zero.
    tiny = Resources.from_gb(cpus=1, memory_gb=1, storage_gb=10)
    assert (
        price_wei_per_second(
            tiny, wei_per_core_month=1, wei_per_gb_ram_month=0, wei_per_gb_disk_month=0
        )
        == 1
    )
    assert (
        price_wei_per_second(
            tiny, wei_per_core_month=0, wei_per_gb_ram_month=0, wei_per_gb_disk_month=0
        )
        == 0
    )


def test_price_counts_memory_in_mib() -> None:
    half_gb = Resources(cpus=0, memory_mib=512, storage_gib=0)
    gb_month = 2 * SECONDS_PER_MONTH
    rate = price_wei_per_second(
        half_gb, wei_per_core_month=0, wei_per_gb_ram_month=gb_month, wei_per_gb_disk_month=0
    )
    assert rate == 1
    with pytest.raises(ValueError, match="negative"):
        price_wei_per_second(
            half_gb, wei_per_core_month=-1, wei_per_gb_ram_month=0, wei_per_gb_disk_month=0
        )


# --- the create gate ----------------------------------------------------------------------

NOW = START + 100
GOOD_RUNWAY = STOP - NOW


def gate(stream: StreamState | None, **changes: object) -> str | None:
    kwargs: dict[str, object] = {
        "provider": PROVIDER.lower(),
        "now": NOW,
        "token": ZERO_ADDRESS,
        "min_remaining": 600,
        "price_wei_per_second": RATE,
        "already_used": False,
    }
    kwargs.update(changes)
    return check_stream(stream, **kwargs)  # type: ignore[arg-type]


def test_gate_accepts_a_good_stream() -> None:
    assert gate(make()) is None
    assert gate(make(), provider=PROVIDER.upper().replace("0X", "0x")) is None
    assert gate(make(), min_remaining=GOOD_RUNWAY) is None  # exactly enough
    assert gate(make(), price_wei_per_second=RATE - 1) is None  # paying more is fine


@pytest.mark.parametrize(
    ("stream", "changes", "reason"),
    [
        pytest.param(None, {}, "stream not found", id="not-found"),
        pytest.param(make(recipient=SENDER), {}, "recipient mismatch", id="recipient"),
        pytest.param(make(recipient=ZERO_ADDRESS), {}, "stream terminated", id="terminated"),
        pytest.param(make(deposit=0), {}, "no deposit", id="no-deposit"),
        pytest.param(make(start_time=NOW + 1), {}, "stream not started", id="not-started"),
        pytest.param(make(halted=True), {}, "stream halted", id="halted"),
        pytest.param(make(), {"already_used": True}, "already used", id="reused"),
        pytest.param(make(stop_time=NOW), {"min_remaining": 0}, "stream expired", id="expired"),
        pytest.param(make(stop_time=NOW - 50), {}, "stream expired", id="long-expired"),
        pytest.param(
            make(), {"min_remaining": GOOD_RUNWAY + 1}, "runway too short", id="short-runway"
        ),
        pytest.param(make(token=OTHER_TOKEN), {}, "wrong token", id="wrong-token"),
        pytest.param(make(), {"price_wei_per_second": RATE + 1}, "rate below price", id="cheap"),
    ],
)
def test_gate_reasons(stream: StreamState | None, changes: dict[str, object], reason: str) -> None:
    got = gate(stream, **changes)
    assert got is not None
    assert reason in got


def test_gate_starts_exactly_at_start_time() -> None:
    assert gate(make(start_time=NOW, stop_time=NOW + 700)) is None


# --- the monitor --------------------------------------------------------------------------


def verdict(stream: StreamState | None, *, failed: bool = False, stopped: bool = False) -> str:
    return monitor_verdict(
        stream, now=NOW, min_remaining=600, read_failed=failed, stopped_for_payment=stopped
    )


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        pytest.param(make(), "keep", id="healthy"),
        pytest.param(make(stop_time=NOW + 600), "keep", id="exactly-threshold"),
        pytest.param(make(stop_time=NOW + 599), "stop", id="below-threshold"),
        pytest.param(make(stop_time=NOW), "stop", id="used-up"),
        pytest.param(make(halted=True), "stop", id="halted"),
        pytest.param(make(recipient=ZERO_ADDRESS), "stop", id="terminated"),
        pytest.param(None, "stop", id="gone"),
    ],
)
def test_monitor_on_a_running_vm(stream: StreamState | None, expected: str) -> None:
    assert verdict(stream) == expected


@pytest.mark.parametrize(
    "stream", [make(), make(halted=True), make(recipient=ZERO_ADDRESS), make(stop_time=NOW), None]
)
def test_a_failed_read_never_changes_anything(stream: StreamState | None) -> None:
    assert verdict(stream, failed=True) == "keep"
    assert verdict(stream, failed=True, stopped=True) == "keep"


def test_zero_threshold_still_stops_a_used_up_stream() -> None:
    used_up = make(stop_time=NOW)
    assert monitor_verdict(used_up, now=NOW, min_remaining=0, read_failed=False) == "stop"
    assert monitor_verdict(make(), now=NOW, min_remaining=0, read_failed=False) == "keep"


def test_a_topped_up_stream_restarts_a_vm_stopped_for_payment() -> None:
    assert verdict(make(stop_time=NOW + 10), stopped=True) == "keep"  # still short
    assert verdict(make(stop_time=NOW + 5_000), stopped=True) == "start"  # topped up
    assert verdict(make(stop_time=NOW + 5_000, halted=True), stopped=True) == "keep"
    assert verdict(make(recipient=ZERO_ADDRESS, stop_time=NOW + 5_000), stopped=True) == "keep"
    assert verdict(None, stopped=True) == "keep"


# --- withdraw -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("withdrawable", "min_wei", "gas", "expected"),
    [
        (0, 0, 0, False),
        (100, 0, 99, True),
        (100, 0, 100, False),  # would only pay the gas
        (100, 0, 101, False),
        (100, 100, 10, True),  # exactly the minimum
        (99, 100, 10, False),
        (10**18, 10**17, 10**14, True),
    ],
)
def test_withdraw_decision(withdrawable: int, min_wei: int, gas: int, expected: bool) -> None:
    assert should_withdraw(withdrawable, min_wei=min_wei, gas_cost_wei=gas) is expected
