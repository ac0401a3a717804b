"""`LocalChain`: the node's own anvil, so the `local` payments profile runs fully offline.

The chain's state lives in `<data dir>/chain/anvil-state.json` (anvil loads it at start
and dumps it periodically and on a graceful stop), so streams survive a restart of the
node. StreamPayment is deployed by anvil's first well-known development account with its
first nonce, so its address is known before the chain even runs (`LOCAL_STREAM_PAYMENT`)
and the rest of the node can be built with it; this actor deploys it when the chain does
not hold it yet, writes `<data dir>/deployments/local.json`, and gives the provider's
address gas money. Those development keys are public: never use this profile for value.

anvil runs as a child process in the actor's nursery: if it dies, the actor crashes and
its supervisor starts a new one on the same state. An anvil left running by a node that
was killed (SIGKILL: no cleanup) is ended first (`stale_anvil`), else it would hold the
port and the new one could never start.

anvil mines a block every `BLOCK_TIME` seconds besides one per transaction (interval and
mixed mining), as an L2 does: a contract reads "now" from the latest block, so without
blocks a stream's runway would never fall and nothing would ever vest. `evm_increaseTime`
and `evm_mine` still move time forward on top of that. Those blocks would make the state
file grow without bound, so it is compacted before every start (`compact_anvil_state`).
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Never
from urllib.parse import urlsplit

import structlog
import trio
from eth_account import Account

from golem_actor.adapters.chain.anvil_state import compact_anvil_state
from golem_actor.adapters.chain.deploy import deploy_stream_payment
from golem_actor.adapters.chain.deployments import write_deployment
from golem_actor.adapters.chain.errors import ChainError
from golem_actor.adapters.chain.rpc import RpcClient
from golem_actor.adapters.chain.stale_anvil import end_stale_anvils
from golem_actor.adapters.chain.tools import find_anvil
from golem_actor.adapters.chain.transactions import TransactionSender
from golem_actor.kernel import Actor

log = structlog.get_logger("golem_actor.local_chain")

# anvil's first development account (from its public default mnemonic) and the address
# of the first contract it creates.
DEPLOYER_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
LOCAL_STREAM_PAYMENT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
CHAIN_ID = 31337
PROVIDER_GAS_MONEY = 10 * 10**18
READY_WITHIN = 30.0
BLOCK_TIME = 2  # seconds between the blocks anvil mines on its own


class LocalChain(Actor[Never]):  # it accepts no message: it only runs the chain
    def __init__(self, *, rpc_url: str, data_dir: Path, provider: str) -> None:
        super().__init__()
        parts = urlsplit(rpc_url)
        if parts.hostname not in ("127.0.0.1", "localhost") or parts.port is None:
            raise ValueError(f"the local chain runs on 127.0.0.1:<port>, not {rpc_url!r}")
        self._url = rpc_url
        self._port = parts.port
        self._data_dir = data_dir
        self._provider = provider
        self._process: trio.Process | None = None

    async def on_start(self) -> None:
        state = self._data_dir / "chain" / "anvil-state.json"
        state.parent.mkdir(parents=True, exist_ok=True)
        try:
            compaction = await trio.to_thread.run_sync(compact_anvil_state, state)
        except OSError as exc:
            raise RuntimeError(f"cannot compact the local chain's state {state}: {exc}") from exc
        if compaction is not None and compaction.blocks_after < compaction.blocks_before:
            log.info(
                "local chain state compacted",
                blocks_before=compaction.blocks_before,
                blocks_after=compaction.blocks_after,
            )
        stale = await trio.to_thread.run_sync(end_stale_anvils, state)
        if stale:
            log.warning("ended the anvil an earlier node left running", pids=stale)
        argv = [
            str(find_anvil()),
            "--host",
            "127.0.0.1",
            "--port",
            str(self._port),
            "--chain-id",
            str(CHAIN_ID),
            "--state",
            str(state),
            "--state-interval",
            "5",
            # A block every 2 s, as on an L2, so chain time (streams' runway, vesting) moves
            # while nobody transacts; transactions are still mined as they arrive.
            "--block-time",
            str(BLOCK_TIME),
            "--mixed-mining",
            "--quiet",
        ]
        self._process = await self.nursery.start(self._run, argv)
        async with RpcClient(self._url, timeout=2, attempts=1) as rpc:
            await self._wait_ready(rpc)
            await self._ensure_contract(rpc)
            await rpc.call("anvil_setBalance", [self._provider, hex(PROVIDER_GAS_MONEY)])
        log.info("local chain ready", rpc=self._url, stream_payment=LOCAL_STREAM_PAYMENT)

    async def _run(self, argv: list[str], *, task_status: trio.TaskStatus[trio.Process]) -> None:
        process = await trio.lowlevel.open_process(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        task_status.started(process)
        try:
            code = await process.wait()
        finally:
            if process.returncode is None:  # cancelled: the graceful path is on_stop's
                process.kill()
                with trio.CancelScope(shield=True):
                    await process.wait()
        if not self.stop_requested.is_set():
            raise RuntimeError(f"anvil exited with status {code}")

    async def _wait_ready(self, rpc: RpcClient) -> None:
        with trio.fail_after(READY_WITHIN):
            while True:
                try:
                    await rpc.call("eth_chainId", [], retry=False)
                    return
                except ChainError:
                    await trio.sleep(0.1)

    async def _ensure_contract(self, rpc: RpcClient) -> None:
        code = await rpc.call("eth_getCode", [LOCAL_STREAM_PAYMENT, "latest"])
        if code not in ("0x", "", None):
            return
        sender = TransactionSender(rpc, DEPLOYER_KEY, max_fee_cap_wei=10**12)
        deployer = Account.from_key(DEPLOYER_KEY).address
        address = await deploy_stream_payment(sender, deployer)
        if address != LOCAL_STREAM_PAYMENT:
            raise RuntimeError(
                f"StreamPayment landed at {address}, not {LOCAL_STREAM_PAYMENT}: the local"
                " chain's state is not a fresh one; remove <data dir>/chain to start over"
            )
        out = self._data_dir / "deployments" / "local.json"
        await trio.to_thread.run_sync(
            lambda: write_deployment(out, address, deployer, network="local")
        )
        log.info("deployed StreamPayment on the local chain", address=address, file=str(out))

    async def on_stop(self) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)  # anvil dumps its state on the way out
        with trio.move_on_after(10):
            await process.wait()
