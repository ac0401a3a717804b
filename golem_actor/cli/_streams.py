"""`golem-provider streams list|show|earnings|withdraw`: the node's payment streams, on chain.

Why a CLI of its own: an operator must see and collect earnings whether or not the node
runs, so these commands read the chain directly. The VM -> stream map is the node's
``<data dir>/streams.json``; all mapped streams and the latest block are read in one batched
JSON-RPC request (``StreamPaymentClient.read_streams``), so every figure of one answer is
computed at the same "now" (the latest block's timestamp, upstream's formulas of
``golem_actor.domain.streams``). JSON shapes are the upstream CLI's.

``withdraw`` sends ``withdraw(id)`` with the provider's key through ``TransactionSender`` (the
fee cap is ``tx_max_fee_wei``). It skips streams with nothing to withdraw (by the contract's
capped formula, so it never sends a transaction that would revert) and exits 1 if any
withdrawal failed.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import trio
from eth_utils.crypto import keccak

from golem_actor.adapters.chain.errors import ChainError
from golem_actor.adapters.chain.rpc import RpcClient
from golem_actor.adapters.chain.stream_payment import StreamPaymentClient, StreamsReading
from golem_actor.adapters.chain.transactions import TransactionSender, TxReceipt
from golem_actor.domain.streams import (
    StreamState,
    check_stream,
    computed,
    vested_wei,
    withdrawable_capped,
    withdrawable_wei,
)
from golem_actor.payments_config import PaymentsConfig
from golem_actor.settings import Settings

from ._chain_cli import (
    EXIT_FAILED,
    CommandFailed,
    emit_json,
    fail,
    format_duration,
    format_time,
    format_units,
    payments_setup,
    provider_key,
    read_stream_map,
    table,
)
from ._open_stream import add_open_parser, open_stream

__all__ = ["add_streams_parser", "streams_command"]

_WITHDRAW_TOPIC = "0x" + keccak(text="Withdraw(uint256,address,uint256)").hex()


def add_streams_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    streams = commands.add_parser("streams", help="payment streams of this node's VMs")
    actions = streams.add_subparsers(dest="streams_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="every mapped stream with computed fields")
    show = actions.add_parser("show", help="one VM's stream")
    show.add_argument("vm_id", metavar="VM_ID")
    earnings = actions.add_parser("earnings", help="vested, withdrawn and withdrawable totals")
    withdraw = actions.add_parser("withdraw", help="withdraw vested funds")
    which = withdraw.add_mutually_exclusive_group(required=True)
    which.add_argument("--vm-id", help="the VM whose stream to withdraw from")
    which.add_argument("--all", action="store_true", help="every mapped stream")
    for parser in (listing, show, earnings, withdraw):
        parser.add_argument("--data-dir", help="the node's data directory")
        parser.add_argument("--json", action="store_true", help="the machine-readable document")
    add_open_parser(actions)


class _Context:
    """The resolved setup of one command, and its one chain reading."""

    def __init__(self, settings: Settings, config: PaymentsConfig, provider: str) -> None:
        self.settings = settings
        self.config = config
        self.provider = provider

    def reason(self, stream: StreamState, now: int) -> str:
        why = check_stream(
            stream,
            provider=self.provider,
            now=now,
            token=self.config.token_address,
            min_remaining=0,
            price_wei_per_second=0,  # the price depends on the VM's size, unknown here
            already_used=False,
        )
        return why or "ok"

    def amount(self, wei: int) -> str:
        return f"{format_units(wei)} {self.config.symbol}"


def streams_command(settings: Settings, args: argparse.Namespace) -> int:
    as_json: bool = args.json
    try:
        if args.streams_command == "open":
            return open_stream(settings, args)
        config = payments_setup(settings, need_rpc=False)
        if not config.enabled:
            raise CommandFailed(
                "streaming_disabled", f"streaming payments are disabled ({config.off_reason})"
            )
        config = payments_setup(settings)
        mapping = read_stream_map(settings.data_path)
        if args.streams_command == "show" and args.vm_id not in mapping:
            raise _no_mapping(args.vm_id)
        if args.streams_command == "withdraw" and args.vm_id and args.vm_id not in mapping:
            raise _no_mapping(args.vm_id)
        key = provider_key(settings)
        context = _Context(settings, config, key.address)
        return trio.run(_run, context, args, mapping, key.private_key)
    except CommandFailed as error:
        return fail(error, as_json)


def _no_mapping(vm_id: str) -> CommandFailed:
    return CommandFailed("no_stream_mapping", f"no stream is mapped to VM {vm_id!r}", vm_id=vm_id)


async def _run(
    context: _Context, args: argparse.Namespace, mapping: dict[str, int], private_key: str
) -> int:
    async with RpcClient(context.config.rpc_url) as rpc:
        client = StreamPaymentClient(rpc, context.config.stream_payment_address)
        if args.streams_command == "withdraw":
            targets = mapping if args.all else {args.vm_id: mapping[args.vm_id]}
            sender = TransactionSender(
                rpc, private_key, max_fee_cap_wei=context.settings.tx_max_fee_wei
            )
            return await _withdraw(context, client, sender, targets, args.json)
        if args.streams_command == "show":
            mapping = {args.vm_id: mapping[args.vm_id]}
        if mapping:
            reading = await _read(client, mapping)
        else:  # nothing to read: no need for the chain
            reading = StreamsReading(now=0, block_number=0, streams={})
    match args.streams_command:
        case "list":
            return _list(context, mapping, reading, args.json)
        case "show":
            return _show(context, args.vm_id, mapping[args.vm_id], reading, args.json)
        case "earnings":
            return _earnings(context, mapping, reading, args.json)
    raise AssertionError(args.streams_command)  # pragma: no cover


async def _read(client: StreamPaymentClient, mapping: dict[str, int]) -> StreamsReading:
    try:
        return await client.read_streams(mapping.values())
    except ChainError as exc:
        raise CommandFailed(
            "chain_unavailable", f"cannot read the streams: {exc}", detail=str(exc)
        ) from exc


def _list(
    context: _Context, mapping: dict[str, int], reading: StreamsReading, as_json: bool
) -> int:
    now = reading.now
    entries: list[dict[str, Any]] = []
    for vm_id, stream_id in mapping.items():
        stream = reading.streams.get(stream_id)
        if stream is None:
            entries.append({"vm_id": vm_id, "stream_id": stream_id, "error": "stream not found"})
            continue
        reason = context.reason(stream, now)
        entries.append(
            {
                "vm_id": vm_id,
                "stream_id": stream_id,
                "token": stream.token,
                "recipient": stream.recipient,
                "start": stream.start_time,
                "stop": stream.stop_time,
                "rate": stream.rate_per_second,
                "deposit": stream.deposit,
                "withdrawn": stream.withdrawn,
                "remaining": computed(stream, now).remaining_seconds,
                "verified": reason == "ok",
                "reason": reason,
                "withdrawable": withdrawable_wei(stream, now),
            }
        )
    if as_json:
        emit_json({"streams": entries})
        return 0
    if not entries:
        print("No streams are mapped to VMs.")
        return 0
    rows = []
    for entry in entries:
        if "error" in entry:
            rows.append([entry["vm_id"], str(entry["stream_id"]), "-", "-", "-", entry["error"]])
            continue
        rows.append(
            [
                entry["vm_id"],
                str(entry["stream_id"]),
                format_duration(entry["remaining"]),
                context.amount(entry["deposit"]),
                context.amount(entry["withdrawable"]),
                entry["reason"],
            ]
        )
    header = ["VM", "STREAM", "REMAINING", "DEPOSIT", "WITHDRAWABLE", "STATUS"]
    sys.stdout.write(table(header, rows))
    print(f"(at block time {format_time(now)})")
    return 0


def _show(
    context: _Context, vm_id: str, stream_id: int, reading: StreamsReading, as_json: bool
) -> int:
    stream = reading.streams.get(stream_id)
    if stream is None:
        error = CommandFailed(
            "stream_not_found",
            f"stream {stream_id} of VM {vm_id!r} does not exist on chain",
            vm_id=vm_id,
            stream_id=stream_id,
        )
        return fail(error, as_json)
    numbers = computed(stream, reading.now)
    reason = context.reason(stream, reading.now)
    if as_json:
        emit_json(
            {
                "vm_id": vm_id,
                "stream_id": stream_id,
                "chain": stream.chain_json(),
                "computed": {
                    "now": numbers.now,
                    "remaining_seconds": numbers.remaining_seconds,
                    "vested_wei": numbers.vested_wei,
                    "withdrawable_wei": numbers.withdrawable_wei,
                },
                "verified": reason == "ok",
                "reason": reason,
            }
        )
        return 0
    rows = [
        ["VM", vm_id],
        ["Stream", str(stream_id)],
        ["Status", "verified" if reason == "ok" else f"not verified: {reason}"],
        ["Token", stream.token + (" (native)" if context.config.native else "")],
        ["Sender", stream.sender],
        ["Recipient", stream.recipient],
        ["Start", format_time(stream.start_time)],
        ["Stop", format_time(stream.stop_time)],
        ["Rate", f"{stream.rate_per_second} wei/s"],
        ["Deposit", context.amount(stream.deposit)],
        ["Withdrawn", context.amount(stream.withdrawn)],
        ["Vested", context.amount(numbers.vested_wei)],
        ["Withdrawable", context.amount(numbers.withdrawable_wei)],
        ["Remaining", format_duration(numbers.remaining_seconds)],
        ["Halted", "yes" if stream.halted else "no"],
        ["Block time", format_time(reading.now)],
    ]
    for label, value in rows:
        print(f"{label + ':':<14}{value}")
    return 0


def _earnings(
    context: _Context, mapping: dict[str, int], reading: StreamsReading, as_json: bool
) -> int:
    entries: list[dict[str, Any]] = []
    for vm_id, stream_id in mapping.items():
        stream = reading.streams.get(stream_id)
        if stream is None:
            continue
        entries.append(
            {
                "vm_id": vm_id,
                "stream_id": stream_id,
                "token": stream.token,
                "vested": vested_wei(stream, reading.now),
                "withdrawn": stream.withdrawn,
                "withdrawable": withdrawable_wei(stream, reading.now),
            }
        )
    totals = {
        name: sum(e[name] for e in entries) for name in ("vested", "withdrawn", "withdrawable")
    }
    if as_json:
        emit_json({"streams": entries, "totals": totals})
        return 0
    rows = [
        [
            e["vm_id"],
            str(e["stream_id"]),
            context.amount(e["vested"]),
            context.amount(e["withdrawn"]),
            context.amount(e["withdrawable"]),
        ]
        for e in entries
    ]
    rows.append(["TOTAL", "", *(context.amount(totals[n]) for n in totals)])
    sys.stdout.write(table(["VM", "STREAM", "VESTED", "WITHDRAWN", "WITHDRAWABLE"], rows))
    return 0


def _withdrawn_amount(receipt: TxReceipt, contract: str) -> int | None:
    for log in receipt.logs:
        topics = log.get("topics") or []
        same = str(log.get("address", "")).lower() == contract.lower()
        if same and topics and str(topics[0]).lower() == _WITHDRAW_TOPIC:
            return int(str(log.get("data", "0x0")), 16)
    return None


async def _withdraw(
    context: _Context,
    client: StreamPaymentClient,
    sender: TransactionSender,
    targets: dict[str, int],
    as_json: bool,
) -> int:
    reading = await _read(client, targets)
    results: list[dict[str, Any]] = []
    for vm_id, stream_id in targets.items():
        result: dict[str, Any] = {"vm_id": vm_id, "stream_id": stream_id, "amount_wei": 0}
        results.append(result)
        stream = reading.streams.get(stream_id)
        available = 0 if stream is None else withdrawable_capped(stream, reading.now)
        if stream is None:
            result.update(status="failed", reason="stream not found")
        elif stream.recipient.lower() != context.provider.lower():
            result.update(
                status="skipped",
                reason="this node is not the recipient (or the stream was terminated)",
            )
        elif available == 0:
            result.update(status="skipped", reason="nothing to withdraw")
        else:
            try:
                receipt = await sender.send(client.withdraw_tx(stream_id))
            except ChainError as exc:
                result.update(status="failed", reason=str(exc))
            else:
                amount = _withdrawn_amount(receipt, client.address)
                result.update(
                    status="withdrawn",
                    amount_wei=amount if amount is not None else available,
                    tx_hash=receipt.tx_hash,
                    fee_wei=receipt.fee_wei,
                )
        if not as_json:
            _print_result(context, result)
    if as_json:
        emit_json({"results": results})
    elif not results:
        print("No streams are mapped to VMs.")
    return EXIT_FAILED if any(r["status"] == "failed" for r in results) else 0


def _print_result(context: _Context, result: dict[str, Any]) -> None:
    where = f"VM {result['vm_id']} (stream {result['stream_id']})"
    if result["status"] == "withdrawn":
        print(
            f"{where}: withdrew {context.amount(result['amount_wei'])} "
            f"in {result['tx_hash']} (fee {format_units(result['fee_wei'])} "
            f"{context.config.native_symbol})"
        )
    elif result["status"] == "skipped":
        print(f"{where}: skipped, {result['reason']}")
    else:
        print(f"{where}: FAILED, {result['reason']}", file=sys.stderr)
