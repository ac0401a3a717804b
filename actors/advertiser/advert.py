"""What the node advertises, decided from its capacity, prices and address (pure).

Why: the rules of "advertise or say why not" live in one function with no IO, so the
actor only gathers the facts and the tests state the rules directly. An advert is the
discovery server's wire body (upstream's shape plus `provider_name`, `platform` and the
anti-replay `timestamp`); a refusal is the reason, in words an operator can act on.
Resources are what the node can still sell (free after the reserve and the VMs), in
whole GB as upstream advertises them; prices carry upstream's six numbers.
"""

from __future__ import annotations

import ipaddress

import msgspec

from actors.resource_tracker import CapacityReport
from golem_actor.discovery.schemas import AdvertBody, Resources as WireResources
from golem_actor.domain.pricing import PriceInfo

__all__ = ["Identity", "Minimums", "make_advert"]


class Identity(msgspec.Struct, frozen=True, kw_only=True):
    """Who the advert says the node is."""

    name: str
    country: str
    platform: str


class Minimums(msgspec.Struct, frozen=True, kw_only=True):
    """Below any of these (available now), the node does not advertise."""

    cpu: int
    memory_gb: int
    storage_gb: int


def _ipv4(ip: str | None) -> str | None:
    """Why `ip` cannot be advertised, or None when it can."""
    if ip is None:
        return "the public IP is unknown (PUBLIC_IP=auto and no echo service answered)"
    try:
        ipaddress.IPv4Address(ip)
    except ValueError:
        return f"PUBLIC_IP {ip!r} is not an IPv4 address (the discovery server needs one)"
    return None


def make_advert(
    *,
    identity: Identity,
    capacity: CapacityReport,
    prices: PriceInfo,
    ip: str | None,
    minimums: Minimums,
    now: float,
) -> AdvertBody | str:
    """The advert to post, or why there is none."""
    why_ip = _ipv4(ip)
    if why_ip is not None:
        return why_ip
    assert ip is not None
    if prices.glm is None:
        return f"no price known: {prices.why or prices.state}"
    if capacity.vms >= capacity.max_vms:
        return f"MAX_VMS reached ({capacity.vms} of {capacity.max_vms} VMs)"
    free = capacity.free
    short = [
        f"{what} {have} < {need}"
        for what, have, need in (
            ("CPU cores", free.cpus, minimums.cpu),
            ("memory GB", free.memory_gb, minimums.memory_gb),
            ("storage GB", free.storage_gib, minimums.storage_gb),
        )
        if have < need or have < 1
    ]
    if short:
        return "capacity below the minimums: " + ", ".join(short)
    glm, usd = prices.glm, prices.usd
    return AdvertBody(
        ip_address=ip,
        country=identity.country,
        resources=WireResources(cpu=free.cpus, memory=free.memory_gb, storage=free.storage_gib),
        pricing={
            "usd_per_core_month": usd.core,
            "usd_per_gb_ram_month": usd.ram_gb,
            "usd_per_gb_storage_month": usd.disk_gb,
            "glm_per_core_month": float(glm.core),
            "glm_per_gb_ram_month": float(glm.ram_gb),
            "glm_per_gb_storage_month": float(glm.disk_gb),
        },
        platform=identity.platform,
        provider_name=identity.name,
        timestamp=now,
    )
