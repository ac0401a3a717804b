"""Chain benchmark: one monitor tick's read of 100 mapped streams, batched vs one call each.

What is measured, on a local anvil (started here as the e2e fixture does: 127.0.0.1, a
free port, ``--silent``) with StreamPayment deployed and 100 streams open:
- batched:     ``StreamPaymentClient.get_streams(ids)``: one JSON-RPC batch, one HTTP request;
- tick:        ``read_streams(ids)``: the same batch plus the latest block (what a tick needs);
- sequential:  ``get_stream(id)`` for each id in turn: 100 HTTP round trips;
- concurrent:  ``get_stream(id)`` for all ids in 100 concurrent tasks (for information).
Times are medians of interleaved rounds, per tick. Target: batched at least 5x faster than
sequential. anvil shares the machine's cores with this process: read the ratio.
"""

from __future__ import annotations

import socket
import subprocess
from functools import partial

import trio
from eth_account import Account

from golem_actor.adapters.chain.deploy import deploy_stream_payment
from golem_actor.adapters.chain.errors import ChainUnavailable
from golem_actor.adapters.chain.rpc import RpcClient
from golem_actor.adapters.chain.stream_payment import StreamPaymentClient
from golem_actor.adapters.chain.tools import ToolNotFoundError, find_anvil
from golem_actor.adapters.chain.transactions import TransactionSender

from ._timing import Measure, compare

STREAMS = 100
TARGET_RATIO = 5.0
RATE = 10**12


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _wait_ready(rpc: RpcClient) -> None:
    with trio.fail_after(20):
        while True:
            try:
                await rpc.call("eth_chainId", retry=False)
                return
            except ChainUnavailable:
                await trio.sleep(0.05)


async def _open_streams(rpc: RpcClient) -> StreamPaymentClient:
    deployer, recipient = Account.create(), Account.create()
    await rpc.call("anvil_setBalance", [deployer.address, hex(10**24)])
    sender = TransactionSender(rpc, deployer.key, max_fee_cap_wei=10**12)
    address = await deploy_stream_payment(sender, deployer.address)
    sp = StreamPaymentClient(rpc, address)
    hashes: list[str] = []

    async def submit(i: int) -> None:
        tx = sp.create_stream_tx(recipient.address, RATE * (10_000 + i), RATE)
        hashes.append(await sender.submit(tx))

    async with trio.open_nursery() as nursery:
        for i in range(STREAMS):
            nursery.start_soon(submit, i)
    for tx_hash in hashes:
        await sender.wait_receipt(tx_hash)
    return sp


async def run(rounds: int = 7, ticks: int = 20) -> dict[str, float]:
    try:
        anvil = find_anvil()
    except ToolNotFoundError as exc:
        print(f"chain: {exc}; skipped")
        return {}
    port = _free_port()
    argv = [str(anvil), "--host", "127.0.0.1", "--port", str(port), "--silent"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(trio.run_process, argv, check=False, **quiet))
        async with RpcClient(f"http://127.0.0.1:{port}", timeout=10.0) as rpc:
            await _wait_ready(rpc)
            sp = await _open_streams(rpc)
            ids = list(range(1, STREAMS + 1))
            assert len(await sp.get_streams(ids)) == STREAMS

            async def batched(n: int) -> float:
                began = trio.current_time()
                for _ in range(n):
                    await sp.get_streams(ids)
                return trio.current_time() - began

            async def tick(n: int) -> float:
                began = trio.current_time()
                for _ in range(n):
                    await sp.read_streams(ids)
                return trio.current_time() - began

            async def sequential(n: int) -> float:
                began = trio.current_time()
                for _ in range(n):
                    for stream_id in ids:
                        await sp.get_stream(stream_id)
                return trio.current_time() - began

            async def concurrent(n: int) -> float:
                began = trio.current_time()
                for _ in range(n):
                    async with trio.open_nursery() as inner:
                        for stream_id in ids:
                            inner.start_soon(sp.get_stream, stream_id)
                return trio.current_time() - began

            cases: dict[str, Measure] = {
                "batched": batched,
                "tick": tick,
                "sequential": sequential,
                "concurrent": concurrent,
            }
            medians = await compare(cases, ticks, rounds)
        nursery.cancel_scope.cancel()  # anvil
    return _report(medians, rounds, ticks)


def _report(medians: dict[str, float], rounds: int, ticks: int) -> dict[str, float]:
    print(
        f"chain: read {STREAMS} mapped streams on anvil, ms per monitor tick,"
        f" median of {rounds} interleaved rounds x {ticks} ticks"
    )
    labels = {
        "batched": "get_streams: 1 batched request",
        "tick": "read_streams: batch + latest block",
        "sequential": f"get_stream x {STREAMS}, one by one",
        "concurrent": f"get_stream x {STREAMS}, concurrent",
    }
    out: dict[str, float] = {}
    for name, seconds in medians.items():
        out[f"{name}_ms"] = seconds * 1e3
        ratio = medians["sequential"] / seconds
        print(f"  {labels[name]:<38}{seconds * 1e3:>9.2f} ms{ratio:>8.1f}x vs one by one")
    out["batched_speedup"] = medians["sequential"] / medians["batched"]
    print(f"  batched speed-up = {out['batched_speedup']:.1f}x (target >= {TARGET_RATIO:g}x)")
    return out


if __name__ == "__main__":
    trio.run(run)
