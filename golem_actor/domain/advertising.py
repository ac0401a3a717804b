"""Where the node's advert stands: what the advertiser reports and `status` will show.

Why here: the state crosses actors (the advertiser answers it; the API and the CLI render
it), so it is a plain domain value that none of them owns.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from golem_actor.discovery.schemas import AdvertBody

__all__ = ["AdvertPhase", "AdvertState"]

AdvertPhase = Literal["disabled", "pending", "advertised", "skipped", "failed", "withdrawn"]


class AdvertState(msgspec.Struct, frozen=True, kw_only=True):
    """Where the node advertises and how that stands (for `status` and tests)."""

    target: str  # where: the discovery server's URL, "golem_base <rpc url>", or both (" + ")
    phase: AdvertPhase
    why: str  # why skipped, failed or disabled; empty otherwise
    last_accepted_at: float | None  # Unix seconds of the last advert the server took
    last_attempt_at: float | None
    advert: AdvertBody | None  # the last advert the server took
    posts: int  # adverts the server took since start
