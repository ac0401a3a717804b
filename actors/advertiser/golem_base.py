"""`GolemBasePoster`: the node's advert as one Golem Base entity, kept true and alive.

Why a poster: the advertiser actor decides when to advertise (start, interval, debounced
capacity changes) and what (`make_advert`); this module only knows Golem Base. Each
`publish` reads before it writes, so it holds no state across attempts and a restarted
node finds the entity it left instead of creating a second one:
1. query `golem_provider_id="<our id>"`, read each hit's metadata, keep those the provider
   key owns;
2. `plan_write` (golem_base_plan.py) picks create, update, extend or nothing;
3. gas: the write is priced (gas estimate * max fee); when the account holds less and a
   faucet is configured (testnets: FAUCET_URL, CAPTCHA_URL), the PoW faucet is asked
   (the captcha is solved in a worker thread, adapters/faucet.py) and the balance polled
   until it covers the write, within `funding_timeout`; without a faucet, or when it
   fails, the attempt fails saying so (the advertiser logs it and `status` shows it);
4. the write is sent and its receipt checked.
`withdraw` deletes every entity of ours in one write (a clean stop). Every failure is a
`PublishError` naming what failed; nothing here retries: the next attempt does.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import msgspec
import structlog
import trio

from golem_actor.adapters.chain.rpc import RpcClient
from golem_actor.adapters.faucet import FaucetError, request_funds
from golem_actor.adapters.golem_base import (
    EntityMeta,
    GolemBaseClient,
    GolemBaseError,
    StorageTx,
    Write,
)
from golem_actor.discovery.schemas import AdvertBody
from golem_actor.signer import Signer

from .discovery import PublishError
from .golem_base_plan import annotations_for, own_query, plan_write

__all__ = ["FaucetSettings", "GolemBasePoster"]

log = structlog.get_logger("golem_actor.advertiser")


class FaucetSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The PoW faucet that funds the advert account on a testnet."""

    faucet_url: str
    captcha_url: str
    captcha_api_key: str
    solve_timeout: float = 300.0


class GolemBasePoster:
    def __init__(
        self,
        *,
        rpc_url: str,
        signer: Signer,
        network: str,
        payments_network: str,
        btl: int,
        max_fee_cap_wei: int,
        faucet: FaucetSettings | None,
        funding_timeout: float = 120.0,
        poll_interval: float = 1.0,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = rpc_url
        self._signer = signer
        self._network = network
        self._payments_network = payments_network
        self._btl = btl
        self._max_fee = max_fee_cap_wei
        self._faucet = faucet
        self._funding_timeout = funding_timeout
        self._poll = poll_interval
        self._timeout = timeout
        self._clock = clock

    def describe(self) -> str:
        return f"golem_base {self._url}"

    @asynccontextmanager
    async def _client(self) -> AsyncIterator[GolemBaseClient]:
        async with RpcClient(self._url, timeout=self._timeout) as rpc:
            sender = self._signer.transaction_sender(rpc, max_fee_cap_wei=self._max_fee)
            yield GolemBaseClient(rpc, sender)

    async def publish(self, advert: AdvertBody) -> None:
        wanted = annotations_for(
            advert,
            provider_id=self._signer.address,
            network=self._network,
            payments_network=self._payments_network,
        )
        try:
            async with self._client() as client:
                own = await self._own(client)
                block = await client.block_number()
                tx = plan_write(own, wanted, block=block, btl=self._btl)
                if tx is None:
                    return
                await self._write(client, tx, fund=True)
        except GolemBaseError as exc:
            raise PublishError(f"Golem Base {self._url}: {exc}") from exc

    async def withdraw(self) -> None:
        try:
            async with self._client() as client:
                own = await self._own(client)
                if own:
                    await self._write(
                        client, StorageTx(deletes=tuple(m.key for m in own)), fund=False
                    )
        except GolemBaseError as exc:
            raise PublishError(f"Golem Base {self._url}: {exc}") from exc

    async def _own(self, client: GolemBaseClient) -> list[EntityMeta]:
        keys = await client.query(own_query(self._signer.address))
        found = [await client.metadata(key) for key in keys]
        mine = self._signer.address.lower()
        return [meta for meta in found if meta.owner.lower() == mine]

    async def _write(self, client: GolemBaseClient, tx: StorageTx, *, fund: bool) -> None:
        write = await client.price(tx)
        if fund:
            await self._ensure_gas(client, write)
        receipt = await client.write(write)
        log.info(
            "golem base write",
            target=self._url,
            write=tx.describe(),
            tx_hash=receipt.tx_hash,
            block=receipt.block_number,
            fee_wei=receipt.fee_wei,
        )

    async def _ensure_gas(self, client: GolemBaseClient, write: Write) -> None:
        address = self._signer.address
        balance = await client.balance(address)
        if balance >= write.max_cost_wei:
            return
        short = (
            f"account {address} holds {balance} wei, the write "
            f"({write.tx.describe()}) may cost {write.max_cost_wei} wei"
        )
        if self._faucet is None:
            raise PublishError(f"Golem Base gas: {short}; no faucet on this network: fund it")
        log.info("golem base gas low: asking the faucet", target=self._url, why=short)
        faucet = self._faucet
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as http:
                tx_hash = await request_funds(
                    http,
                    address=address,
                    faucet_url=faucet.faucet_url,
                    captcha_url=faucet.captcha_url,
                    captcha_api_key=faucet.captcha_api_key,
                    solve_timeout_s=faucet.solve_timeout,
                )
        except FaucetError as exc:
            raise PublishError(f"Golem Base gas: {short}; the faucet failed: {exc}") from exc
        deadline = self._clock() + self._funding_timeout
        while (balance := await client.balance(address)) < write.max_cost_wei:
            if self._clock() > deadline:
                raise PublishError(
                    f"Golem Base gas: the faucet's transfer {tx_hash} did not arrive within "
                    f"{self._funding_timeout:g} s ({short})"
                )
            await trio.sleep(self._poll)
        log.info("golem base gas topped up", target=self._url, tx_hash=tx_hash, balance=balance)
