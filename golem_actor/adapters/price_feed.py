"""Exchange rates from CoinGecko-compatible price feeds (GLM/USD and ETH/USD).

Wire: ``GET {url}/simple/price?ids=golem,golem-network-tokens,ethereum&vs_currencies=usd``
answers ``{"golem": {"usd": 0.2512}, "ethereum": {"usd": 3120.5}}``; ids the feed does not
know are simply absent. For GLM the first configured id with a price above 0 wins.

Several feeds may be configured: they are asked in order until both rates are known, and
each rate comes from the first feed that gave a usable one. A usable rate is a positive,
finite number: a feed answering 0, a negative number, text, or something that is not
JSON gives no rate (so it changes nothing upstream). Every request is bounded in time as a
whole (a feed that drips bytes cannot hold the caller), and every failure is translated
into `FeedError` here, at the boundary, naming the feed.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import trio

from golem_actor.domain.pricing import positive_rate

from .tls import tls_context

__all__ = ["ETH_IDS", "FeedError", "FixedRates", "PriceFeed", "Quote"]

ETH_IDS = ("ethereum",)
MAX_BODY = 64 * 1024  # a price answer is a few hundred bytes


class FeedError(Exception):
    """No feed gave a usable rate; the message says what each one did."""


class Quote(msgspec.Struct, frozen=True, kw_only=True):
    """What the feeds said: a rate is None when no feed gave a usable one."""

    glm_usd: Decimal | None
    eth_usd: Decimal | None
    problems: tuple[str, ...] = ()  # what went wrong with feeds that were asked


def _first_rate(document: dict[str, Any], ids: Sequence[str]) -> Decimal | None:
    for coin in ids:
        entry = document.get(coin)
        if isinstance(entry, dict):
            rate = positive_rate(entry.get("usd"))
            if rate is not None:
                return rate
    return None


class PriceFeed:
    def __init__(
        self,
        urls: Sequence[str],
        *,
        glm_ids: Sequence[str],
        eth_ids: Sequence[str] = ETH_IDS,
        timeout: float = 10.0,
    ) -> None:
        self.urls = tuple(url.rstrip("/") for url in urls)
        self._glm_ids = tuple(glm_ids)
        self._eth_ids = tuple(eth_ids)
        self._timeout = timeout

    def describe(self) -> str:
        return ", ".join(self.urls) or "no price feed"

    async def _ask(self, client: httpx.AsyncClient, url: str) -> dict[str, Any]:
        params = {"ids": ",".join((*self._glm_ids, *self._eth_ids)), "vs_currencies": "usd"}
        try:
            with trio.fail_after(self._timeout):
                reply = await client.get(f"{url}/simple/price", params=params)
        except trio.TooSlowError as exc:
            raise FeedError(f"{url}: no answer within {self._timeout:g} s") from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise FeedError(f"{url}: {type(exc).__name__}: {exc}") from exc
        if reply.status_code != 200:
            raise FeedError(f"{url}: HTTP {reply.status_code}")
        if len(reply.content) > MAX_BODY:
            raise FeedError(f"{url}: answer too large ({len(reply.content)} bytes)")
        try:
            document = msgspec.json.decode(reply.content)
        except msgspec.DecodeError as exc:
            raise FeedError(f"{url}: not JSON") from exc
        if not isinstance(document, dict):
            raise FeedError(f"{url}: not a JSON object")
        return document

    async def fetch(self) -> Quote:
        """Both rates from the first feeds that have them; `FeedError` when none has any."""
        glm: Decimal | None = None
        eth: Decimal | None = None
        problems: list[str] = []
        last: FeedError | None = None
        timeout = httpx.Timeout(self._timeout)
        tls = await tls_context()
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, verify=tls) as client:
            for url in self.urls:
                try:
                    document = await self._ask(client, url)
                except FeedError as error:
                    problems.append(str(error))
                    last = error
                    continue
                found_glm = _first_rate(document, self._glm_ids)
                found_eth = _first_rate(document, self._eth_ids)
                if found_glm is None:
                    problems.append(f"{url}: no usable GLM price (ids {','.join(self._glm_ids)})")
                if found_eth is None:
                    problems.append(f"{url}: no usable ETH price")
                glm = glm if glm is not None else found_glm
                eth = eth if eth is not None else found_eth
                if glm is not None and eth is not None:
                    break
        if glm is None and eth is None:
            raise FeedError("; ".join(problems) or "no price feed configured") from last
        return Quote(glm_usd=glm, eth_usd=eth, problems=tuple(problems))


class FixedRates:
    """Rates fixed by configuration (the `local` payments profile, whose tokens have no
    market price): the same interface as a feed, always answering the same quote."""

    def __init__(self, *, glm_usd: Decimal, eth_usd: Decimal) -> None:
        if glm_usd <= 0 or eth_usd <= 0:
            raise ValueError("fixed rates must be above zero")
        self._quote = Quote(glm_usd=glm_usd, eth_usd=eth_usd)

    def describe(self) -> str:
        return "fixed"

    async def fetch(self) -> Quote:
        return self._quote
