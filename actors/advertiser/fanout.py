"""`FanoutPoster`: one advert to several places at once (ADVERTISER_TYPE=both).

Why: the advertiser's timing, debounce and reasons are the same whatever the target, so
`both` is one poster made of the discovery poster and the Golem Base poster, not a second
actor. Each publish (and withdrawal) goes to every target concurrently; when any fails the
attempt fails with every failure named, and the next attempt publishes to all again,
which costs the target that took it nothing (a repeated POST, or no write at all on Golem
Base when its entity already says the same).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from golem_actor.discovery.schemas import AdvertBody

from .actor import Poster
from .discovery import PublishError

__all__ = ["FanoutPoster"]


class FanoutPoster:
    def __init__(self, posters: list[Poster]) -> None:
        self._posters = posters

    def describe(self) -> str:
        return " + ".join(poster.describe() for poster in self._posters)

    async def publish(self, advert: AdvertBody) -> None:
        await self._each(lambda poster: poster.publish(advert))

    async def withdraw(self) -> None:
        await self._each(lambda poster: poster.withdraw())

    async def _each(self, act: Callable[[Poster], Awaitable[None]]) -> None:
        failures: list[str] = []

        async def one(poster: Poster) -> None:
            try:
                await act(poster)
            except PublishError as error:
                failures.append(str(error))

        async with trio.open_nursery() as nursery:
            for poster in self._posters:
                nursery.start_soon(one, poster)
        if failures:
            raise PublishError("; ".join(failures))
