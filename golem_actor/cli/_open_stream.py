"""`golem-provider streams open`: the requestor's side, for trying a node out locally.

Opens a native-ETH stream to this node's provider address, paying `--rate` wei per
second for `--seconds`. On the `local` payments network it pays from anvil's public
development account #1 unless `--key` says otherwise; elsewhere `--key` is required.
"""

from __future__ import annotations

import argparse

import trio

from golem_actor.adapters.chain.errors import ChainError
from golem_actor.adapters.chain.rpc import RpcClient
from golem_actor.adapters.chain.stream_payment import StreamPaymentClient
from golem_actor.adapters.chain.transactions import TransactionSender
from golem_actor.settings import Settings

from ._chain_cli import CommandFailed, emit_json, payments_setup, provider_key

DEV_REQUESTOR_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"


def add_open_parser(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    opener = actions.add_parser("open", help="(requestor side) open a stream to this node")
    opener.add_argument("--rate", type=int, required=True, help="wei per second")
    opener.add_argument("--seconds", type=int, default=3600, help="runway paid for")
    opener.add_argument("--key", help="the paying account's private key (hex)")
    opener.add_argument("--data-dir", help="the node's data directory")
    opener.add_argument("--json", action="store_true", help="the machine-readable document")


def open_stream(settings: Settings, args: argparse.Namespace) -> int:
    config = payments_setup(settings)
    key = args.key or (DEV_REQUESTOR_KEY if config.network == "local" else None)
    if key is None:
        raise CommandFailed("key_required", "--key is required outside the local network")
    if args.rate <= 0 or args.seconds <= 0:
        raise CommandFailed("invalid_amount", "--rate and --seconds must be positive")
    provider = provider_key(settings).address
    deposit = args.rate * args.seconds

    async def run() -> tuple[int, str]:
        async with RpcClient(config.rpc_url) as rpc:
            client = StreamPaymentClient(rpc, config.stream_payment_address)
            sender = TransactionSender(rpc, key, max_fee_cap_wei=settings.tx_max_fee_wei)
            receipt = await sender.send(client.create_stream_tx(provider, deposit, args.rate))
        for log in receipt.logs:  # StreamCreated: the stream id is its first indexed topic
            if log["address"].lower() == client.address.lower() and len(log["topics"]) > 1:
                return int(log["topics"][1], 16), receipt.tx_hash
        raise CommandFailed("no_stream", f"{receipt.tx_hash} created no stream")

    try:
        stream_id, tx_hash = trio.run(run)
    except ChainError as error:
        raise CommandFailed("chain_unavailable", str(error), detail=str(error)) from error
    if args.json:
        emit_json(
            {
                "stream_id": stream_id,
                "recipient": provider,
                "rate": args.rate,
                "deposit": deposit,
                "tx_hash": tx_hash,
            }
        )
    else:
        print(f"stream {stream_id}: {deposit} wei to {provider} at {args.rate} wei/s ({tx_hash})")
    return 0
