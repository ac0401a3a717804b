"""Who signed an advert: EIP-191 (`personal_sign`) recovery, and the signer's side.

Why: upstream's server took any non-empty `X-Provider-Signature`, so anyone could post or
delete any provider's advert. Here a POST's signature is an EIP-191 signature by the
provider's key over the exact request body bytes, and the recovered address must be the
`X-Provider-ID` (compared case-insensitively). A DELETE has no body, so it signs a
canonical message instead, `DELETE /api/v1/advertisements/<id, lower-case>\n<timestamp>`,
with the timestamp (integer Unix seconds) sent as `X-Provider-Timestamp`: the server
accepts it only near its own clock and only once (see app), so a captured DELETE cannot
be replayed later.

A header that is not a 65-byte hex signature at all (upstream's provider sends the
literal `"signature"`) is *unsigned*, which a server may admit as a legacy advert; one
that is a signature but recovers to another address is *forged*, always refused.
Recovery is pure Python here (~10 ms): callers run it in a worker thread.
"""

from __future__ import annotations

import re

from eth_account import Account
from eth_account.messages import encode_defunct

__all__ = [
    "ADDRESS",
    "Forged",
    "delete_message",
    "parse_signature",
    "recover",
    "sign",
    "sign_delete",
]

ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_SIGNATURE = re.compile(r"^(0x)?[0-9a-fA-F]{130}$")


class Forged(Exception):
    """A signature that does not prove the claimed provider wrote the message."""


def parse_signature(header: str | None) -> bytes | None:
    """The 65 signature bytes, or None when the header is not a signature at all."""
    if header is None:
        return None
    text = header.strip()
    if not _SIGNATURE.match(text):
        return None
    return bytes.fromhex(text.removeprefix("0x"))


def delete_message(provider_id: str, timestamp: int) -> bytes:
    """The canonical message a DELETE of `provider_id`'s advert signs."""
    return f"DELETE /api/v1/advertisements/{provider_id.lower()}\n{timestamp}".encode()


def recover(message: bytes, signature: bytes, provider_id: str) -> str:
    """The signer's address when it is `provider_id`; else Forged. Blocking (~10 ms)."""
    try:
        signer: str = Account.recover_message(
            encode_defunct(primitive=message), signature=signature
        )
    except Exception as exc:  # eth_keys raises several types for an invalid v, r or s
        raise Forged(f"the signature is not valid: {exc}") from exc
    if signer.lower() != provider_id.lower():
        raise Forged(f"the signature is by {signer}, not by X-Provider-ID {provider_id}")
    return signer


def sign(message: bytes, private_key: bytes | str) -> str:
    """A provider's `X-Provider-Signature` for `message` (hex with 0x). Blocking."""
    signed = Account.sign_message(encode_defunct(primitive=message), private_key=private_key)
    return "0x" + bytes(signed.signature).hex()


def sign_delete(provider_id: str, timestamp: int, private_key: bytes | str) -> dict[str, str]:
    """The three headers of a signed DELETE of `provider_id`'s advert."""
    return {
        "X-Provider-ID": provider_id,
        "X-Provider-Timestamp": str(timestamp),
        "X-Provider-Signature": sign(delete_message(provider_id, timestamp), private_key),
    }
