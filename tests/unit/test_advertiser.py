"""The advertiser in virtual time, on fake books, prices and poster: when it posts
(start, interval, once per burst of capacity changes), when it does not (no price,
unknown IP, too little capacity, and says why), failures retried, withdrawal on stop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pytest
import trio
from payments_fakes import hosted

from actors.advertiser import (
    Advertiser,
    AdvertiserMsg,
    AdvertState,
    CapacityChanged,
    GetAdvertState,
    Identity,
    Minimums,
    PricesChanged,
    PublishError,
    make_advert,
)
from actors.pricing import GetPrices
from actors.resource_tracker import (
    CapacityReport,
    GetCapacity,
    Release,
    Reserve,
    ResourceTracker,
)
from golem_actor.discovery.schemas import AdvertBody
from golem_actor.domain.pricing import PriceInfo, RateReading, UsdPrices, price_info
from golem_actor.domain.resources import ZERO, Resources
from golem_actor.kernel import Actor, Address, Inbox

INTERVAL = 240.0
DEBOUNCE = 5.0
USD = UsdPrices(core=5.0, ram_gb=2.0, disk_gb=0.1)
IDENTITY = Identity(name="node-a", country="SE", platform="x86_64")
MINIMUMS = Minimums(cpu=1, memory_gb=1, storage_gb=10)
HOST = Resources.from_gb(cpus=8, memory_gb=16, storage_gb=200)


def prices(glm: str | None = "0.25") -> PriceInfo:
    reading = None if glm is None else RateReading(usd=Decimal(glm), confirmed_at=0.0)
    return price_info(
        USD, glm=reading, eth=None, now=0.0, max_age=3600.0, last_error=None, source="test"
    )


def capacity(allocated: Resources = ZERO, vms: int = 0, max_vms: int = 10) -> CapacityReport:
    return CapacityReport(
        total=HOST,
        reserve=ZERO,
        sellable=HOST,
        allocated=allocated,
        free=HOST - allocated,
        vms=vms,
        max_vms=max_vms,
    )


class Books(Actor[GetCapacity | GetPrices]):
    """Answers GetCapacity and GetPrices with whatever the test last set."""

    def __init__(self) -> None:
        super().__init__()
        self.capacity = capacity()
        self.prices = prices()

    async def handle_call(self, request: GetCapacity | GetPrices) -> object:
        return self.capacity if isinstance(request, GetCapacity) else self.prices


@dataclass
class FakePoster:
    failing: bool = False
    posts: list[tuple[float, AdvertBody]] = field(default_factory=list)
    withdrawals: int = 0

    def describe(self) -> str:
        return "http://discovery.test"

    async def publish(self, advert: AdvertBody) -> None:
        await trio.sleep(0.2)  # a round trip
        if self.failing:
            raise PublishError("POST http://discovery.test: 503 down")
        self.posts.append((trio.current_time(), advert))

    async def withdraw(self) -> None:
        await trio.sleep(0.2)
        self.withdrawals += 1


@dataclass
class Rig:
    address: Address[AdvertiserMsg]
    books: Books
    poster: FakePoster
    ip: list[str | None]

    async def state(self) -> AdvertState:
        return await self.address.call(GetAdvertState())


@asynccontextmanager
async def running(
    poster: FakePoster | None = None, ip: str | None = "1.2.3.4"
) -> AsyncIterator[Rig]:
    books, poster = Books(), poster or FakePoster()
    current: list[str | None] = [ip]

    async def public_ip() -> str | None:
        return current[0]

    async with hosted(books, "books") as books_address:
        advertiser = Advertiser(
            poster=poster,
            resources=books_address,
            pricing=books_address,
            public_ip=public_ip,
            identity=IDENTITY,
            minimums=MINIMUMS,
            interval=INTERVAL,
            debounce=DEBOUNCE,
            clock=trio.current_time,
        )
        async with hosted(advertiser, "advertiser") as address:
            yield Rig(address, books, poster, current)


async def test_posts_at_start_and_on_every_interval(autojump_clock: object) -> None:
    async with running() as rig:
        await trio.sleep(1.0)
        assert len(rig.poster.posts) == 1
        (_, advert) = rig.poster.posts[0]
        assert advert.ip_address == "1.2.3.4"
        assert (advert.resources.cpu, advert.resources.memory, advert.resources.storage) == (
            8,
            16,
            200,
        )
        assert advert.provider_name == "node-a"
        assert advert.platform == "x86_64"
        assert advert.pricing is not None
        assert advert.pricing["usd_per_core_month"] == 5.0
        assert advert.pricing["glm_per_core_month"] == 20.0
        assert advert.pricing["glm_per_gb_storage_month"] == 0.4
        state = await rig.state()
        assert state.phase == "advertised"
        assert state.posts == 1
        await trio.sleep(INTERVAL * 3)
        assert len(rig.poster.posts) == 4


async def test_a_burst_of_capacity_changes_makes_one_post(autojump_clock: object) -> None:
    async with running() as rig:
        await trio.sleep(1.0)
        assert len(rig.poster.posts) == 1
        rig.books.capacity = capacity(Resources.from_gb(cpus=4, memory_gb=4, storage_gb=40), vms=2)
        for _ in range(10):
            await rig.address.cast(CapacityChanged())
            await trio.sleep(DEBOUNCE / 20)
        assert len(rig.poster.posts) == 1  # still inside the window
        await trio.sleep(DEBOUNCE)
        assert len(rig.poster.posts) == 2
        (_, advert) = rig.poster.posts[1]
        assert advert.resources.cpu == 4
        assert advert.resources.memory == 12
        await trio.sleep(DEBOUNCE * 4)
        assert len(rig.poster.posts) == 2  # no trailing posts without changes


async def test_an_attempt_starting_anyway_absorbs_the_pending_changes(
    autojump_clock: object,
) -> None:
    async with running() as rig:
        await trio.sleep(INTERVAL - DEBOUNCE / 2)
        await rig.address.cast(CapacityChanged())  # the interval's post comes first
        await trio.sleep(DEBOUNCE * 2)
        assert len(rig.poster.posts) == 2  # start and interval; the change rode along


async def test_no_price_means_no_advert_and_says_why(autojump_clock: object) -> None:
    async with running() as rig:
        rig.books.prices = prices(glm=None)
        await trio.sleep(1.0)
        assert rig.poster.posts == []
        state = await rig.state()
        assert state.phase == "skipped"
        assert "no price known" in state.why
        rig.books.prices = prices()
        await trio.sleep(INTERVAL)
        assert len(rig.poster.posts) == 1
        assert (await rig.state()).phase == "advertised"


async def test_a_price_known_after_the_first_attempt_posts_within_the_debounce(
    autojump_clock: object,
) -> None:
    async with running() as rig:
        rig.books.prices = prices(glm=None)  # the first fetch has not answered yet
        await trio.sleep(1.0)
        assert (await rig.state()).phase == "skipped"
        rig.books.prices = prices()
        await rig.address.cast(PricesChanged())  # pricing's word that it knows now
        await trio.sleep(DEBOUNCE + 1)
        assert len(rig.poster.posts) == 1  # not at the interval, 4 min later
        rig.books.prices = prices(glm=None)  # stale: the advert is taken down as soon
        await rig.address.cast(PricesChanged())
        await trio.sleep(DEBOUNCE + 1)
        assert rig.poster.withdrawals == 1
        assert "no price known" in (await rig.state()).why


async def test_unknown_ip_means_no_advert(autojump_clock: object) -> None:
    async with running(ip=None) as rig:
        await trio.sleep(1.0)
        assert rig.poster.posts == []
        state = await rig.state()
        assert state.phase == "skipped"
        assert "public IP is unknown" in state.why


async def test_capacity_below_the_minimums_or_max_vms_means_no_advert(
    autojump_clock: object,
) -> None:
    async with running() as rig:
        rig.books.capacity = capacity(Resources.from_gb(cpus=8, memory_gb=1, storage_gb=195))
        await trio.sleep(1.0)
        assert rig.poster.posts == []
        state = await rig.state()
        assert "capacity below the minimums" in state.why
        assert "CPU cores 0 < 1" in state.why
        assert "storage GB 5 < 10" in state.why
        rig.books.capacity = capacity(vms=10, max_vms=10)
        await rig.address.cast(CapacityChanged())
        await trio.sleep(DEBOUNCE + 1)
        assert "MAX_VMS reached" in (await rig.state()).why
        assert rig.poster.posts == []


async def test_a_failure_is_retried_on_the_next_interval(autojump_clock: object) -> None:
    poster = FakePoster(failing=True)
    async with running(poster) as rig:
        await trio.sleep(1.0)
        state = await rig.state()
        assert state.phase == "failed"
        assert "503 down" in state.why
        poster.failing = False
        await trio.sleep(INTERVAL)
        assert len(poster.posts) == 1
        assert (await rig.state()).phase == "advertised"
    assert poster.withdrawals == 1


async def test_a_clean_stop_withdraws_only_an_advert_that_was_taken(
    autojump_clock: object,
) -> None:
    poster = FakePoster()
    async with running(poster, ip=None):
        await trio.sleep(1.0)
    assert poster.withdrawals == 0
    async with running(poster):
        await trio.sleep(1.0)
    assert poster.withdrawals == 1
    async with running(poster):
        await trio.sleep(0.1)  # the first post is in flight: it may land before the cancel
    assert poster.withdrawals == 2


def test_an_ipv6_or_name_is_not_advertised() -> None:
    for ip in ("::1", "node.example"):
        made = make_advert(
            identity=IDENTITY,
            capacity=capacity(),
            prices=prices(),
            ip=ip,
            minimums=MINIMUMS,
            now=1.0,
        )
        assert isinstance(made, str)
        assert "not an IPv4 address" in made


async def test_resource_tracker_tells_its_watcher_of_each_change(tmp_path: Path) -> None:
    watcher = Inbox[CapacityChanged]("watcher")
    tracker = ResourceTracker(
        storage_path=tmp_path, reserve=ZERO, max_vms=4, total=HOST, watcher=watcher.address()
    )
    small = Resources.from_gb(cpus=1, memory_gb=1, storage_gb=10)
    async with hosted(tracker, "resource_tracker") as books:
        await books.call(Reserve("vm-1", small))
        assert watcher.receive_channel.receive_nowait() == CapacityChanged()
        await books.call(GetCapacity())
        with pytest.raises(trio.WouldBlock):
            watcher.receive_channel.receive_nowait()  # a read changes nothing
        await books.cast(Release("vm-1"))
        await books.call(GetCapacity())  # the release is handled by now
        assert watcher.receive_channel.receive_nowait() == CapacityChanged()
        await books.cast(Release("vm-1"))  # unknown: nothing changed
        await books.call(GetCapacity())
        with pytest.raises(trio.WouldBlock):
            watcher.receive_channel.receive_nowait()
