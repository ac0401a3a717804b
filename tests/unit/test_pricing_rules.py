"""Pricing rules: GLM per unit, the requestor's stream rate, native rates, rate lifecycle."""

from __future__ import annotations

from decimal import Decimal

import pytest

from golem_actor.domain.pricing import (
    GlmPrices,
    RateReading,
    UsdPrices,
    glm_per_unit,
    glm_prices,
    native_min_rate,
    positive_rate,
    rate_moved,
    rate_state,
    requestor_rate,
    usd_per_month,
)
from golem_actor.domain.resources import Resources

DEFAULTS = UsdPrices(core=5.0, ram_gb=2.0, disk_gb=0.1)
MEDIUM = Resources.from_gb(cpus=2, memory_gb=4, storage_gb=20)
SMALL = Resources.from_gb(cpus=1, memory_gb=1, storage_gb=10)


def test_glm_per_unit_is_quantized_half_up() -> None:
    assert glm_prices(DEFAULTS, Decimal("0.2512")) == GlmPrices(
        core=Decimal("19.90445860"), ram_gb=Decimal("7.96178344"), disk_gb=Decimal("0.39808917")
    )
    assert glm_per_unit(1.0, Decimal("3")) == Decimal("0.33333333")
    assert glm_per_unit(2.0, Decimal("3")) == Decimal("0.66666667")
    assert glm_per_unit(0.000000005, Decimal("1")) == Decimal("0.00000001")  # half up
    with pytest.raises(ValueError, match="above zero"):
        glm_per_unit(1.0, Decimal(0))


def test_the_requestors_worked_example() -> None:
    glm = glm_prices(DEFAULTS, Decimal("0.2512"))
    month = 2 * glm.core + 4 * glm.ram_gb + 20 * glm.disk_gb
    assert month == Decimal("79.61783436")
    assert requestor_rate(glm, MEDIUM) == 30295979589041
    assert requestor_rate(glm, SMALL) == 12118391834094


def test_the_requestor_rate_is_what_the_requestor_computes_from_the_advert() -> None:
    # Adverts carry the prices as floats (str(float) on Golem Base): the same doubles.
    glm = glm_prices(UsdPrices(core=12.0, ram_gb=4.0, disk_gb=0.1), Decimal("0.3137"))
    advertised = [float(str(float(p))) for p in (glm.core, glm.ram_gb, glm.disk_gb)]
    for cpu, memory, storage in ((1, 1, 10), (2, 4, 20), (3, 7, 33), (16, 64, 500)):
        month = cpu * advertised[0] + memory * advertised[1] + storage * advertised[2]
        theirs = int(month / (730 * 3600) * 1e18)
        size = Resources.from_gb(cpus=cpu, memory_gb=memory, storage_gb=storage)
        assert requestor_rate(glm, size) == theirs


def test_native_rate_is_the_usd_price_at_the_eth_rate_rounded_down() -> None:
    assert usd_per_month(DEFAULTS, MEDIUM) == Decimal("20.0")
    # 20 USD at 2000 USD/ETH = 0.01 ETH a month = 1e16 wei / 2,628,000 s
    assert native_min_rate(DEFAULTS, Decimal(2000), MEDIUM) == 10**16 // 2_628_000
    assert native_min_rate(DEFAULTS, Decimal(4000), MEDIUM) == 10**16 // 2 // 2_628_000
    with pytest.raises(ValueError, match="above zero"):
        native_min_rate(DEFAULTS, Decimal(0), MEDIUM)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.2512, Decimal("0.2512")),
        (3, Decimal(3)),
        ("0.5", Decimal("0.5")),
        (0, None),
        (0.0, None),
        (-1.5, None),
        ("abc", None),
        ("NaN", None),
        (float("inf"), None),
        (None, None),
        (True, None),
        ({"usd": 1}, None),
    ],
)
def test_only_a_positive_finite_number_is_a_rate(value: object, expected: Decimal | None) -> None:
    assert positive_rate(value) == expected


def test_a_rate_is_applied_when_it_moved_by_the_threshold() -> None:
    assert rate_moved(None, Decimal("0.25"), 1.0)
    assert not rate_moved(Decimal("0.25"), Decimal("0.2524"), 1.0)  # 0.96 %
    assert rate_moved(Decimal("0.25"), Decimal("0.2525"), 1.0)  # exactly 1 %
    assert rate_moved(Decimal("0.25"), Decimal("0.2475"), 1.0)  # down as well
    assert rate_moved(Decimal("0.25"), Decimal("0.25"), 0.0)  # a 0 % threshold: always


def test_a_rate_is_known_within_the_staleness_bound() -> None:
    reading = RateReading(usd=Decimal("0.25"), confirmed_at=1000.0)
    assert rate_state(None, now=1000.0, max_age=60) == "unknown"
    assert rate_state(reading, now=1060.0, max_age=60) == "known"
    assert rate_state(reading, now=1060.5, max_age=60) == "stale"
