"""`DiscoveryPoster`: puts the node's advert on a discovery server and takes it down.

Why: the wire of the discovery server (upstream's API, `market.md` §1) stays here, so the
actor speaks only of adverts. A POST carries `X-Provider-ID` and `X-Provider-Signature`,
an EIP-191 signature by the provider key over the exact body bytes; a DELETE signs the
canonical delete message with `X-Provider-Timestamp` (see golem_actor.discovery.signing).
Any answer but 200 (404 too, for a DELETE: nothing to take down) and every transport
error become `PublishError` with the server's words, so the caller logs and retries.
A DELETE's signature covers its timestamp in whole seconds, so a second one within the
same second is the same request, which the server refuses as a replay.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import msgspec

from golem_actor.adapters.tls import tls_context
from golem_actor.discovery.schemas import AdvertBody
from golem_actor.signer import Signer

__all__ = ["ADVERTS_PATH", "DiscoveryPoster", "PublishError"]

ADVERTS_PATH = "/api/v1/advertisements"


class PublishError(Exception):
    """The discovery server did not take the advert (or its withdrawal)."""


class DiscoveryPoster:
    def __init__(
        self,
        url: str,
        signer: Signer,
        *,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._url = url.rstrip("/")
        self._signer = signer
        self._timeout = timeout
        self._clock = clock

    def describe(self) -> str:
        return self._url

    async def publish(self, advert: AdvertBody) -> None:
        body = msgspec.json.encode(advert)
        headers = {
            "Content-Type": "application/json",
            "X-Provider-ID": self._signer.address,
            "X-Provider-Signature": await self._signer.sign(body),
        }
        await self._send("POST", self._url + ADVERTS_PATH, body, headers, ok=(200,))

    async def withdraw(self) -> None:
        headers = await self._signer.delete_headers(int(self._clock()))
        url = f"{self._url}{ADVERTS_PATH}/{self._signer.address}"
        await self._send("DELETE", url, None, headers, ok=(200, 404))

    async def _send(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: dict[str, str],
        *,
        ok: tuple[int, ...],
    ) -> None:
        try:
            tls = await tls_context()
            async with httpx.AsyncClient(timeout=self._timeout, verify=tls) as client:
                reply = await client.request(method, url, content=body, headers=headers)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise PublishError(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
        if reply.status_code not in ok:
            raise PublishError(f"{method} {url}: {reply.status_code} {reply.text[:300]}")
