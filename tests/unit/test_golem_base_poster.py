"""`GolemBasePoster` against the Golem Base test double over real HTTP on 127.0.0.1:
one entity per provider, created, left alone, updated on change, extended near its end,
found again after a restart, cleaned of duplicates, deleted on withdrawal; gas from the
PoW faucet (or a clear failure); `both` through the fan-out poster."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio
from eth_account import Account
from structlog.testing import capture_logs

from actors.advertiser import (
    DiscoveryPoster,
    FanoutPoster,
    FaucetSettings,
    GolemBasePoster,
    PublishError,
)
from actors.advertiser.golem_base_plan import extend_margin
from golem_actor.adapters.chain.rpc import RpcClient
from golem_actor.adapters.golem_base import GolemBaseClient, GolemBaseError, StorageTx, Write
from golem_actor.discovery import DiscoveryConfig, run_server
from golem_actor.discovery.schemas import AdvertBody, Resources
from golem_actor.identity import ProviderKey
from golem_actor.signer import Signer

sys.path.insert(0, str(Path(__file__).parents[1] / "fakes"))
from golem_base_double import GolemBaseDouble, Serving, serving
from golem_base_query import Entity
from pow_faucet import KEY, PowFaucet, serving_faucet

BTL = 100
ETH = 10**18


def signer() -> Signer:
    account = Account.create()
    return Signer(ProviderKey(address=account.address, private_key=account.key.hex()))


def advert(cpu: int = 8) -> AdvertBody:
    return AdvertBody(
        ip_address="127.0.0.1",
        country="SE",
        resources=Resources(cpu=cpu, memory=16, storage=200),
        pricing={"usd_per_core_month": 5.0, "glm_per_core_month": 20.0},
        platform="x86_64",
        provider_name="gb-test",
        timestamp=time.time(),
    )


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def chain(balance: int = ETH) -> AsyncIterator[tuple[Serving, Clock]]:
    clock = Clock()
    double = GolemBaseDouble(block_time=1.0, clock=clock, start=0.0)
    async with serving(double) as served:
        yield served, clock


def poster(
    served: Serving, key: Signer, *, faucet: FaucetSettings | None = None
) -> GolemBasePoster:
    return GolemBasePoster(
        rpc_url=served.rpc_url,
        signer=key,
        network="testnet",
        payments_network="l2.holesky",
        btl=BTL,
        max_fee_cap_wei=10**12,
        faucet=faucet,
        funding_timeout=5.0,
        poll_interval=0.05,
    )


def ours(double: GolemBaseDouble, key: Signer) -> list[Entity]:
    return [e for e in double.live().values() if e.owner == key.address]


async def test_one_entity_created_then_left_alone_updated_and_extended() -> None:
    key = signer()
    async with chain() as (served, clock):
        double = served.double
        double.fund(key.address, ETH)
        gb = poster(served, key)
        await gb.publish(advert())
        (entity,) = ours(double, key)
        assert entity.strings["golem_provider_id"] == key.address
        assert entity.strings["golem_type"] == "provider"
        assert entity.strings["golem_network"] == "testnet"
        assert entity.strings["golem_payments_network"] == "l2.holesky"
        assert entity.strings["golem_price_glm_core_month"] == "20.0"
        assert entity.numbers == {"golem_cpu": 8, "golem_memory": 16, "golem_storage": 200}
        assert entity.expires_at_block == double.block() + BTL
        assert double.balances[key.address.lower()] < ETH  # gas was paid

        await gb.publish(advert())  # nothing changed: reads only
        assert len(double.writes) == 1

        await gb.publish(advert(cpu=6))
        (updated,) = ours(double, key)
        assert updated.key == entity.key
        assert updated.numbers["golem_cpu"] == 6
        assert [len(w.tx.updates) for w in double.writes] == [0, 1]

        clock.now += BTL - extend_margin(BTL) - 1  # not yet near the end
        await gb.publish(advert(cpu=6))
        assert len(double.writes) == 2
        clock.now += 2  # now within the margin
        before = ours(double, key)[0].expires_at_block
        await gb.publish(advert(cpu=6))
        (extended,) = ours(double, key)
        assert extended.key == entity.key
        assert extended.expires_at_block == before + BTL
        assert len(double.writes[-1].tx.extends) == 1


async def test_a_restarted_node_finds_its_entity_and_withdraw_deletes_it() -> None:
    key = signer()
    async with chain() as (served, _):
        double = served.double
        double.fund(key.address, ETH)
        await poster(served, key).publish(advert())
        again = poster(served, key)  # a new process: nothing remembered
        await again.publish(advert())
        assert len(ours(double, key)) == 1
        assert len(double.writes) == 1
        await again.withdraw()
        assert ours(double, key) == []
        assert len(double.writes[-1].tx.deletes) == 1
        await again.withdraw()  # nothing left: no write
        assert len(double.writes) == 2


async def test_an_expired_entity_is_created_again() -> None:
    key = signer()
    async with chain() as (served, clock):
        served.double.fund(key.address, ETH)
        gb = poster(served, key)
        await gb.publish(advert())
        first = ours(served.double, key)[0].key
        clock.now += BTL + 1
        assert ours(served.double, key) == []  # the chain dropped it
        await gb.publish(advert())
        (again,) = ours(served.double, key)
        assert again.key != first


async def test_duplicates_are_cleaned_and_others_entities_left_alone() -> None:
    key, other = signer(), signer()
    async with chain() as (served, _):
        double = served.double
        for who in (key, other):
            double.fund(who.address, ETH)
        await poster(served, key).publish(advert())
        await poster(served, key).publish(advert(cpu=3))  # update: still one
        # A duplicate of ours (say a write whose receipt was lost) and an impostor that
        # claims our provider id from another account.
        (mine,) = ours(double, key)
        double.entities["0x" + "01" * 32] = Entity(
            key="0x" + "01" * 32,
            owner=key.address,
            expires_at_block=double.block() + 5,
            payload=b"",
            strings=dict(mine.strings),
            numbers=dict(mine.numbers),
        )
        double.entities["0x" + "02" * 32] = Entity(
            key="0x" + "02" * 32,
            owner=other.address,
            expires_at_block=double.block() + 500,
            payload=b"",
            strings={"golem_provider_id": key.address},
        )
        await poster(served, key).publish(advert(cpu=3))
        assert [e.key for e in ours(double, key)] == [mine.key]
        await poster(served, key).withdraw()
        assert ours(double, key) == []
        assert "0x" + "02" * 32 in double.live()  # not ours to delete


async def test_without_gas_and_without_faucet_the_attempt_says_so() -> None:
    key = signer()
    async with chain() as (served, _):
        with pytest.raises(PublishError, match="no faucet on this network: fund it") as error:
            await poster(served, key).publish(advert())
        assert f"account {key.address} holds 0 wei" in str(error.value)
        assert served.double.writes == []


@asynccontextmanager
async def faucet_for(served: Serving) -> AsyncIterator[tuple[PowFaucet, FaucetSettings]]:
    faucet = PowFaucet(fund=lambda address: served.double.fund(address, ETH // 10))
    async with serving_faucet(faucet):
        yield (
            faucet,
            FaucetSettings(
                faucet_url=f"{faucet.url}/faucet", captcha_url=faucet.url, captcha_api_key=KEY
            ),
        )


async def test_low_gas_is_topped_up_from_the_pow_faucet() -> None:
    key = signer()
    async with chain() as (served, _), faucet_for(served) as (faucet, settings):
        served.double.fund(key.address, 10)  # some, but not enough for a write
        with capture_logs() as logs:
            await poster(served, key, faucet=settings).publish(advert())
        assert faucet.funded == [key.address]
        assert len(ours(served.double, key)) == 1
        events = [entry["event"] for entry in logs]
        assert "golem base gas low: asking the faucet" in events
        assert "golem base gas topped up" in events
        await poster(served, key, faucet=settings).publish(advert(cpu=2))  # enough now
        assert faucet.funded == [key.address]


async def test_a_refusing_faucet_fails_the_attempt_with_the_reason() -> None:
    key = signer()
    async with chain() as (served, _), faucet_for(served) as (faucet, settings):
        faucet.refuse = True
        with pytest.raises(PublishError, match=r"the faucet failed: .*429"):
            await poster(served, key, faucet=settings).publish(advert())
        assert served.double.writes == []


async def test_unreachable_golem_base_is_a_publish_error() -> None:
    gb = GolemBasePoster(
        rpc_url="http://127.0.0.1:9/rpc",
        signer=signer(),
        network="testnet",
        payments_network="l2.holesky",
        btl=BTL,
        max_fee_cap_wei=10**12,
        faucet=None,
        timeout=2.0,
    )
    with pytest.raises(PublishError, match=re.escape("Golem Base http://127.0.0.1:9/rpc")):
        await gb.publish(advert())


async def test_both_posts_to_the_discovery_server_and_golem_base(tmp_path: Path) -> None:
    key = signer()
    config = DiscoveryConfig(host="127.0.0.1", port=0, db_path=tmp_path / "adverts.db")
    async with chain() as (served, _), trio.open_nursery() as nursery:
        running = await nursery.start(partial(run_server, config))
        discovery_url = running.binds[0]
        served.double.fund(key.address, ETH)
        both = FanoutPoster([DiscoveryPoster(discovery_url, key), poster(served, key)])
        assert both.describe() == f"{discovery_url} + golem_base {served.rpc_url}"
        await both.publish(advert())
        url = f"{discovery_url}/api/v1/advertisements/{key.address}"
        async with httpx.AsyncClient(trust_env=False) as client:
            assert (await client.get(url)).json()["resources"]["cpu"] == 8
            assert len(ours(served.double, key)) == 1
            await both.withdraw()
            assert (await client.get(url)).status_code == 404
        assert ours(served.double, key) == []

        # One target failing fails the attempt, naming it; the other still took the advert.
        broken = FanoutPoster(
            [DiscoveryPoster(discovery_url, key), DiscoveryPoster("http://127.0.0.1:9", key)]
        )
        with pytest.raises(PublishError, match=re.escape("http://127.0.0.1:9/")):
            await broken.publish(advert(cpu=5))
        async with httpx.AsyncClient(trust_env=False) as client:
            assert (await client.get(url)).json()["resources"]["cpu"] == 5
        nursery.cancel_scope.cancel()


async def test_the_double_lets_only_the_owner_change_an_entity() -> None:
    key, thief = signer(), signer()
    async with chain() as (served, _):
        double = served.double
        for who in (key, thief):
            double.fund(who.address, ETH)
        await poster(served, key).publish(advert())
        (entity,) = ours(double, key)
        async with RpcClient(served.rpc_url) as rpc:
            client = GolemBaseClient(rpc, thief.transaction_sender(rpc, max_fee_cap_wei=10**12))
            with pytest.raises(GolemBaseError, match="is not the owner"):
                await client.price(StorageTx(deletes=(entity.key,)))
            write = Write(tx=StorageTx(deletes=(entity.key,)), gas=100_000, max_cost_wei=0)
            with pytest.raises(GolemBaseError, match="reverted"):
                await client.write(write)  # sent anyway: mined, reverted, gas charged
        assert [e.key for e in ours(double, key)] == [entity.key]
        assert double.balances[thief.address.lower()] < ETH
