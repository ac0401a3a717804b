"""Pricing in a real node process, against a price feed on 127.0.0.1: the rate becomes
known, a feed answering 0 changes nothing, a feed that goes down keeps the last rate until
the staleness bound, and then `status` and the logs say why there is no price."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))  # the local price feed
from feed_server import FeedServer, feed_server, prices
from node_helpers import free_block, free_port

pytestmark = pytest.mark.e2e

CLI = str(Path(sys.executable).with_name("golem-provider"))
MAX_AGE = 10  # seconds: the staleness bound; the node refreshes every 5 s (half of it)


SSH_PORTS = free_block(2)


async def cli(data: Path, feed: FeedServer, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOLEM_")}
    env.update(
        GOLEM_PROVIDER_PAYMENTS_NETWORK="none",
        GOLEM_PROVIDER_PORT_RANGE_START=str(SSH_PORTS.start),
        GOLEM_PROVIDER_PORT_RANGE_END=str(SSH_PORTS.stop),
        GOLEM_PROVIDER_PORT_CHECK_SERVERS="[]",
        GOLEM_PROVIDER_PUBLIC_IP_SERVICES="[]",
        GOLEM_PROVIDER_UPDATE_INDEX_URL="http://127.0.0.1:9/",
        GOLEM_PROVIDER_COINGECKO_API_URL=feed.url,
        GOLEM_PROVIDER_PRICING_MAX_AGE_SECONDS=str(MAX_AGE),
    )
    return await trio.run_process(
        [CLI, *args, "--data-dir", str(data)],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env=env,
    )


async def pricing(data: Path, feed: FeedServer) -> dict[str, Any]:
    result = await cli(data, feed, "status", "--json")
    document: dict[str, Any] = json.loads(result.stdout)
    return document["pricing"]  # type: ignore[no-any-return]


async def wait_pricing(data: Path, feed: FeedServer, state: str) -> dict[str, Any]:
    with trio.fail_after(30):
        for _ in range(1_000):  # asking the node, as an operator would
            found = await pricing(data, feed)
            if found["state"] == state:
                return found
            await trio.sleep(0.5)
    raise AssertionError(f"pricing never became {state}")


async def test_the_last_rate_holds_until_the_bound_then_status_says_why(tmp_path: Path) -> None:
    data = tmp_path / "node"
    async with feed_server(prices(glm=0.25, eth=2000)) as feed:
        started = await cli(
            data, feed, "start", "--daemon", "--host", "127.0.0.1", "--port", str(free_port())
        )
        assert started.returncode == 0, started.stderr.decode()
        try:
            known = await wait_pricing(data, feed, "known")
            assert (known["glm_usd"]["usd"], known["glm"]["core"]) == ("0.25", "20.00000000")
            assert known["source"] == feed.url

            feed.answer = prices(glm=0, eth=0)  # zero is no price: nothing changes
            asked = len(feed.requests)
            with trio.fail_after(15):
                for _ in range(1_000):  # one refresh, within the bound
                    if len(feed.requests) > asked:
                        break
                    await trio.sleep(0.2)
            zero = await pricing(data, feed)
            assert zero["glm_usd"]["usd"] == "0.25"  # not replaced, and not confirmed either:
            assert zero["glm"] in (None, known["glm"])  # known until the bound, never zero
            assert "no usable GLM price" in zero["last_error"]

            feed.answer = (500, b"{}")  # the feed goes down
            stale = await wait_pricing(data, feed, "stale")
            assert stale["glm"] is None  # never a price of zero
            assert stale["glm_usd"]["usd"] == "0.25"  # the last rate, known to be old
            assert "stale: last confirmed" in stale["why"]
            assert "HTTP 500" in stale["why"]
            shown = await cli(data, feed, "status")
            assert "Pricing         ❌ stale — not advertised" in shown.stdout.decode()

            feed.answer = prices(glm=0.25, eth=2000)  # back: priced again
            await wait_pricing(data, feed, "known")
        finally:
            stopped = await cli(data, feed, "stop")
            assert stopped.returncode == 0, stopped.stderr.decode()
    lines = (data / "logs" / "provider.log").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    events = [(r["event"], r.get("state")) for r in records if r.get("actor") == "pricing"]
    assert ("prices known", None) in events
    assert ("no price: not advertising, creates refused", "stale") in events
    cache = json.loads((data / "state" / "pricing.json").read_text())
    assert cache["payload"]["glm_usd"]["usd"] == "0.25"
