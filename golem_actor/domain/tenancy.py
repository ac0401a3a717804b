"""Who may see and act on which VM.

Design (documented in the README):
- A VM id is a capability: 128 random bits, handed only to whoever created the VM. The
  existing requestor client sends no credentials and keeps the id it was given, so it
  completes a rental unchanged, and nobody else can name its VM.
- A client that sends `Authorization: Bearer <token>` when creating binds the VM to that
  token: the id alone then no longer suffices, every later request must carry the token,
  and `GET /vms` lists the token's VMs.
- The operator's token (a file in the data directory, never derived from the request's
  source address: tenants may come through a local reverse proxy) sees and acts on all
  VMs and reaches the operator-only routes.
A VM the caller may not access is reported as not found, so its existence is not revealed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

import msgspec

__all__ = ["Caller", "can_access", "new_job_id", "new_vm_id", "token_digest"]

VM_ID_PREFIX = "vm-"
_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


def _random_id(bits: int) -> str:
    value = secrets.randbits(bits)
    chars = []
    for _ in range((bits + 4) // 5):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(chars)


def new_vm_id() -> str:
    """An unguessable id (130 random bits), usable in hostnames and instance names."""
    return VM_ID_PREFIX + _random_id(130)


def new_job_id() -> str:
    return "job-" + _random_id(130)


def token_digest(token: str) -> str:
    """What the node stores of a tenant's token: never the token itself."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Caller(msgspec.Struct, frozen=True):
    """The identity a request proves: operator, a tenant's token digest, or neither."""

    operator: bool = False
    tenant: str | None = None


def can_access(caller: Caller, owner: str | None) -> bool:
    """May `caller` act on a VM bound to `owner` (a token digest, or None: id-only)?"""
    if caller.operator:
        return True
    if owner is None:
        return True  # the id itself is the capability
    return caller.tenant is not None and hmac.compare_digest(caller.tenant, owner)


def lists(caller: Caller, owner: str | None) -> bool:
    """Does `caller`'s `GET /vms` include a VM bound to `owner`?"""
    if caller.operator:
        return True
    return caller.tenant is not None and owner is not None and caller.tenant == owner
