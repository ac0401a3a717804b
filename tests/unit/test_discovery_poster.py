"""`DiscoveryPoster` and `Signer` against our discovery server on 127.0.0.1: a signed
advert is taken and verified, posted again it replaces itself (its timestamp moves on),
a withdrawal deletes it (and is harmless when there is nothing), a refusal or a dead
server is a `PublishError`; the signer never shows its key."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio
from eth_account import Account

from actors.advertiser import DiscoveryPoster, PublishError
from golem_actor.discovery import DiscoveryConfig, run_server
from golem_actor.discovery.schemas import AdvertBody, Resources
from golem_actor.identity import ProviderKey
from golem_actor.signer import Signer

ACCOUNT = Account.create()
KEY = ProviderKey(address=ACCOUNT.address, private_key=ACCOUNT.key.hex())


def advert(cpu: int = 4, age: float = 0.0) -> AdvertBody:
    return AdvertBody(
        ip_address="127.0.0.1",
        country="SE",
        resources=Resources(cpu=cpu, memory=8, storage=100),
        pricing={"usd_per_core_month": 5.0},
        platform="x86_64",
        provider_name="poster-test",
        timestamp=time.time() - age,
    )


@asynccontextmanager
async def discovery(db: Path) -> AsyncIterator[str]:
    config = DiscoveryConfig(host="127.0.0.1", port=0, db_path=db)
    async with trio.open_nursery() as nursery:
        running = await nursery.start(partial(run_server, config))
        yield running.binds[0]
        nursery.cancel_scope.cancel()


async def test_signed_adverts_are_taken_replaced_and_withdrawn(tmp_path: Path) -> None:
    signer = Signer(KEY)
    assert KEY.private_key not in repr(signer)
    assert not any(KEY.private_key in repr(getattr(signer, n, "")) for n in dir(signer))
    async with discovery(tmp_path / "adverts.db") as url, httpx.AsyncClient() as client:
        poster = DiscoveryPoster(url, signer)
        own = f"{url}/api/v1/advertisements/{KEY.address}"
        await poster.publish(advert(cpu=4))
        stored = (await client.get(own)).json()
        assert (stored["verified"], stored["resources"]["cpu"]) == (True, 4)
        await poster.publish(advert(cpu=3))
        assert (await client.get(own)).json()["resources"]["cpu"] == 3
        with pytest.raises(PublishError, match=r"401 .*AUTH_006"):
            await poster.publish(advert(age=3600))  # the server's refusal, in words
        await poster.withdraw()
        assert (await client.get(own)).status_code == 404
        await trio.sleep(1.1)  # the same second would sign the same DELETE: a replay (401)
        await poster.withdraw()  # nothing there: not an error


async def test_a_dead_server_is_a_publish_error() -> None:
    poster = DiscoveryPoster("http://127.0.0.1:9", Signer(KEY), timeout=2.0)
    with pytest.raises(PublishError, match=r"POST http://127\.0\.0\.1:9"):
        await poster.publish(advert())
    with pytest.raises(PublishError, match="DELETE"):
        await poster.withdraw()
