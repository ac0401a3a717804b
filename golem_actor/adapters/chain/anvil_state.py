"""Keeping the local chain's state file small: drop the empty blocks anvil mined on its own.

Why: the local chain mines a block every 2 s (``actors/local_chain``) and anvil's state dump
(``--state``) keeps every block, about 1.7 KB each: some 70 MB a day, rewritten every few
seconds and loaded at every start. What the node needs from it is the accounts (balances,
code and storage: the streams), the latest block (chain time and the next block number) and
the blocks that hold transactions (their receipts). Before each start the dump is rewritten
without the other blocks, so it grows only while the node runs. A dump this code does not
recognise (another anvil version, historical states kept) is left alone: anvil loads it as
it is. Blocking file IO: callers run it in a worker thread.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Compaction", "compact_anvil_state"]


@dataclass(frozen=True)
class Compaction:
    blocks_before: int
    blocks_after: int


def _number(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value, 16) if value.startswith("0x") else int(value)
        except ValueError:
            return None
    return None


def _kept_blocks(state: Any) -> tuple[list[Any], list[Any]] | None:
    """``(all blocks, blocks to keep)``, or None when ``state`` is not a dump we know."""
    if not isinstance(state, dict) or state.get("historical_states"):
        return None
    blocks, best = state.get("blocks"), _number(state.get("best_block_number"))
    if not isinstance(blocks, list) or best is None:
        return None
    kept: list[Any] = []
    best_found = False
    for block in blocks:
        header = block.get("header") if isinstance(block, dict) else None
        number = _number(header.get("number")) if isinstance(header, dict) else None
        transactions = block.get("transactions") if isinstance(block, dict) else None
        if number is None or not isinstance(transactions, list):
            return None
        best_found = best_found or number == best
        if number == best or transactions:
            kept.append(block)
    return (blocks, kept) if best_found else None


def compact_anvil_state(path: Path) -> Compaction | None:
    """Rewrite the dump at ``path`` keeping only the latest block and those with transactions.

    Returns None (and leaves the file as it is) when there is no file or its shape is not
    the one expected; raises ``OSError`` when it cannot be read or replaced.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        state = json.loads(text)
    except ValueError:
        return None  # anvil itself will say what is wrong with it
    found = _kept_blocks(state)
    if found is None:
        return None
    blocks, kept = found
    if len(kept) < len(blocks):
        state["blocks"] = kept
        temporary = path.with_name(path.name + ".compacting")
        temporary.write_text(json.dumps(state), encoding="utf-8")
        os.replace(temporary, path)  # a crash leaves the old file or the new one, never half
    return Compaction(blocks_before=len(blocks), blocks_after=len(kept))
