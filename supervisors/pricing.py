"""What the pricing actor is built from: the USD prices, the rate source, the periods.

Shared by the node (`prepare_node`, `node_tree`) and the CLI (`pricing show`, `status`), so
they always price alike. The rates come from the CoinGecko-compatible feeds of the
settings, except on a payments network whose profile fixes them (the `local` chain: its
tokens have no market price, and the node stays offline).
"""

from __future__ import annotations

from decimal import Decimal

from actors.pricing import RateSource
from golem_actor.adapters.chain.deployments import DeploymentError, load_payments_profiles
from golem_actor.adapters.price_feed import FixedRates, PriceFeed
from golem_actor.domain.pricing import UsdPrices, WeiOverride
from golem_actor.settings import Settings

__all__ = ["pricing_interval", "rate_source", "usd_prices", "wei_override"]


def usd_prices(settings: Settings) -> UsdPrices:
    return UsdPrices(
        core=settings.price_usd_per_core_month,
        ram_gb=settings.price_usd_per_gb_ram_month,
        disk_gb=settings.price_usd_per_gb_storage_month,
    )


def wei_override(settings: Settings) -> WeiOverride:
    return WeiOverride(
        core=settings.price_wei_per_core_month,
        ram_gb=settings.price_wei_per_gb_ram_month,
        disk_gb=settings.price_wei_per_gb_storage_month,
    )


def pricing_interval(settings: Settings) -> float:
    """Seconds between refreshes: as often as the discovery server's adverts need, when
    advertising there; Golem Base adverts live longer (upstream's two intervals). At most
    half the staleness bound, so one missed refresh never makes a rate stale."""
    if settings.advertiser_type in ("discovery_server", "both"):
        interval = settings.pricing_update_interval_discovery
    else:
        interval = settings.pricing_update_interval_golem_base
    return min(float(interval), settings.pricing_max_age_seconds / 2)


def rate_source(settings: Settings) -> RateSource:
    try:
        profile = load_payments_profiles().get(settings.payments_network)
    except DeploymentError:
        profile = None
    if profile is not None and profile.fixed_glm_usd and profile.fixed_eth_usd:
        return FixedRates(
            glm_usd=Decimal(str(profile.fixed_glm_usd)),
            eth_usd=Decimal(str(profile.fixed_eth_usd)),
        )
    return PriceFeed(settings.coingecko_api_url, glm_ids=settings.coingecko_ids)
