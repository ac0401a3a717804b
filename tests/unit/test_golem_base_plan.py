"""The Golem Base advert policy, pure: upstream's annotations, and the one write that leaves
exactly one true, living entity (create, update, extend, clean up duplicates, or nothing)."""

from __future__ import annotations

from actors.advertiser.golem_base_plan import annotations_for, extend_margin, plan_write
from golem_actor.adapters.golem_base import (
    Annotations,
    Create,
    EntityMeta,
    Extend,
    StorageTx,
    Update,
)
from golem_actor.discovery.schemas import AdvertBody, Resources

OWNER = "0x" + "cd" * 20
ADVERT = AdvertBody(
    ip_address="203.0.113.7",
    country="SE",
    resources=Resources(cpu=8, memory=16, storage=200),
    pricing={
        "usd_per_core_month": 5.0,
        "usd_per_gb_ram_month": 2.0,
        "usd_per_gb_storage_month": 0.1,
        "glm_per_core_month": 19.9044586,
        "glm_per_gb_ram_month": 7.96178344,
        "glm_per_gb_storage_month": 0.39808917,
    },
    platform="x86_64",
    provider_name="DEVMODE-node",
    timestamp=1.0,
)
WANTED = annotations_for(
    ADVERT, provider_id="0xAbC", network="testnet", payments_network="l2.holesky"
)
BTL = 7200


def meta(key: str, expires: int, annotations: Annotations = WANTED) -> EntityMeta:
    return EntityMeta(key=key, owner=OWNER, expires_at_block=expires, annotations=annotations)


def test_annotations_are_upstreams() -> None:
    assert dict(WANTED.strings) == {
        "golem_type": "provider",
        "golem_network": "testnet",
        "golem_payments_network": "l2.holesky",
        "golem_provider_id": "0xAbC",
        "golem_ip_address": "203.0.113.7",
        "golem_country": "SE",
        "golem_provider_name": "DEVMODE-node",
        "golem_platform": "x86_64",
        "golem_price_currency": "USD/GLM",
        "golem_price_usd_core_month": "5.0",
        "golem_price_usd_ram_gb_month": "2.0",
        "golem_price_usd_storage_gb_month": "0.1",
        "golem_price_glm_core_month": "19.9044586",
        "golem_price_glm_ram_gb_month": "7.96178344",
        "golem_price_glm_storage_gb_month": "0.39808917",
    }
    assert dict(WANTED.numbers) == {"golem_cpu": 8, "golem_memory": 16, "golem_storage": 200}


def test_no_entity_creates_one() -> None:
    assert plan_write([], WANTED, block=100, btl=BTL) == StorageTx(
        creates=(Create(btl=BTL, payload=b"", annotations=WANTED),)
    )


def test_a_true_entity_far_from_its_end_needs_nothing() -> None:
    fresh = meta("0x01", expires=100 + extend_margin(BTL) + 1)
    assert plan_write([fresh], WANTED, block=100, btl=BTL) is None


def test_a_true_entity_near_its_end_is_extended() -> None:
    old = meta("0x01", expires=100 + extend_margin(BTL))
    assert plan_write([old], WANTED, block=100, btl=BTL) == StorageTx(
        extends=(Extend(key="0x01", blocks=BTL),)
    )
    assert extend_margin(BTL) == 1440  # upstream: max(10, btl // 5)
    assert extend_margin(20) == 10


def test_a_changed_advert_updates_the_entity_whatever_its_age() -> None:
    changed = annotations_for(
        AdvertBody(
            **{
                **{f: getattr(ADVERT, f) for f in ADVERT.__struct_fields__},
                "resources": Resources(cpu=7, memory=16, storage=200),
            }
        ),
        provider_id="0xAbC",
        network="testnet",
        payments_network="l2.holesky",
    )
    fresh = meta("0x01", expires=100 + BTL)
    assert plan_write([fresh], changed, block=100, btl=BTL) == StorageTx(
        updates=(Update(key="0x01", btl=BTL, payload=b"", annotations=changed),)
    )


def test_duplicates_are_deleted_and_the_longest_lived_kept() -> None:
    stale = meta("0x01", expires=150, annotations=Annotations())
    best = meta("0x02", expires=100 + BTL)
    assert plan_write([stale, best], WANTED, block=100, btl=BTL) == StorageTx(deletes=("0x01",))
    near, older = meta("0x02", expires=160), meta("0x01", expires=120)
    assert plan_write([older, near], WANTED, block=100, btl=BTL) == StorageTx(
        extends=(Extend(key="0x02", blocks=BTL),), deletes=("0x01",)
    )


def test_annotation_order_does_not_matter() -> None:
    shuffled = Annotations.of(dict(reversed(WANTED.strings)), dict(reversed(WANTED.numbers)))
    assert shuffled == WANTED
