"""A minimal async JSON-RPC chain client for contract tests (httpx on trio).

web3's async provider does not run on trio, so this speaks raw JSON-RPC over
``httpx.AsyncClient`` and uses eth-abi / eth-account only offline, to encode calls, decode
results and logs, and sign EIP-1559 transactions. anvil automines, so a transaction's
receipt is there as soon as ``eth_sendRawTransaction`` returns.

A reverting transaction is caught at ``eth_estimateGas``: :class:`Reverted` carries the
``Error(string)`` reason. Time moves with ``evm_increaseTime`` + ``evm_mine``; tests read
each transaction's block timestamp from its :class:`Receipt` rather than assume one.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import trio
from eth_abi.abi import decode, encode
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from golem_actor.adapters.chain.artifacts import ContractArtifact, abi_signature, canonical_type

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
RECEIPT_TIMEOUT_S = 10.0
_ERROR_SELECTOR = keccak(text="Error(string)")[:4]


def _decode(types: Sequence[str], data: bytes) -> tuple[Any, ...]:
    """eth-abi decode, with addresses checksummed like ``LocalAccount.address``."""
    values = decode(types, data)
    return tuple(
        to_checksum_address(v) if t == "address" else v for t, v in zip(types, values, strict=True)
    )


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"JSON-RPC error {code}: {message}")
        self.code = code
        self.message = message
        self.data = data


class Reverted(Exception):
    """The call or transaction reverted; ``reason`` is its ``Error(string)`` message."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _revert_reason(error: RpcError) -> str | None:
    data = error.data
    if isinstance(data, str) and data.startswith("0x"):
        raw = bytes.fromhex(data[2:])
        if raw[:4] == _ERROR_SELECTOR:
            (reason,) = decode(["string"], raw[4:])
            return str(reason)
        return data
    if "revert" in error.message:
        return error.message
    return None


class JsonRpc:
    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self._client = client
        self._url = url
        self._ids = itertools.count(1)

    async def request(self, method: str, *params: Any) -> Any:
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        response = await self._client.post(self._url, json=body)
        response.raise_for_status()
        reply = response.json()
        if "error" in reply:
            err = reply["error"]
            raise RpcError(int(err.get("code", 0)), str(err.get("message")), err.get("data"))
        return reply["result"]


@dataclass(frozen=True)
class Event:
    name: str
    address: str
    args: Mapping[str, Any]


@dataclass(frozen=True)
class Receipt:
    tx_hash: str
    block_number: int
    timestamp: int
    status: int
    gas_used: int
    effective_gas_price: int
    contract_address: str | None
    logs: Sequence[Mapping[str, Any]]

    @property
    def fee(self) -> int:
        return self.gas_used * self.effective_gas_price


def _hex(value: int) -> str:
    return hex(value)


class Chain:
    def __init__(self, rpc: JsonRpc, chain_id: int) -> None:
        self.rpc = rpc
        self.chain_id = chain_id
        # pytest-trio sets fixtures up concurrently: one send at a time keeps nonces straight.
        self._send_lock = trio.Lock()

    @classmethod
    async def connect(cls, client: httpx.AsyncClient, url: str) -> Chain:
        rpc = JsonRpc(client, url)
        return cls(rpc, int(await rpc.request("eth_chainId"), 16))

    async def balance(self, address: str) -> int:
        return int(await self.rpc.request("eth_getBalance", address, "latest"), 16)

    async def set_balance(self, address: str, wei: int) -> None:
        await self.rpc.request("anvil_setBalance", address, _hex(wei))

    async def latest_timestamp(self) -> int:
        block = await self.rpc.request("eth_getBlockByNumber", "latest", False)
        return int(block["timestamp"], 16)

    async def increase_time(self, seconds: int) -> None:
        await self.rpc.request("evm_increaseTime", seconds)
        await self.rpc.request("evm_mine")

    async def call(
        self, to: str, data: bytes, *, sender: str | None = None, value: int = 0
    ) -> bytes:
        tx: dict[str, Any] = {"to": to, "data": "0x" + data.hex(), "value": _hex(value)}
        if sender is not None:
            tx["from"] = sender
        try:
            result = await self.rpc.request("eth_call", tx, "latest")
        except RpcError as exc:
            reason = _revert_reason(exc)
            if reason is None:
                raise
            raise Reverted(reason) from exc
        return bytes.fromhex(str(result)[2:])

    async def send(
        self, account: LocalAccount, *, to: str | None, data: bytes, value: int = 0
    ) -> Receipt:
        """Sign and send an EIP-1559 transaction; raise :class:`Reverted` if it would revert."""
        async with self._send_lock:
            return await self._send(account, to=to, data=data, value=value)

    async def _send(
        self, account: LocalAccount, *, to: str | None, data: bytes, value: int
    ) -> Receipt:
        call: dict[str, Any] = {
            "from": account.address,
            "data": "0x" + data.hex(),
            "value": _hex(value),
        }
        if to is not None:
            call["to"] = to
        try:
            gas = int(await self.rpc.request("eth_estimateGas", call), 16)
        except RpcError as exc:
            reason = _revert_reason(exc)
            if reason is None:
                raise
            raise Reverted(reason) from exc
        nonce = int(
            await self.rpc.request("eth_getTransactionCount", account.address, "pending"), 16
        )
        block = await self.rpc.request("eth_getBlockByNumber", "latest", False)
        tip = int(await self.rpc.request("eth_maxPriorityFeePerGas"), 16)
        tx: dict[str, Any] = {
            "type": 2,
            "chainId": self.chain_id,
            "nonce": nonce,
            "value": value,
            "data": data,
            "gas": gas + gas // 4 + 10_000,
            "maxPriorityFeePerGas": tip,
            "maxFeePerGas": 2 * int(block["baseFeePerGas"], 16) + tip,
        }
        if to is not None:
            tx["to"] = to_checksum_address(to)
        signed = account.sign_transaction(tx)
        tx_hash = await self.rpc.request(
            "eth_sendRawTransaction", "0x" + signed.raw_transaction.hex()
        )
        return await self.wait_receipt(str(tx_hash))

    async def wait_receipt(self, tx_hash: str) -> Receipt:
        with trio.fail_after(RECEIPT_TIMEOUT_S):
            while True:
                raw = await self.rpc.request("eth_getTransactionReceipt", tx_hash)
                if raw is not None:
                    break
                await trio.sleep(0.01)
        block = await self.rpc.request("eth_getBlockByNumber", raw["blockNumber"], False)
        return Receipt(
            tx_hash=tx_hash,
            block_number=int(raw["blockNumber"], 16),
            timestamp=int(block["timestamp"], 16),
            status=int(raw["status"], 16),
            gas_used=int(raw["gasUsed"], 16),
            effective_gas_price=int(raw["effectiveGasPrice"], 16),
            contract_address=raw.get("contractAddress"),
            logs=raw["logs"],
        )


class Contract:
    """A deployed contract: encode calls from the artifact's ABI, decode results and events."""

    def __init__(self, chain: Chain, artifact: ContractArtifact, address: str) -> None:
        self.chain = chain
        self.artifact = artifact
        self.address = to_checksum_address(address)
        self._functions = {entry["name"]: entry for entry in artifact.entries("function")}
        self._events = {
            keccak(text=abi_signature(entry)): entry for entry in artifact.entries("event")
        }

    @classmethod
    async def deploy(
        cls, chain: Chain, account: LocalAccount, artifact: ContractArtifact, *args: Any
    ) -> Contract:
        ctor = artifact.entries("constructor")
        types = [canonical_type(p) for p in ctor[0]["inputs"]] if ctor else []
        data = artifact.bytecode_bytes() + encode(types, args)
        receipt = await chain.send(account, to=None, data=data)
        assert receipt.status == 1, receipt
        assert receipt.contract_address is not None
        return cls(chain, artifact, receipt.contract_address)

    def encode_call(self, function: str, *args: Any) -> bytes:
        entry = self._functions[function]
        types = [canonical_type(p) for p in entry["inputs"]]
        return keccak(text=abi_signature(entry))[:4] + encode(types, args)

    async def call(self, function: str, *args: Any, sender: str | None = None) -> tuple[Any, ...]:
        """A read-only ``eth_call``; returns the decoded outputs."""
        raw = await self.chain.call(self.address, self.encode_call(function, *args), sender=sender)
        types = [canonical_type(p) for p in self._functions[function]["outputs"]]
        return _decode(types, raw)

    async def transact(
        self, account: LocalAccount, function: str, *args: Any, value: int = 0
    ) -> Receipt:
        data = self.encode_call(function, *args)
        receipt = await self.chain.send(account, to=self.address, data=data, value=value)
        assert receipt.status == 1, receipt
        return receipt

    def events(self, receipt: Receipt) -> list[Event]:
        """This contract's events in ``receipt``, in log order."""
        found: list[Event] = []
        for log in receipt.logs:
            if to_checksum_address(log["address"]) != self.address or not log["topics"]:
                continue
            topics = [bytes.fromhex(t[2:]) for t in log["topics"]]
            entry = self._events.get(topics[0])
            if entry is None:
                continue
            indexed = [p for p in entry["inputs"] if p["indexed"]]
            plain = [p for p in entry["inputs"] if not p["indexed"]]
            args: dict[str, Any] = {}
            for param, topic in zip(indexed, topics[1:], strict=True):
                (args[param["name"]],) = _decode([canonical_type(param)], topic)
            values = _decode([canonical_type(p) for p in plain], bytes.fromhex(log["data"][2:]))
            args.update(zip((p["name"] for p in plain), values, strict=True))
            found.append(Event(entry["name"], self.address, args))
        return found
