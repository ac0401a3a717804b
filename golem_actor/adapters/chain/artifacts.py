"""Load the compiled contract artifacts shipped inside the package.

``contracts/<name>.json`` holds ``{"contractName", "solcVersion", "sourceSha256", "abi",
"bytecode"}`` as written by ``python -m golem_actor.adapters.chain.compile``. The files are
read through ``importlib.resources`` so this works from a wheel or a zip as well as from a
source checkout. A missing or malformed artifact raises :class:`ArtifactError`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any, Final, Literal

import msgspec

_PACKAGE: Final = "golem_actor.adapters.chain"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEX = re.compile(r"0x(?:[0-9a-fA-F]{2})*")


class ArtifactError(LookupError):
    """No artifact of that name is shipped, or the file is malformed."""


class ContractArtifact(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    """A compiled contract: ``abi`` is the raw JSON ABI, ``bytecode`` the 0x creation code."""

    contract_name: str
    solc_version: str
    source_sha256: str
    abi: list[dict[str, Any]]
    bytecode: str

    def __post_init__(self) -> None:
        if _HEX.fullmatch(self.bytecode) is None:
            raise ValueError("bytecode is not 0x-prefixed hex")

    def bytecode_bytes(self) -> bytes:
        return bytes.fromhex(self.bytecode[2:])

    def entries(self, kind: Literal["function", "event", "constructor"]) -> list[dict[str, Any]]:
        """The ABI entries of one kind, in ABI order."""
        return [entry for entry in self.abi if entry.get("type") == kind]

    def signatures(self, kind: Literal["function", "event"]) -> frozenset[str]:
        """Canonical signatures such as ``"withdraw(uint256)"`` of all functions or events."""
        return frozenset(abi_signature(entry) for entry in self.entries(kind))


def canonical_type(param: Mapping[str, Any]) -> str:
    """The canonical ABI type of a parameter (tuples spelled out as ``(t1,t2)[]``)."""
    kind = str(param["type"])
    if kind.startswith("tuple"):
        inner = ",".join(canonical_type(component) for component in param["components"])
        return f"({inner}){kind.removeprefix('tuple')}"
    return kind


def abi_signature(entry: Mapping[str, Any]) -> str:
    """``name(type,...)`` of a function or event ABI entry (what selectors hash)."""
    types = ",".join(canonical_type(param) for param in entry.get("inputs", []))
    return f"{entry['name']}({types})"


def _contract_file(name: str, suffix: str) -> Traversable:
    if _NAME.fullmatch(name) is None:
        raise ArtifactError(f"invalid contract name {name!r}")
    return resources.files(_PACKAGE).joinpath("contracts", f"{name}{suffix}")


def load_artifact(name: str) -> ContractArtifact:
    """The shipped artifact of contract ``name`` (e.g. ``"StreamPayment"``)."""
    resource = _contract_file(name, ".json")
    try:
        data = resource.read_bytes()
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise ArtifactError(f"no contract artifact named {name!r}") from exc
    try:
        artifact = msgspec.json.decode(data, type=ContractArtifact)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ArtifactError(f"malformed contract artifact {name!r}: {exc}") from exc
    if artifact.contract_name != name:
        raise ArtifactError(f"artifact {name!r} holds contract {artifact.contract_name!r}")
    return artifact


def load_source(name: str) -> bytes:
    """The shipped Solidity source of contract ``name``, as bytes (what ``sourceSha256`` hashes)."""
    resource = _contract_file(name, ".sol")
    try:
        return resource.read_bytes()
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise ArtifactError(f"no contract source named {name!r}") from exc
