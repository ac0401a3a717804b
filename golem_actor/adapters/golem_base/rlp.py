"""RLP (Ethereum's Recursive Length Prefix), encode and decode, for Golem Base's storage
transactions.

Why our own: the format is a page of the Yellow Paper (appendix B) and the storage
transaction needs nothing else from it; owning it keeps the wire under our tests, and the
Golem Base test double decodes with the same code. Items are `bytes` or lists of items;
`encode` also takes `str` (UTF-8) and non-negative `int` (big-endian, no leading zeros, 0
is the empty string), as geth's encoder writes them. `decode` refuses what geth's decoder
refuses: trailing bytes, lengths past the end, and non-canonical forms (a single byte
below 0x80 wrapped in a prefix, a long form for a short length, leading zeros in a length).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

__all__ = ["Item", "RlpError", "decode", "decode_int", "encode"]

Item: TypeAlias = "bytes | list[Item]"
Encodable: TypeAlias = "bytes | bytearray | str | int | Sequence[Encodable]"


class RlpError(ValueError):
    """Bytes that are not one canonical RLP item."""


def _prefix(length: int, offset: int) -> bytes:
    if length < 56:
        return bytes([offset + length])
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([offset + 55 + len(size)]) + size


def encode(item: Encodable) -> bytes:
    """The RLP encoding of `item`."""
    if isinstance(item, bytes | bytearray):
        data = bytes(item)
        if len(data) == 1 and data[0] < 0x80:
            return data
        return _prefix(len(data), 0x80) + data
    if isinstance(item, str):
        return encode(item.encode())
    if isinstance(item, bool):
        raise TypeError("RLP has no booleans")
    if isinstance(item, int):
        if item < 0:
            raise ValueError(f"RLP integers are non-negative: {item}")
        return encode(item.to_bytes((item.bit_length() + 7) // 8, "big"))
    payload = b"".join(encode(element) for element in item)
    return _prefix(len(payload), 0xC0) + payload


def decode_int(item: Item) -> int:
    """An integer item (a string of big-endian bytes without leading zeros)."""
    if not isinstance(item, bytes):
        raise RlpError("expected an integer, found a list")
    if item[:1] == b"\x00":
        raise RlpError("integer with a leading zero")
    return int.from_bytes(item, "big")


def decode(data: bytes) -> Item:
    """The one item `data` encodes; raises RlpError."""
    item, end = _item(data, 0)
    if end != len(data):
        raise RlpError(f"{len(data) - end} trailing bytes after the item")
    return item


def _length(data: bytes, start: int, size: int) -> int:
    raw = data[start : start + size]
    if len(raw) < size:
        raise RlpError("length past the end of the data")
    if raw[:1] == b"\x00":
        raise RlpError("length with a leading zero")
    length = int.from_bytes(raw, "big")
    if length < 56:
        raise RlpError("long form for a short length")
    return length


def _item(data: bytes, at: int) -> tuple[Item, int]:
    if at >= len(data):
        raise RlpError("unexpected end of data")
    first = data[at]
    if first < 0x80:
        return data[at : at + 1], at + 1
    if first < 0xB8:
        start, length = at + 1, first - 0x80
        if length == 1 and start < len(data) and data[start] < 0x80:
            raise RlpError("single byte below 0x80 with a prefix")
    elif first < 0xC0:
        size = first - 0xB7
        start, length = at + 1 + size, _length(data, at + 1, size)
    else:
        if first < 0xF8:
            start, length = at + 1, first - 0xC0
        else:
            size = first - 0xF7
            start, length = at + 1 + size, _length(data, at + 1, size)
        end = start + length
        if end > len(data):
            raise RlpError("list past the end of the data")
        items: list[Item] = []
        cursor = start
        while cursor < end:
            element, cursor = _item(data, cursor)
            items.append(element)
        if cursor != end:
            raise RlpError("list element past the end of its list")
        return items, end
    end = start + length
    if end > len(data):
        raise RlpError("string past the end of the data")
    return data[start:end], end
