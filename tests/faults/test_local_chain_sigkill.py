"""SIGKILL of a node that runs its own chain (payments `local`), then a restart.

The node's anvil is its child and outlives a SIGKILL; the next node must end it (on
SIGTERM anvil dumps its state) and start its own, rather than fail to bind the chain's
port and give up. A stream opened just before the kill is still on the chain after the
restart, and the restarted node keeps running.
"""

from __future__ import annotations

import json
from pathlib import Path

import psutil
import trio
from node_helpers import NodeProcess, free_block, free_port

from actors.local_chain import LOCAL_STREAM_PAYMENT
from golem_actor.adapters.chain.rpc import RpcClient
from golem_actor.adapters.chain.stream_payment import StreamPaymentClient

from .invariants import anvils


async def test_a_killed_node_with_its_own_chain_starts_again(tmp_path: Path) -> None:
    chain_port = free_port()
    rpc_url = f"http://127.0.0.1:{chain_port}"
    node = NodeProcess(
        data=tmp_path / "node",
        port=free_port(),
        ports=free_block(4),
        guest_cache=tmp_path / "no-guest-needed",
        extra_env=(
            ("GOLEM_PROVIDER_PAYMENTS_NETWORK", "local"),
            ("GOLEM_PROVIDER_POLYGON_RPC_URL", rpc_url),
        ),
    )
    node.guest_cache.mkdir()
    await node.start()
    try:
        opened = await node.cli("streams", "open", "--rate", "1000", "--seconds", "60", "--json")
        assert opened.returncode == 0, opened.stderr.decode()
        stream_id = json.loads(opened.stdout)["stream_id"]
        (before,) = anvils(chain_port)

        node.kill()  # at once: anvil's periodic dump (every 5 s) may not hold the stream yet
        assert before.is_running()  # the orphan the next node must deal with
        await node.start()
        await trio.sleep(5)  # past a burst of local_chain restarts, if there were any
        assert psutil.pid_exists(node.pid())
        (after,) = anvils(chain_port)
        assert after.pid != before.pid
        assert "ended the anvil an earlier node left running" in node.log_events()
        async with RpcClient(rpc_url) as rpc:
            stream = await StreamPaymentClient(rpc, LOCAL_STREAM_PAYMENT).get_stream(stream_id)
        assert stream is not None  # dumped by the old anvil on its way out
    finally:
        await node.stop()
    assert anvils(chain_port) == []
