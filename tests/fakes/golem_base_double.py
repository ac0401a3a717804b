"""A Golem Base test double: the JSON-RPC methods and the storage transactions of
market.md §2, over real HTTP (and WebSocket) on 127.0.0.1.

Why: no Golem Base node can run offline, and the advertiser must be tested against the
wire, not against our own client's idea of it. The double decodes each signed EIP-1559
transaction as a node would: the sender is recovered from the signature, the chain id,
nonce, fees, gas limit and balance are checked (geth's error texts), the data is decoded
as a storage transaction (golem_actor.adapters.golem_base.storage, the same format) and
applied all or nothing with Golem Base's rules (owner checks, keys from the tx hash,
expiry `block + btl`, extend adds blocks), gas is charged, and the receipt carries
Golem Base's logs. Blocks advance with the clock (`block_time` seconds each); an entity
is gone once its expiry block is reached. Reads: `golembase_queryEntities` (the query
language of golem_base_query.py), `golembase_getEntityMetaData`,
`golembase_getStorageValue`, `golembase_getEntitiesOfOwner`, `golembase_getEntityCount`,
and the `eth_*` methods a client calls. So the upstream requestor's SDK could read from it
(it opens the WebSocket at start, then queries over HTTP).

The test reads `entities`, `writes` (every applied storage transaction) and `methods`
(every method called), and funds accounts with `fund` (a local faucet does too).
"""

from __future__ import annotations

import base64
import copy
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from eth_utils.crypto import keccak
from golem_base_query import Entity, QueryError, parse_query
from jsonrpc_server import RpcFault, serving_rpc

from golem_actor.adapters.golem_base import rlp
from golem_actor.adapters.golem_base.storage import (
    EVENT_CREATED,
    EVENT_DELETED,
    EVENT_EXTENDED,
    EVENT_UPDATED,
    STORAGE_ADDRESS,
    StorageTx,
    decode_storage_tx,
    entity_key,
)

__all__ = ["GolemBaseDouble", "RpcFault", "Serving", "serving"]

GWEI = 10**9
GAS_LIMIT = 30_000_000


class StorageFailure(Exception):
    """A storage transaction that fails (the whole transaction reverts)."""


def _hex(value: int) -> str:
    return hex(value)


def _word(value: int) -> str:
    return value.to_bytes(32, "big").hex()


@dataclass
class Applied:
    sender: str
    tx: StorageTx
    block: int
    tx_hash: str


@dataclass
class GolemBaseDouble:
    chain_id: int = 60138453
    block_time: float = 2.0
    base_fee: int = GWEI
    tip: int = GWEI
    balances: dict[str, int] = field(default_factory=dict)  # lower-case address -> wei
    clock: Callable[[], float] = time.monotonic
    entities: dict[str, Entity] = field(default_factory=dict)
    writes: list[Applied] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    nonces: dict[str, int] = field(default_factory=dict)
    receipts: dict[str, dict[str, Any]] = field(default_factory=dict)
    start: float = field(default_factory=time.monotonic)
    first_block: int = 1000

    # -- the chain ------------------------------------------------------------------------

    def block(self) -> int:
        return self.first_block + int((self.clock() - self.start) / self.block_time)

    @staticmethod
    def block_hash(number: int) -> str:
        return "0x" + keccak(number.to_bytes(8, "big")).hex()

    def fund(self, address: str, wei: int) -> None:
        key = address.lower()
        self.balances[key] = self.balances.get(key, 0) + wei

    def live(self) -> dict[str, Entity]:
        now = self.block()
        return {k: e for k, e in self.entities.items() if e.expires_at_block > now}

    @staticmethod
    def gas_for(data: bytes, tx: StorageTx) -> int:
        intrinsic = 21000 + sum(16 if byte else 4 for byte in data)
        return (
            intrinsic
            + 20000 * (len(tx.creates) + len(tx.updates))
            + 5000 * (len(tx.deletes) + len(tx.extends))
        )

    def run_storage(
        self, entities: dict[str, Entity], tx: StorageTx, sender: str, block: int, tx_hash: str
    ) -> list[dict[str, Any]]:
        """Apply `tx` to `entities` (in place) as Golem Base does; its logs."""
        logs: list[dict[str, Any]] = []

        def log(topic: str, key: str, *words: int) -> None:
            logs.append(
                {
                    "address": STORAGE_ADDRESS,
                    "topics": [topic, key],
                    "data": "0x" + "".join(_word(w) for w in words),
                    "blockNumber": _hex(block),
                    "blockHash": self.block_hash(block),
                    "transactionHash": tx_hash,
                    "transactionIndex": "0x0",
                    "logIndex": _hex(len(logs)),
                    "removed": False,
                }
            )

        def owned(key: str, what: str) -> Entity:
            entity = entities.get(key)
            if entity is None or entity.expires_at_block <= block:
                raise StorageFailure(f"failed to {what} entity {key}: not found")
            if entity.owner.lower() != sender.lower():
                raise StorageFailure(f"failed to {what} entity {key}: {sender} is not the owner")
            return entity

        for index, create in enumerate(tx.creates):
            if create.btl == 0:
                raise StorageFailure(f"create BTL is 0 for create {index}")
            key = entity_key(tx_hash, create.payload, index)
            entities[key] = Entity(
                key=key,
                owner=sender,
                expires_at_block=block + create.btl,
                payload=create.payload,
                strings=dict(create.annotations.strings),
                numbers=dict(create.annotations.numbers),
            )
            log(EVENT_CREATED, key, block + create.btl)
        for key in tx.deletes:
            owned(key, "delete")
            del entities[key]
            log(EVENT_DELETED, key)
        for update in tx.updates:
            if update.btl == 0:
                raise StorageFailure(f"update BTL is 0 for entity {update.key}")
            entity = owned(update.key, "update")
            entities[update.key] = Entity(
                key=update.key,
                owner=entity.owner,
                expires_at_block=block + update.btl,
                payload=update.payload,
                strings=dict(update.annotations.strings),
                numbers=dict(update.annotations.numbers),
            )
            log(EVENT_UPDATED, update.key, block + update.btl)
        for extend in tx.extends:
            entity = owned(extend.key, "extend BTL of")
            old = entity.expires_at_block
            entity.expires_at_block = old + extend.blocks
            log(EVENT_EXTENDED, extend.key, old, entity.expires_at_block)
        return logs

    def _dry_run(self, data: bytes, sender: str) -> StorageTx:
        try:
            tx = decode_storage_tx(data)
        except ValueError as exc:
            raise RpcFault(-32000, f"failed to decode storage transaction: {exc}") from exc
        try:
            scratch = copy.deepcopy(self.entities)
            self.run_storage(scratch, tx, sender, self.block(), "0x" + "00" * 32)
        except StorageFailure as exc:
            raise RpcFault(3, f"execution reverted: {exc}") from exc
        return tx

    # -- JSON-RPC -------------------------------------------------------------------------

    def dispatch(self, method: str, params: list[Any]) -> Any:
        self.methods.append(method)
        handler = getattr(self, "rpc_" + method, None)
        if handler is None:
            raise RpcFault(-32601, f"the method {method} does not exist/is not available")
        return handler(*params)

    def rpc_eth_chainId(self) -> str:
        return _hex(self.chain_id)

    def rpc_eth_blockNumber(self) -> str:
        return _hex(self.block())

    def rpc_eth_getBlockByNumber(self, tag: str, full: bool = False) -> dict[str, Any]:
        number = self.block() if tag in ("latest", "pending") else int(tag, 16)
        return {
            "number": _hex(number),
            "hash": self.block_hash(number),
            "parentHash": self.block_hash(max(number - 1, 0)),
            "baseFeePerGas": _hex(self.base_fee),
            "gasLimit": _hex(GAS_LIMIT),
            "gasUsed": "0x0",
            "timestamp": _hex(int(time.time())),
            "miner": "0x" + "00" * 20,
            "extraData": "0x",
            "logsBloom": "0x" + "00" * 256,
            "transactions": [],
        }

    def rpc_eth_maxPriorityFeePerGas(self) -> str:
        return _hex(self.tip)

    def rpc_eth_gasPrice(self) -> str:
        return _hex(self.base_fee + self.tip)

    def rpc_eth_getBalance(self, address: str, tag: str = "latest") -> str:
        return _hex(self.balances.get(address.lower(), 0))

    def rpc_eth_getTransactionCount(self, address: str, tag: str = "latest") -> str:
        return _hex(self.nonces.get(address.lower(), 0))

    def rpc_eth_estimateGas(self, call: dict[str, Any], tag: str = "latest") -> str:
        if str(call.get("to", "")).lower() != STORAGE_ADDRESS:
            return _hex(21000)
        data = bytes.fromhex(str(call.get("data") or call.get("input") or "0x")[2:])
        tx = self._dry_run(data, str(call.get("from", "0x" + "00" * 20)))
        return _hex(self.gas_for(data, tx))

    def rpc_eth_call(self, call: dict[str, Any], tag: str = "latest") -> str:
        return "0x"

    def rpc_eth_sendRawTransaction(self, raw_hex: str) -> str:
        raw = bytes.fromhex(raw_hex.removeprefix("0x"))
        if raw[:1] != b"\x02":
            raise RpcFault(-32000, "transaction type not supported")
        try:
            fields = rlp.decode(raw[1:])
            sender = str(Account.recover_transaction(raw_hex))
        except Exception as exc:
            raise RpcFault(-32000, f"rlp: {exc}") from exc
        if not isinstance(fields, list) or len(fields) != 12:
            raise RpcFault(-32000, "rlp: expected 12 fields in a dynamic-fee transaction")
        chain_id, nonce, tip, max_fee, gas = (rlp.decode_int(f) for f in fields[:5])
        to, value, data = fields[5], rlp.decode_int(fields[6]), fields[7]
        if not isinstance(to, bytes) or not isinstance(data, bytes):
            raise RpcFault(-32000, "rlp: to and data are strings")
        tx_hash = "0x" + keccak(raw).hex()
        if tx_hash in self.receipts:
            raise RpcFault(-32000, "already known")
        if chain_id != self.chain_id:
            raise RpcFault(-32000, f"invalid chain id {chain_id}")
        account = sender.lower()
        expected = self.nonces.get(account, 0)
        if nonce < expected:
            raise RpcFault(-32000, f"nonce too low: next nonce {expected}, tx nonce {nonce}")
        if nonce > expected:
            raise RpcFault(-32000, f"nonce too high: next nonce {expected}, tx nonce {nonce}")
        if max_fee < self.base_fee:
            raise RpcFault(-32000, "max fee per gas less than block base fee")
        if "0x" + to.hex() != STORAGE_ADDRESS:
            raise RpcFault(-32000, "the double only takes storage transactions")
        try:
            tx = decode_storage_tx(data)
        except ValueError as exc:
            raise RpcFault(-32000, f"failed to decode storage transaction: {exc}") from exc
        needed = self.gas_for(data, tx)
        if gas < needed:
            raise RpcFault(-32000, f"intrinsic gas too low: have {gas}, want {needed}")
        balance = self.balances.get(account, 0)
        if balance < gas * max_fee + value:
            raise RpcFault(
                -32000,
                f"insufficient funds for gas * price + value: address {sender} "
                f"have {balance} want {gas * max_fee + value}",
            )
        price = min(max_fee, self.base_fee + tip)
        self.nonces[account] = expected + 1
        self.balances[account] = balance - needed * price
        block = self.block()
        staged = copy.deepcopy(self.entities)
        try:
            logs = self.run_storage(staged, tx, sender, block, tx_hash)
            self.entities = staged
            self.writes.append(Applied(sender=sender, tx=tx, block=block, tx_hash=tx_hash))
            status = 1
        except StorageFailure:
            logs, status = [], 0
        self.receipts[tx_hash] = {
            "transactionHash": tx_hash,
            "blockNumber": _hex(block),
            "blockHash": self.block_hash(block),
            "transactionIndex": "0x0",
            "type": "0x2",
            "status": _hex(status),
            "gasUsed": _hex(needed),
            "cumulativeGasUsed": _hex(needed),
            "logsBloom": "0x" + "00" * 256,
            "effectiveGasPrice": _hex(price),
            "contractAddress": None,
            "from": sender,
            "to": STORAGE_ADDRESS,
            "logs": logs,
        }
        return tx_hash

    def rpc_eth_getTransactionReceipt(self, tx_hash: str) -> dict[str, Any] | None:
        return self.receipts.get(tx_hash)

    def rpc_eth_getTransactionByHash(self, tx_hash: str) -> dict[str, Any] | None:
        receipt = self.receipts.get(tx_hash)
        return None if receipt is None else {"hash": tx_hash, "blockNumber": receipt["blockNumber"]}

    def rpc_golembase_queryEntities(self, query: str) -> list[dict[str, str]]:
        try:
            matches = parse_query(query)
        except QueryError as exc:
            raise RpcFault(-32602, f"failed to parse query: {exc}") from exc
        return [
            {"key": key, "value": base64.b64encode(entity.payload).decode()}
            for key, entity in self.live().items()
            if matches(entity)
        ]

    def _entity(self, key: str) -> Entity:
        entity = self.live().get(key.lower())
        if entity is None:
            raise RpcFault(-32000, f"entity {key} not found")
        return entity

    def rpc_golembase_getEntityMetaData(self, key: str) -> dict[str, Any]:
        entity = self._entity(key)
        return {
            "owner": entity.owner,
            "expiresAtBlock": entity.expires_at_block,
            "payload": base64.b64encode(entity.payload).decode(),
            "stringAnnotations": [{"key": k, "value": v} for k, v in entity.strings.items()],
            "numericAnnotations": [{"key": k, "value": v} for k, v in entity.numbers.items()],
        }

    def rpc_golembase_getStorageValue(self, key: str) -> str:
        return base64.b64encode(self._entity(key).payload).decode()

    def rpc_golembase_getEntitiesOfOwner(self, owner: str) -> list[str]:
        return [k for k, e in self.live().items() if e.owner.lower() == owner.lower()]

    def rpc_golembase_getEntityCount(self) -> int:
        return len(self.live())


@asynccontextmanager
async def serving(double: GolemBaseDouble) -> AsyncIterator[Serving]:
    """`double` on a free port of 127.0.0.1 (JSON-RPC at /rpc, WebSocket at /rpc/ws) until
    the block ends."""
    async with serving_rpc(double.dispatch) as (rpc_url, ws_url):
        yield Serving(double, rpc_url, ws_url)


@dataclass(frozen=True)
class Serving:
    double: GolemBaseDouble
    rpc_url: str
    ws_url: str
