"""Golem Base's wire, pure: our RLP against the reference encoder (the `rlp` package that
eth-account ships), canonical-form refusals, the storage transaction both ways, entity keys."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import rlp as reference  # type: ignore[import-untyped]
from eth_utils.crypto import keccak

from golem_actor.adapters.golem_base import (
    Annotations,
    Create,
    Extend,
    StorageTx,
    Update,
    decode_storage_tx,
    encode_storage_tx,
    entity_key,
    rlp as ours,
)

sys.path.insert(0, str(Path(__file__).parents[1] / "fakes"))
from golem_base_query import Entity, QueryError, parse_query

KEY_A = "0x" + "11" * 32
KEY_B = "0x" + "22" * 32
ANNOTATIONS = Annotations.of(
    {"golem_type": "provider", "golem_provider_name": "ünïcode"}, {"golem_cpu": 8, "zero": 0}
)


@pytest.mark.parametrize(
    "item",
    [
        b"",
        b"\x00",
        b"\x7f",
        b"\x80",
        b"x" * 55,
        b"y" * 56,
        b"z" * 1024,
        [],
        [b"", []],
        [b"a" * 60, [b"b", [b"c" * 70]]],
        [[b"k", b"v"]] * 40,
    ],
)
def test_rlp_matches_the_reference_encoder_both_ways(item: ours.Item) -> None:
    encoded = ours.encode(item)
    assert encoded == reference.encode(item)
    assert ours.decode(encoded) == item


@pytest.mark.parametrize(("number", "raw"), [(0, b""), (1, b"\x01"), (1024, b"\x04\x00")])
def test_integers_are_big_endian_without_leading_zeros(number: int, raw: bytes) -> None:
    assert ours.encode(number) == reference.encode(number) == ours.encode(raw)
    assert ours.decode_int(ours.decode(ours.encode(number))) == number


@pytest.mark.parametrize(
    "bad",
    [
        b"",  # nothing
        b"\x81\x05",  # a single byte below 0x80 with a prefix
        b"\xb8\x05hello",  # the long form for a short string
        b"\x83ab",  # string past the end
        b"\xc3\x01\x02",  # list past the end
        b"\x01\x02",  # trailing bytes
        b"\xb9\x00\x40" + b"a" * 64,  # a length with a leading zero
    ],
)
def test_rlp_refuses_malformed_or_non_canonical_input(bad: bytes) -> None:
    with pytest.raises(ours.RlpError):
        ours.decode(bad)


def test_a_leading_zero_integer_is_refused() -> None:
    with pytest.raises(ours.RlpError):
        ours.decode_int(b"\x00\x01")


def test_storage_tx_layout_is_creates_updates_deletes_extends() -> None:
    tx = StorageTx(
        creates=(Create(btl=7200, payload=b"", annotations=ANNOTATIONS),),
        updates=(Update(key=KEY_A, btl=100, payload=b"p", annotations=ANNOTATIONS),),
        deletes=(KEY_B,),
        extends=(Extend(key=KEY_A, blocks=50),),
    )
    data = encode_storage_tx(tx)
    strings = [[b"golem_provider_name", "ünïcode".encode()], [b"golem_type", b"provider"]]
    numbers = [[b"golem_cpu", b"\x08"], [b"zero", b""]]
    assert reference.decode(data) == [
        [[b"\x1c\x20", b"", strings, numbers]],
        [[bytes.fromhex("11" * 32), b"\x64", b"p", strings, numbers]],
        [bytes.fromhex("22" * 32)],
        [[bytes.fromhex("11" * 32), b"\x32"]],
    ]
    assert decode_storage_tx(data) == tx


def test_an_empty_storage_tx_is_four_empty_lists() -> None:
    assert encode_storage_tx(StorageTx()) == bytes([0xC4, 0xC0, 0xC0, 0xC0, 0xC0])


@pytest.mark.parametrize(
    "data",
    [
        reference.encode([[], [], []]),  # three parts
        reference.encode([[], [], [b"short key"], []]),
        reference.encode([[[b"\x01", b"", [[b"k"]], []]], [], [], []]),  # a one-item pair
        reference.encode([[[b"\x01", b"", [], [[b"k", [b"list"]]]]], [], [], []]),
    ],
)
def test_a_malformed_storage_tx_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - RlpError, a ValueError
        decode_storage_tx(data)


def test_entity_key_is_keccak_of_tx_hash_payload_and_index() -> None:
    tx_hash = "0x" + "ab" * 32
    expected = keccak(bytes.fromhex("ab" * 32) + b"data" + (3).to_bytes(32, "big"))
    assert entity_key(tx_hash, b"data", 3) == "0x" + expected.hex()
    assert entity_key(tx_hash, b"data", 0) != entity_key(tx_hash, b"data", 1)


def _entity(**strings: str) -> Entity:
    return Entity(
        key=KEY_A,
        owner="0x" + "aB" * 20,
        expires_at_block=10,
        payload=b"",
        strings=dict(strings),
        numbers={"golem_cpu": 4, "golem_memory": 8},
    )


def test_the_double_understands_the_requestor_query() -> None:
    entity = _entity(golem_type="provider", golem_network="testnet", golem_country="SE")
    requestor = (
        'golem_type="provider" && golem_network="testnet" && golem_cpu>=4 '
        '&& golem_memory>=2 && golem_country="SE"'
    )
    assert parse_query(requestor)(entity)
    assert not parse_query(requestor.replace("cpu>=4", "cpu>=5"))(entity)
    assert not parse_query('golem_network="mainnet"')(entity)
    assert parse_query('(golem_network="mainnet" || golem_cpu=4) && golem_memory<9')(entity)
    assert parse_query("$owner=0x" + "ab" * 20)(entity)
    assert not parse_query('golem_missing="x"')(entity)
    assert not parse_query("golem_type=1")(entity)  # a number never matches a string
    assert parse_query("$all")(entity)
    for bad in ('golem_type="x" &&', "golem_type", '(golem_type="x"', "= 3"):
        with pytest.raises(QueryError):
            parse_query(bad)
