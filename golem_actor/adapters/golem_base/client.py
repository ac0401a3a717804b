"""`GolemBaseClient`: reads entities from a Golem Base node and sends storage writes.

Why here: this is the IO boundary to Golem Base (market.md §2). Reads are its JSON-RPC
methods, `golembase_queryEntities(query) -> [{key, value}]` and
`golembase_getEntityMetaData(key) -> {owner, expiresAtBlock, stringAnnotations,
numericAnnotations}`, plus `eth_blockNumber` and `eth_getBalance`; writes are EIP-1559
transactions to the storage address, signed by the provider key and sent by the chain
adapter's `TransactionSender` (fees, nonce, receipt, revert reasons). Every failure of the
chain adapter, and any answer of the wrong shape, becomes `GolemBaseError` (with the cause
chained), so the advertiser decides on one kind of error.
"""

from __future__ import annotations

from typing import Any

import msgspec

from golem_actor.adapters.chain.errors import ChainError
from golem_actor.adapters.chain.rpc import RpcClient, hex_int
from golem_actor.adapters.chain.transactions import TransactionSender, TxReceipt, TxRequest

from .storage import STORAGE_ADDRESS, Annotations, StorageTx, encode_storage_tx

__all__ = ["EntityMeta", "GolemBaseClient", "GolemBaseError", "Write"]


class GolemBaseError(Exception):
    """Golem Base could not be read or written (unreachable, refused, reverted, garbage)."""


class EntityMeta(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    owner: str
    expires_at_block: int
    annotations: Annotations


class Write(msgspec.Struct, frozen=True, kw_only=True):
    """A storage write, priced: what it may cost at most (gas limit * max fee)."""

    tx: StorageTx
    gas: int
    max_cost_wei: int


class _Pair(msgspec.Struct):
    key: str
    value: Any


class _Meta(msgspec.Struct, rename="camel"):
    owner: str
    expires_at_block: int | str  # a JSON number; a quantity ("0x...") is taken too
    string_annotations: list[_Pair] | None = None
    numeric_annotations: list[_Pair] | None = None


class _Found(msgspec.Struct):
    key: str
    value: str | None = None


def _meta(key: str, raw: Any) -> EntityMeta:
    try:
        meta = msgspec.convert(raw, _Meta)
        strings = {p.key: str(p.value) for p in meta.string_annotations or []}
        numbers = {p.key: int(p.value) for p in meta.numeric_annotations or []}
        expires = meta.expires_at_block
        expires_at = expires if isinstance(expires, int) else int(expires, 16)
    except (msgspec.ValidationError, TypeError, ValueError) as exc:
        raise GolemBaseError(f"metadata of {key}: unexpected answer: {exc}") from exc
    return EntityMeta(
        key=key,
        owner=meta.owner,
        expires_at_block=expires_at,
        annotations=Annotations.of(strings, numbers),
    )


class GolemBaseClient:
    """One Golem Base endpoint; `sender` (the provider key's) is needed for writes only."""

    def __init__(self, rpc: RpcClient, sender: TransactionSender | None = None) -> None:
        self._rpc = rpc
        self._sender = sender

    @property
    def url(self) -> str:
        return self._rpc.url

    async def _call(self, method: str, params: list[Any]) -> Any:
        try:
            return await self._rpc.call(method, params)
        except ChainError as exc:
            raise GolemBaseError(f"{method}: {exc}") from exc

    async def query(self, query: str) -> list[str]:
        """The keys of the live entities that match `query` (Golem Base's query language)."""
        raw = await self._call("golembase_queryEntities", [query])
        try:
            found = msgspec.convert(raw or [], list[_Found])
        except msgspec.ValidationError as exc:
            raise GolemBaseError(f"golembase_queryEntities: unexpected answer: {exc}") from exc
        return [item.key if item.key.startswith("0x") else "0x" + item.key for item in found]

    async def metadata(self, key: str) -> EntityMeta:
        return _meta(key, await self._call("golembase_getEntityMetaData", [key]))

    async def block_number(self) -> int:
        raw = await self._call("eth_blockNumber", [])
        try:
            return hex_int(raw)
        except ChainError as exc:
            raise GolemBaseError(f"eth_blockNumber: {exc}") from exc

    async def balance(self, address: str) -> int:
        raw = await self._call("eth_getBalance", [address, "latest"])
        try:
            return hex_int(raw)
        except ChainError as exc:
            raise GolemBaseError(f"eth_getBalance: {exc}") from exc

    def _writer(self) -> TransactionSender:
        if self._sender is None:
            raise GolemBaseError("no key to sign Golem Base writes with")
        return self._sender

    async def price(self, tx: StorageTx) -> Write:
        """`tx` with its gas limit and the most it may cost now (a refused estimate, e.g. a
        change to an entity that is gone, raises)."""
        sender = self._writer()
        request = TxRequest(to=STORAGE_ADDRESS, data=encode_storage_tx(tx))
        try:
            gas = await sender.estimate_gas(request)
            fees = await sender.fees()
        except ChainError as exc:
            raise GolemBaseError(f"pricing a write ({tx.describe()}): {exc}") from exc
        return Write(tx=tx, gas=gas, max_cost_wei=gas * fees.max_fee_per_gas)

    async def write(self, write: Write) -> TxReceipt:
        """Send the write and wait for its receipt; a reverted write raises."""
        request = TxRequest(to=STORAGE_ADDRESS, data=encode_storage_tx(write.tx), gas=write.gas)
        try:
            return await self._writer().send(request)
        except ChainError as exc:
            raise GolemBaseError(f"write ({write.tx.describe()}): {exc}") from exc
