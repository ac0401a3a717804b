"""Advert benchmark: synchronous `POST /api/v1/vms` latency with the advertiser on vs off.

What is measured: three copies of the node's tree (`_node.running_memory_api`: resource
tracker, pricing, port verifier (checks skipped), ssh_proxies, vm_lifecycle, advertiser,
api on Quart-Trio + hypercorn) run in this process's trio loop over the in-memory backend,
so a create costs only the node's own work:
- off: no provider key, so the advertiser only says why it does not advertise (baseline);
- on:  the advertiser posts signed adverts to our discovery service (`golem-provider
       discovery serve`, another process on 127.0.0.1) at start, on its interval, and
       once per burst of capacity changes, 5 s after it (the node's debounce);
- hot: the same with a 20 ms debounce, so that a post (an EIP-191 signature in a worker
       thread, an HTTP round trip) runs during nearly every round of creates: the worst
       case the create path could see from the advertiser.
Prices are fixed (0.25 USD/GLM) so every attempt posts. The client is another process
(`bench._http_client`, one keep-alive connection): a create is timed from the request's
first byte to the answer's last, then the VM is deleted (not timed); each create and each
delete is a capacity change. Rounds interleave the cases, rotating which goes first, each
after the machine is idle-ish. With two or more CPUs the servers' loop is pinned to CPU 0,
the discovery service and the client to CPU 1. The posts each node made are counted from
the discovery service's log. The number to read is each case's ratio to "off" in the
same run: the advertiser is off the create path, so it should be 1 within noise.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from decimal import Decimal
from pathlib import Path

import httpx
import msgspec
import trio
from eth_account import Account

from golem_actor.adapters.price_feed import FixedRates
from golem_actor.identity import ProviderKey
from golem_actor.keys import generate_ssh_keypair
from golem_actor.signer import Signer
from supervisors import NodeParts

from ._node import HOST, free_port, idle_gate, running_memory_api
from .gating import Case, _p90, _pinning, timed_creates

ROUNDS = 10
PER_ROUND = 3  # creates per case per round: 30 timed creates per case
WARMUP = 2
CAPACITY = 4
HOT_DEBOUNCE = 0.02
REPO = Path(__file__).resolve().parents[1]
CASES = ("off", "on", "hot")
LABELS = {
    "off": "advertiser off (no key)",
    "on": "advertiser on, 5 s debounce",
    "hot": f"advertiser on, {HOT_DEBOUNCE * 1e3:.0f} ms debounce",
}


@asynccontextmanager
async def discovery_service(db: Path, log: Path, pin: str | None) -> AsyncIterator[str]:
    """`golem-provider discovery serve` on a free loopback port, its JSON log in `log`."""
    port = free_port()
    argv = [sys.executable, "-m", "golem_actor.discovery", "serve", "--host", HOST]
    argv += ["--port", str(port), "--db", str(db), "--log-format", "json"]
    argv += ["--write-rate", "100000", "--write-burst", "10000"]  # posts are not limited here
    if pin is not None:
        argv = ["taskset", "-c", pin, *argv]
    url = f"http://{HOST}:{port}"
    with log.open("wb") as sink:
        process = await trio.lowlevel.open_process(
            argv, stdout=subprocess.DEVNULL, stderr=sink, cwd=REPO
        )
        try:
            async with httpx.AsyncClient() as client:
                with trio.fail_after(30):
                    while True:
                        try:
                            if (await client.get(url + "/health")).status_code == 200:
                                break
                        except httpx.TransportError:
                            await trio.sleep(0.05)
            yield url
        finally:
            process.terminate()
            with trio.move_on_after(10):
                await process.wait()


def advertising(discovery: str, debounce: float) -> tuple[str, Callable[[NodeParts], NodeParts]]:
    """The parts' change that turns the advertiser on (a key, a fixed price, our server),
    and the provider id it advertises under."""
    account = Account.create()
    key = ProviderKey(address=account.address, private_key=account.key.hex())

    def adjust(parts: NodeParts) -> NodeParts:
        settings = msgspec.structs.replace(
            parts.settings, advertiser_type="discovery_server", discovery_url=discovery
        )
        return dataclasses.replace(
            parts,
            settings=settings,
            provider_id=account.address,
            signer=Signer(key),
            price_source=FixedRates(glm_usd=Decimal("0.25"), eth_usd=Decimal("2500")),
            advert_debounce=debounce,
        )

    return account.address, adjust


def posts_by_provider(log: Path) -> Counter[str]:
    posts: Counter[str] = Counter()
    for line in log.read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "advert-post" and event.get("status") == 200:
            posts[event.get("provider", "")] += 1
    return posts


async def run(rounds: int = ROUNDS, per_round: int = PER_ROUND) -> dict[str, float]:
    pinned, other_cpu = _pinning()
    saved_affinity = os.sched_getaffinity(0) if pinned else None
    if pinned:
        os.sched_setaffinity(0, {0})  # this thread runs the trio loop: the servers
    _, public_key = generate_ssh_keypair("bench")
    busiest = 0.0
    try:
        with tempfile.TemporaryDirectory(prefix="bench-advert-") as tmp:
            log = Path(tmp) / "discovery.log"
            async with AsyncExitStack() as stack:
                server = await stack.enter_async_context(
                    discovery_service(Path(tmp) / "adverts.sqlite3", log, other_cpu)
                )
                advertised = {
                    "on": advertising(server, 5.0),
                    "hot": advertising(server, HOT_DEBOUNCE),
                }
                cases: dict[str, Case] = {}
                for name in CASES:
                    data = Path(tmp) / name
                    data.mkdir()
                    adjust = advertised[name][1] if name in advertised else None
                    node = await stack.enter_async_context(
                        running_memory_api(data, CAPACITY, adjust=adjust)
                    )
                    cases[name] = Case(name, node, None)
                for case in cases.values():  # warm-up: first requests, imports, caches
                    await timed_creates(case, case.bodies(WARMUP, public_key), other_cpu)
                for i in range(rounds):
                    busiest = max(busiest, await idle_gate())
                    order = CASES[i % 3 :] + CASES[: i % 3]
                    for name in order:
                        case = cases[name]
                        seconds = await timed_creates(
                            case, case.bodies(per_round, public_key), other_cpu
                        )
                        case.seconds += seconds
                        case.by_round.append(statistics.median(seconds))
                await trio.sleep(HOT_DEBOUNCE * 5)  # the last hot post lands
            posts = posts_by_provider(log)
    finally:
        if saved_affinity is not None:
            os.sched_setaffinity(0, saved_affinity)
    counted = {name: posts[provider] for name, (provider, _) in advertised.items()}
    return _report(cases, counted, rounds, per_round, pinned, busiest)


def _report(
    cases: dict[str, Case],
    posts: dict[str, int],
    rounds: int,
    per_round: int,
    pinned: bool,
    busiest: float,
) -> dict[str, float]:
    off = cases["off"]
    print(
        f"advert: synchronous POST /api/v1/vms (in-memory backend), {len(off.seconds)} creates"
        f" per case in {rounds} interleaved rounds of {per_round}; each VM deleted after"
    )
    where = "server loop on CPU 0, discovery + client on CPU 1" if pinned else "no pinning"
    print(f"  {where}; machine CPU before rounds <= {busiest:.0f}% (idle gate 30%)")
    print(
        f"  {'case':<32}{'median ms':>10}{'p90 ms':>9}{'min ms':>9}{'max ms':>9}"
        f"{'vs off':>8}{'posts':>7}"
    )
    out: dict[str, float] = {}
    for name in CASES:
        ms = [v * 1e3 for v in cases[name].seconds]
        out[f"{name}_median_ms"] = statistics.median(ms)
        out[f"{name}_p90_ms"] = _p90(ms)
        ratio = out[f"{name}_median_ms"] / out["off_median_ms"]
        out[f"{name}_vs_off_median"] = ratio
        shown = "-" if name not in posts else str(posts[name])
        print(
            f"  {LABELS[name]:<32}{out[f'{name}_median_ms']:>10.2f}{out[f'{name}_p90_ms']:>9.2f}"
            f"{min(ms):>9.2f}{max(ms):>9.2f}{ratio:>7.3f}x{shown:>7}"
        )
        if name in posts:
            out[f"{name}_posts"] = float(posts[name])
    for name in ("on", "hot"):
        paired = [(a - b) * 1e3 for a, b in zip(cases[name].by_round, off.by_round, strict=True)]
        out[f"{name}_added_paired_ms"] = statistics.median(paired)
        print(
            f"  {name} - off, paired by round (median): {out[f'{name}_added_paired_ms']:+.2f} ms"
            f" (rounds {min(paired):+.1f} .. {max(paired):+.1f} ms)"
        )
    return out


if __name__ == "__main__":
    trio.run(run)
