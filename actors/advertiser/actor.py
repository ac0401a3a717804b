"""`Advertiser`: keeps the node's advert true where it advertises, and takes it down.

Where is the poster's business (a discovery server, Golem Base, or both: see
discovery.py, golem_base.py, fanout.py); this actor decides when and what.

Theory of operation:
- An attempt (at start, then every `interval`) runs as work: it asks resource_tracker
  for what is free and pricing for the prices, learns the public IP, decides with
  `make_advert`, and posts the signed advert. Its outcome comes back as `Published`,
  `Skipped` (the reason: no price, unknown IP, capacity below the minimums) or
  `PublishFailed`; the handler only records it, so `GetAdvertState` answers at once.
- One attempt at a time: a trigger while one runs asks for one more afterwards.
- resource_tracker casts `CapacityChanged` after each reservation or release, and pricing
  casts `PricesChanged` when the prices an advert carries change (the first fetch may
  well end after this actor's first attempt); the first change opens a `debounce` window
  and the attempt runs when it closes, so a burst of creates makes one post, and nothing
  on the create/delete path ever waits for it. An attempt that starts for another reason
  closes the window: it reads the newer books.
- An attempt that finds nothing to advertise (no price, no IP, too little capacity)
  takes down an advert that is up, so requestors never find an offer the node would
  refuse: the advert follows the capacity down as it follows it up.
- A failure is logged and retried on the next interval; nothing crashes the actor but a
  bug. Each change of phase or reason is logged once.
- On a clean stop, an advert that was taken (or may have been: an attempt was in flight)
  is withdrawn (signed DELETE), within `withdraw_timeout`, after that attempt is cancelled.
- Without a poster (no provider key) the actor only reports why it does not advertise.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Protocol

import structlog
import trio

from actors.pricing import GetPrices
from actors.resource_tracker import GetCapacity
from golem_actor.discovery.schemas import AdvertBody
from golem_actor.kernel import Actor, ActorError, Address, KernelError, Timer

from .advert import Identity, Minimums, make_advert
from .discovery import PublishError
from .messages import (
    Advertise,
    AdvertiserMsg,
    AdvertPhase,
    AdvertState,
    CapacityChanged,
    GetAdvertState,
    PricesChanged,
    Published,
    PublishFailed,
    Settle,
    Skipped,
)

__all__ = ["Advertiser", "Poster"]

log = structlog.get_logger("golem_actor.advertiser")
ATTEMPT = "attempt"


class Poster(Protocol):
    def describe(self) -> str: ...

    async def publish(self, advert: AdvertBody) -> None: ...

    async def withdraw(self) -> None: ...


class Advertiser(Actor[AdvertiserMsg]):
    def __init__(
        self,
        *,
        poster: Poster | None,
        disabled_why: str = "",
        resources: Address[GetCapacity],
        pricing: Address[GetPrices],
        public_ip: Callable[[], Awaitable[str | None]],
        identity: Identity,
        minimums: Minimums,
        interval: float,
        debounce: float = 5.0,
        withdraw_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self._poster = poster
        self._resources = resources
        self._pricing = pricing
        self._public_ip = public_ip
        self._identity = identity
        self._minimums = minimums
        self._interval = interval
        self._debounce_seconds = debounce
        self._withdraw_timeout = withdraw_timeout
        self._clock = clock
        self._debounce: Timer | None = None
        self._again = False
        self._phase: AdvertPhase = "pending" if poster is not None else "disabled"
        self._why = "" if poster is not None else disabled_why
        self._accepted_at: float | None = None
        self._attempt_at: float | None = None
        self._advert: AdvertBody | None = None
        self._live = False  # an advert the server took is up (as far as we know)
        self._posts = 0

    async def on_start(self) -> None:
        if self._poster is None:
            log.warning("not advertising", why=self._why)
            return
        log.info("advertising", target=self._poster.describe(), interval=self._interval)
        self.every(self._interval, Advertise(), first=0.0)

    async def handle_cast(self, message: AdvertiserMsg) -> None:
        match message:
            case Advertise():
                self._attempt()
            case CapacityChanged() | PricesChanged():
                if self._poster is not None and self._debounce is None:
                    self._debounce = self.after(self._debounce_seconds, Settle())
            case Settle():
                self._debounce = None
                self._attempt()
            case Published(advert=advert):
                self._advert, self._accepted_at = advert, self._clock()
                self._live = True
                self._posts += 1
                self._record("advertised", "")
            case Skipped(why=why, withdrawn=withdrawn):
                if withdrawn:
                    self._live = False
                    log.info("advert withdrawn", target=self._describe(), why=why)
                self._record("skipped", why)
            case PublishFailed(error=error):
                self._record("failed", error)
            case _:
                await super().handle_cast(message)
        if isinstance(message, Published | Skipped | PublishFailed) and self._again:
            self._again = False
            self._attempt()

    async def handle_call(self, request: AdvertiserMsg) -> object:
        match request:
            case GetAdvertState():
                return self._state()
            case _:
                return await super().handle_call(request)

    async def on_stop(self) -> None:
        if self._debounce is not None:
            self._debounce.cancel()
        running = self.work_for(ATTEMPT)
        if running is not None:
            running.cancel()  # a post landing after the DELETE would revive the advert
            await running.done.wait()
        # An attempt cut short may have posted already: withdraw then too (a 404 is fine).
        if self._poster is None or (not self._live and running is None):
            return
        with trio.move_on_after(self._withdraw_timeout) as waited:
            try:
                await self._poster.withdraw()
            except PublishError as error:
                log.warning("advert not withdrawn", error=str(error))
                return
        if waited.cancelled_caught:
            log.warning("advert not withdrawn", error=f"no answer in {self._withdraw_timeout} s")
            return
        self._phase = "withdrawn"
        log.info("advert withdrawn", target=self._poster.describe())

    # -- the attempt -----------------------------------------------------------------------

    def _attempt(self) -> None:
        if self._poster is None:
            return
        if self.work_for(ATTEMPT) is not None:
            self._again = True
            return
        if self._debounce is not None:
            self._debounce.cancel()  # this attempt reads the books after those changes
            self._debounce = None
        self._attempt_at = self._clock()
        self.start_work(
            partial(self._advertise, live=self._live),
            then=lambda outcome: outcome,
            failed=self._failed,
            key=ATTEMPT,
        )

    def _describe(self) -> str:
        return "" if self._poster is None else self._poster.describe()

    async def _advertise(self, *, live: bool) -> Published | Skipped:
        assert self._poster is not None
        capacity = await self._resources.call(GetCapacity())
        prices = await self._pricing.call(GetPrices())
        ip = await self._public_ip()
        made = make_advert(
            identity=self._identity,
            capacity=capacity,
            prices=prices,
            ip=ip,
            minimums=self._minimums,
            now=self._clock(),
        )
        if isinstance(made, str):
            if live:
                await self._poster.withdraw()
            return Skipped(why=made, withdrawn=live)
        await self._poster.publish(made)
        return Published(advert=made)

    @staticmethod
    def _failed(error: Exception) -> PublishFailed:
        if isinstance(error, PublishError | KernelError | ActorError):
            return PublishFailed(error=str(error) or type(error).__name__)
        raise error  # anything else is a bug: let it crash

    def _record(self, phase: AdvertPhase, why: str) -> None:
        changed = (phase, why) != (self._phase, self._why)
        self._phase, self._why = phase, why
        if not changed:
            return
        if phase == "advertised":
            assert self._advert is not None
            assert self._poster is not None
            log.info(
                "advert accepted",
                target=self._poster.describe(),
                resources=self._advert.resources,
                ip=self._advert.ip_address,
            )
        elif phase == "skipped":
            log.warning("not advertising", why=why)
        else:
            log.warning("advert failed: retrying on the next interval", error=why)

    def _state(self) -> AdvertState:
        return AdvertState(
            target="" if self._poster is None else self._poster.describe(),
            phase=self._phase,
            why=self._why,
            last_accepted_at=self._accepted_at,
            last_attempt_at=self._attempt_at,
            advert=self._advert,
            posts=self._posts,
        )
