"""Gating benchmark: synchronous `POST /api/v1/vms` latency with the payment gate on vs off.

What is measured: two copies of the node's tree (`supervisors.node_tree` from
`_node.memory_parts`: resource tracker, port verifier (checks skipped), ssh_proxies,
vm_lifecycle with `streams.json`, api on Quart-Trio + hypercorn) run in this process's
trio loop over the in-memory backend, so a create costs only the node's own work. One has
the API's payment gate on (`Payments(client, gate)`, as `prepare_node` resolves it; no
stream monitor or wallet: only the create path is compared), the other none:
- off: `POST /vms` without a stream (the baseline);
- on:  `POST /vms` with `stream_id`: the gate reads the stream and the latest block from
       the chain (one JSON-RPC batch to anvil) and checks it before the lifecycle creates.
The chain is a local anvil started here (127.0.0.1, a free port, `--silent`) with
StreamPayment deployed and one fresh valid native-ETH stream per gated create (to the
provider's address, paying the price with a long runway), all opened before any timing.
The client is another process (`bench._http_client`, standard library, one keep-alive
connection): a create is timed from the request's first byte to the answer's last, then
the VM is deleted (not timed), so capacity never runs out. Rounds interleave the cases,
alternating which goes first; each round waits for the machine to be idle-ish. With two
or more CPUs the server's loop is pinned to CPU 0, anvil and the client to CPU 1.
For scale, `PaymentGate.admit` alone (in this loop, same client, one stream, each call
after 60 ms idle) is also timed: what the gate should add.

A synchronous create answers when the VM runs; the API waits for that with one `WaitVm`
call, which the lifecycle answers on the VM's transition to running. (Until it did, the
API polled the VM every 50 ms, and both cases sat on a ~55 ms floor: on a 2-CPU shared
VM, 58-69 ms median for "off" before, 7.6 ms after.) The added milliseconds are the
number to read, and the paired estimate (each round's on - off median difference, median
over rounds) is the steadiest under changing load. anvil shares the machine; on a small
shared VM under load the medians move by several milliseconds between runs and p90 by
more: compare the added ms with `admit` alone.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import trio
from eth_account import Account

from actors.api.payments import PaymentGate
from golem_actor.adapters.chain.deploy import deploy_stream_payment
from golem_actor.adapters.chain.errors import ChainUnavailable
from golem_actor.adapters.chain.rpc import RpcClient
from golem_actor.adapters.chain.stream_payment import StreamPaymentClient
from golem_actor.adapters.chain.tools import ToolNotFoundError, find_anvil
from golem_actor.adapters.chain.transactions import TransactionSender
from golem_actor.domain.resources import Resources
from golem_actor.domain.streams import SECONDS_PER_MONTH, ZERO_ADDRESS
from golem_actor.keys import generate_ssh_keypair
from supervisors.payments import Payments

from ._node import HOST, ApiNode, free_port, idle_gate, running_memory_api

ROUNDS = 10
PER_ROUND = 3  # creates per case per round: 30 timed creates per case
WARMUP = 2  # creates per case before the rounds, not recorded
CAPACITY = 4  # VMs each tree has room for (each create is deleted before the next)
PRICE = 10**9  # wei per second for one core (memory and disk free)
RUNWAY = 10**6  # seconds each stream pays for, far above MIN_REMAINING
MIN_REMAINING = 3_600
RESOURCES = {"cpu": 1, "memory": 1, "storage": 10}
ADMIT_GAP = 0.06  # s idle before each lone `admit` (a create's length when the API polled)
REPO = Path(__file__).resolve().parents[1]


@dataclass
class Case:
    name: str
    node: ApiNode
    streams: list[int] | None  # None: the node has no gate
    seconds: list[float] = field(default_factory=list)
    by_round: list[float] = field(default_factory=list)  # each round's median
    created: int = 0

    def bodies(self, count: int, public_key: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for _ in range(count):
            name = f"gating-{self.name}-{self.created:03d}"
            body: dict[str, Any] = {"name": name, "resources": RESOURCES, "ssh_key": public_key}
            if self.streams is not None:
                body["stream_id"] = self.streams[self.created]
            out.append(body)
            self.created += 1
        return out


# -- the chain -----------------------------------------------------------------------


@asynccontextmanager
async def running_anvil(pin: str | None) -> AsyncIterator[RpcClient]:
    """A fresh anvil on 127.0.0.1 (free port), killed when the block ends; an RPC to it."""
    port = free_port()
    argv = [str(find_anvil()), "--host", HOST, "--port", str(port), "--silent"]
    if pin is not None:
        argv = ["taskset", "-c", pin, *argv]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    async with trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(
            partial(trio.run_process, argv, check=False, **quiet)
        )
        try:
            async with RpcClient(f"http://{HOST}:{port}", timeout=10.0) as rpc:
                with trio.fail_after(20):
                    while True:
                        try:
                            await rpc.call("eth_chainId", retry=False)
                            break
                        except ChainUnavailable:
                            await trio.sleep(0.05)
                yield rpc
        finally:
            process.kill()
            nursery.cancel_scope.cancel()


async def open_streams(rpc: RpcClient, provider: str, count: int) -> tuple[str, list[int]]:
    """Deploy StreamPayment, open `count` valid native-ETH streams to `provider`: (address, ids)."""
    payer = Account.create()
    await rpc.call("anvil_setBalance", [payer.address, hex(10**30)])
    sender = TransactionSender(rpc, payer.key, max_fee_cap_wei=10**12)
    address = await deploy_stream_payment(sender, payer.address)
    sp = StreamPaymentClient(rpc, address)
    first = await sp.next_stream_id()
    hashes: list[str] = []

    async def submit() -> None:
        hashes.append(await sender.submit(sp.create_stream_tx(provider, PRICE * RUNWAY, PRICE)))

    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(submit)
    for tx_hash in hashes:
        await sender.wait_receipt(tx_hash)
    ids = list(range(first, await sp.next_stream_id()))
    if len(ids) != count:
        raise RuntimeError(f"opened {len(ids)} streams, wanted {count}")
    return address, ids


def payments_on(url: str, contract: str, provider: str) -> Payments:
    """What `supervisors.payments.payments_for` builds, for this chain and price."""
    client = StreamPaymentClient(RpcClient(url), contract)
    gate = PaymentGate(
        client=client,
        provider=provider,
        token=ZERO_ADDRESS,
        min_remaining=MIN_REMAINING,
        wei_per_core_month=PRICE * SECONDS_PER_MONTH,
        wei_per_gb_ram_month=0,
        wei_per_gb_disk_month=0,
    )
    return Payments(client=client, gate=gate, rpc_url=url)


# -- the client ----------------------------------------------------------------------


async def timed_creates(case: Case, bodies: list[dict[str, Any]], pin: str | None) -> list[float]:
    """Seconds per create of `bodies` against `case`'s node, from the client process."""
    job = {"url": case.node.url, "token": case.node.token, "bodies": bodies}
    argv = [sys.executable, "-m", "bench._http_client"]
    if pin is not None:
        argv = ["taskset", "-c", pin, *argv]
    done = await trio.run_process(
        argv,
        stdin=json.dumps(job).encode(),
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        cwd=REPO,
    )
    if done.returncode != 0:
        raise RuntimeError(f"gating client ({case.name}): {done.stderr.decode()}")
    seconds: list[float] = json.loads(done.stdout)["seconds"]
    return seconds


async def time_admit(gate: PaymentGate, stream_id: int, n: int) -> list[float]:
    """`gate.admit` alone, `n` times in this loop (the chain read and the check).

    Each after `ADMIT_GAP` idle, as in the creates: back to back, anvil and the
    connection stay hot and a read is ~0.5-1 ms cheaper than a create's.
    """
    resources = Resources.from_gb(cpus=1, memory_gb=1, storage_gb=10)
    out = []
    for _ in range(n):
        await trio.sleep(ADMIT_GAP)
        began = time.perf_counter()
        await gate.admit(stream_id, resources)
        out.append(time.perf_counter() - began)
    return out


def _pinning() -> tuple[bool, str | None]:
    """(pin this process to CPU 0?, CPU list for anvil and the client) when possible."""
    two = hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2
    if two and shutil.which("taskset") is not None:
        return True, "1"
    return False, None


# -- the run -------------------------------------------------------------------------


async def run(rounds: int = ROUNDS, per_round: int = PER_ROUND) -> dict[str, float]:
    try:
        find_anvil()
    except ToolNotFoundError as exc:
        print(f"gating: {exc}; skipped")
        return {}
    pinned, other_cpu = _pinning()
    saved_affinity = os.sched_getaffinity(0) if pinned else None
    if pinned:
        os.sched_setaffinity(0, {0})  # this thread runs the trio loop: the servers
    provider = Account.create().address
    _, public_key = generate_ssh_keypair("bench")
    busiest = 0.0
    try:
        with tempfile.TemporaryDirectory(prefix="bench-gating-") as tmp:
            async with AsyncExitStack() as stack:
                rpc = await stack.enter_async_context(running_anvil(other_cpu))
                contract, streams = await open_streams(rpc, provider, WARMUP + rounds * per_round)
                payments = payments_on(rpc.url, contract, provider)
                stack.push_async_callback(payments.client.rpc.aclose)
                nodes = {}
                for name, gated in (("off", None), ("on", payments)):
                    data = Path(tmp) / name
                    data.mkdir()
                    nodes[name] = await stack.enter_async_context(
                        running_memory_api(
                            data,
                            CAPACITY,
                            payments=gated,
                            provider=provider,
                        )
                    )
                off = Case("off", nodes["off"], None)
                on = Case("on", nodes["on"], streams)
                for case in (off, on):  # warm-up: first requests, imports, caches
                    await timed_creates(case, case.bodies(WARMUP, public_key), other_cpu)
                for i in range(rounds):
                    busiest = max(busiest, await idle_gate())
                    for case in (off, on) if i % 2 == 0 else (on, off):
                        bodies = case.bodies(per_round, public_key)
                        seconds = await timed_creates(case, bodies, other_cpu)
                        case.seconds += seconds
                        case.by_round.append(statistics.median(seconds))
                admit = await time_admit(payments.gate, streams[0], rounds * per_round)
    finally:
        if saved_affinity is not None:
            os.sched_setaffinity(0, saved_affinity)
    return _report(off, on, admit, rounds, per_round, pinned, busiest)


def _p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[8]


def _report(
    off: Case,
    on: Case,
    admit: list[float],
    rounds: int,
    per_round: int,
    pinned: bool,
    busiest: float,
) -> dict[str, float]:
    print(
        f"gating: synchronous POST /api/v1/vms (in-memory backend), {len(off.seconds)} creates"
        f" per case in {rounds} interleaved rounds of {per_round}; each VM deleted after"
    )
    where = "server loop on CPU 0, anvil + client on CPU 1 (taskset)" if pinned else "no pinning"
    print(f"  {where}; machine CPU before rounds <= {busiest:.0f}% (idle gate 30%)")
    print(f"  {'case':<34}{'median ms':>10}{'p90 ms':>9}{'min ms':>9}{'max ms':>9}")
    out: dict[str, float] = {}
    labels = {
        "off": "gate off (no payments)",
        "on": "gate on (anvil, 1 stream per VM)",
        "admit": "PaymentGate.admit alone, 60 ms gaps",
    }
    for name, values in (("off", off.seconds), ("on", on.seconds), ("admit", admit)):
        ms = [v * 1e3 for v in values]
        out[f"{name}_median_ms"] = statistics.median(ms)
        out[f"{name}_p90_ms"] = _p90(ms)
        print(
            f"  {labels[name]:<34}{out[f'{name}_median_ms']:>10.2f}{out[f'{name}_p90_ms']:>9.2f}"
            f"{min(ms):>9.2f}{max(ms):>9.2f}"
        )
    out["on_vs_off_median"] = out["on_median_ms"] / out["off_median_ms"]
    out["on_vs_off_p90"] = out["on_p90_ms"] / out["off_p90_ms"]
    out["added_median_ms"] = out["on_median_ms"] - out["off_median_ms"]
    out["added_p90_ms"] = out["on_p90_ms"] - out["off_p90_ms"]
    paired = [(a - b) * 1e3 for a, b in zip(on.by_round, off.by_round, strict=True)]
    out["added_paired_ms"] = statistics.median(paired)
    print(
        f"  on / off = {out['on_vs_off_median']:.3f}x median, {out['on_vs_off_p90']:.3f}x p90;"
        f" gating adds {out['added_median_ms']:+.2f} ms median, {out['added_p90_ms']:+.2f} ms p90"
        f" (admit alone {out['admit_median_ms']:.2f} ms)"
    )
    print(
        f"  paired by round (median of on - off per round): {out['added_paired_ms']:+.2f} ms"
        f" (rounds {min(paired):+.1f} .. {max(paired):+.1f} ms)"
    )
    print("  (the API learns that a VM runs from WaitVm, on the transition: no polling floor)")
    return out


if __name__ == "__main__":
    trio.run(run)
