"""Capacity that tells the truth: the host's live load (a fake psutil source, virtual time)
shrinks what resource_tracker offers and accepts above the thresholds, the refusal says
which resource and why, the limits of the books still hold, each VM counts once, and the
advert follows a load change within one debounce period (down to its withdrawal). With
CPU_OVERCOMMIT the books sell floor(cores x ratio) cores less the reserve, the advert
follows, and the CPU threshold still stops the sale of cores on a busy host."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import trio
from payments_fakes import hosted
from test_advertiser import IDENTITY, MINIMUMS, FakePoster, prices

from actors.advertiser import Advertiser, AdvertiserMsg, GetAdvertState
from actors.advertiser.advert import make_advert
from actors.pricing import GetPrices
from actors.resource_tracker import (
    CapacityChanged,
    CapacityReport,
    GetCapacity,
    InsufficientResources,
    Release,
    Reserve,
    ResourceTracker,
)
from golem_actor.adapters.host_load import HostLoadUnreadable, PsutilHostLoad
from golem_actor.discovery.schemas import AdvertBody
from golem_actor.domain.capacity import Capacity, shortfall
from golem_actor.domain.host_load import HostLoad, Thresholds, above, threshold_bounds
from golem_actor.domain.pricing import PriceInfo
from golem_actor.domain.resources import ZERO, Resources
from golem_actor.kernel import Actor, Inbox
from golem_actor.settings import SettingsError, load_settings

GIB = 1024**3
HOST = Resources.from_gb(cpus=8, memory_gb=16, storage_gb=200)
SAMPLE = 10.0
# A quiet host (10 % CPU, 2 of 16 GiB, 20 of 200 GiB): memory up to 85 % (13.6 GiB) and
# storage up to 90 % (180 GiB) are for sale, less what is in use.
QUIET = Resources(cpus=8, memory_mib=11878, storage_gib=160)
DEBOUNCE = 5.0


def gb(cpus: int, memory: int, storage: int) -> Resources:
    return Resources.from_gb(cpus=cpus, memory_gb=memory, storage_gb=storage)


def load(cpu: float = 10.0, memory_gb: float = 2.0, storage_gb: float = 20.0) -> HostLoad:
    return HostLoad(
        cpu_percent=cpu,
        memory_total=16 * GIB,
        memory_used=int(memory_gb * GIB),
        storage_total=200 * GIB,
        storage_used=int(storage_gb * GIB),
    )


@dataclass
class FakeHost:
    """A psutil source the test steers; `broken` makes a reading fail as psutil would."""

    now: HostLoad = field(default_factory=load)
    broken: bool = False
    readings: int = 0

    async def __call__(self) -> HostLoad:
        self.readings += 1
        if self.broken:
            raise HostLoadUnreadable("host usage unreadable: [Errno 5] I/O error")
        return self.now


def tracker(host: FakeHost, *, watcher: Inbox[CapacityChanged] | None = None) -> ResourceTracker:
    return ResourceTracker(
        storage_path=Path("/nonexistent"),
        reserve=ZERO,
        max_vms=3,
        total=HOST,
        watcher=None if watcher is None else watcher.address(),
        load=host,
        thresholds=Thresholds(cpu=90, memory=85, storage=90),
        sample_interval=SAMPLE,
    )


def drained(watcher: Inbox[Any]) -> int:
    """How many messages the watcher holds (taken out)."""
    count = 0
    while True:
        try:
            watcher.receive_channel.receive_nowait()
        except trio.WouldBlock:
            return count
        count += 1


# -- the rules ---------------------------------------------------------------------------


def test_thresholds_bound_memory_and_storage_by_the_room_left_and_cpu_only_above() -> None:
    bounds = threshold_bounds(load(cpu=50, memory_gb=12, storage_gb=170), Thresholds())
    assert bounds.cpus is None
    assert bounds.memory_mib.amount == int(16 * 1024 * 0.85) - 12 * 1024  # 1638 MiB
    assert bounds.storage_gib.amount == 10  # 90 % of 200 is 180, 170 used
    over = threshold_bounds(load(cpu=95, memory_gb=14, storage_gb=190), Thresholds())
    assert over.cpus is not None
    assert over.cpus.amount == 0
    assert "host CPU at 95 %, above the 90 % threshold" in over.cpus.why
    assert over.memory_mib.amount == 0
    assert over.storage_gib.amount == 0
    assert over.memory_mib.why == "host memory at 88 % of 16.0 GiB, threshold 85 %"
    # 100 % never bounds CPU, and bounds memory and storage only when full.
    full = threshold_bounds(load(cpu=100, memory_gb=12), Thresholds(cpu=100, memory=100))
    assert full.cpus is None
    assert full.memory_mib.amount == 4 * 1024


def test_a_refusal_names_the_resource_and_whether_a_threshold_or_the_allocations_refused() -> None:
    capacity = Capacity(total=HOST, reserve=ZERO, max_vms=10)
    bounds = threshold_bounds(load(cpu=95, memory_gb=13), Thresholds())
    missing = shortfall(capacity, [gb(2, 2, 20)], gb(1, 2, 190), bounds)
    assert missing is not None
    assert missing.reasons == (
        "not enough CPU cores: requested 1, available 0"
        " (threshold: host CPU at 95 %, above the 90 % threshold)",
        "not enough memory: requested 2048 MiB, available 614 MiB"
        " (threshold: host memory at 81 % of 16.0 GiB, threshold 85 %)",
        "not enough storage: requested 190 GiB, available 160 GiB"
        " (threshold: host storage at 10 % of 200 GiB, threshold 90 %)",
    )
    # Where the allocations leave less than the threshold, they are named.
    quiet = threshold_bounds(load(), Thresholds())
    missing = shortfall(capacity, [gb(6, 4, 20)], gb(3, 1, 10), quiet)
    assert missing is not None
    assert missing.reasons == (
        "not enough CPU cores: requested 3, available 2"
        " (allocation: 6 of 8 sellable are allocated to VMs)",
    )


# -- the actor ----------------------------------------------------------------------------


async def capacity_of(books: object) -> CapacityReport:
    report = await books.call(GetCapacity())  # type: ignore[attr-defined]
    assert isinstance(report, CapacityReport)
    return report


async def test_the_offer_shrinks_above_a_threshold_and_comes_back(autojump_clock: object) -> None:
    host, watcher = FakeHost(), Inbox[CapacityChanged]("watcher")
    async with hosted(tracker(host, watcher=watcher), "resource_tracker") as books:
        report = await capacity_of(books)
        assert report.free == QUIET
        assert report.limited == (
            "memory: host memory at 12 % of 16.0 GiB, threshold 85 %",
            "storage: host storage at 10 % of 200 GiB, threshold 90 %",
        )
        assert report.load == load()
        host.now = load(memory_gb=13.0)  # 81 %: 0.6 GiB left below 85 %
        await trio.sleep(SAMPLE + 0.1)
        report = await capacity_of(books)
        assert report.free == Resources(cpus=8, memory_mib=614, storage_gib=160)
        assert report.limited[0].startswith("memory: host memory at 81 %")
        assert drained(watcher) == 1
        with pytest.raises(InsufficientResources, match=r"memory: .* \(threshold: host memory"):
            await books.call(Reserve("vm-1", gb(1, 1, 10)))
        host.now = load(cpu=97.0, memory_gb=13.0)
        await trio.sleep(SAMPLE + 0.1)
        assert (await capacity_of(books)).free.cpus == 0
        assert drained(watcher) == 1
        with pytest.raises(InsufficientResources, match=r"CPU cores: requested 1, available 0"):
            await books.call(Reserve("vm-1", Resources(cpus=1, memory_mib=512, storage_gib=10)))
        host.now = load()
        await trio.sleep(SAMPLE + 0.1)
        assert (await capacity_of(books)).free == QUIET
        assert drained(watcher) == 1
        await books.call(Reserve("vm-1", gb(1, 1, 10)))  # accepted again


def test_cpu_once_above_its_threshold_stays_above_until_five_points_below() -> None:
    thresholds = Thresholds()
    assert threshold_bounds(load(cpu=88), thresholds).cpus is None  # from below: sold
    held = threshold_bounds(load(cpu=88), thresholds, cpu_held=True).cpus
    assert held is not None
    assert held.amount == 0
    assert held.why == (
        "host CPU at 88 %, was above the 90 % threshold: selling cores again at or below 85 %"
    )
    assert above(load(cpu=86), thresholds, cpu_held=True) == ("cpu",)
    assert above(load(cpu=85), thresholds, cpu_held=True) == ()
    assert threshold_bounds(load(cpu=85), thresholds, cpu_held=True).cpus is None


async def test_a_host_hovering_at_the_cpu_threshold_does_not_flap_its_offer(
    autojump_clock: object,
) -> None:
    host, watcher = FakeHost(), Inbox[CapacityChanged]("watcher")
    async with hosted(tracker(host, watcher=watcher), "resource_tracker") as books:
        offered = []
        for cpu in (91.0, 89.0, 92.0, 88.0, 90.5, 86.0, 84.0, 89.0):
            host.now = load(cpu=cpu)
            await trio.sleep(SAMPLE + 0.1)
            offered.append((await capacity_of(books)).free.cpus)
        # withdrawn at 91, held through the hovering, sold again at 84 and still at 89
        assert offered == [0, 0, 0, 0, 0, 0, 8, 8]
        assert drained(watcher) == 2


async def test_readings_that_do_not_move_the_offer_tell_nobody(autojump_clock: object) -> None:
    host, watcher = FakeHost(now=load(memory_gb=10.0)), Inbox[CapacityChanged]("watcher")
    async with hosted(tracker(host, watcher=watcher), "resource_tracker"):
        for jitter in (10.01, 10.02, 9.99, 10.0):  # a few MiB either way: the same GB offered
            host.now = load(memory_gb=jitter, cpu=40 + jitter)
            await trio.sleep(SAMPLE + 0.1)
        assert host.readings >= 5
        assert drained(watcher) == 0


async def test_a_burst_between_two_readings_cannot_pass_the_threshold(
    autojump_clock: object,
) -> None:
    host = FakeHost(now=load(memory_gb=10.6))  # 3 GiB left below 85 %
    async with hosted(tracker(host), "resource_tracker") as books:
        await books.call(Reserve("vm-1", gb(1, 2, 10)))
        with pytest.raises(InsufficientResources, match="threshold: host memory"):
            await books.call(Reserve("vm-2", gb(1, 2, 10)))  # the guest has not grown yet
        host.now = load(memory_gb=10.6 + 0.3)  # after the next reading: the guest's real use
        await trio.sleep(SAMPLE + 0.1)
        await books.call(Reserve("vm-2", gb(1, 2, 10)))


async def test_a_reservation_released_before_the_next_reading_frees_its_room(
    autojump_clock: object,
) -> None:
    # A create refused or failed after its reservation (a registry it could not write)
    # gives its room back at once, not at the next reading.
    host = FakeHost(now=load(memory_gb=10.6))  # 3 GiB left below 85 %
    async with hosted(tracker(host), "resource_tracker") as books:
        await books.call(Reserve("vm-1", gb(1, 2, 10)))
        await books.cast(Release("vm-1"))
        await books.call(Reserve("vm-2", gb(1, 2, 10)))  # no reading in between


async def test_max_vms_and_the_reserve_hold_whatever_the_load(autojump_clock: object) -> None:
    host = FakeHost()
    async with hosted(tracker(host), "resource_tracker") as books:
        for n in range(3):
            await books.call(Reserve(f"vm-{n}", gb(1, 1, 10)))
        with pytest.raises(InsufficientResources, match="at most 3 VMs"):
            await books.call(Reserve("vm-3", gb(1, 1, 10)))
    reserved = ResourceTracker(
        storage_path=Path("/nonexistent"),
        reserve=gb(2, 8, 100),
        max_vms=3,
        total=HOST,
        load=FakeHost(),
        thresholds=Thresholds(),
    )
    async with hosted(reserved, "resource_tracker") as books:
        assert (await capacity_of(books)).free == gb(6, 8, 100)


async def test_vms_found_at_a_restart_count_once(autojump_clock: object) -> None:
    host = FakeHost(now=load(cpu=99, memory_gb=15.5))  # the adopted VMs load the host
    async with hosted(tracker(host), "resource_tracker") as books:
        for _ in range(2):  # vm_lifecycle adopts at its start, and again after a restart
            await books.call(Reserve("vm-1", gb(2, 4, 40), adopt=True))
            await books.call(Reserve("vm-2", gb(2, 4, 40), adopt=True))
        report = await capacity_of(books)
        assert report.vms == 2
        assert report.allocated == gb(4, 8, 80)
        assert report.total == HOST  # measured totals, not what is available
        await books.cast(Release("vm-1"))
        assert (await capacity_of(books)).allocated == gb(2, 4, 40)


async def test_a_failed_reading_keeps_the_last_one(autojump_clock: object) -> None:
    host = FakeHost(now=load(memory_gb=13.0))
    async with hosted(tracker(host), "resource_tracker") as books:
        host.broken = True
        await trio.sleep(SAMPLE * 2)
        report = await capacity_of(books)
        assert report.load == load(memory_gb=13.0)
        assert report.free.memory_mib == 614


class Prices(Actor[GetPrices]):
    async def handle_call(self, request: GetPrices) -> PriceInfo:
        return prices()


async def test_the_advert_follows_a_load_change_within_one_debounce_period(
    autojump_clock: object,
) -> None:
    host, poster = FakeHost(), FakePoster()
    advertiser_inbox = Inbox[AdvertiserMsg]("advertiser")
    books = ResourceTracker(
        storage_path=Path("/nonexistent"),
        reserve=ZERO,
        max_vms=3,
        total=HOST,
        watcher=advertiser_inbox.address(),
        load=host,
        thresholds=Thresholds(),
        sample_interval=SAMPLE,
    )

    async def public_ip() -> str:
        return "1.2.3.4"

    started = trio.current_time()
    async with hosted(Prices(), "pricing") as pricing, hosted(books, "books") as resources:
        advertiser = Advertiser(
            poster=poster,
            resources=resources,
            pricing=pricing,
            public_ip=public_ip,
            identity=IDENTITY,
            minimums=MINIMUMS,
            interval=3600.0,
            debounce=DEBOUNCE,
            clock=trio.current_time,
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(advertiser.run, advertiser_inbox)
            await trio.sleep(1.0)
            assert [a.resources.memory for _, a in poster.posts] == [11]
            host.now = load(memory_gb=10.0)  # 85 % of 16 GiB is 13.6: 3 GiB offered
            seen_at = started + SAMPLE  # the next reading sees it
            await trio.sleep(SAMPLE + DEBOUNCE)
            assert [a.resources.memory for _, a in poster.posts] == [11, 3]
            assert poster.posts[1][0] <= seen_at + DEBOUNCE + 0.5  # + the post's round trip
            state = await advertiser_inbox.address().call(GetAdvertState())
            assert state.advert is not None
            assert state.advert.resources.memory == 3
            # Above the threshold nothing is for sale: the advert comes down, and back.
            host.now = load(memory_gb=14.0)
            await trio.sleep(SAMPLE + DEBOUNCE)
            assert poster.withdrawals == 1
            assert len(poster.posts) == 2
            state = await advertiser_inbox.address().call(GetAdvertState())
            assert state.phase == "skipped"
            assert "memory GB 0 < 1" in state.why
            host.now = load()
            await trio.sleep(SAMPLE + DEBOUNCE)
            assert [a.resources.memory for _, a in poster.posts] == [11, 3, 11]
            assert poster.withdrawals == 1
            advertiser.request_stop()


async def test_psutil_reads_this_host(tmp_path: Path) -> None:
    reader = PsutilHostLoad(tmp_path)
    await reader()  # the first CPU reading only sets psutil's reference
    reading = await reader()
    assert 0.0 <= reading.cpu_percent <= 100.0
    assert 0 < reading.memory_used < reading.memory_total
    assert 0 < reading.storage_used < reading.storage_total
    assert reading.memory_total == psutil.virtual_memory().total


def test_thresholds_are_settings_under_upstreams_names(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "GOLEM_PROVIDER_MEMORY_THRESHOLD": "70.5"}
    settings = load_settings(env=env)
    assert (settings.cpu_threshold, settings.memory_threshold, settings.storage_threshold) == (
        90.0,
        70.5,
        90.0,
    )
    with pytest.raises(SettingsError, match="GOLEM_PROVIDER_CPU_THRESHOLD") as info:
        load_settings(env={"HOME": str(tmp_path), "GOLEM_PROVIDER_CPU_THRESHOLD": "120"})
    assert "at most 100" in str(info.value)


# -- CPU overcommit ------------------------------------------------------------------------


def test_overcommit_sells_floor_of_cores_times_the_ratio_less_the_reserve() -> None:
    two = gb(2, 4, 40)
    assert Capacity(total=two, reserve=ZERO, max_vms=10).sellable == two  # 1.0: as before
    assert Capacity(total=two, reserve=ZERO, max_vms=10, cpu_overcommit=2.0).sellable == gb(
        4, 4, 40
    )  # memory and storage are never overcommitted
    assert (
        Capacity(total=gb(3, 4, 40), reserve=ZERO, max_vms=10, cpu_overcommit=1.5).sellable.cpus
        == 4
    )
    # the reserve is host cores, taken off after the ratio
    assert (
        Capacity(total=two, reserve=gb(1, 0, 0), max_vms=10, cpu_overcommit=2.0).sellable.cpus == 3
    )
    assert (
        Capacity(total=two, reserve=gb(5, 0, 0), max_vms=10, cpu_overcommit=2.0).sellable.cpus == 0
    )
    # 100 x 1.15 is 114.99999999999999 in floating point: still 115 cores
    assert (
        Capacity(total=gb(100, 4, 40), reserve=ZERO, max_vms=10, cpu_overcommit=1.15).sellable.cpus
        == 115
    )


def overcommitted(host: FakeHost, ratio: float, *, reserve: Resources = ZERO) -> ResourceTracker:
    return ResourceTracker(
        storage_path=Path("/nonexistent"),
        reserve=reserve,
        max_vms=10,
        total=gb(2, 16, 200),
        load=host,
        thresholds=Thresholds(cpu=90, memory=85, storage=90),
        sample_interval=SAMPLE,
        cpu_overcommit=ratio,
    )


async def test_a_two_core_host_at_2_0_admits_four_one_core_vms_and_refuses_a_fifth(
    autojump_clock: object,
) -> None:
    small = Resources(cpus=1, memory_mib=512, storage_gib=10)
    async with hosted(overcommitted(FakeHost(), 2.0), "resource_tracker") as books:
        report = await capacity_of(books)
        assert (report.total.cpus, report.sellable.cpus, report.free.cpus) == (2, 4, 4)
        assert report.cpu_overcommit == 2.0
        for n in range(4):
            await books.call(Reserve(f"vm-{n}", small))
        assert (await capacity_of(books)).free.cpus == 0
        with pytest.raises(
            InsufficientResources,
            match=r"CPU cores: requested 1, available 0 \(allocation: 4 of 4 sellable",
        ):
            await books.call(Reserve("vm-4", small))
        await books.cast(Release("vm-0"))
        await books.call(Reserve("vm-4", small))
    # without overcommit the same host takes two
    async with hosted(overcommitted(FakeHost(), 1.0), "resource_tracker") as books:
        await books.call(Reserve("vm-0", small))
        await books.call(Reserve("vm-1", small))
        with pytest.raises(InsufficientResources, match="allocation: 2 of 2 sellable"):
            await books.call(Reserve("vm-2", small))
    # a reserved core comes off the overcommitted books: 2 x 2.0 - 1 = 3
    reserved = overcommitted(
        FakeHost(), 2.0, reserve=Resources(cpus=1, memory_mib=0, storage_gib=0)
    )
    async with hosted(reserved, "resource_tracker") as books:
        assert (await capacity_of(books)).free.cpus == 3


async def test_the_cpu_threshold_still_stops_overcommitted_sales(autojump_clock: object) -> None:
    host = FakeHost()
    small = Resources(cpus=1, memory_mib=512, storage_gib=10)
    async with hosted(overcommitted(host, 2.0), "resource_tracker") as books:
        await books.call(Reserve("vm-0", small))
        host.now = load(cpu=97.0)  # the guests keep the host busy
        await trio.sleep(SAMPLE + 0.1)
        report = await capacity_of(books)
        assert report.free.cpus == 0
        assert report.limited[0] == "CPU cores: host CPU at 97 %, above the 90 % threshold"
        with pytest.raises(InsufficientResources, match="threshold: host CPU at 97 %"):
            await books.call(Reserve("vm-1", small))
        host.now = load()
        await trio.sleep(SAMPLE + 0.1)
        assert (await capacity_of(books)).free.cpus == 3


async def test_the_advert_offers_the_overcommitted_cores(autojump_clock: object) -> None:
    async with hosted(overcommitted(FakeHost(), 2.0), "resource_tracker") as books:
        await books.call(Reserve("vm-0", Resources(cpus=1, memory_mib=512, storage_gib=10)))
        made = make_advert(
            identity=IDENTITY,
            capacity=await capacity_of(books),
            prices=prices(),
            ip="192.0.2.1",
            minimums=MINIMUMS,
            now=1.0,
        )
    assert isinstance(made, AdvertBody)
    assert made.resources.cpu == 3  # 2 cores x 2.0, one sold


def test_cpu_overcommit_is_a_setting_refused_below_one_or_not_finite(tmp_path: Path) -> None:
    home = {"HOME": str(tmp_path)}
    assert load_settings(env=home).cpu_overcommit == 1.0
    env = {**home, "GOLEM_PROVIDER_CPU_OVERCOMMIT": "2.5"}
    assert load_settings(env=env).cpu_overcommit == 2.5
    for bad in ("0.5", "0", "-2", "nan", "inf", "Infinity", "two"):
        env = {**home, "GOLEM_PROVIDER_CPU_OVERCOMMIT": bad}
        with pytest.raises(SettingsError, match="GOLEM_PROVIDER_CPU_OVERCOMMIT") as info:
            load_settings(env=env)
        assert "a finite ratio of at least 1.0" in str(info.value), bad
