"""`Signer`: signs with the provider key without handing the key around.

Why: adverts and Golem Base writes must be signed by the provider key, but only
the wallet and the start-up code should ever hold it. `prepare_node` builds one `Signer`
from the key it loaded and puts it in the node's parts; actors get the signer, which keeps
the key in a closure (no attribute, nothing in `repr`) and signs in a worker thread
(EIP-191 signing costs milliseconds of pure Python: never on the event loop). For Golem
Base writes it hands out a `TransactionSender` for the key (which signs in a worker thread
too), so the poster never sees the key either.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from golem_actor.adapters.chain.rpc import RpcClient
from golem_actor.adapters.chain.transactions import TransactionSender
from golem_actor.discovery import signing
from golem_actor.identity import ProviderKey

__all__ = ["Signer"]


class Signer:
    __slots__ = ("_sender", "_sign", "address")

    def __init__(self, key: ProviderKey) -> None:
        private_key = key.private_key
        self.address = key.address

        def sign(message: bytes) -> str:
            return signing.sign(message, private_key)

        def sender(rpc: RpcClient, max_fee_cap_wei: int) -> TransactionSender:
            return TransactionSender(rpc, private_key, max_fee_cap_wei=max_fee_cap_wei)

        self._sign: Callable[[bytes], str] = sign
        self._sender: Callable[[RpcClient, int], TransactionSender] = sender

    def __repr__(self) -> str:
        return f"<Signer {self.address}>"

    async def sign(self, message: bytes) -> str:
        """The EIP-191 (`personal_sign`) signature of `message`, hex with 0x."""
        return await trio.to_thread.run_sync(self._sign, message)

    async def delete_headers(self, timestamp: int) -> dict[str, str]:
        """The headers of a signed DELETE of this provider's discovery advert."""
        signature = await self.sign(signing.delete_message(self.address, timestamp))
        return {
            "X-Provider-ID": self.address,
            "X-Provider-Timestamp": str(timestamp),
            "X-Provider-Signature": signature,
        }

    def transaction_sender(self, rpc: RpcClient, *, max_fee_cap_wei: int) -> TransactionSender:
        """A sender of this key's transactions over `rpc` (Golem Base writes)."""
        return self._sender(rpc, max_fee_cap_wei)
