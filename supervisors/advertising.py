"""What the advertiser is built from: where it posts, as whom, and how it learns the IP.

Why: `ADVERTISER_TYPE` keeps upstream's values: `discovery_server` posts to DISCOVERY_URL,
`golem_base` keeps one entity on Golem Base (GOLEM_BASE_RPC_URL), `both` does both through
one fan-out poster. Nothing is posted without the provider key's signer. Golem Base is
checked every third of GOLEM_BASE_ADVERTISEMENT_INTERVAL and its entity lives twice that
many blocks (upstream's numbers); `both` attempts at the shorter of the two intervals. With
the `local` payments profile nothing goes to Golem Base (`both` posts only to
DISCOVERY_URL), since no requestor out there can pay on the node's own chain. Golem Base gas
comes from the PoW faucet unless the network is mainnet or FAUCET_URL is empty. The public
IP is `PUBLIC_IP` when set, else asked of the echo services (`PUBLIC_IP_SERVICES`) at each
attempt, as upstream does. In development the name carries upstream's `DEVMODE-` prefix and,
with `PUBLIC_IP=auto`, the advert carries the host's LAN address (as upstream's development
mode does; the echo services only when there is none).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog

from actors.advertiser import (
    DiscoveryPoster,
    FanoutPoster,
    FaucetSettings,
    GolemBasePoster,
    Identity,
    Minimums,
    Poster,
)
from golem_actor.adapters.public_ip import discover_public_ip, lan_ipv4
from golem_actor.settings import Settings
from golem_actor.signer import Signer

__all__ = [
    "advert_identity",
    "advert_interval",
    "advert_minimums",
    "advert_poster",
    "golem_base_poster",
    "public_ip_source",
    "withdraw_timeout",
]

log = structlog.get_logger("golem_actor.advertiser")


def golem_base_faucet(settings: Settings) -> FaucetSettings | None:
    """The faucet that pays Golem Base gas: none on mainnet or without FAUCET_URL."""
    if settings.network == "mainnet" or not settings.faucet_url:
        return None
    return FaucetSettings(
        faucet_url=settings.faucet_url,
        captcha_url=settings.captcha_url,
        captcha_api_key=settings.captcha_api_key,
    )


def golem_base_poster(settings: Settings, signer: Signer) -> GolemBasePoster:
    return GolemBasePoster(
        rpc_url=settings.golem_base_rpc_url,
        signer=signer,
        network=settings.network,
        payments_network=settings.payments_network,
        btl=2 * settings.golem_base_advertisement_interval,
        max_fee_cap_wei=settings.tx_max_fee_wei,
        faucet=golem_base_faucet(settings),
    )


def advert_poster(settings: Settings, signer: Signer | None) -> tuple[Poster | None, str]:
    """Where the advertiser posts, or None and why nothing is advertised."""
    if signer is None:
        return None, "no provider key to sign adverts with"
    kind = settings.advertiser_type
    discovery = DiscoveryPoster(settings.discovery_url, signer)
    if kind == "discovery_server":
        return discovery, ""
    if settings.payments_network == "local":
        # Streams to this node are paid on its own anvil, which no requestor on the
        # public market can reach: a Golem Base advert would only sell what cannot be
        # bought (and reach out from a node meant to run offline).
        if kind == "both":
            return discovery, ""
        return None, (
            "local payments: the public market cannot pay on this node's own chain "
            "(ADVERTISER_TYPE=discovery_server with a DISCOVERY_URL of yours advertises there)"
        )
    golem_base = golem_base_poster(settings, signer)
    if kind == "golem_base":
        return golem_base, ""
    return FanoutPoster([discovery, golem_base]), ""


def advert_interval(settings: Settings) -> float:
    """Seconds between the advertiser's attempts."""
    golem_base = max(1.0, settings.golem_base_advertisement_interval / 3)
    discovery = float(settings.advertisement_interval)
    kind = settings.advertiser_type
    if kind == "discovery_server":
        return discovery
    return golem_base if kind == "golem_base" else min(discovery, golem_base)


def withdraw_timeout(settings: Settings) -> float:
    """How long a clean stop waits for the advert's withdrawal (a Golem Base delete waits
    for its receipt: a few blocks)."""
    return 5.0 if settings.advertiser_type == "discovery_server" else 8.0


def advert_identity(settings: Settings, platform: str) -> Identity:
    name = settings.provider_name
    if settings.environment == "development" and not name.startswith("DEVMODE-"):
        name = f"DEVMODE-{name}"
    return Identity(name=name, country=settings.provider_country, platform=platform)


def advert_minimums(settings: Settings) -> Minimums:
    return Minimums(
        cpu=settings.min_cpu_cores,
        memory_gb=settings.min_memory_gb,
        storage_gb=settings.min_storage_gb,
    )


def public_ip_source(settings: Settings) -> Callable[[], Awaitable[str | None]]:
    """The configured PUBLIC_IP, or the echo services' answer (None when none answers)."""
    configured = None if settings.public_ip == "auto" else settings.public_ip
    services = tuple(settings.public_ip_services)
    development = settings.environment == "development"

    async def public_ip() -> str | None:
        if configured is not None:
            return configured
        if development and (lan := await lan_ipv4()) is not None:
            return lan
        found, failures = await discover_public_ip(services)
        if found is None:
            log.warning("public IP unknown", failures=failures)
        return found

    return public_ip
