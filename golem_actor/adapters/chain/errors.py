"""The chain adapter's errors: everything below it is translated into this small flat set.

Why: actors decide on the *kind* of failure, never on httpx or eth-account exceptions.
- :class:`ChainUnavailable`: the endpoint could not answer (connection refused, timeout,
  HTTP 5xx, garbage). Transient: retry later, never treat it as news about a stream.
- :class:`RpcError`: the node answered with a JSON-RPC error object. Definitive for that
  request (a bad parameter, a revert during ``eth_call``/``eth_estimateGas``).
- :class:`TransactionReverted`: a transaction did (or would) revert; ``reason`` is the
  contract's ``require`` message when it could be recovered.
- :class:`FeeCapExceeded`: the network's fees are above the operator's cap; nothing was sent.
- :class:`TransactionTimeout` (a :class:`ChainUnavailable`): a sent transaction was not
  mined within the bound; it may still be mined later (its nonce is spent).
"""

from __future__ import annotations

from typing import Any

from eth_abi.abi import decode
from eth_abi.exceptions import DecodingError
from eth_utils.crypto import keccak

__all__ = [
    "ChainError",
    "ChainUnavailable",
    "FeeCapExceeded",
    "RpcError",
    "TransactionReverted",
    "TransactionTimeout",
    "revert_reason",
]

_ERROR_SELECTOR = keccak(text="Error(string)")[:4]
_PANIC_SELECTOR = keccak(text="Panic(uint256)")[:4]


class ChainError(Exception):
    """Base of every error the chain adapter raises."""


class ChainUnavailable(ChainError):
    """The endpoint did not give a usable answer (transient)."""


class TransactionTimeout(ChainUnavailable):
    """A sent transaction has no receipt yet; it may still be mined."""

    def __init__(self, tx_hash: str, seconds: float) -> None:
        super().__init__(f"transaction {tx_hash} not mined within {seconds:g} s")
        self.tx_hash = tx_hash


class RpcError(ChainError):
    """A JSON-RPC error answer: ``{"code", "message", "data"}``."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"JSON-RPC error {code}: {message}")
        self.code = code
        self.message = message
        self.data = data


class TransactionReverted(ChainError):
    """The transaction reverted (or would revert); ``reason`` is the revert message if known."""

    def __init__(self, reason: str, *, tx_hash: str | None = None) -> None:
        where = f" (tx {tx_hash})" if tx_hash else ""
        super().__init__(f"transaction reverted: {reason}{where}")
        self.reason = reason
        self.tx_hash = tx_hash


class FeeCapExceeded(ChainError):
    """The fee a transaction needs now is above the configured cap; it was not sent."""

    def __init__(self, needed_wei: int, cap_wei: int) -> None:
        super().__init__(
            f"network fee {needed_wei} wei/gas (base fee + tip) is above the cap "
            f"{cap_wei} wei/gas; not sending"
        )
        self.needed_wei = needed_wei
        self.cap_wei = cap_wei


def _decode_revert_data(raw: bytes) -> str | None:
    try:
        if raw[:4] == _ERROR_SELECTOR:
            (message,) = decode(["string"], raw[4:])
            return str(message)
        if raw[:4] == _PANIC_SELECTOR:
            (code,) = decode(["uint256"], raw[4:])
            return f"panic 0x{int(code):02x}"
    except DecodingError:
        return None
    return None


def revert_reason(error: RpcError) -> str | None:
    """The revert message carried by a JSON-RPC error, or ``None`` if it is not a revert.

    Nodes put the ABI-encoded ``Error(string)`` in ``data`` (a hex string, or an object
    with a ``data`` field); without decodable data a message mentioning "revert" still counts.
    """
    data = error.data
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x") and len(data) > 2:
        try:
            raw = bytes.fromhex(data[2:])
        except ValueError:
            raw = b""
        decoded = _decode_revert_data(raw)
        if decoded is not None:
            return decoded
    if "revert" in error.message.lower():
        message = error.message
        for prefix in ("execution reverted: ", "execution reverted"):
            if message.startswith(prefix) and len(message) > len(prefix):
                return message[len(prefix) :]
        return message
    return None
