"""Our discovery service answers as the upstream server does (golem-vm-discovery 0.1.25).

Both run on 127.0.0.1: upstream from its own venv (`.ci/install-upstream-discovery.sh`),
ours in this process. The same advert goes to both; every field upstream returns must
come back from us with the same value (timestamps: same format), and ours adds exactly
`platform`, `provider_name` and `verified`. Error statuses and codes are compared where
both servers answer a client mistake the same way.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from eth_account import Account

from golem_actor.discovery import DiscoveryConfig, run_server, sign, sign_delete

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
LOCAL = "127.0.0.1"
ADVERTS = "/api/v1/advertisements"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$")
EXTRA = {"platform", "provider_name", "verified"}
PROVIDER = Account.create()
KEY = PROVIDER.key


@pytest.fixture(scope="module")
def upstream_venv() -> Path:
    subprocess.run(["bash", str(REPO / ".ci" / "install-upstream-discovery.sh")], check=True)
    return REPO / ".tools" / "upstream-discovery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOCAL, 0))
        port: int = sock.getsockname()[1]
    return port


@asynccontextmanager
async def upstream(venv: Path, data: Path) -> AsyncIterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "GOLEM_DISCOVERY_HOST": LOCAL,
        "GOLEM_DISCOVERY_PORT": str(port),
        "GOLEM_DISCOVERY_DATABASE_DIR": str(data),
    }
    url = f"http://{LOCAL}:{port}"
    process = await trio.lowlevel.open_process(
        [str(venv / "bin" / "golem-discovery")], env=env, cwd=data
    )
    try:
        async with httpx.AsyncClient() as client:
            with trio.fail_after(30):
                while True:
                    try:
                        if (await client.get(url + "/health")).status_code == 200:
                            break
                    except httpx.TransportError:
                        await trio.sleep(0.1)
        yield url
    finally:
        process.terminate()
        with trio.fail_after(10):
            await process.wait()


@asynccontextmanager
async def ours(db: Path) -> AsyncIterator[str]:
    config = DiscoveryConfig(host=LOCAL, port=0, db_path=db)
    async with trio.open_nursery() as nursery:
        running = await nursery.start(partial(run_server, config))
        yield running.binds[0]
        nursery.cancel_scope.cancel()


async def exchange(url: str, body: bytes, headers: dict[str, str], pid: str) -> dict[str, Any]:
    """The same calls against one server; status and JSON of each."""
    other = Account.create().address
    async with httpx.AsyncClient(base_url=url) as client:
        calls = {
            "post": await client.post(ADVERTS, content=body, headers=headers),
            "list": await client.get(ADVERTS),
            "filtered": await client.get(ADVERTS, params={"cpu": 2, "country": "DE"}),
            "none": await client.get(ADVERTS, params={"memory": 999}),
            "get": await client.get(f"{ADVERTS}/{pid}"),
            "unknown": await client.get(f"{ADVERTS}/{other}"),
            "zero": await client.get(ADVERTS, params={"storage": 0}),
            "not_int": await client.get(ADVERTS, params={"cpu": "many"}),
            "wrong_owner": await client.delete(
                f"{ADVERTS}/{pid}", headers={**headers, "X-Provider-ID": other}
            ),
            "delete": await client.delete(
                f"{ADVERTS}/{pid}", headers=sign_delete(pid, int(time.time()), KEY)
            ),
            "after": await client.get(ADVERTS),
        }
    return {name: (reply.status_code, reply.json()) for name, reply in calls.items()}


def codes(answer: tuple[int, Any]) -> tuple[int, Any]:
    status, body = answer
    detail = body.get("detail") if isinstance(body, dict) else None
    return status, detail.get("code") if isinstance(detail, dict) else None


async def test_our_answers_have_upstreams_shapes_and_values(
    upstream_venv: Path, tmp_path: Path
) -> None:
    body = json.dumps(
        {
            "ip_address": "192.0.2.10",
            "country": "DE",
            "resources": {"cpu": 4, "memory": 8, "storage": 100},
            "pricing": {"usd_per_core_month": 5.0, "glm_per_core_month": 19.9044586},
            "provider_name": "golem-actor",
            "platform": "x86_64",
        }
    ).encode()
    pid = PROVIDER.address
    headers = {"X-Provider-ID": pid, "X-Provider-Signature": sign(body, KEY)}
    (tmp_path / "upstream").mkdir()
    async with upstream(upstream_venv, tmp_path / "upstream") as url:
        theirs = await exchange(url, body, headers, pid)
    async with ours(tmp_path / "ours.sqlite3") as url:
        mine = await exchange(url, body, headers, pid)

    for name in ("post", "get"):
        assert theirs[name][0] == mine[name][0] == 200
        _same_item(theirs[name][1], mine[name][1])
    for name in ("list", "filtered"):
        assert theirs[name][0] == mine[name][0] == 200
        assert len(theirs[name][1]) == len(mine[name][1]) == 1
        _same_item(theirs[name][1][0], mine[name][1][0])
    assert theirs["none"] == mine["none"] == (200, [])
    assert theirs["after"] == mine["after"] == (200, [])
    assert theirs["delete"] == mine["delete"] == (200, {"status": "success"})
    assert codes(theirs["unknown"]) == codes(mine["unknown"]) == (404, "ADV_004")
    assert codes(theirs["zero"]) == codes(mine["zero"]) == (400, "ADV_002")
    assert codes(theirs["wrong_owner"]) == codes(mine["wrong_owner"]) == (401, "AUTH_004")
    assert theirs["not_int"][0] == mine["not_int"][0] == 422


def _same_item(theirs: dict[str, Any], mine: dict[str, Any]) -> None:
    assert set(mine) == set(theirs) | EXTRA
    for key, value in theirs.items():
        if key in {"created_at", "updated_at"}:
            assert TIMESTAMP.match(value), value
            assert TIMESTAMP.match(mine[key]), mine[key]
        else:
            assert mine[key] == value, key
    assert (mine["provider_name"], mine["platform"], mine["verified"]) == (
        "golem-actor",
        "x86_64",
        True,
    )
