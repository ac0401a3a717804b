"""`golem-provider wallet [--json]` and `wallet faucet-l2`: the provider's L2 address and funds.

Why: withdrawals cost gas, so the operator needs to see the key's balance on the payments
chain, and on a testnet to get some from the PoW faucet (offered only when the payments
profile has one; protocol in ``golem_actor.adapters.faucet``). Like upstream, the faucet is
not asked when the balance is already above 0.01 ETH.
"""

from __future__ import annotations

import argparse
import sys

import httpx
import trio

from golem_actor.adapters.chain.errors import ChainError
from golem_actor.adapters.chain.rpc import RpcClient, hex_int
from golem_actor.adapters.faucet import FaucetError, request_funds
from golem_actor.payments_config import FaucetConfig, PaymentsConfig
from golem_actor.settings import Settings

from ._chain_cli import (
    EXIT_FAILED,
    CommandFailed,
    emit_json,
    fail,
    format_units,
    payments_setup,
    provider_key,
)

__all__ = ["FAUCET_THRESHOLD_WEI", "add_wallet_parser", "wallet_command"]

FAUCET_THRESHOLD_WEI = 10**16  # 0.01 ETH
FAUCET_HTTP_TIMEOUT_S = 60.0


def add_wallet_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    wallet = commands.add_parser("wallet", help="the provider's address and L2 balance")
    wallet.add_argument("--data-dir", help="the node's data directory")
    wallet.add_argument("--json", action="store_true", help="the machine-readable document")
    actions = wallet.add_subparsers(dest="wallet_command", metavar="ACTION")
    faucet = actions.add_parser("faucet-l2", help="ask the testnet faucet for L2 ETH")
    faucet.add_argument("--data-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    faucet.add_argument("--force", action="store_true", help="ask even with enough balance")


async def _balance(config: PaymentsConfig, address: str) -> int:
    try:
        async with RpcClient(config.rpc_url) as rpc:
            return hex_int(await rpc.call("eth_getBalance", [address, "latest"]))
    except ChainError as exc:
        raise CommandFailed(
            "chain_unavailable", f"cannot read the balance: {exc}", detail=str(exc)
        ) from exc


def wallet_command(settings: Settings, args: argparse.Namespace) -> int:
    as_json: bool = args.json
    try:
        if args.wallet_command == "faucet-l2":
            return _faucet(settings, force=args.force)
        config = payments_setup(settings)
        address = provider_key(settings).address
        balance = trio.run(_balance, config, address)
    except CommandFailed as error:
        return fail(error, as_json)
    if as_json:
        emit_json(
            {
                "address": address,
                "network": config.network,
                "rpc_url": config.rpc_url,
                "balance_wei": balance,
                "balance_eth": format_units(balance),
            }
        )
    else:
        print(f"Address:  {address}")
        print(f"Network:  {config.network} ({config.rpc_url})")
        print(f"Balance:  {format_units(balance)} {config.native_symbol} ({balance} wei)")
    return 0


def _faucet(settings: Settings, *, force: bool) -> int:
    config = payments_setup(settings, need_rpc=False)
    if config.faucet is None:
        raise CommandFailed("faucet_disabled", f"payments network {config.network!r} has no faucet")
    address = provider_key(settings).address
    if config.rpc_url and not force:
        balance = trio.run(_balance, config, address)
        if balance > FAUCET_THRESHOLD_WEI:
            print(
                f"{address} holds {format_units(balance)} {config.native_symbol}, "
                "enough for gas: not asking the faucet (--force to ask anyway)"
            )
            return 0
    print(f"Solving the faucet's proof-of-work for {address} ...", file=sys.stderr)
    try:
        tx_hash = trio.run(_ask, config.faucet, address)
    except FaucetError as exc:
        print(f"golem-provider: the faucet failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"Faucet funded {address}: transaction {tx_hash}")
    return 0


async def _ask(faucet: FaucetConfig, address: str) -> str:
    async with httpx.AsyncClient(timeout=FAUCET_HTTP_TIMEOUT_S) as client:
        return await request_funds(
            client,
            address=address,
            faucet_url=faucet.faucet_url,
            captcha_url=faucet.captcha_url,
            captcha_api_key=faucet.captcha_api_key,
        )
