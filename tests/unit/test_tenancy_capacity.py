from __future__ import annotations

from golem_actor.domain.capacity import Capacity, shortfall
from golem_actor.domain.resources import Resources
from golem_actor.domain.tenancy import (
    Caller,
    can_access,
    lists,
    new_job_id,
    new_vm_id,
    token_digest,
)


def test_vm_ids_are_unguessable_and_hostname_safe() -> None:
    ids = {new_vm_id() for _ in range(1000)}
    assert len(ids) == 1000
    for vm_id in ids:
        assert vm_id.startswith("vm-")
        assert len(vm_id) == 29
        assert vm_id[3:].isalnum()
        assert vm_id == vm_id.lower()
    assert new_job_id() != new_job_id()


def test_the_id_is_the_capability_for_vms_created_without_a_token() -> None:
    assert can_access(Caller(), None)
    assert can_access(Caller(tenant=token_digest("anyone")), None)


def test_a_token_bound_vm_needs_its_token() -> None:
    alice, bob = token_digest("alice"), token_digest("bob")
    assert can_access(Caller(tenant=alice), alice)
    assert not can_access(Caller(tenant=bob), alice)
    assert not can_access(Caller(), alice)
    assert can_access(Caller(operator=True), alice)


def test_listing_shows_only_what_the_caller_owns() -> None:
    alice = token_digest("alice")
    assert lists(Caller(tenant=alice), alice)
    assert not lists(
        Caller(tenant=alice), None
    )  # id-only VMs are listed to nobody but the operator
    assert not lists(Caller(), None)
    assert lists(Caller(operator=True), None)


def gb(cpus: int, memory: int, storage: int) -> Resources:
    return Resources.from_gb(cpus=cpus, memory_gb=memory, storage_gb=storage)


def test_requests_that_fit_and_the_reasons_of_those_that_do_not() -> None:
    capacity = Capacity(total=gb(8, 16, 100), reserve=gb(1, 2, 10), max_vms=3)
    assert shortfall(capacity, [gb(2, 4, 20)], gb(5, 10, 70)) is None
    missing = shortfall(capacity, [gb(2, 4, 20)], gb(6, 12, 80))
    assert missing is not None
    assert str(missing) == (
        "not enough CPU cores: requested 6, available 5"
        " (allocation: 2 of 7 sellable are allocated to VMs); "
        "not enough memory: requested 12288 MiB, available 10240 MiB"
        " (allocation: 4096 MiB of 14336 MiB sellable are allocated to VMs); "
        "not enough storage: requested 80 GiB, available 70 GiB"
        " (allocation: 20 GiB of 90 GiB sellable are allocated to VMs)"
    )
    full = shortfall(capacity, [gb(1, 1, 10)] * 3, gb(1, 1, 10))
    assert full is not None
    assert full.reasons == ("this node runs at most 3 VMs",)


def test_a_reserve_larger_than_the_host_sells_nothing() -> None:
    capacity = Capacity(total=gb(2, 2, 20), reserve=gb(4, 4, 40), max_vms=10)
    assert capacity.sellable == gb(0, 0, 0)
