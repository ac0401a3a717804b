"""Golem Base's storage transaction: what an advert write carries, on the wire (pure).

Why here: the format is a fact of Golem Base (market.md §2), shared by our client and the
test double, and it is easy to get subtly wrong; one module encodes and decodes it.

A write is an ordinary EIP-1559 transaction to `STORAGE_ADDRESS` with no value, whose data
is the RLP of `[creates, updates, deletes, extends]`:
- create `[btl, payload, [[key, str]...], [[key, uint]...]]`;
- update `[entity_key, btl, payload, string annotations, numeric annotations]`;
- delete `entity_key`; extend `[entity_key, blocks]`.
BTL ("blocks to live") counts blocks; entity keys are 32 bytes. The node applies the parts
in the order creates, deletes, updates, extends, all or nothing; a created entity's key
is `keccak256(tx_hash ++ payload ++ index as 32 bytes)`, its expiry `block + btl`; an update
replaces payload and annotations and sets the expiry to `block + btl`; an extend adds
`blocks` to the expiry. Only the owner (the sender that created it) may change an entity.
Receipt logs (from STORAGE_ADDRESS) name the entity in `topics[1]`: `EVENT_CREATED` and
`EVENT_UPDATED` with the expiry in `data`, `EVENT_DELETED`, `EVENT_EXTENDED` with the old
and new expiry.
"""

from __future__ import annotations

import msgspec
from eth_utils.crypto import keccak

from . import rlp

__all__ = [
    "EVENT_CREATED",
    "EVENT_DELETED",
    "EVENT_EXTENDED",
    "EVENT_UPDATED",
    "STORAGE_ADDRESS",
    "Annotations",
    "Create",
    "Extend",
    "StorageTx",
    "Update",
    "decode_storage_tx",
    "encode_storage_tx",
    "entity_key",
]

STORAGE_ADDRESS = "0x0000000000000000000000000000000060138453"


def _topic(signature: str) -> str:
    return "0x" + keccak(text=signature).hex()


EVENT_CREATED = _topic("GolemBaseStorageEntityCreated(uint256,uint256)")
EVENT_UPDATED = _topic("GolemBaseStorageEntityUpdated(uint256,uint256)")
EVENT_DELETED = _topic("GolemBaseStorageEntityDeleted(uint256)")
EVENT_EXTENDED = _topic("GolemBaseStorageEntityBTLExtended(uint256,uint256,uint256)")


class Annotations(msgspec.Struct, frozen=True):
    """An entity's string and numeric annotations, each kept sorted by key (so two sets of
    the same annotations compare equal whatever order the node lists them in)."""

    strings: tuple[tuple[str, str], ...] = ()
    numbers: tuple[tuple[str, int], ...] = ()

    @classmethod
    def of(cls, strings: dict[str, str], numbers: dict[str, int]) -> Annotations:
        return cls(tuple(sorted(strings.items())), tuple(sorted(numbers.items())))


class Create(msgspec.Struct, frozen=True):
    btl: int
    payload: bytes
    annotations: Annotations


class Update(msgspec.Struct, frozen=True):
    key: str  # 0x + 64 hex digits
    btl: int
    payload: bytes
    annotations: Annotations


class Extend(msgspec.Struct, frozen=True):
    key: str
    blocks: int


class StorageTx(msgspec.Struct, frozen=True, kw_only=True):
    creates: tuple[Create, ...] = ()
    updates: tuple[Update, ...] = ()
    deletes: tuple[str, ...] = ()
    extends: tuple[Extend, ...] = ()

    def describe(self) -> str:
        parts = [
            f"{len(items)} {name}"
            for name, items in (
                ("create", self.creates),
                ("update", self.updates),
                ("delete", self.deletes),
                ("extend", self.extends),
            )
            if items
        ]
        return ", ".join(parts) or "nothing"


def _key_bytes(key: str) -> bytes:
    raw = bytes.fromhex(key.removeprefix("0x"))
    if len(raw) != 32:
        raise ValueError(f"an entity key has 32 bytes: {key!r}")
    return raw


def _annotations(annotations: Annotations) -> list[rlp.Encodable]:
    return [
        [[key, value] for key, value in annotations.strings],
        [[key, value] for key, value in annotations.numbers],
    ]


def encode_storage_tx(tx: StorageTx) -> bytes:
    """The transaction's data: RLP of `[creates, updates, deletes, extends]`."""
    return rlp.encode(
        [
            [[c.btl, c.payload, *_annotations(c.annotations)] for c in tx.creates],
            [
                [_key_bytes(u.key), u.btl, u.payload, *_annotations(u.annotations)]
                for u in tx.updates
            ],
            [_key_bytes(key) for key in tx.deletes],
            [[_key_bytes(e.key), e.blocks] for e in tx.extends],
        ]
    )


def _list(item: rlp.Item, what: str, size: int | None = None) -> list[rlp.Item]:
    if not isinstance(item, list) or (size is not None and len(item) != size):
        raise rlp.RlpError(f"{what}: expected a list of {size or 'any number of'} items")
    return item


def _bytes(item: rlp.Item, what: str) -> bytes:
    if not isinstance(item, bytes):
        raise rlp.RlpError(f"{what}: expected a string, found a list")
    return item


def _key(item: rlp.Item) -> str:
    raw = _bytes(item, "entity key")
    if len(raw) != 32:
        raise rlp.RlpError(f"entity key of {len(raw)} bytes (32 expected)")
    return "0x" + raw.hex()


def _text(item: rlp.Item, what: str) -> str:
    try:
        return _bytes(item, what).decode()
    except UnicodeDecodeError as exc:
        raise rlp.RlpError(f"{what}: not UTF-8") from exc


def _decode_annotations(strings: rlp.Item, numbers: rlp.Item) -> Annotations:
    pairs = [_list(p, "string annotation", 2) for p in _list(strings, "string annotations")]
    counts = [_list(p, "numeric annotation", 2) for p in _list(numbers, "numeric annotations")]
    return Annotations.of(
        {_text(k, "annotation key"): _text(v, "annotation value") for k, v in pairs},
        {_text(k, "annotation key"): rlp.decode_int(v) for k, v in counts},
    )


def decode_storage_tx(data: bytes) -> StorageTx:
    """The storage transaction in `data`; raises `rlp.RlpError` (a ValueError)."""
    creates, updates, deletes, extends = _list(rlp.decode(data), "storage transaction", 4)
    return StorageTx(
        creates=tuple(
            Create(
                btl=rlp.decode_int(c[0]),
                payload=_bytes(c[1], "payload"),
                annotations=_decode_annotations(c[2], c[3]),
            )
            for c in (_list(item, "create", 4) for item in _list(creates, "creates"))
        ),
        updates=tuple(
            Update(
                key=_key(u[0]),
                btl=rlp.decode_int(u[1]),
                payload=_bytes(u[2], "payload"),
                annotations=_decode_annotations(u[3], u[4]),
            )
            for u in (_list(item, "update", 5) for item in _list(updates, "updates"))
        ),
        deletes=tuple(_key(item) for item in _list(deletes, "deletes")),
        extends=tuple(
            Extend(key=_key(e[0]), blocks=rlp.decode_int(e[1]))
            for e in (_list(item, "extend", 2) for item in _list(extends, "extends"))
        ),
    )


def entity_key(tx_hash: str, payload: bytes, index: int) -> str:
    """The key Golem Base gives the `index`-th create of transaction `tx_hash`."""
    raw = bytes.fromhex(tx_hash.removeprefix("0x")) + payload + index.to_bytes(32, "big")
    return "0x" + keccak(raw).hex()
