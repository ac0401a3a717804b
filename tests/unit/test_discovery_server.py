"""The discovery service over real sockets on loopback (127.0.0.0/8 only), real SQLite."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
import trio
from eth_account import Account
from eth_account.signers.local import LocalAccount
from test_portcheck_server import first_line

from golem_actor.cli import main as cli_main
from golem_actor.discovery import (
    AdvertStore,
    DiscoveryConfig,
    main,
    run_server,
    sign,
    sign_delete,
    signing,
)
from golem_actor.logs import reset_logging

LOCAL = "127.0.0.1"
OTHER = "127.0.0.2"
ADVERTS = "/api/v1/advertisements"
FIELDS = [
    "provider_id",
    "ip_address",
    "country",
    "resources",
    "pricing",
    "created_at",
    "updated_at",
    "platform",
    "provider_name",
    "verified",
]
PRICING = {
    "usd_per_core_month": 5.0,
    "usd_per_gb_ram_month": 2.0,
    "usd_per_gb_storage_month": 0.1,
    "glm_per_core_month": 19.9,
    "glm_per_gb_ram_month": 7.96,
    "glm_per_gb_storage_month": 0.398,
}


class ManualClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@dataclass
class Served:
    url: str
    store: AdvertStore


@asynccontextmanager
async def discovery(
    db: Path, clock: ManualClock | None = None, **settings: Any
) -> AsyncIterator[Served]:
    config = DiscoveryConfig(host=LOCAL, port=0, db_path=db, **settings)
    async with trio.open_nursery() as nursery:
        running = await nursery.start(partial(run_server, config, clock=clock or time.time))
        yield Served(running.binds[0], running.store)
        nursery.cancel_scope.cancel()


def advert(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "ip_address": "192.0.2.10",
        "country": "DE",
        "resources": {"cpu": 4, "memory": 8, "storage": 100},
        "pricing": PRICING,
        "provider_name": "bench-node",
        "platform": "x86_64",
    }
    body.update(changes)
    return body


def client_from(address: str = LOCAL) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(transport=transport, timeout=10)


async def post(
    url: str,
    account: LocalAccount,
    body: dict[str, Any] | bytes,
    *,
    signature: str | None = "sign",
    signer: LocalAccount | None = None,
    source: str = LOCAL,
    provider_id: str | None = None,
) -> httpx.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    claimed = account.address if provider_id is None else provider_id
    headers = {"X-Provider-ID": claimed} if claimed else {}
    if signature == "sign":
        signature = sign(data, (signer or account).key)
    if signature is not None:
        headers["X-Provider-Signature"] = signature
    async with client_from(source) as client:
        return await client.post(url + ADVERTS, content=data, headers=headers)


async def get(url: str, path: str = ADVERTS, source: str = LOCAL) -> httpx.Response:
    async with client_from(source) as client:
        return await client.get(url + path)


async def delete(url: str, provider_id: str, headers: dict[str, str]) -> httpx.Response:
    async with client_from() as client:
        return await client.delete(f"{url}{ADVERTS}/{provider_id}", headers=headers)


def code(reply: httpx.Response) -> str:
    detail = reply.json()["detail"]
    assert set(detail) == {"code", "message"}
    return str(detail["code"])


async def test_signed_post_then_list_get_and_delete(tmp_path: Path) -> None:
    provider = Account.create()
    async with discovery(tmp_path / "d.sqlite3") as served:
        posted = await post(served.url, provider, advert(country="de"))
        listed = await get(served.url)
        by_id = await get(served.url, f"{ADVERTS}/{provider.address}")
        by_lower = await get(served.url, f"{ADVERTS}/{provider.address.lower()}")
        health = await get(served.url, "/health")
        gone = await delete(
            served.url,
            provider.address,
            sign_delete(provider.address, int(time.time()), provider.key),
        )
        after = await get(served.url)
        missing = await get(served.url, f"{ADVERTS}/{provider.address}")
    assert posted.status_code == 200, posted.text
    item = posted.json()
    assert list(item) == FIELDS
    assert item["provider_id"] == provider.address
    assert (item["ip_address"], item["country"]) == ("192.0.2.10", "DE")
    assert item["resources"] == {"cpu": 4, "memory": 8, "storage": 100}
    assert item["pricing"] == PRICING
    assert (item["provider_name"], item["platform"], item["verified"]) == (
        "bench-node",
        "x86_64",
        True,
    )
    assert item["created_at"] == item["updated_at"]
    assert abs(time.time() - _parse_utc(item["created_at"])) < 60
    assert listed.json() == [item]
    assert by_id.json() == item
    assert by_lower.json() == item
    assert health.json() == {"status": "healthy"}
    assert (gone.status_code, gone.json()) == (200, {"status": "success"})
    assert after.json() == []
    assert missing.status_code == 404
    assert code(missing) == "ADV_004"


def _parse_utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


async def test_name_and_platform_are_in_every_item_even_when_not_sent(tmp_path: Path) -> None:
    provider = Account.create()
    bare = advert()
    del bare["provider_name"], bare["platform"], bare["pricing"]
    async with discovery(tmp_path / "d.sqlite3") as served:
        posted = await post(served.url, provider, bare)
    assert posted.status_code == 200, posted.text
    item = posted.json()
    assert (item["provider_name"], item["platform"], item["pricing"]) == ("", "", None)


async def test_forged_and_tampered_adverts_are_refused(tmp_path: Path) -> None:
    provider, thief = Account.create(), Account.create()
    body = json.dumps(advert()).encode()
    honest = sign(body, provider.key)
    async with discovery(tmp_path / "d.sqlite3", allow_unsigned=True) as served:
        by_thief = await post(served.url, provider, body, signer=thief)
        tampered = await post(
            served.url, provider, body.replace(b"192.0.2.10", b"192.0.2.66"), signature=honest
        )
        garbage = await post(served.url, provider, body, signature="0x" + "11" * 65)
        claimed = await post(
            served.url, provider, body, signature=honest, provider_id=thief.address
        )
        listed = await get(served.url)
        stored = len(served.store)
    for reply in (by_thief, tampered, garbage, claimed):
        assert reply.status_code == 401, reply.text
        assert code(reply) == "AUTH_002"
    assert thief.address in by_thief.json()["detail"]["message"]
    assert listed.json() == []
    assert stored == 0


async def test_unsigned_adverts_are_refused_by_default(tmp_path: Path) -> None:
    provider = Account.create()
    async with discovery(tmp_path / "d.sqlite3") as served:
        literal = await post(served.url, provider, advert(), signature="signature")
        empty = await post(served.url, provider, advert(), signature="")
        absent = await post(served.url, provider, advert(), signature=None)
        no_id = await post(served.url, provider, advert(), provider_id="")
        not_address = await post(served.url, provider, advert(), provider_id="provider-1")
        listed = await get(served.url)
    for reply in (literal, empty, absent):
        assert reply.status_code == 401
        assert code(reply) == "AUTH_003"
        assert "EIP-191" in reply.json()["detail"]["message"]
    for reply in (no_id, not_address):
        assert reply.status_code == 401
        assert code(reply) == "AUTH_001"
    assert listed.json() == []


async def test_allow_unsigned_admits_legacy_adverts_marked_and_below_signed_ones(
    tmp_path: Path,
) -> None:
    legacy, signed = Account.create(), Account.create()
    async with discovery(tmp_path / "d.sqlite3", allow_unsigned=True, write_burst=50) as served:
        old = await post(served.url, legacy, advert(provider_name="old"), signature="signature")
        first = await post(served.url, signed, advert(provider_name="mine"))
        hijack = await post(
            served.url, signed, advert(ip_address="192.0.2.66"), signature="signature"
        )
        upgraded = await post(served.url, legacy, advert(provider_name="now signed"))
        downgrade = await post(served.url, legacy, advert(), signature="signature")
        unsigned_delete = await delete(
            served.url,
            signed.address,
            {"X-Provider-ID": signed.address, "X-Provider-Signature": "signature"},
        )
        listed = {item["provider_id"]: item for item in (await get(served.url)).json()}
    assert old.status_code == 200
    assert old.json()["verified"] is False
    assert first.json()["verified"] is True
    assert hijack.status_code == 403
    assert code(hijack) == "AUTH_005"
    assert upgraded.json()["verified"] is True
    assert downgrade.status_code == 403
    assert unsigned_delete.status_code == 401
    assert listed[signed.address]["ip_address"] == "192.0.2.10"
    assert listed[legacy.address]["provider_name"] == "now signed"
    assert listed[legacy.address]["created_at"] == old.json()["created_at"]


async def test_a_legacy_advert_can_be_deleted_unsigned_only_with_the_flag(tmp_path: Path) -> None:
    legacy = Account.create()
    headers = {"X-Provider-ID": legacy.address, "X-Provider-Signature": "signature"}
    db = tmp_path / "d.sqlite3"
    async with discovery(db, allow_unsigned=True) as served:
        await post(served.url, legacy, advert(), signature="signature")
    async with discovery(db) as served:
        refused = await delete(served.url, legacy.address, headers)
    async with discovery(db, allow_unsigned=True) as served:
        deleted = await delete(served.url, legacy.address, headers)
        again = await delete(served.url, legacy.address, headers)
    assert (refused.status_code, code(refused)) == (401, "AUTH_003")
    assert deleted.status_code == 200
    assert (again.status_code, code(again)) == (404, "ADV_004")


async def test_a_signed_delete_is_checked_and_cannot_be_replayed(tmp_path: Path) -> None:
    provider, thief = Account.create(), Account.create()
    clock = ManualClock()
    now = int(clock.now)
    pid = provider.address
    async with discovery(tmp_path / "d.sqlite3", clock, write_burst=50) as served:
        await post(served.url, provider, advert())
        other_path = await delete(served.url, thief.address, sign_delete(pid, now, provider.key))
        by_thief = await delete(
            served.url, pid, {**sign_delete(pid, now, thief.key), "X-Provider-ID": pid}
        )
        stale = await delete(served.url, pid, sign_delete(pid, now - 301, provider.key))
        future = await delete(served.url, pid, sign_delete(pid, now + 301, provider.key))
        no_stamp = sign_delete(pid, now, provider.key)
        del no_stamp["X-Provider-Timestamp"]
        missing = await delete(served.url, pid, no_stamp)
        wrong_stamp = {**sign_delete(pid, now, provider.key), "X-Provider-Timestamp": str(now + 1)}
        moved = await delete(served.url, pid, wrong_stamp)
        headers = sign_delete(pid, now, provider.key)
        deleted = await delete(served.url, pid, headers)
        await post(served.url, provider, advert())
        clock.now += 10
        replayed = await delete(served.url, pid, headers)
        unknown = await delete(
            served.url, thief.address, sign_delete(thief.address, now, thief.key)
        )
        listed = await get(served.url)
    assert (other_path.status_code, code(other_path)) == (401, "AUTH_004")
    assert (by_thief.status_code, code(by_thief)) == (401, "AUTH_002")
    for reply in (stale, future, missing):
        assert (reply.status_code, code(reply)) == (401, "AUTH_006")
    assert (moved.status_code, code(moved)) == (401, "AUTH_002")
    assert deleted.status_code == 200
    assert (replayed.status_code, code(replayed)) == (401, "AUTH_007")
    assert (unknown.status_code, code(unknown)) == (404, "ADV_004")
    assert [item["provider_id"] for item in listed.json()] == [pid]


async def test_a_signed_timestamp_stops_replayed_adverts_even_after_a_restart(
    tmp_path: Path,
) -> None:
    provider = Account.create()
    clock = ManualClock()
    db = tmp_path / "d.sqlite3"
    first = json.dumps(advert(ip_address="192.0.2.1", timestamp=clock.now)).encode()
    second = json.dumps(advert(ip_address="192.0.2.2", timestamp=clock.now + 1.5)).encode()
    async with discovery(db, clock, write_burst=50) as served:
        accepted = await post(served.url, provider, first)
        replayed = await post(served.url, provider, first)
        newer = await post(served.url, provider, second)
        rolled_back = await post(served.url, provider, first)
        untimed = await post(served.url, provider, advert(ip_address="192.0.2.3"))
        far = await post(served.url, provider, advert(timestamp=clock.now + 400))
    async with discovery(db, clock) as served:
        after_restart = await post(served.url, provider, first)
        listed = (await get(served.url)).json()
    assert accepted.status_code == 200, accepted.text
    assert "timestamp" not in accepted.json()
    assert newer.status_code == 200
    for reply in (replayed, rolled_back, after_restart):
        assert (reply.status_code, code(reply)) == (401, "AUTH_007")
    assert (untimed.status_code, code(untimed)) == (401, "AUTH_008")
    assert (far.status_code, code(far)) == (401, "AUTH_006")
    assert [item["ip_address"] for item in listed] == ["192.0.2.2"]


async def test_adverts_expire_after_the_ttl_and_the_timer_deletes_them(tmp_path: Path) -> None:
    provider, fresh = Account.create(), Account.create()
    clock = ManualClock()
    db = tmp_path / "d.sqlite3"
    async with discovery(db, clock, cleanup_interval=3600) as served:
        await post(served.url, provider, advert())
        clock.now += 299
        await post(served.url, fresh, advert())
        before = [item["provider_id"] for item in (await get(served.url)).json()]
        clock.now += 2
        after = [item["provider_id"] for item in (await get(served.url)).json()]
        expired = await get(served.url, f"{ADVERTS}/{provider.address}")
        kept = len(served.store)  # no cleanup ran yet
    async with discovery(db, clock, cleanup_interval=0.05) as served:
        with trio.fail_after(5):
            while len(served.store) > 1:  # noqa: ASYNC110 - the timer runs on real time
                await trio.sleep(0.02)
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT provider_id FROM adverts").fetchall()
    assert sorted(before) == sorted([provider.address, fresh.address])
    assert after == [fresh.address]
    assert expired.status_code == 404
    assert kept == 2
    assert rows == [(fresh.address,)]


async def test_rate_limits_answer_429_with_retry_after_then_recover(tmp_path: Path) -> None:
    provider = Account.create()
    clock = ManualClock()
    limits = {"write_rate": 6, "write_burst": 2, "read_rate": 60, "read_burst": 3}
    async with discovery(tmp_path / "d.sqlite3", clock, **limits) as served:
        writes = [(await post(served.url, provider, advert())).status_code for _ in range(3)]
        limited = await post(served.url, provider, advert())
        other_source = await post(served.url, provider, advert(), source=OTHER)
        reads = [(await get(served.url)).status_code for _ in range(4)]
        read_limited = await get(served.url)
        health = await get(served.url, "/health")
        clock.now += 9
        still = await post(served.url, provider, advert())
        clock.now += 1
        recovered = await post(served.url, provider, advert())
        read_again = await get(served.url)
    assert writes == [200, 200, 429]
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "10"
    assert code(limited) == "RATE_001"
    assert other_source.status_code == 200
    assert reads == [200, 200, 200, 429]
    assert read_limited.headers["Retry-After"] == "1"
    assert health.status_code == 200
    assert (still.status_code, still.headers["Retry-After"]) == (429, "1")
    assert recovered.status_code == 200
    assert read_again.status_code == 200


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket(
    tmp_path: Path,
) -> None:
    proxy = (ipaddress.ip_network("127.0.0.1/32"),)
    limits = {"read_rate": 60, "read_burst": 1, "trusted_proxies": proxy}
    async with discovery(tmp_path / "d.sqlite3", ManualClock(), **limits) as served:
        async with client_from() as client:

            async def through_proxy(client_ip: str) -> int:
                headers = {"X-Forwarded-For": client_ip}
                return (await client.get(served.url + ADVERTS, headers=headers)).status_code

            codes = [await through_proxy(ip) for ip in ("192.0.2.1", "192.0.2.1", "192.0.2.2")]
            no_header = await get(served.url)
        direct = await get(served.url, source=OTHER)
    assert codes == [200, 429, 200]
    assert (no_header.status_code, code(no_header)) == (400, "REQ_001")
    assert direct.status_code == 200


async def test_signature_recovery_runs_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = signing.recover

    def slow(message: bytes, signature: bytes, provider_id: str) -> str:
        time.sleep(0.5)  # blocking, as the pure-Python recovery is (~10 ms each)
        return real(message, signature, provider_id)

    monkeypatch.setattr(signing, "recover", slow)
    provider = Account.create()
    async with discovery(tmp_path / "d.sqlite3") as served:
        answers: dict[str, float] = {}
        began = trio.current_time()

        async def posting() -> None:
            assert (await post(served.url, provider, advert())).status_code == 200
            answers["post"] = trio.current_time() - began

        async with trio.open_nursery() as nursery:
            nursery.start_soon(posting)
            await trio.sleep(0.1)
            assert (await get(served.url, "/health")).status_code == 200
            answers["health"] = trio.current_time() - began
    assert answers["health"] < 0.4 < answers["post"]


async def test_adverts_survive_a_restart(tmp_path: Path) -> None:
    first, second = Account.create(), Account.create()
    clock = ManualClock()
    db = tmp_path / "nested" / "d.sqlite3"
    async with discovery(db, clock) as served:
        one = (await post(served.url, first, advert(pricing={"nested": {"a": [1, 2.5]}}))).json()
        two = (await post(served.url, second, advert(country="US"))).json()
    clock.now += 30
    async with discovery(db, clock) as served:
        listed = {item["provider_id"]: item for item in (await get(served.url)).json()}
        again = (await post(served.url, first, advert(ip_address="192.0.2.11"))).json()
    assert listed == {first.address: one, second.address: two}
    assert again["created_at"] == one["created_at"]
    assert again["updated_at"] != one["updated_at"]
    assert again["ip_address"] == "192.0.2.11"


async def test_list_filters(tmp_path: Path) -> None:
    small, big, arm = Account.create(), Account.create(), Account.create()
    async with discovery(tmp_path / "d.sqlite3") as served:
        await post(served.url, small, advert(resources={"cpu": 1, "memory": 2, "storage": 20}))
        await post(
            served.url,
            big,
            advert(country="US", resources={"cpu": 16, "memory": 64, "storage": 1000}),
        )
        await post(
            served.url,
            arm,
            advert(platform="arm64", resources={"cpu": 4, "memory": 8, "storage": 200}),
        )

        async def ids(query: str) -> set[str]:
            reply = await get(served.url, f"{ADVERTS}?{query}")
            assert reply.status_code == 200, reply.text
            return {item["provider_id"] for item in reply.json()}

        results = {
            query: await ids(query)
            for query in (
                "",
                "cpu=4",
                "memory=9",
                "storage=200",
                "country=de",
                "country=US&cpu=2",
                "platform=ARM64",
                "cpu=2&memory=8&storage=100&country=DE",
                "cpu=",
                "unknown=1",
            )
        }
        zero = await get(served.url, f"{ADVERTS}?cpu=0")
        negative = await get(served.url, f"{ADVERTS}?storage=-5")
        text = await get(served.url, f"{ADVERTS}?memory=lots")
    everyone = {small.address, big.address, arm.address}
    assert results == {
        "": everyone,
        "cpu=4": {big.address, arm.address},
        "memory=9": {big.address},
        "storage=200": {big.address, arm.address},
        "country=de": {small.address, arm.address},
        "country=US&cpu=2": {big.address},
        "platform=ARM64": {arm.address},
        "cpu=2&memory=8&storage=100&country=DE": {arm.address},
        "cpu=": everyone,
        "unknown=1": everyone,
    }
    for reply in (zero, negative):
        assert (reply.status_code, code(reply)) == (400, "ADV_002")
    assert (text.status_code, code(text)) == (422, "ADV_003")


async def test_bodies_are_capped_and_strictly_checked_never_a_500(tmp_path: Path) -> None:
    provider = Account.create()
    bad_bodies: list[Any] = [
        advert(ip_address="192.0.2.300"),
        advert(ip_address="2001:db8::1"),
        advert(ip_address="192.0.2.010"),
        advert(country="DEU"),
        advert(country="1D"),
        advert(resources={"cpu": 0, "memory": 8, "storage": 100}),
        advert(resources={"cpu": "4", "memory": 8, "storage": 100}),
        advert(resources={"cpu": True, "memory": 8, "storage": 100}),
        advert(resources={"cpu": 4, "memory": 8}),
        advert(resources={"cpu": 2**40, "memory": 8, "storage": 100}),
        advert(pricing=[1, 2]),
        advert(provider_name="x" * 500),
        {"country": "DE"},
        [],
        None,
        "text",
    ]
    async with discovery(tmp_path / "d.sqlite3", max_body=1024, write_burst=100) as served:
        huge = await post(served.url, provider, advert(pricing={"pad": "x" * 2048}))
        invalid = [await post(served.url, provider, body) for body in bad_bodies]
        malformed = await post(served.url, provider, b"{nope")
        async with client_from() as client:
            odd = [
                await client.get(f"{served.url}{ADVERTS}/%00"),
                await client.get(f"{served.url}{ADVERTS}/" + "a" * 3000),
                await client.put(f"{served.url}{ADVERTS}"),
                await client.get(f"{served.url}/nowhere"),
                await client.delete(f"{served.url}{ADVERTS}/0x{'1' * 40}"),
            ]
        stored = len(served.store)
    assert (huge.status_code, code(huge)) == (413, "REQ_413")
    for body, reply in zip(bad_bodies, invalid, strict=True):
        assert reply.status_code == 422, (body, reply.text)
        assert code(reply) == "ADV_003"
    assert (malformed.status_code, code(malformed)) == (400, "ADV_005")
    assert [reply.status_code for reply in odd] == [404, 404, 405, 404, 401]
    assert all("detail" in reply.json() for reply in odd)
    assert stored == 0


async def test_one_log_line_per_write(tmp_path: Path) -> None:
    provider = Account.create()
    async with discovery(tmp_path / "d.sqlite3") as served:
        with structlog.testing.capture_logs() as logs:
            await post(served.url, provider, advert())
            await post(served.url, provider, advert(), signature="signature")
    lines = [entry for entry in logs if entry["event"] == "advert-post"]
    assert [(line["status"], line.get("verified"), line.get("code")) for line in lines] == [
        (200, True, None),
        (401, None, "AUTH_003"),
    ]
    assert all(line["provider"] == provider.address for line in lines)


def test_bad_command_line_values_fail_at_start(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--trust", "not-a-network"])
    assert exited.value.code == 2
    assert "not-a-network" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["serve", "--ttl", "0"])
    assert "ttl must be positive" in capsys.readouterr().err


def test_a_taken_port_or_a_bad_database_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["serve", "--host", LOCAL, "--log-format", "json"]
    with socket.socket() as taken:
        taken.bind((LOCAL, 0))
        taken.listen()
        port = taken.getsockname()[1]
        try:
            code_taken = main([*base, "--port", str(port), "--db", str(tmp_path / "d.sqlite3")])
        finally:
            reset_logging()
    assert code_taken == 1
    assert "Address already in use" in capsys.readouterr().err
    (tmp_path / "not-a-db").write_bytes(b"this is not sqlite" * 100)
    try:
        code_db = main([*base, "--port", "0", "--db", str(tmp_path / "not-a-db")])
    finally:
        reset_logging()
    assert code_db == 1
    assert "cannot open the advert database" in capsys.readouterr().err
    with sqlite3.connect(tmp_path / "newer.sqlite3") as conn:
        conn.execute("PRAGMA user_version=2")
    try:
        code_newer = main([*base, "--port", "0", "--db", str(tmp_path / "newer.sqlite3")])
    finally:
        reset_logging()
    assert code_newer == 1
    assert "written by a newer version" in capsys.readouterr().err


@pytest.mark.tools  # runs the command as a process
async def test_golem_provider_discovery_serve_runs_and_stops_on_sigterm(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "golem_actor.cli", "discovery", "serve", "--host", LOCAL]
    argv += ["--port", "0", "--db", str(tmp_path / "d.sqlite3"), "--log-format", "json"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = await trio.lowlevel.open_process(argv, stderr=subprocess.PIPE, env=env)
    assert process.stderr is not None
    try:
        with trio.fail_after(15):
            started = json.loads(await first_line(process.stderr))
        assert started["event"] == "discovery service listening"
        assert started["allow_unsigned"] is False
        health = await get(started["binds"][0], "/health")
        assert health.json() == {"status": "healthy"}
    finally:
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(10):
            exit_code = await process.wait()
        await process.stderr.aclose()
    assert exit_code == 0
    assert (tmp_path / "d.sqlite3").exists()


def test_the_cli_lists_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli_main(["--help"])
    assert "discovery" in capsys.readouterr().out
