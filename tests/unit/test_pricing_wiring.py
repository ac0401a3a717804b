"""How the node's pricing is put together from the settings: the rate source, the period."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from golem_actor.adapters.price_feed import FixedRates, PriceFeed
from golem_actor.settings import Settings
from supervisors.pricing import pricing_interval, rate_source, wei_override


async def test_the_feeds_of_the_settings_are_asked_except_on_the_local_chain() -> None:
    settings = Settings(
        coingecko_api_url=["http://127.0.0.1:9/a/", "http://127.0.0.1:9/b"],
        coingecko_ids=["golem"],
    )
    source = rate_source(settings)
    assert isinstance(source, PriceFeed)
    assert source.urls == ("http://127.0.0.1:9/a", "http://127.0.0.1:9/b")
    local = rate_source(msgspec.structs.replace(settings, payments_network="local"))
    assert isinstance(local, FixedRates)
    quote = await local.fetch()
    assert (quote.glm_usd, quote.eth_usd) == (Decimal("0.25"), Decimal("2500.0"))


def test_the_refresh_follows_the_advertiser_and_the_staleness_bound() -> None:
    settings = Settings()
    assert pricing_interval(settings) == 14400  # Golem Base adverts (the default)
    discovery = msgspec.structs.replace(settings, advertiser_type="discovery_server")
    assert pricing_interval(discovery) == 900
    assert pricing_interval(msgspec.structs.replace(settings, advertiser_type="both")) == 900
    tight = msgspec.structs.replace(settings, pricing_max_age_seconds=3600)
    assert pricing_interval(tight) == 1800


def test_any_wei_price_is_an_override() -> None:
    assert not wei_override(Settings()).active
    assert wei_override(Settings(price_wei_per_gb_ram_month=1)).active
