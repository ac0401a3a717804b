"""What the node's Golem Base entity should say, and the one write that makes it so (pure).

Why pure: the update/extend policy (upstream-provider.md §5.3) is the heart of advertising
on Golem Base and must be stated by tests without a chain. The policy:
- one entity per provider, found by `golem_provider_id` and owned by the provider key
  (entities of that id owned by anyone else are not ours and are left alone);
- none: create one (empty payload, `btl` blocks);
- more than one (a crash between a write and its receipt, an older node's leftovers): keep
  the one that lives longest and delete the others, in the same write;
- the kept one's annotations differ from the advert's: update it (same `btl`), which also
  renews its lifetime;
- they match and it expires within `max(10, btl // 5)` blocks: extend it by `btl`;
- otherwise nothing is written (a read costs no gas).
Annotations are upstream's: strings `golem_type="provider"`, the network, payments
network, id, IP, country, name, platform and prices (`str(float)`, with
`golem_price_currency="USD/GLM"`); integers `golem_cpu`, `golem_memory`, `golem_storage`
(what the node can still sell).
"""

from __future__ import annotations

from golem_actor.adapters.golem_base import (
    Annotations,
    Create,
    EntityMeta,
    Extend,
    StorageTx,
    Update,
)
from golem_actor.discovery.schemas import AdvertBody

__all__ = ["annotations_for", "extend_margin", "own_query", "plan_write"]

_PRICES = (
    ("golem_price_usd_core_month", "usd_per_core_month"),
    ("golem_price_usd_ram_gb_month", "usd_per_gb_ram_month"),
    ("golem_price_usd_storage_gb_month", "usd_per_gb_storage_month"),
    ("golem_price_glm_core_month", "glm_per_core_month"),
    ("golem_price_glm_ram_gb_month", "glm_per_gb_ram_month"),
    ("golem_price_glm_storage_gb_month", "glm_per_gb_storage_month"),
)


def own_query(provider_id: str) -> str:
    """The query that finds this provider's entities (as upstream's advertiser asks)."""
    return f'golem_provider_id="{provider_id}"'


def annotations_for(
    advert: AdvertBody, *, provider_id: str, network: str, payments_network: str
) -> Annotations:
    strings = {
        "golem_type": "provider",
        "golem_network": network,
        "golem_payments_network": payments_network,
        "golem_provider_id": provider_id,
        "golem_ip_address": advert.ip_address,
        "golem_country": advert.country,
        "golem_provider_name": advert.provider_name or "",
        "golem_platform": advert.platform or "",
        "golem_price_currency": "USD/GLM",
    }
    pricing = advert.pricing or {}
    for annotation, field in _PRICES:
        strings[annotation] = str(float(pricing.get(field, 0.0)))
    numbers = {
        "golem_cpu": advert.resources.cpu,
        "golem_memory": advert.resources.memory,
        "golem_storage": advert.resources.storage,
    }
    return Annotations.of(strings, numbers)


def extend_margin(btl: int) -> int:
    """Extend once the entity has this many blocks left, or fewer."""
    return max(10, btl // 5)


def plan_write(
    own: list[EntityMeta], wanted: Annotations, *, block: int, btl: int
) -> StorageTx | None:
    """The write that leaves exactly one entity saying `wanted`, or None when it does."""
    if not own:
        return StorageTx(creates=(Create(btl=btl, payload=b"", annotations=wanted),))
    keep = max(own, key=lambda meta: (meta.expires_at_block, meta.key))
    extra = tuple(meta.key for meta in own if meta.key != keep.key)
    if keep.annotations != wanted:
        update = Update(key=keep.key, btl=btl, payload=b"", annotations=wanted)
        return StorageTx(updates=(update,), deletes=extra)
    if keep.expires_at_block - block <= extend_margin(btl):
        return StorageTx(extends=(Extend(key=keep.key, blocks=btl),), deletes=extra)
    return StorageTx(deletes=extra) if extra else None
