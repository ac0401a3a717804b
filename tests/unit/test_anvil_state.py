"""Compacting the local chain's state dump: the latest block and blocks with transactions stay."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from golem_actor.adapters.chain.anvil_state import Compaction, compact_anvil_state


def _block(number: int, transactions: list[str] | None = None) -> dict[str, Any]:
    return {"header": {"number": hex(number)}, "transactions": transactions or []}


def _dump(path: Path, blocks: list[dict[str, Any]], best: object, **extra: object) -> Path:
    state = {
        "block": {"number": hex(len(blocks))},
        "accounts": {"0x" + "11" * 20: {"balance": hex(10**30), "storage": {"0x1": "0x2"}}},
        "best_block_number": best,
        "blocks": blocks,
        "transactions": [{"info": {"transaction_hash": "0xaa"}}],
        "historical_states": None,
        **extra,
    }
    path.write_text(json.dumps(state))
    return path


@pytest.mark.parametrize("best", [9, "0x9"])  # anvil writes a number; a hex string is fine too
def test_keeps_the_latest_block_and_those_with_transactions(tmp_path: Path, best: object) -> None:
    blocks = [_block(n, ["0xaa"] if n == 3 else None) for n in range(10)]
    path = _dump(tmp_path / "state.json", blocks, best)
    before = json.loads(path.read_text())
    assert compact_anvil_state(path) == Compaction(blocks_before=10, blocks_after=2)
    after = json.loads(path.read_text())
    assert [b["header"]["number"] for b in after["blocks"]] == ["0x3", "0x9"]
    assert {k: v for k, v in after.items() if k != "blocks"} == {
        k: v for k, v in before.items() if k != "blocks"
    }  # accounts (big balances too), transactions and the block environment untouched
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
    assert compact_anvil_state(path) == Compaction(blocks_before=2, blocks_after=2)


def test_no_file_is_nothing_to_do(tmp_path: Path) -> None:
    assert compact_anvil_state(tmp_path / "state.json") is None


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        json.dumps([1, 2]),
        json.dumps({"blocks": [_block(0)]}),  # no best block number
        json.dumps({"blocks": [_block(0)], "best_block_number": 5}),  # best block missing
        json.dumps({"blocks": [{"header": {}}], "best_block_number": 0}),
        json.dumps(  # historical states refer to blocks: kept as they are
            {
                "blocks": [_block(0), _block(1)],
                "best_block_number": 1,
                "historical_states": {"a": 1},
            }
        ),
    ],
)
def test_an_unknown_dump_is_left_alone(tmp_path: Path, text: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(text)
    assert compact_anvil_state(path) is None
    assert path.read_text() == text
