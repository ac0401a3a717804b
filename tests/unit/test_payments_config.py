"""The payments resolver: RPC URL, contract and token addresses, profile and faucet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from golem_actor.adapters.chain.deployments import DeploymentError
from golem_actor.payments_config import (
    DEFAULT_CAPTCHA_API_KEY,
    DEFAULT_CAPTCHA_URL,
    resolve_payments,
)
from golem_actor.settings import ZERO_ADDRESS, Settings

SHIPPED = "0x0281B792b5491E3548c8Fc17C24A2e0Cb99FbeC2"
OURS = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
TOKEN = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"


def _settings(tmp_path: Path, **fields: str) -> Settings:
    return Settings(data_dir=str(tmp_path / "data"), **fields)  # type: ignore[arg-type]


def _write(path: Path, address: str, token: str = ZERO_ADDRESS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"address": address, "oracle": address, "glmToken": token}
    path.write_text(json.dumps({"network": "x", "StreamPayment": entry}))
    return path


def test_defaults_use_the_shipped_deployment_and_the_profile(tmp_path: Path) -> None:
    config = resolve_payments(_settings(tmp_path), env={})
    assert config.enabled
    assert config.stream_payment_address == SHIPPED
    assert config.address_source == "config/deployments/l2.json"
    assert config.token_address == ZERO_ADDRESS
    assert config.native
    assert config.symbol == "ETH"
    assert config.rpc_url == "https://l2.holesky.golemdb.io/rpc"
    assert config.profile is not None
    assert config.faucet is not None
    assert config.faucet.faucet_url == "https://l2.holesky.golemdb.io/faucet"
    assert config.faucet.captcha_url == DEFAULT_CAPTCHA_URL
    assert config.faucet.captcha_api_key == DEFAULT_CAPTCHA_API_KEY


def test_settings_win_over_the_deployment(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path,
        polygon_rpc_url="http://127.0.0.1:8545",
        stream_payment_address=OURS.lower(),
    )
    config = resolve_payments(settings, env={})
    assert config.stream_payment_address == OURS  # checksummed
    assert config.address_source == "settings"
    assert config.rpc_url == "http://127.0.0.1:8545"
    assert config.token_address == ZERO_ADDRESS


def test_token_setting_wins(tmp_path: Path) -> None:
    config = resolve_payments(_settings(tmp_path, glm_token_address=TOKEN.lower()), env={})
    assert config.token_address == TOKEN
    assert not config.native
    assert config.symbol == "GLM"


def test_deployments_dir_env_comes_first(tmp_path: Path) -> None:
    _write(tmp_path / "dir" / "l2.json", OURS, TOKEN)
    _write(tmp_path / "data" / "deployments" / "l2.json", SHIPPED)
    env = {"GOLEM_DEPLOYMENTS_DIR": str(tmp_path / "dir")}
    config = resolve_payments(_settings(tmp_path), env=env)
    assert config.stream_payment_address == OURS
    assert config.token_address == TOKEN  # the token of the contract in use
    assert config.address_source == str(tmp_path / "dir" / "l2.json")


def test_data_dir_deployment(tmp_path: Path) -> None:
    path = _write(tmp_path / "data" / "deployments" / "l2.json", OURS, TOKEN)
    config = resolve_payments(_settings(tmp_path), env={})
    assert config.stream_payment_address == OURS
    assert config.address_source == str(path)


def test_a_deployment_token_of_another_contract_is_not_used(tmp_path: Path) -> None:
    _write(tmp_path / "data" / "deployments" / "l2.json", SHIPPED, TOKEN)
    config = resolve_payments(_settings(tmp_path, stream_payment_address=OURS), env={})
    assert config.stream_payment_address == OURS
    assert config.token_address == ZERO_ADDRESS


def test_same_address_in_settings_takes_the_deployment_token(tmp_path: Path) -> None:
    _write(tmp_path / "data" / "deployments" / "l2.json", OURS, TOKEN)
    config = resolve_payments(_settings(tmp_path, stream_payment_address=OURS), env={})
    assert config.token_address == TOKEN


def test_mainnet_without_deployment_is_disabled_and_has_no_faucet(tmp_path: Path) -> None:
    config = resolve_payments(_settings(tmp_path, payments_network="mainnet"), env={})
    assert not config.enabled
    assert config.stream_payment_address == ZERO_ADDRESS
    assert config.address_source == ""
    assert config.off_reason == "no StreamPayment address for payments network 'mainnet'"
    assert config.rpc_url == ""
    assert config.faucet is None


def test_an_explicit_zero_address_turns_payments_off(tmp_path: Path) -> None:
    # The seed's switch: set explicitly, the zero address wins over every deployment file.
    _write(tmp_path / "data" / "deployments" / "l2.json", OURS, TOKEN)
    env = {"GOLEM_DEPLOYMENTS_DIR": str(_write(tmp_path / "dir" / "l2.json", OURS).parent)}
    for network in ("l2.holesky", "local"):
        settings = _settings(
            tmp_path, payments_network=network, stream_payment_address=ZERO_ADDRESS
        )
        config = resolve_payments(settings, env=env)
        assert not config.enabled, network
        assert config.stream_payment_address == ZERO_ADDRESS
        assert config.address_source == ""
        assert config.token_address == ZERO_ADDRESS  # no deployment's token either
        assert config.off_reason == "STREAM_PAYMENT_ADDRESS is the zero address"
    unset = resolve_payments(_settings(tmp_path), env=env)  # the same files, address unset
    assert (unset.enabled, unset.stream_payment_address, unset.off_reason) == (True, OURS, "")


def test_local_profile(tmp_path: Path) -> None:
    _write(tmp_path / "data" / "deployments" / "local.json", OURS)
    config = resolve_payments(_settings(tmp_path, payments_network="local"), env={})
    assert config.enabled
    assert config.rpc_url == "http://127.0.0.1:8545"
    assert config.faucet is None


def test_unknown_network_has_no_profile(tmp_path: Path) -> None:
    settings = _settings(tmp_path, payments_network="nowhere.test")
    config = resolve_payments(settings, env={})
    assert config.profile is None
    assert config.rpc_url == ""
    assert not config.enabled
    assert config.faucet is None
    assert config.symbol == "ETH"


def test_faucet_overrides_from_env(tmp_path: Path) -> None:
    env = {
        "GOLEM_L2_FAUCET_URL": "http://127.0.0.1:1/faucet",
        "GOLEM_L2_CAPTCHA_URL": "http://127.0.0.1:2",
        "GOLEM_L2_CAPTCHA_API_KEY": "k",
    }
    config = resolve_payments(_settings(tmp_path), env=env)
    assert config.faucet is not None
    assert config.faucet.faucet_url == "http://127.0.0.1:1/faucet"
    assert config.faucet.captcha_url == "http://127.0.0.1:2"
    assert config.faucet.captcha_api_key == "k"
    # The override never enables a faucet the profile does not have.
    mainnet = resolve_payments(_settings(tmp_path, payments_network="mainnet"), env=env)
    assert mainnet.faucet is None


def test_malformed_deployment_raises(tmp_path: Path) -> None:
    path = tmp_path / "data" / "deployments" / "l2.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(DeploymentError, match="malformed"):
        resolve_payments(_settings(tmp_path), env={})
