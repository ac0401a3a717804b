"""The shipped StreamPayment artifact: provenance, drift against its source, and its ABI.

The drift tests recompile the shipped sources with the pinned solcjs; without it they fail
and say how to install it (``.ci/install-chain-deps.sh``).
"""

from __future__ import annotations

import hashlib
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from eth_utils.crypto import keccak

from golem_actor.adapters.chain import compile as chain_compile, tools
from golem_actor.adapters.chain.artifacts import (
    ArtifactError,
    ContractArtifact,
    abi_signature,
    load_artifact,
    load_source,
)

# The upstream StreamPayment interface (reference, section 6.1), signature by signature.
pytestmark = pytest.mark.tools  # solcjs recompiles the contracts

REFERENCE_FUNCTIONS = {
    "oracle()": ("view", ["address"]),
    "nextStreamId()": ("view", ["uint256"]),
    "streams(uint256)": (
        "view",
        [
            "address",
            "address",
            "address",
            "uint128",
            "uint128",
            "uint128",
            "uint256",
            "uint256",
            "bool",
        ],
    ),
    "createStream(address,address,uint256,uint128)": ("payable", ["uint256"]),
    "withdraw(uint256)": ("nonpayable", []),
    "terminate(uint256)": ("nonpayable", []),
    "haltStream(uint256)": ("nonpayable", []),
    "topUp(uint256,uint256)": ("payable", []),
}
# Event signature -> which parameters are indexed.
REFERENCE_EVENTS = {
    "StreamCreated(uint256,address,address,address,uint256,uint256,uint256,uint256)": [
        True,
        True,
        True,
        False,
        False,
        False,
        False,
        False,
    ],
    "Withdraw(uint256,address,uint256)": [True, True, False],
    "Terminated(uint256,uint256,uint256)": [True, False, False],
    "Halted(uint256)": [True],
    "ToppedUp(uint256,uint256,uint128)": [True, False, False],
}
STREAM_FIELDS = [
    "token",
    "sender",
    "recipient",
    "startTime",
    "stopTime",
    "ratePerSecond",
    "deposit",
    "withdrawn",
    "halted",
]
SHIPPED = ("StreamPayment", "TestToken")


def selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def by_signature(artifact: ContractArtifact, kind: str) -> dict[str, dict[str, Any]]:
    return {abi_signature(e): e for e in artifact.abi if e["type"] == kind}


@pytest.fixture(scope="module")
def stream_payment() -> ContractArtifact:
    return load_artifact("StreamPayment")


@pytest.fixture(scope="module")
def solcjs() -> Path:
    try:
        return tools.find_solcjs()
    except tools.ToolNotFoundError as exc:
        pytest.fail(f"{exc}; run .ci/install-chain-deps.sh")


@pytest.fixture(scope="module")
def recompiled(solcjs: Path) -> dict[str, dict[str, Any]]:
    return chain_compile.compile_contracts(SHIPPED, solcjs=solcjs)


# --- provenance and drift -----------------------------------------------------------------


@pytest.mark.parametrize("name", SHIPPED)
def test_artifact_records_the_shipped_source(name: str) -> None:
    artifact = load_artifact(name)
    assert artifact.contract_name == name
    assert artifact.source_sha256 == hashlib.sha256(load_source(name)).hexdigest()
    assert artifact.solc_version.startswith(f"{tools.SOLC_VERSION}+commit.")
    assert len(artifact.bytecode_bytes()) > 100


@pytest.mark.parametrize("name", SHIPPED)
def test_recompiling_the_source_reproduces_the_artifact(
    name: str, recompiled: dict[str, dict[str, Any]]
) -> None:
    shipped = load_artifact(name)
    fresh = recompiled[name]
    hint = "stale artifact: run `python -m golem_actor.adapters.chain.compile`"
    assert fresh["sourceSha256"] == shipped.source_sha256, hint
    assert fresh["abi"] == shipped.abi, hint
    assert fresh["bytecode"] == shipped.bytecode, hint
    assert fresh["solcVersion"] == shipped.solc_version, hint


@pytest.mark.parametrize("name", SHIPPED)
def test_artifact_file_is_exactly_what_the_compiler_writes(
    name: str, recompiled: dict[str, dict[str, Any]]
) -> None:
    path = chain_compile.contracts_dir() / f"{name}.json"
    assert path.read_text(encoding="utf-8") == chain_compile.render_artifact(recompiled[name])


def test_an_edited_source_no_longer_matches(tmp_path: Path, solcjs: Path) -> None:
    source = load_source("StreamPayment") + b"\n// an innocent-looking edit\n"
    (tmp_path / "StreamPayment.sol").write_bytes(source)
    edited = chain_compile.compile_contracts(["StreamPayment"], source_dir=tmp_path, solcjs=solcjs)
    shipped = load_artifact("StreamPayment")
    assert edited["StreamPayment"]["sourceSha256"] != shipped.source_sha256
    assert edited["StreamPayment"]["bytecode"] != shipped.bytecode


def test_compile_check_passes_on_the_shipped_tree(solcjs: Path) -> None:
    assert chain_compile.main(["--check", "--solcjs", str(solcjs)]) == 0


# --- the ABI is the reference's -----------------------------------------------------------


def test_selectors_match_the_reference(stream_payment: ContractArtifact) -> None:
    assert {selector(s) for s in stream_payment.signatures("function")} == {
        selector(s) for s in REFERENCE_FUNCTIONS
    }
    assert {keccak(text=s) for s in stream_payment.signatures("event")} == {
        keccak(text=s) for s in REFERENCE_EVENTS
    }


def test_functions_match_the_reference(stream_payment: ContractArtifact) -> None:
    functions = by_signature(stream_payment, "function")
    assert set(functions) == set(REFERENCE_FUNCTIONS)
    for signature, (mutability, outputs) in REFERENCE_FUNCTIONS.items():
        entry = functions[signature]
        assert entry["stateMutability"] == mutability, signature
        assert [o["type"] for o in entry["outputs"]] == outputs, signature
    streams_outputs = functions["streams(uint256)"]["outputs"]
    assert [o["name"] for o in streams_outputs] == STREAM_FIELDS
    (constructor,) = stream_payment.entries("constructor")
    assert [(p["name"], p["type"]) for p in constructor["inputs"]] == [("_oracle", "address")]
    create = functions["createStream(address,address,uint256,uint128)"]
    assert [p["name"] for p in create["inputs"]] == [
        "token",
        "recipient",
        "deposit",
        "ratePerSecond",
    ]


def test_events_match_the_reference(stream_payment: ContractArtifact) -> None:
    events = by_signature(stream_payment, "event")
    assert set(events) == set(REFERENCE_EVENTS)
    for signature, indexed in REFERENCE_EVENTS.items():
        entry = events[signature]
        assert [p["indexed"] for p in entry["inputs"]] == indexed, signature
        assert entry["anonymous"] is False
    assert [p["name"] for p in events["Terminated(uint256,uint256,uint256)"]["inputs"]] == [
        "streamId",
        "senderRefund",
        "recipientPayout",
    ]


def test_abi_has_no_extra_entries(stream_payment: ContractArtifact) -> None:
    kinds = sorted(e["type"] for e in stream_payment.abi)
    assert kinds == sorted(["constructor"] + ["function"] * 8 + ["event"] * 5)


# --- loader -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Nope", "../StreamPayment", "", "StreamPayment.json"])
def test_unknown_artifact_is_an_artifact_error(name: str) -> None:
    with pytest.raises(ArtifactError):
        load_artifact(name)


# --- tools --------------------------------------------------------------------------------


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_find_tool_prefers_the_environment(tmp_path: Path) -> None:
    override = _executable(tmp_path / "custom" / "my-anvil")
    _executable(tools.node_bin_dir(tmp_path) / "anvil")
    env = {"GOLEM_ANVIL_BIN": str(override), "PATH": ""}
    assert tools.find_tool("anvil", env=env, root=tmp_path) == override


def test_find_tool_rejects_a_bad_override(tmp_path: Path) -> None:
    env = {"GOLEM_SOLCJS_BIN": str(tmp_path / "missing"), "PATH": ""}
    with pytest.raises(tools.ToolNotFoundError, match="GOLEM_SOLCJS_BIN"):
        tools.find_tool("solcjs", env=env, root=tmp_path)


def test_find_tool_then_repo_then_path(tmp_path: Path) -> None:
    on_path = _executable(tmp_path / "bin" / "solcjs")
    env = {"PATH": str(on_path.parent)}
    assert tools.find_tool("solcjs", env=env, root=tmp_path / "repo") == on_path
    local = _executable(tools.node_bin_dir(tmp_path / "repo") / "solcjs")
    assert tools.find_tool("solcjs", env=env, root=tmp_path / "repo") == local
    with pytest.raises(tools.ToolNotFoundError, match="install-chain-deps"):
        tools.find_tool("anvil", env={"PATH": str(tmp_path / "empty")}, root=tmp_path / "repo")


def test_find_anvil_skips_the_node_wrapper(tmp_path: Path) -> None:
    bin_dir = tools.node_bin_dir(tmp_path)
    wrapper = _executable(bin_dir / "anvil")
    env = {"PATH": ""}
    assert tools.find_tool("anvil", env=env, root=tmp_path) == wrapper
    native = _executable(bin_dir.parent / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil")
    assert tools.find_tool("anvil", env=env, root=tmp_path) == native


def test_install_script_pins_the_same_versions() -> None:
    script = (tools.repo_root() / ".ci" / "install-chain-deps.sh").read_text()
    assert re.search(rf'^ANVIL_VERSION="{re.escape(tools.ANVIL_VERSION)}"$', script, re.M)
    assert re.search(rf'^SOLC_VERSION="{re.escape(tools.SOLC_VERSION)}"$', script, re.M)
