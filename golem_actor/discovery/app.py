"""The discovery HTTP application (Quart-Trio): upstream's routes, with real authentication.

Why: requestors find providers here, so what is listed must be what the provider said.
Routes and shapes are upstream's (`GET /health`, `POST/GET /api/v1/advertisements`,
`GET/DELETE /api/v1/advertisements/{provider_id}`); what differs is that a write must be
signed by the provider's key (see signing), that adverts older than the TTL are never
served, and that a client's mistake is never a 500.

A write is handled in this order: charge the source's write bucket (429 + Retry-After),
read the capped body (413), check `X-Provider-ID` is an address, decode the body strictly
(400/422), recover the signer in a worker thread (401 when unsigned or forged; with
`allow_unsigned` an unsigned advert is kept with `verified: false`, but never over a
verified one: 403), then store (503 when the store is full or failing).

Replays: a signed body stays valid forever, so one captured could roll a provider's
advert back. A provider that puts `timestamp` (Unix seconds) in its body is protected:
the timestamp must be within `clock_skew` of our clock and later than the last one
accepted, and once it has sent one, a body without it is refused. Upstream's body has
no such field (its server ignores unknown fields, so a provider may send it to both).

Error codes (`{"detail": {"code", "message"}}`): AUTH_001 no or bad X-Provider-ID,
AUTH_002 forged signature, AUTH_003 unsigned, AUTH_004 X-Provider-ID is not the path's id,
AUTH_005 unsigned over signed, AUTH_006 a signed timestamp missing or too far from our
clock, AUTH_007 a replay (a DELETE used before, an advert not newer than the last one),
AUTH_008 an advert without a timestamp from a provider that sent them before; ADV_002 a
filter below 1, ADV_003 invalid body or query, ADV_004 not found, ADV_005 body not JSON,
ADV_006 store full; RATE_001 too many requests; REQ_001 bad forwarding headers; REQ_413
body too large; STORE_001 database failure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

import msgspec
import structlog
import trio
from quart import Response, g, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from golem_actor.portcheck.addressing import CallerError, caller_address, source_key
from golem_actor.portcheck.app import install_request_log, json_response
from golem_actor.ratelimit import RateLimiter

from . import signing
from .config import DiscoveryConfig
from .schemas import Advert, AdvertBody, Deleted, ErrorBody, ErrorDetail, Health
from .store import AdvertStore, Record, StoreError, timestamp_text

__all__ = ["Refused", "create_app"]

log = structlog.get_logger("golem_actor.discovery")
_decoder = msgspec.json.Decoder(AdvertBody)
_FILTERS = ("cpu", "memory", "storage")


class Refused(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def _peer() -> str | None:
    client = request.scope.get("client")
    return None if not client else str(client[0])


def _provider_header() -> str:
    provider_id = request.headers.get("X-Provider-ID", "").strip()
    if not signing.ADDRESS.match(provider_id):
        raise Refused(
            401,
            "AUTH_001",
            "X-Provider-ID must be the provider's Ethereum address (0x and 40 hex digits)",
        )
    g.provider = provider_id
    return provider_id


def _filters() -> tuple[dict[str, int], str | None, str | None]:
    minimums: dict[str, int] = {}
    for name in _FILTERS:
        text = request.args.get(name)
        if text is None or not text.strip():
            continue
        try:
            minimums[name] = int(text)
        except ValueError:
            raise Refused(422, "ADV_003", f"{name} must be an integer, got {text!r}") from None
        if minimums[name] < 1:
            raise Refused(400, "ADV_002", "Resource requirements must be >= 1")
    country = request.args.get("country") or None
    platform = request.args.get("platform") or None
    return minimums, country and country.upper(), platform and platform.lower()


def _matches(
    advert: Advert, minimums: dict[str, int], country: str | None, platform: str | None
) -> bool:
    resources = advert.resources
    return (
        resources.cpu >= minimums.get("cpu", 0)
        and resources.memory >= minimums.get("memory", 0)
        and resources.storage >= minimums.get("storage", 0)
        and (country is None or advert.country == country)
        and (platform is None or advert.platform.lower() == platform)
    )


class _Service:
    """The routes' logic over one store; the state a running app keeps."""

    def __init__(
        self, config: DiscoveryConfig, store: AdvertStore, clock: Callable[[], float]
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        limit = partial(RateLimiter, max_sources=config.max_sources)
        self.buckets = {
            "read": limit(config.read_rate, config.read_burst),
            "write": limit(config.write_rate, config.write_burst),
        }
        self.verifiers = trio.CapacityLimiter(config.verify_threads)
        self.used_deletes: dict[bytes, float] = {}  # signature -> when it may be forgotten

    def admit(self, kind: str) -> None:
        caller = caller_address(
            _peer(), request.headers.getlist("X-Forwarded-For"), self.config.trusted_proxies
        )
        g.source = str(caller)
        wait = self.buckets[kind].acquire(source_key(caller), self.clock())
        if wait is not None:
            raise Refused(
                429,
                "RATE_001",
                f"too many requests from {caller}; retry in {wait:.1f} s",
                {"Retry-After": RateLimiter.retry_after_header(wait)},
            )

    async def check_signer(self, message: bytes, signature: bytes, provider_id: str) -> None:
        try:
            await trio.to_thread.run_sync(
                signing.recover, message, signature, provider_id, limiter=self.verifiers
            )
        except signing.Forged as exc:
            raise Refused(401, "AUTH_002", str(exc)) from exc

    def live(self, record: Record | None) -> Record | None:
        fresh = record is not None and record.updated >= self.clock() - self.config.ttl
        return record if fresh else None

    async def post(self, body: bytes) -> Advert:
        provider_id = _provider_header()
        advert = _decoder.decode(body)
        signature = signing.parse_signature(request.headers.get("X-Provider-Signature"))
        if signature is not None:
            if advert.timestamp is not None:
                self.near_now(advert.timestamp, "the advert's timestamp")
            await self.check_signer(body, signature, provider_id)
        elif not self.config.allow_unsigned:
            raise _unsigned()
        verified = signature is not None
        signed_at = advert.timestamp if verified else None

        def make(old: Record | None) -> Record:
            self.may_replace(old, verified, signed_at)
            now = self.clock()
            created = now if old is None else old.created
            stored = Advert(
                provider_id=provider_id,
                ip_address=advert.ip_address,
                country=advert.country.upper(),
                resources=advert.resources,
                pricing=advert.pricing,
                created_at=timestamp_text(created),
                updated_at=timestamp_text(now),
                platform=advert.platform or "",
                provider_name=advert.provider_name or "",
                verified=verified,
            )
            return Record(provider_id.lower(), stored, created, now, signed_at)

        record = await self.store.upsert(provider_id.lower(), make)
        g.verified = verified
        return record.advert

    def may_replace(self, old: Record | None, verified: bool, signed_at: float | None) -> None:
        """Refuse an advert that must not replace `old` (checked under the store's lock)."""
        if old is None:
            if len(self.store) >= self.config.max_adverts:
                raise Refused(503, "ADV_006", "the discovery service holds too many adverts")
            return
        if not verified and old.advert.verified:
            raise Refused(
                403, "AUTH_005", "an unsigned advert cannot replace this provider's signed one"
            )
        if not verified or old.signed_at is None:
            return
        if signed_at is None:
            raise Refused(
                401,
                "AUTH_008",
                "this provider's adverts carry a signed timestamp; one without it is refused",
            )
        if signed_at <= old.signed_at:
            raise Refused(
                401,
                "AUTH_007",
                f"the advert's timestamp {signed_at:g} is not after the last one"
                f" ({old.signed_at:g}): a replay, or out of order",
            )

    def near_now(self, stamp: float, what: str) -> None:
        now, skew = self.clock(), self.config.clock_skew
        if abs(stamp - now) > skew:
            raise Refused(
                401, "AUTH_006", f"{what} {stamp:g} is more than {skew:g} s from {now:.0f}"
            )

    def listed(self) -> list[Advert]:
        minimums, country, platform = _filters()
        cutoff = self.clock() - self.config.ttl
        return [
            record.advert
            for record in self.store.records()
            if record.updated >= cutoff and _matches(record.advert, minimums, country, platform)
        ]

    async def delete(self, provider_id: str) -> None:
        claimed = _provider_header()
        key = provider_id.lower()
        if claimed.lower() != key:
            raise Refused(401, "AUTH_004", "Not authorized to delete this advertisement")
        signature = signing.parse_signature(request.headers.get("X-Provider-Signature"))
        check = None
        if signature is None:
            if not self.config.allow_unsigned:
                raise _unsigned()
            check = _legacy_only  # checked under the store's lock, against a signed POST
        else:
            stamp = self.fresh_delete(signature)
            await self.check_signer(signing.delete_message(claimed, stamp), signature, claimed)
            self.fresh_delete(signature)  # again: a twin may have been verified meanwhile
            self.used_deletes[signature] = self.clock() + 2 * self.config.clock_skew
        if not await self.store.delete(key, check):
            raise Refused(404, "ADV_004", "Advertisement not found")

    def fresh_delete(self, signature: bytes) -> int:
        """The DELETE's timestamp when near our clock and its signature unused; else 401."""
        text = request.headers.get("X-Provider-Timestamp", "").strip()
        try:
            stamp = int(text)
        except ValueError:
            raise Refused(
                401, "AUTH_006", "a signed DELETE needs X-Provider-Timestamp (integer Unix seconds)"
            ) from None
        self.near_now(stamp, "X-Provider-Timestamp")
        now = self.clock()
        for seen, until in list(self.used_deletes.items()):
            if until < now:
                del self.used_deletes[seen]
        if signature in self.used_deletes:
            raise Refused(401, "AUTH_007", "this signed DELETE was already used")
        return stamp


def _legacy_only(record: Record) -> None:
    if record.advert.verified:
        raise _unsigned()


def _unsigned() -> Refused:
    return Refused(
        401,
        "AUTH_003",
        "X-Provider-Signature must be an EIP-191 signature by the provider's key (65 bytes in hex)",
    )


def create_app(
    config: DiscoveryConfig,
    store: AdvertStore,
    *,
    clock: Callable[[], float] = time.time,
) -> QuartTrio:
    """The app over an open `store`; `clock` (Unix seconds) is replaceable for tests."""
    app = QuartTrio("golem_actor.discovery")
    app.config["MAX_CONTENT_LENGTH"] = config.max_body
    service = _Service(config, store, clock)

    @app.post("/api/v1/advertisements")
    async def post_advert() -> Response:
        service.admit("write")
        body = await request.get_data()
        return json_response(await service.post(body if isinstance(body, bytes) else body.encode()))

    @app.get("/api/v1/advertisements")
    async def list_adverts() -> Response:
        service.admit("read")
        return json_response(service.listed())

    @app.get("/api/v1/advertisements/<provider_id>")
    async def get_advert(provider_id: str) -> Response:
        service.admit("read")
        record = service.live(store.get(provider_id.lower()))
        if record is None:
            raise Refused(404, "ADV_004", "Advertisement not found")
        return json_response(record.advert)

    @app.delete("/api/v1/advertisements/<provider_id>")
    async def delete_advert(provider_id: str) -> Response:
        service.admit("write")
        await service.delete(provider_id)
        return json_response(Deleted(status="success"))

    @app.get("/health")
    async def health() -> Response:
        return json_response(Health(status="healthy"))

    _install_hooks(app)
    return app


def _install_hooks(app: QuartTrio) -> None:
    """The per-request log line and the JSON answers of every refusal."""

    def emit(fields: dict[str, Any]) -> None:
        if fields["method"] in {"POST", "DELETE"}:
            log.info("advert-" + fields["method"].lower(), **fields)
        else:
            log.debug("request", **fields)

    install_request_log(app, emit, ("source", "provider", "verified", "code", "detail"))

    def refusal(
        status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> Response:
        g.code, g.detail = code, message
        return json_response(ErrorBody(ErrorDetail(code, message)), status, headers)

    @app.errorhandler(Refused)
    async def refused(error: Refused) -> Response:
        return refusal(error.status, error.code, error.message, error.headers)

    @app.errorhandler(CallerError)
    async def bad_caller(error: CallerError) -> Response:
        return refusal(error.status, "REQ_001", error.detail)

    @app.errorhandler(msgspec.ValidationError)
    async def invalid(error: msgspec.ValidationError) -> Response:
        return refusal(422, "ADV_003", str(error))

    @app.errorhandler(msgspec.DecodeError)
    async def malformed(error: msgspec.DecodeError) -> Response:
        return refusal(400, "ADV_005", f"the body must be JSON: {error}")

    @app.errorhandler(StoreError)
    async def store_failed(error: StoreError) -> Response:
        log.error("advert store failed", error=str(error))
        return refusal(503, "STORE_001", "the advert database is failing; try again later")

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        return refusal(status, f"REQ_{status}", error.description or error.name)

    @app.errorhandler(Exception)
    async def failure(error: Exception) -> Response:
        log.error("request failed", exc_info=error)
        return refusal(500, "SERVER_001", "internal error")
