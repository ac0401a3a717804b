"""The node's identities: its Ethereum key (the `provider_id`) and the operator's token.

Both live in the data directory with owner-only permissions and are created on first
start. The key file keeps the upstream provider's format
(`keys/provider_key.json` = `{"address", "private_key"}`) so an existing provider's key
can be reused.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import msgspec
from eth_account import Account

from golem_actor._atomic import ensure_dir, write_atomic

__all__ = ["ProviderKey", "load_or_create_operator_token", "load_or_create_provider_key"]


class ProviderKey(msgspec.Struct, frozen=True):
    address: str
    private_key: str


def load_or_create_provider_key(key_dir: Path) -> ProviderKey:
    """Blocking (file IO): call it in a thread or before the event loop starts."""
    path = key_dir / "provider_key.json"
    if path.exists():
        key = msgspec.json.decode(path.read_bytes(), type=ProviderKey)
        derived = Account.from_key(key.private_key).address
        if derived.lower() != key.address.lower():
            raise ValueError(f"{path}: the address does not match the private key")
        return ProviderKey(address=derived, private_key=key.private_key)
    ensure_dir(key_dir)
    account = Account.create()
    key = ProviderKey(address=account.address, private_key=account.key.hex())
    write_atomic(path, msgspec.json.encode(key), mode=0o600)
    return key


def load_or_create_operator_token(data_dir: Path) -> str:
    """The operator's bearer token (`<data dir>/operator.token`)."""
    path = data_dir / "operator.token"
    if path.exists():
        token = path.read_text(encoding="ascii").strip()
        if len(token) >= 32:
            return token
    ensure_dir(data_dir)
    token = secrets.token_urlsafe(32)
    write_atomic(path, f"{token}\n".encode("ascii"), mode=0o600)
    return token
