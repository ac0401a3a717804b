"""Deploy StreamPayment (e.g. on a local anvil) and write its deployment file.

Usage::

    python -m golem_actor.adapters.chain.deploy --rpc http://127.0.0.1:8545 \\
        --key 0x<deployer key> --out ~/.golem/provider/deployments/local.json \\
        [--oracle 0x<address>] [--token 0x<address>] [--network local]

Why a product command: local mode (and anyone trying the node without a testnet) needs a
contract to stream to. The deployer pays for the deployment; the oracle (who may halt
streams) defaults to the deployer. The transaction goes through the same
:class:`TransactionSender` as the node's own (fee cap, receipt status checked), and the
file is written atomically in the format :func:`find_deployment` reads.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import trio
from eth_account import Account

from golem_actor.adapters.chain.deployments import Deployment, write_deployment
from golem_actor.adapters.chain.errors import ChainError
from golem_actor.adapters.chain.rpc import RpcClient
from golem_actor.adapters.chain.stream_payment import deploy_data
from golem_actor.adapters.chain.transactions import TransactionSender, TxRequest
from golem_actor.domain.streams import ZERO_ADDRESS

__all__ = ["deploy_stream_payment", "main"]

DEFAULT_FEE_CAP_WEI = 500 * 10**9  # 500 gwei: far above any local chain, a guard elsewhere


async def deploy_stream_payment(sender: TransactionSender, oracle: str) -> str:
    """Deploy StreamPayment with ``oracle``; returns the contract's checksummed address."""
    receipt = await sender.send(TxRequest(to=None, data=deploy_data(oracle)))
    if receipt.contract_address is None:
        raise ChainError(f"deployment {receipt.tx_hash} created no contract")
    return receipt.contract_address


async def _deploy(args: argparse.Namespace) -> Deployment:
    async with RpcClient(args.rpc, timeout=args.timeout) as rpc:
        sender = TransactionSender(rpc, args.key, max_fee_cap_wei=args.max_fee_cap_wei)
        oracle = args.oracle or sender.address
        address = await deploy_stream_payment(sender, oracle)
    return await trio.to_thread.run_sync(
        lambda: write_deployment(args.out, address, oracle, args.token, network=args.network)
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m golem_actor.adapters.chain.deploy",
        description="Deploy StreamPayment and write its deployment file.",
    )
    parser.add_argument("--rpc", required=True, help="JSON-RPC URL of the chain")
    parser.add_argument("--key", required=True, help="the deployer's private key (hex)")
    parser.add_argument("--out", required=True, type=Path, help="deployment file to write")
    parser.add_argument("--oracle", default=None, help="oracle address (default: the deployer)")
    parser.add_argument("--token", default=ZERO_ADDRESS, help="token address (zero: native ETH)")
    parser.add_argument("--network", default="local", help="network name written in the file")
    parser.add_argument("--max-fee-cap-wei", type=int, default=DEFAULT_FEE_CAP_WEI)
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request timeout (s)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        Account.from_key(args.key)
    except ValueError as exc:
        print(f"deploy: --key is not a private key: {exc}", file=sys.stderr)
        return 2
    try:
        deployment = trio.run(_deploy, args)
    except (ChainError, OSError, ValueError) as exc:
        print(f"deploy: {exc}", file=sys.stderr)
        return 1
    print(f"deploy: StreamPayment at {deployment.address} (oracle {deployment.oracle})")
    print(f"deploy: wrote {deployment.source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
