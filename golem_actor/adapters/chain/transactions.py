"""Sending transactions: the node's only nonce tracker, fee policy, signing and receipts.

Theory of operation:
- **Nonce.** Read once with ``eth_getTransactionCount(address, "pending")``, then counted
  locally, so several quick transactions get consecutive nonces without a round trip
  each. Assigning a nonce, signing and broadcasting happen under one lock (short: no
  receipt waiting inside), so nonces reach the node in order. A "nonce too low" answer
  (another wallet used the key) re-reads the count and re-signs once; any failed
  broadcast forgets the local count, so the next send re-reads it.
- **Fees (EIP-1559).** ``tip`` = ``priority_fee_wei`` or ``eth_maxPriorityFeePerGas``,
  ``maxFee = min(2 * baseFee + tip, max_fee_cap_wei)``. When even ``baseFee + tip`` is
  above the cap the transaction could not be mined at that price: :class:`FeeCapExceeded`
  is raised and nothing is sent. Base fee and tip come in one batched request.
- **Gas.** ``eth_estimateGas`` plus 20 %; an estimate that reverts raises
  :class:`TransactionReverted` with the contract's reason, before anything is signed.
- **Signing** (~4 ms of CPU with eth-account) runs in a worker thread, off the event loop.
- **Broadcast** is retried on transient failures with exponential backoff, re-sending the
  same signed bytes: "already known", or "nonce too low" for a hash the node knows, mean an
  earlier attempt got through. Other reads rely on :class:`RpcClient`'s own retries.
- **Receipt** polled with ``trio.sleep`` (doubling intervals), bounded by
  ``receipt_timeout_s`` (:class:`TransactionTimeout`). ``status`` is checked: a reverted
  receipt raises :class:`TransactionReverted`, its reason recovered by replaying the call
  with ``eth_call`` on the parent block.
"""

from __future__ import annotations

from typing import Any

import msgspec
import trio
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from golem_actor.adapters.chain.errors import (
    ChainUnavailable,
    FeeCapExceeded,
    RpcError,
    TransactionReverted,
    TransactionTimeout,
    revert_reason,
)
from golem_actor.adapters.chain.rpc import RpcCall, RpcClient, hex_int

__all__ = ["Fees", "TransactionSender", "TxReceipt", "TxRequest"]

_RESYNC_MARKERS = ("nonce too low", "replacement transaction underpriced")
_KNOWN_MARKERS = ("already known", "already imported", "known transaction")


class TxRequest(msgspec.Struct, frozen=True, kw_only=True):
    """What to send: ``to=None`` deploys ``data``; ``gas=None`` means estimate it."""

    to: str | None
    data: bytes = b""
    value: int = 0
    gas: int | None = None


class Fees(msgspec.Struct, frozen=True, kw_only=True):
    base_fee_per_gas: int
    max_priority_fee_per_gas: int
    max_fee_per_gas: int


class TxReceipt(msgspec.Struct, frozen=True, kw_only=True):
    tx_hash: str
    block_number: int
    status: int
    gas_used: int
    effective_gas_price: int
    contract_address: str | None
    logs: list[dict[str, Any]]

    @property
    def fee_wei(self) -> int:
        return self.gas_used * self.effective_gas_price


def _receipt(raw: dict[str, Any]) -> TxReceipt:
    contract = raw.get("contractAddress")
    return TxReceipt(
        tx_hash=str(raw["transactionHash"]),
        block_number=hex_int(raw["blockNumber"]),
        status=hex_int(raw["status"]),
        gas_used=hex_int(raw["gasUsed"]),
        effective_gas_price=hex_int(raw["effectiveGasPrice"]),
        contract_address=to_checksum_address(contract) if contract else None,
        logs=list(raw.get("logs") or []),
    )


def _has(error: RpcError, markers: tuple[str, ...]) -> bool:
    message = error.message.lower()
    return any(marker in message for marker in markers)


class TransactionSender:
    """Signs and sends the transactions of one key; share one instance per key."""

    def __init__(
        self,
        rpc: RpcClient,
        account_key: str | bytes,
        *,
        chain_id: int | None = None,
        max_fee_cap_wei: int,
        priority_fee_wei: int | None = None,
        receipt_timeout_s: float = 120.0,
        poll_interval_s: float = 0.05,
        max_poll_interval_s: float = 2.0,
        send_attempts: int = 4,
        backoff_s: float = 0.25,
        max_backoff_s: float = 4.0,
    ) -> None:
        self.rpc = rpc
        self._account: LocalAccount = Account.from_key(account_key)
        self.address: str = self._account.address
        self._chain_id = chain_id
        self.max_fee_cap_wei = max_fee_cap_wei
        self.priority_fee_wei = priority_fee_wei
        self.receipt_timeout_s = receipt_timeout_s
        self.poll_interval_s = poll_interval_s
        self.max_poll_interval_s = max_poll_interval_s
        self.send_attempts = max(1, send_attempts)
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._nonce: int | None = None
        self._lock = trio.Lock()

    # --- reads -----------------------------------------------------------------------------

    async def balance(self, address: str | None = None) -> int:
        """Wei held by ``address`` (this sender's by default) at the latest block."""
        return hex_int(await self.rpc.call("eth_getBalance", [address or self.address, "latest"]))

    async def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = hex_int(await self.rpc.call("eth_chainId"))
        return self._chain_id

    async def fees(self) -> Fees:
        """Current EIP-1559 fees under the cap, or :class:`FeeCapExceeded`."""
        calls: list[RpcCall] = [("eth_getBlockByNumber", ["latest", False])]
        if self.priority_fee_wei is None:
            calls.append(("eth_maxPriorityFeePerGas", []))
        block, *rest = await self.rpc.batch(calls)
        base = hex_int(block.get("baseFeePerGas") or "0x0")
        tip = self.priority_fee_wei if self.priority_fee_wei is not None else hex_int(rest[0])
        if base + tip > self.max_fee_cap_wei:
            raise FeeCapExceeded(base + tip, self.max_fee_cap_wei)
        max_fee = min(2 * base + tip, self.max_fee_cap_wei)
        return Fees(base_fee_per_gas=base, max_priority_fee_per_gas=tip, max_fee_per_gas=max_fee)

    def _call_object(self, tx: TxRequest) -> dict[str, Any]:
        call: dict[str, Any] = {
            "from": self.address,
            "data": "0x" + tx.data.hex(),
            "value": hex(tx.value),
        }
        if tx.to is not None:
            call["to"] = to_checksum_address(tx.to)
        return call

    async def estimate_gas(self, tx: TxRequest) -> int:
        """Gas limit for ``tx`` (estimate + 20 %); raises TransactionReverted if it would revert."""
        try:
            estimate = hex_int(await self.rpc.call("eth_estimateGas", [self._call_object(tx)]))
        except RpcError as exc:
            reason = revert_reason(exc)
            if reason is None:
                raise
            raise TransactionReverted(reason) from exc
        return estimate + estimate // 5

    async def estimate_cost(self, tx: TxRequest) -> int:
        """The most ``tx`` can cost in fees now: gas limit * maxFeePerGas."""
        gas = tx.gas if tx.gas is not None else await self.estimate_gas(tx)
        return gas * (await self.fees()).max_fee_per_gas

    # --- writes ----------------------------------------------------------------------------

    async def send(self, tx: TxRequest) -> TxReceipt:
        """Send ``tx``, wait for its receipt and check it; raises TransactionReverted."""
        tx_hash = await self.submit(tx)
        receipt = await self.wait_receipt(tx_hash)
        if receipt.status != 1:
            reason = await self._replay_reason(tx, receipt.block_number)
            raise TransactionReverted(reason, tx_hash=tx_hash)
        return receipt

    async def submit(self, tx: TxRequest) -> str:
        """Estimate, price, sign and broadcast ``tx``; returns its hash (no receipt wait)."""
        gas = tx.gas if tx.gas is not None else await self.estimate_gas(tx)
        fees = await self.fees()
        chain_id = await self.chain_id()
        async with self._lock:
            for last_try in (False, True):
                nonce = await self._next_nonce()
                fields = self._fields(tx, gas, fees, chain_id, nonce)
                raw, tx_hash = await trio.to_thread.run_sync(self._sign, fields)
                try:
                    await self._broadcast(raw, tx_hash)
                except RpcError as exc:
                    self._nonce = None
                    if not last_try and _has(exc, _RESYNC_MARKERS):
                        continue
                    raise
                except BaseException:
                    self._nonce = None
                    raise
                self._nonce = nonce + 1
                return tx_hash
        raise AssertionError("unreachable")  # pragma: no cover

    async def _next_nonce(self) -> int:
        if self._nonce is None:
            count = await self.rpc.call("eth_getTransactionCount", [self.address, "pending"])
            self._nonce = hex_int(count)
        return self._nonce

    def _fields(
        self, tx: TxRequest, gas: int, fees: Fees, chain_id: int, nonce: int
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "type": 2,
            "chainId": chain_id,
            "nonce": nonce,
            "value": tx.value,
            "data": tx.data,
            "gas": gas,
            "maxFeePerGas": fees.max_fee_per_gas,
            "maxPriorityFeePerGas": min(fees.max_priority_fee_per_gas, fees.max_fee_per_gas),
        }
        if tx.to is not None:
            fields["to"] = to_checksum_address(tx.to)
        return fields

    def _sign(self, fields: dict[str, Any]) -> tuple[str, str]:
        signed = self._account.sign_transaction(fields)
        return "0x" + bytes(signed.raw_transaction).hex(), "0x" + bytes(signed.hash).hex()

    async def _broadcast(self, raw: str, tx_hash: str) -> None:
        for attempt in range(self.send_attempts):
            try:
                await self.rpc.call("eth_sendRawTransaction", [raw], retry=False)
                return
            except RpcError as exc:
                if _has(exc, _KNOWN_MARKERS):
                    return
                if attempt > 0 and _has(exc, _RESYNC_MARKERS) and await self._is_known(tx_hash):
                    return  # an earlier attempt got through before its answer was lost
                raise
            except ChainUnavailable:
                if attempt + 1 >= self.send_attempts:
                    raise
            await trio.sleep(min(self.backoff_s * 2**attempt, self.max_backoff_s))

    async def _is_known(self, tx_hash: str) -> bool:
        return await self.rpc.call("eth_getTransactionByHash", [tx_hash]) is not None

    async def wait_receipt(self, tx_hash: str) -> TxReceipt:
        """Poll for the receipt of ``tx_hash``; transient read failures just poll again."""
        delay = self.poll_interval_s
        with trio.move_on_after(self.receipt_timeout_s):
            while True:
                try:
                    raw = await self.rpc.call("eth_getTransactionReceipt", [tx_hash])
                except ChainUnavailable:
                    raw = None
                if raw is not None:
                    return _receipt(raw)
                await trio.sleep(delay)
                delay = min(delay * 2, self.max_poll_interval_s)
        raise TransactionTimeout(tx_hash, self.receipt_timeout_s)

    async def _replay_reason(self, tx: TxRequest, block_number: int) -> str:
        call = self._call_object(tx)
        if tx.gas is not None:
            call["gas"] = hex(tx.gas)
        try:
            await self.rpc.call("eth_call", [call, hex(max(block_number - 1, 0))])
        except RpcError as exc:
            return revert_reason(exc) or exc.message
        except ChainUnavailable:
            pass
        return "reverted (reason unavailable)"
