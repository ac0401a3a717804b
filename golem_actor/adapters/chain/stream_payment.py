"""StreamPayment on the wire: read streams over JSON-RPC, build transaction calldata offline.

Why: the monitor reads every mapped stream each tick. One ``eth_call`` per stream costs
one HTTP round trip each; :meth:`StreamPaymentClient.get_streams` sends all ``streams(id)``
calls as one JSON-RPC batch (one HTTP request), and :meth:`read_streams` adds the latest
block to that same batch so a tick is a single request with a consistent "now".

Encoding and decoding use eth-abi with the shipped ABI (``load_artifact("StreamPayment")``),
loaded once. Writes are only *built* here (calldata, or a :class:`TxRequest` for the
contract); :class:`~golem_actor.adapters.chain.transactions.TransactionSender` sends them.
A ``streams(id)`` row that is all zeros is an id that was never created: ``None``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from golem_actor.adapters.chain.artifacts import ContractArtifact, canonical_type, load_artifact
from golem_actor.adapters.chain.errors import ChainUnavailable
from golem_actor.adapters.chain.rpc import RpcCall, RpcClient, hex_bytes, hex_int
from golem_actor.adapters.chain.transactions import TxRequest
from golem_actor.domain.streams import ZERO_ADDRESS, StreamState

__all__ = [
    "StreamPaymentAbi",
    "StreamPaymentClient",
    "StreamsReading",
    "create_stream_call",
    "decode_stream",
    "deploy_data",
    "halt_stream_call",
    "stream_payment_abi",
    "terminate_call",
    "top_up_call",
    "withdraw_call",
]


@functools.lru_cache(maxsize=4096)
def _checksum(address: str) -> str:
    # EIP-55 costs ~20 us (a keccak); a tick decodes the same few addresses again and again.
    return to_checksum_address(address)


class StreamPaymentAbi:
    """Offline encode/decode of one contract's functions, from its compiled artifact."""

    def __init__(self, artifact: ContractArtifact) -> None:
        self.artifact = artifact
        self._functions: dict[str, tuple[bytes, list[str], list[str]]] = {}
        for entry in artifact.entries("function"):
            inputs = [canonical_type(p) for p in entry["inputs"]]
            outputs = [canonical_type(p) for p in entry["outputs"]]
            selector = keccak(text=f"{entry['name']}({','.join(inputs)})")[:4]
            self._functions[str(entry["name"])] = (selector, inputs, outputs)
        ctor = artifact.entries("constructor")
        self._ctor_inputs = [canonical_type(p) for p in ctor[0]["inputs"]] if ctor else []

    def encode_call(self, function: str, *args: Any) -> bytes:
        selector, inputs, _ = self._functions[function]
        return selector + encode(inputs, args)

    def decode_output(self, function: str, data: bytes) -> tuple[Any, ...]:
        _, _, outputs = self._functions[function]
        values = decode(outputs, data)
        return tuple(
            _checksum(v) if t == "address" else v for t, v in zip(outputs, values, strict=True)
        )

    def deploy_data(self, *args: Any) -> bytes:
        return self.artifact.bytecode_bytes() + encode(self._ctor_inputs, args)


@functools.cache
def stream_payment_abi() -> StreamPaymentAbi:
    return StreamPaymentAbi(load_artifact("StreamPayment"))


def withdraw_call(stream_id: int) -> bytes:
    return stream_payment_abi().encode_call("withdraw", stream_id)


def terminate_call(stream_id: int) -> bytes:
    return stream_payment_abi().encode_call("terminate", stream_id)


def top_up_call(stream_id: int, amount: int) -> bytes:
    return stream_payment_abi().encode_call("topUp", stream_id, amount)


def halt_stream_call(stream_id: int) -> bytes:
    return stream_payment_abi().encode_call("haltStream", stream_id)


def create_stream_call(token: str, recipient: str, deposit: int, rate_per_second: int) -> bytes:
    args = (to_checksum_address(token), to_checksum_address(recipient), deposit, rate_per_second)
    return stream_payment_abi().encode_call("createStream", *args)


def deploy_data(oracle: str) -> bytes:
    """Creation code of StreamPayment with its constructor argument (the oracle)."""
    return stream_payment_abi().deploy_data(to_checksum_address(oracle))


def decode_stream(data: bytes) -> StreamState | None:
    """A ``streams(id)`` answer; ``None`` for an id that was never created (all zeros)."""
    try:
        values = stream_payment_abi().decode_output("streams", data)
    except DecodingError as exc:
        raise ChainUnavailable(f"undecodable streams() answer ({len(data)} bytes)") from exc
    token, sender, recipient, start, stop, rate, deposit, withdrawn, halted = values
    state = StreamState(
        token=token,
        sender=sender,
        recipient=recipient,
        start_time=start,
        stop_time=stop,
        rate_per_second=rate,
        deposit=deposit,
        withdrawn=withdrawn,
        halted=halted,
    )
    if sender == ZERO_ADDRESS and deposit == 0 and start == 0:
        return None
    return state


class StreamsReading(msgspec.Struct, frozen=True, kw_only=True):
    """One monitor tick: the latest block's timestamp and the streams that exist."""

    now: int
    block_number: int
    streams: dict[int, StreamState]


class StreamPaymentClient:
    """Reads of one deployed StreamPayment, and :class:`TxRequest` builders for it."""

    def __init__(self, rpc: RpcClient, address: str, *, block: str = "latest") -> None:
        self.rpc = rpc
        self.address = to_checksum_address(address)
        self.block = block

    def _eth_call(self, data: bytes) -> RpcCall:
        return ("eth_call", [{"to": self.address, "data": "0x" + data.hex()}, self.block])

    def _streams_call(self, stream_id: int) -> RpcCall:
        return self._eth_call(stream_payment_abi().encode_call("streams", stream_id))

    async def get_stream(self, stream_id: int) -> StreamState | None:
        method, params = self._streams_call(stream_id)
        return decode_stream(hex_bytes(await self.rpc.call(method, params)))

    async def get_streams(self, stream_ids: Iterable[int]) -> dict[int, StreamState]:
        """The existing streams among ``stream_ids``, read in one batched request.

        Ids that were never created are absent from the answer; a failed read raises.
        """
        ids = list(dict.fromkeys(stream_ids))
        if not ids:
            return {}
        results = await self.rpc.batch([self._streams_call(i) for i in ids])
        return _collect(ids, results)

    async def read_streams(self, stream_ids: Iterable[int]) -> StreamsReading:
        """The latest block and ``streams(id)`` of each id, all in one request."""
        ids = list(dict.fromkeys(stream_ids))
        calls = [("eth_getBlockByNumber", ["latest", False]), *map(self._streams_call, ids)]
        block, *results = await self.rpc.batch(calls)
        return StreamsReading(
            now=hex_int(block["timestamp"]),
            block_number=hex_int(block["number"]),
            streams=_collect(ids, results),
        )

    async def latest_block_timestamp(self) -> int:
        block = await self.rpc.call("eth_getBlockByNumber", ["latest", False])
        return hex_int(block["timestamp"])

    async def oracle(self) -> str:
        (oracle,) = await self._read("oracle")
        return str(oracle)

    async def next_stream_id(self) -> int:
        (next_id,) = await self._read("nextStreamId")
        return int(next_id)

    async def _read(self, function: str, *args: Any) -> tuple[Any, ...]:
        abi = stream_payment_abi()
        method, params = self._eth_call(abi.encode_call(function, *args))
        raw = hex_bytes(await self.rpc.call(method, params))
        if not raw:
            raise ChainUnavailable(f"no contract code answers at {self.address}")
        return abi.decode_output(function, raw)

    def withdraw_tx(self, stream_id: int) -> TxRequest:
        return TxRequest(to=self.address, data=withdraw_call(stream_id))

    def terminate_tx(self, stream_id: int) -> TxRequest:
        return TxRequest(to=self.address, data=terminate_call(stream_id))

    def top_up_tx(self, stream_id: int, amount: int) -> TxRequest:
        """A native-ETH top-up (``value`` = ``amount``)."""
        return TxRequest(to=self.address, data=top_up_call(stream_id, amount), value=amount)

    def create_stream_tx(
        self, recipient: str, deposit: int, rate_per_second: int, *, token: str = ZERO_ADDRESS
    ) -> TxRequest:
        """A stream; native ETH (the deposit attached) unless ``token`` is an ERC20."""
        value = deposit if token == ZERO_ADDRESS else 0
        data = create_stream_call(token, recipient, deposit, rate_per_second)
        return TxRequest(to=self.address, data=data, value=value)


def _collect(ids: Sequence[int], results: Sequence[Any]) -> dict[int, StreamState]:
    found: dict[int, StreamState] = {}
    for stream_id, result in zip(ids, results, strict=True):
        state = decode_stream(hex_bytes(result))
        if state is not None:
            found[stream_id] = state
    return found
