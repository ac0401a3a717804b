"""Wire models of the discovery API: upstream's shapes, plus what the requestor needs.

Why: providers and requestors already speak the upstream discovery server's protocol, so
the request body and the advert's fields are its own (`provider_id, ip_address, country,
resources {cpu, memory, storage}, pricing, created_at, updated_at`, timestamps as naive
UTC ISO-8601 as it writes them); every item also carries `platform` and `provider_name`
(the requestor's table and `vm create` read `provider_name`, empty when the provider sent
none) and `verified` (false only for a legacy unsigned advert). Errors keep upstream's
`{"detail": {"code", "message"}}`. Decoding is strict (no coercion; unknown fields are
ignored, as upstream did): the IP must be a dotted IPv4 address with octets in range (the
requestor dials `http://<ip>:7466`), the country two ASCII letters (stored upper-case).
An optional `timestamp` (Unix seconds, inside the signed body) protects a provider's
adverts against replay; see app.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any

import msgspec
from msgspec import Meta

__all__ = [
    "Advert",
    "AdvertBody",
    "Deleted",
    "ErrorBody",
    "ErrorDetail",
    "Health",
    "Resources",
]

Amount = Annotated[int, Meta(ge=1, le=2**31 - 1)]
Ipv4 = Annotated[str, Meta(max_length=15, pattern=r"^(\d{1,3}\.){3}\d{1,3}$")]
Country = Annotated[str, Meta(min_length=2, max_length=2, pattern="^[A-Za-z]{2}$")]
Label = Annotated[str, Meta(max_length=128)]


class Resources(msgspec.Struct, frozen=True, kw_only=True):
    cpu: Amount
    memory: Amount  # GB
    storage: Amount  # GB


class AdvertBody(msgspec.Struct, frozen=True, kw_only=True):
    ip_address: Ipv4
    country: Country
    resources: Resources
    pricing: dict[str, Any] | None = None  # stored verbatim, as upstream
    platform: Annotated[str, Meta(max_length=32)] | None = None
    provider_name: Label | None = None
    timestamp: Annotated[float, Meta(ge=0)] | None = None  # Unix seconds, against replays

    def __post_init__(self) -> None:
        try:
            ipaddress.IPv4Address(self.ip_address)
        except ValueError as exc:  # octets out of range, or leading zeros
            raise ValueError(f"ip_address {self.ip_address!r} is not an IPv4 address") from exc


class Advert(msgspec.Struct, frozen=True, kw_only=True):
    provider_id: str
    ip_address: str
    country: str
    resources: Resources
    pricing: dict[str, Any] | None
    created_at: str
    updated_at: str
    platform: str
    provider_name: str
    verified: bool


class ErrorDetail(msgspec.Struct, frozen=True):
    code: str
    message: str


class ErrorBody(msgspec.Struct, frozen=True):
    detail: ErrorDetail


class Health(msgspec.Struct, frozen=True):
    status: str


class Deleted(msgspec.Struct, frozen=True):
    status: str
