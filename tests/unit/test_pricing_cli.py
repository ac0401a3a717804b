"""`golem-provider pricing set|show` and the price state in `status`, each in a new process,
against a price feed on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from feed_server import dead_port, feed_server, prices

pytestmark = pytest.mark.tools  # runs the CLI as a command


async def cli(data: Path, feed: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GOLEM_")}
    environment.update(
        GOLEM_PROVIDER_COINGECKO_API_URL=feed,
        GOLEM_PROVIDER_PAYMENTS_NETWORK="none",
        GOLEM_PROVIDER_PORT_CHECK_SERVERS="[]",
        GOLEM_PROVIDER_PUBLIC_IP_SERVICES="[]",
        GOLEM_PROVIDER_UPDATE_INDEX_URL="http://127.0.0.1:9/",
        GOLEM_PROVIDER_VM_BACKEND="qemu",
        **env,
    )
    argv = [sys.executable, "-m", "golem_actor.cli", *args, "--data-dir", str(data)]
    done = await trio.run_process(
        argv, capture_stdout=True, capture_stderr=True, check=False, env=environment
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


async def test_set_then_show_in_a_new_process(tmp_path: Path) -> None:
    data = tmp_path / "node"
    async with feed_server(prices(glm=0.25, eth=2000)) as feed:
        written = await cli(
            data,
            feed.url,
            *("pricing", "set", "--usd-per-core", "12", "--usd-per-mem", "4"),
            *("--usd-per-disk", "0.1"),
        )
        assert written.returncode == 0, written.stderr
        env_file = (data / ".env").read_text().splitlines()
        assert "GOLEM_PROVIDER_PRICE_USD_PER_CORE_MONTH=12.0" in env_file
        assert "GOLEM_PROVIDER_PRICE_USD_PER_GB_RAM_MONTH=4.0" in env_file
        assert "GOLEM_PROVIDER_PRICE_USD_PER_GB_STORAGE_MONTH=0.1" in env_file
        shown = await cli(data, feed.url, "pricing", "show")
        assert feed.requests  # the feed was asked
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "  Core:          $12.00" in out
    assert "  RAM per GB:    $4.00" in out
    assert "USD/GLM rate:    $0.25 per GLM" in out
    assert "  Core:          48.00000000 GLM" in out  # 12 / 0.25
    assert "  Disk per GB:   0.40000000 GLM" in out
    assert "Small (1C, 1GB RAM, 10GB Disk):   ~$17.00 per month (~68.0000 GLM)" in out
    assert "Medium (2C, 4GB RAM, 20GB Disk):  ~$42.00 per month (~168.0000 GLM)" in out
    assert "Example (2C, 2GB RAM, 10GB Disk): ~$33.00 per month (~132.0000 GLM)" in out


async def test_a_bad_price_is_refused_and_nothing_written(tmp_path: Path) -> None:
    data = tmp_path / "node"
    async with dead_port() as url:
        refused = await cli(
            data,
            url,
            *("pricing", "set", "--usd-per-core", "-1", "--usd-per-mem", "4"),
            *("--usd-per-disk", "0.1"),
        )
    assert refused.returncode == 2
    assert "GOLEM_PROVIDER_PRICE_USD_PER_CORE_MONTH" in refused.stderr
    assert not (data / ".env").exists()


async def test_show_fails_without_a_price(tmp_path: Path) -> None:
    async with feed_server(prices(glm=0, eth=0)) as feed:
        shown = await cli(tmp_path / "node", feed.url, "pricing", "show")
    assert shown.returncode == 1
    assert "USD/GLM rate:    unavailable (unknown)" in shown.stdout
    assert "no usable GLM price" in shown.stderr
    assert "Example monthly costs" not in shown.stdout  # never a price of zero


async def test_status_shows_the_price_state(tmp_path: Path) -> None:
    data = tmp_path / "node"
    async with dead_port() as url:
        down = await cli(data, url, "status", "--json")
    document = json.loads(down.stdout)
    assert {"ports", "overall", "pricing"} <= document.keys()  # the seed's keys, and pricing
    assert document["pricing"]["state"] == "unknown"
    assert "no GLM/USD rate known yet" in document["pricing"]["why"]
    assert "ConnectError" in document["pricing"]["why"]
    async with feed_server(prices(glm=0.2512, eth=3000)) as feed:
        up = await cli(data, feed.url, "status")
    assert "Pricing         ✅ known — 0.2512 USD/GLM" in up.stdout
    assert "  In GLM        19.90445860/core, 7.96178344/GB RAM, 0.39808917/GB disk" in up.stdout
