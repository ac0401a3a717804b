"""Deployment files and payments profiles: names, lookup order, format (no chain needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_utils.address import to_checksum_address

from golem_actor.adapters.chain.deployments import (
    DEPLOYMENTS_DIR_ENV,
    DeploymentError,
    deployment_basename,
    find_deployment,
    load_payments_profiles,
    payments_profile,
    read_deployment,
    write_deployment,
)

ZERO = "0x0000000000000000000000000000000000000000"
L2_ADDRESS = "0x0281B792b5491E3548c8Fc17C24A2e0Cb99FbeC2"
L2_ORACLE = "0xDd329f6EDf93637634E8862d34c3909d298A7055"
A = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
B = to_checksum_address("0x70997970c51812dc3a010c7d01b50e0d4dc79c8f")


@pytest.mark.parametrize(
    ("profile", "basename"),
    [("l2", "l2"), ("l2.holesky", "l2"), ("kaolin.holesky", "kaolin"), ("local", "local")],
)
def test_basename(profile: str, basename: str) -> None:
    assert deployment_basename(profile) == basename


def test_the_shipped_l2_deployment() -> None:
    deployment = find_deployment("l2.holesky", data_dir=None, env={})
    assert deployment is not None
    assert (deployment.address, deployment.oracle, deployment.token) == (
        L2_ADDRESS,
        L2_ORACLE,
        ZERO,
    )
    assert deployment.source == "config/deployments/l2.json"
    assert find_deployment("local", data_dir=None, env={}) is None  # nothing shipped for it
    assert find_deployment("mainnet", data_dir=None, env={}) is None


def test_lookup_order(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    override = tmp_path / "override"
    write_deployment(data_dir / "deployments" / "l2.json", A, B)
    found = find_deployment("l2.holesky", data_dir=data_dir, env={})
    assert found is not None
    assert found.address == A  # the data dir beats the shipped file

    write_deployment(override / "l2.json", B, A, network="l2")
    found = find_deployment(
        "l2.holesky", data_dir=data_dir, env={DEPLOYMENTS_DIR_ENV: str(override)}
    )
    assert found is not None
    assert (found.address, found.network) == (B, "l2")  # the environment beats the data dir

    # An override directory without the file falls through to the next place.
    found = find_deployment("l2", data_dir=None, env={DEPLOYMENTS_DIR_ENV: str(tmp_path / "x")})
    assert found is not None
    assert found.address == L2_ADDRESS


def test_write_and_read_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "local.json"
    written = write_deployment(path, A.lower(), B.lower(), timestamp="2025-01-01T00:00:00+00:00")
    document = json.loads(path.read_text())
    assert document == {
        "network": "local",
        "timestamp": "2025-01-01T00:00:00+00:00",
        "StreamPayment": {"address": A, "oracle": B, "glmToken": ZERO},
    }
    assert read_deployment(path) == written
    assert (path.stat().st_mode & 0o777) == 0o644
    with pytest.raises(DeploymentError, match="not an address"):
        write_deployment(path, "0x1234", B)


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        '{"network": "l2"}',
        json.dumps({"StreamPayment": {"address": "0x12", "oracle": B}}),
        json.dumps({"StreamPayment": {"address": A}}),
    ],
)
def test_malformed_files_are_errors(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(DeploymentError, match=r"bad\.json"):
        read_deployment(path)
    with pytest.raises(DeploymentError, match="cannot be read"):
        read_deployment(tmp_path / "missing.json")


def test_payments_profiles() -> None:
    profiles = load_payments_profiles()
    assert set(profiles) >= {"l2.holesky", "mainnet", "local"}
    holesky = payments_profile("l2.holesky")
    assert holesky.rpc_url == "https://l2.holesky.golemdb.io/rpc"
    assert holesky.faucet_enabled
    assert (holesky.token_symbol, holesky.native_symbol) == ("GLM", "ETH")
    mainnet = payments_profile("mainnet")
    assert (mainnet.rpc_url, mainnet.faucet_enabled) == ("", False)
    local = payments_profile("local")
    assert (local.rpc_url, local.faucet_enabled, local.chain_id) == (
        "http://127.0.0.1:8545",
        False,
        31337,
    )
    with pytest.raises(DeploymentError, match="unknown payments profile 'nope'"):
        payments_profile("nope")
