"""What the advertiser is built from: where it posts, as whom, and how it learns the IP.

Why: `ADVERTISER_TYPE` keeps upstream's values, but only the discovery server is
implemented so far, so `golem_base` (upstream's and our default) advertises nowhere and
says so, and `both` posts to the discovery server and warns about the rest. Nothing is
posted without the provider key's signer. The public IP is `PUBLIC_IP` when set, else
asked of the echo services (`PUBLIC_IP_SERVICES`) at each attempt, as upstream does.
In development the name carries upstream's `DEVMODE-` prefix.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog

from actors.advertiser import DiscoveryPoster, Identity, Minimums, Poster
from golem_actor.adapters.public_ip import discover_public_ip
from golem_actor.settings import Settings
from golem_actor.signer import Signer

__all__ = ["advert_identity", "advert_minimums", "advert_poster", "public_ip_source"]

log = structlog.get_logger("golem_actor.advertiser")
GOLEM_BASE_MISSING = "Golem Base adverts are not supported yet"


def advert_poster(settings: Settings, signer: Signer | None) -> tuple[Poster | None, str]:
    """The discovery poster, or None and why nothing is advertised."""
    kind = settings.advertiser_type
    if kind == "golem_base":
        return None, (
            f"ADVERTISER_TYPE=golem_base: {GOLEM_BASE_MISSING}; "
            "set ADVERTISER_TYPE=discovery_server (and DISCOVERY_URL) to advertise"
        )
    if signer is None:
        return None, "no provider key to sign adverts with"
    if kind == "both":
        log.warning(
            "ADVERTISER_TYPE=both: advertising on the discovery server only", why=GOLEM_BASE_MISSING
        )
    return DiscoveryPoster(settings.discovery_url, signer), ""


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

    async def public_ip() -> str | None:
        if configured is not None:
            return configured
        found, failures = await discover_public_ip(services)
        if found is None:
            log.warning("public IP unknown", failures=failures)
        return found

    return public_ip
