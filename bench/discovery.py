"""Discovery benchmark: `GET /api/v1/advertisements` with 1000 adverts, ours vs upstream.

What is measured: both discovery servers run as separate processes on 127.0.0.1, each
holding the same 1000 adverts (posted through their APIs; ours signed with 1000 fresh
keys, so every advert went through signature recovery), both answering the full list
(about 435 KB of JSON from upstream, 500 KB from ours, which adds `platform`,
`provider_name` and `verified` to every item):
- upstream: golem-vm-discovery 0.1.25 (FastAPI + SQLAlchemy/aiosqlite on uvicorn, one
            worker), from its own venv `.tools/upstream-discovery`, made on first run by
            `.ci/install-upstream-discovery.sh` (never our venv: its pins are older);
            its rate limit raised to 10^9/min so that it never answers 500;
- ours:     `python -m golem_actor.discovery serve` (Quart-Trio on hypercorn, adverts
            served from memory, SQLite behind), read and write rates raised likewise.
wrk (C; `-t1`, 10 keep-alive connections, 30 s timeout: upstream needs more than wrk's
default 2 s per answer under this load) loads each for a fixed time, servers
interleaved round by round, after one warm-up run each; medians reported. With two or
more CPUs both servers are pinned to CPU 0 and wrk to CPU 1 (`taskset`). Each run waits
for the machine to be idle-ish first. Target: ours >= 3x upstream's requests/s.

On a small shared VM absolute req/s move by 5-15 % between runs; the ratio is steadier.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import trio
from eth_account import Account

from golem_actor.discovery import sign

from ._node import HOST, free_port, idle_gate
from .api import parse_wrk

ADVERTS = 1000
PATH = "/api/v1/advertisements"
REPO = Path(__file__).resolve().parents[1]
UPSTREAM_VENV = REPO / ".tools" / "upstream-discovery"
MANY = "1000000000"


@dataclass
class Server:
    name: str
    url: str
    rps: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)


def _advert(i: int) -> bytes:
    return json.dumps(
        {
            "ip_address": f"198.51.{i // 250}.{i % 250 + 1}",
            "country": ["DE", "PL", "US", "FR"][i % 4],
            "resources": {"cpu": 1 + i % 16, "memory": 2 + i % 64, "storage": 20 + i},
            "pricing": {
                "usd_per_core_month": 5.0,
                "usd_per_gb_ram_month": 2.0,
                "usd_per_gb_storage_month": 0.1,
                "glm_per_core_month": 19.9044586,
                "glm_per_gb_ram_month": 7.96178344,
                "glm_per_gb_storage_month": 0.39808917,
            },
            "provider_name": f"bench-{i:04d}",
            "platform": "x86_64",
        }
    ).encode()


def _signed_posts() -> list[tuple[bytes, dict[str, str]]]:
    posts = []
    for i in range(ADVERTS):
        account = Account.create()
        body = _advert(i)
        headers = {
            "X-Provider-ID": account.address,
            "X-Provider-Signature": sign(body, account.key),
        }
        posts.append((body, {**headers, "Content-Type": "application/json"}))
    return posts


async def _wait_healthy(url: str, process: trio.Process, log: Path) -> None:
    async with httpx.AsyncClient() as client:
        with trio.fail_after(60):
            while True:
                if process.returncode is not None:
                    tail = await trio.Path(log).read_text(errors="replace")
                    raise RuntimeError(
                        f"{url}: the server exited ({process.returncode}):\n{tail[-2000:]}"
                    )
                try:
                    if (await client.get(url + "/health")).status_code == 200:
                        return
                except httpx.TransportError:
                    await trio.sleep(0.1)


@asynccontextmanager
async def _process(
    argv: list[str], env: dict[str, str], url: str, log: Path
) -> AsyncIterator[None]:
    """A server process whose output goes to `log` (shown only if it fails to start)."""
    with log.open("wb") as output:
        process = await trio.lowlevel.open_process(
            argv, env={**os.environ, **env}, stdout=output, stderr=output
        )
    try:
        await _wait_healthy(url, process, log)
        yield
    finally:
        process.terminate()
        with trio.move_on_after(10):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _fill(url: str, posts: list[tuple[bytes, dict[str, str]]]) -> int:
    """Post every advert (8 at a time); the size of the list answer in bytes."""
    limiter = trio.CapacityLimiter(8)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def one(body: bytes, headers: dict[str, str]) -> None:
            async with limiter:
                reply = await client.post(PATH, content=body, headers=headers)
            if reply.status_code != 200:
                raise RuntimeError(f"{url}: POST answered {reply.status_code} {reply.text}")

        async with trio.open_nursery() as nursery:
            for body, headers in posts:
                nursery.start_soon(one, body, headers)
        listed = await client.get(PATH)
    if listed.status_code != 200 or len(listed.json()) != ADVERTS:
        raise RuntimeError(f"{url}: the list does not hold {ADVERTS} adverts")
    return len(listed.content)


async def _wrk(url: str, seconds: float, connections: int, pin: str | None) -> str:
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "30s",
        "--latency",
        url,
    ]
    if pin is not None:
        argv = ["taskset", "-c", pin, *argv]
    done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True)
    return str(done.stdout.decode())


def _pins() -> tuple[list[str], str | None]:
    """(argv prefix pinning a server to CPU 0, CPU list for wrk) when the machine allows."""
    two = hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) >= 2
    if two and shutil.which("taskset") is not None:
        return ["taskset", "-c", "0"], "1"
    return [], None


async def run(seconds: float = 5.0, rounds: int = 3, connections: int = 10) -> dict[str, float]:
    if shutil.which("wrk") is None:
        print("discovery: wrk not found (bash .ci/install-bench-deps.sh); skipped")
        return {}
    installer = REPO / ".ci" / "install-upstream-discovery.sh"
    await trio.run_process(["bash", str(installer), str(UPSTREAM_VENV)])
    posts = await trio.to_thread.run_sync(_signed_posts)
    server_pin, wrk_pin = _pins()
    ours_port, theirs_port = free_port(), free_port()
    ours = Server("ours", f"http://{HOST}:{ours_port}")
    theirs = Server("upstream", f"http://{HOST}:{theirs_port}")
    with tempfile.TemporaryDirectory(prefix="bench-discovery-") as tmp:
        ours_argv = [*server_pin, sys.executable, "-m", "golem_actor.discovery", "serve"]
        ours_argv += ["--host", HOST, "--port", str(ours_port), "--db", f"{tmp}/ours.sqlite3"]
        ours_argv += ["--read-rate", MANY, "--read-burst", MANY, "--write-rate", MANY]
        ours_argv += ["--write-burst", MANY, "--log-level", "warning", "--log-format", "json"]
        theirs_env = {
            "GOLEM_DISCOVERY_HOST": HOST,
            "GOLEM_DISCOVERY_PORT": str(theirs_port),
            "GOLEM_DISCOVERY_DATABASE_DIR": tmp,
            "GOLEM_DISCOVERY_RATE_LIMIT_PER_MINUTE": MANY,
        }
        theirs_argv = [*server_pin, str(UPSTREAM_VENV / "bin" / "golem-discovery")]
        async with (
            _process(ours_argv, {}, ours.url, Path(tmp, "ours.log")),
            _process(theirs_argv, theirs_env, theirs.url, Path(tmp, "upstream.log")),
        ):
            sizes = {s.name: await _fill(s.url, posts) for s in (ours, theirs)}
            servers = [ours, theirs]
            for server in servers:  # warm-up, not recorded
                await _wrk(server.url + PATH, 1.0, connections, wrk_pin)
            busiest = 0.0
            for _ in range(rounds):
                for server in servers:
                    busiest = max(busiest, await idle_gate())
                    output = await _wrk(server.url + PATH, seconds, connections, wrk_pin)
                    rps, _p50, p99 = parse_wrk(output)
                    server.rps.append(rps)
                    server.p99_ms.append(p99)
    return _report(servers, sizes, seconds, rounds, connections, bool(server_pin), busiest)


def _report(
    servers: list[Server],
    sizes: dict[str, int],
    seconds: float,
    rounds: int,
    connections: int,
    pinned: bool,
    busiest: float,
) -> dict[str, float]:
    print(
        f"discovery: wrk -t1 -c{connections} -d{seconds:g}s, median of {rounds} interleaved"
        f" rounds; GET {PATH} listing {ADVERTS} adverts"
    )
    where = "servers on CPU 0, wrk on CPU 1 (taskset)" if pinned else "no CPU pinning"
    print(f"  {where}; machine CPU before runs <= {busiest:.0f}% (idle gate 30%)")
    print(f"  {'server':<10}{'req/s':>9}{'(min-max)':>15}{'p99 ms':>9}{'answer bytes':>14}")
    out: dict[str, float] = {}
    for server in servers:
        rps, p99 = statistics.median(server.rps), statistics.median(server.p99_ms)
        spread = f"({min(server.rps):.0f}-{max(server.rps):.0f})"
        print(f"  {server.name:<10}{rps:>9.0f}{spread:>15}{p99:>9.1f}{sizes[server.name]:>14}")
        out[f"{server.name}_rps"], out[f"{server.name}_p99_ms"] = rps, p99
    ratio = out["ours_rps"] / out["upstream_rps"]
    out["ours_vs_upstream_rps"] = ratio
    print(f"  ours / upstream req/s = {ratio:.2f}x (target >= 3x)")
    return out
