"""How ADVERTISER_TYPE and the Golem Base settings become the advertiser's poster, interval
and faucet (supervisors/advertising.py), and the client's reading of node answers."""

from __future__ import annotations

import msgspec
import pytest
from eth_account import Account

from actors.advertiser import DiscoveryPoster, FanoutPoster, GolemBasePoster
from golem_actor.adapters.golem_base.client import GolemBaseError, _meta
from golem_actor.identity import ProviderKey
from golem_actor.settings import Settings
from golem_actor.signer import Signer
from supervisors.advertising import (
    advert_interval,
    advert_poster,
    golem_base_faucet,
    withdraw_timeout,
)

ACCOUNT = Account.create()
SIGNER = Signer(ProviderKey(address=ACCOUNT.address, private_key=ACCOUNT.key.hex()))


def settings(**changes: object) -> Settings:
    return msgspec.structs.replace(Settings(), **changes)


def test_each_advertiser_type_gets_its_poster() -> None:
    gb, why = advert_poster(settings(), SIGNER)
    assert isinstance(gb, GolemBasePoster)
    assert why == ""
    assert gb.describe() == "golem_base https://ethwarsaw.holesky.golemdb.io/rpc"
    discovery, _ = advert_poster(settings(advertiser_type="discovery_server"), SIGNER)
    assert isinstance(discovery, DiscoveryPoster)
    both, _ = advert_poster(settings(advertiser_type="both"), SIGNER)
    assert isinstance(both, FanoutPoster)
    assert both.describe() == (
        "http://discovery.golem.network:9001 + golem_base https://ethwarsaw.holesky.golemdb.io/rpc"
    )
    none, why = advert_poster(settings(), None)
    assert none is None
    assert why == "no provider key to sign adverts with"


def test_local_payments_keep_off_the_public_market() -> None:
    none, why = advert_poster(settings(payments_network="local"), SIGNER)
    assert none is None
    assert why.startswith("local payments:")
    both, _ = advert_poster(settings(payments_network="local", advertiser_type="both"), SIGNER)
    assert isinstance(both, DiscoveryPoster)
    own, _ = advert_poster(
        settings(payments_network="local", advertiser_type="discovery_server"), SIGNER
    )
    assert isinstance(own, DiscoveryPoster)


def test_intervals_are_upstreams() -> None:
    assert advert_interval(settings()) == 1200  # a third of GOLEM_BASE_ADVERTISEMENT_INTERVAL
    assert advert_interval(settings(advertiser_type="discovery_server")) == 240
    assert advert_interval(settings(advertiser_type="both")) == 240
    assert advert_interval(settings(golem_base_advertisement_interval=6)) == 2
    assert withdraw_timeout(settings(advertiser_type="discovery_server")) == 5
    assert withdraw_timeout(settings()) == 8


def test_the_faucet_is_for_testnets_only() -> None:
    faucet = golem_base_faucet(settings())
    assert faucet is not None
    assert faucet.faucet_url == "https://ethwarsaw.holesky.golemdb.io/faucet"
    assert faucet.captcha_url == "https://cap.gobas.me"
    assert faucet.captcha_api_key == "05381a2cef5e"
    assert golem_base_faucet(settings(network="mainnet")) is None
    assert golem_base_faucet(settings(faucet_url="")) is None


def test_metadata_answers_are_read_or_refused() -> None:
    raw = {
        "owner": "0xab",
        "expiresAtBlock": "0x10",
        "stringAnnotations": [{"key": "golem_type", "value": "provider"}],
        "numericAnnotations": [{"key": "golem_cpu", "value": 4}],
    }
    meta = _meta("0x01", raw)
    assert meta.expires_at_block == 16
    assert dict(meta.annotations.strings) == {"golem_type": "provider"}
    assert dict(meta.annotations.numbers) == {"golem_cpu": 4}
    with pytest.raises(GolemBaseError, match="metadata of 0x01"):
        _meta("0x01", {"owner": "0xab"})
    with pytest.raises(GolemBaseError):
        _meta("0x01", {**raw, "numericAnnotations": [{"key": "n", "value": "many"}]})
