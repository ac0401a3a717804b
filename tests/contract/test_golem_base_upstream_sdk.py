"""Golem Base's own client (PyPI golem-base-sdk 0.1.0, in a venv of its own) against our
test double, both on 127.0.0.1: the double is close enough to the real node that the
upstream requestor's discovery reads our node's advert through it (query, then metadata
per hit), and the SDK's own writes (its RLP, its signing, its receipt-log parsing) work.
So the double, and our client that the double accepts, speak Golem Base's wire."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio
from eth_account import Account

from actors.advertiser import GolemBasePoster
from golem_actor.discovery.schemas import AdvertBody, Resources
from golem_actor.identity import ProviderKey
from golem_actor.signer import Signer

sys.path.insert(0, str(Path(__file__).parents[1] / "fakes"))
from golem_base_double import GolemBaseDouble, serving

FAKES = Path(__file__).parents[1] / "fakes"
REPO = Path(__file__).parents[2]
SDK = REPO / ".tools" / "golem-base-sdk" / "bin" / "python"


@pytest.fixture(scope="module")
def sdk_python() -> Path:
    subprocess.run(["bash", str(REPO / ".ci" / "install-golem-base-sdk.sh")], check=True)
    return SDK


async def test_the_upstream_sdk_reads_our_advert_and_writes_through_the_double(
    sdk_python: Path,
) -> None:
    node = Account.create()
    signer = Signer(ProviderKey(address=node.address, private_key=node.key.hex()))
    requestor = Account.create()
    double = GolemBaseDouble(block_time=2.0)
    double.fund(node.address, 10**18)
    double.fund(requestor.address, 10**18)
    async with serving(double) as chain:
        poster = GolemBasePoster(
            rpc_url=chain.rpc_url,
            signer=signer,
            network="testnet",
            payments_network="l2.holesky",
            btl=7200,
            max_fee_cap_wei=10**12,
            faucet=None,
        )
        await poster.publish(
            AdvertBody(
                ip_address="127.0.0.1",
                country="SE",
                resources=Resources(cpu=4, memory=8, storage=100),
                pricing={"glm_per_core_month": 20.0},
                platform="x86_64",
                provider_name="ours",
                timestamp=time.time(),
            )
        )
        query = 'golem_type="provider" && golem_network="testnet" && golem_cpu>=2'
        result = await trio.run_process(
            [
                str(sdk_python),
                str(FAKES / "upstream_gb_client.py"),
                chain.rpc_url,
                chain.ws_url,
                requestor.key.hex().removeprefix("0x"),
                query,
            ],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr.decode()[-3000:]
        answer = json.loads(result.stdout)
    (found,) = answer["found"]
    assert found["owner"].lower() == node.address.lower()
    assert found["annotations"]["golem_provider_id"] == node.address
    assert found["annotations"]["golem_provider_name"] == "ours"
    assert found["annotations"]["golem_cpu"] == 4
    assert found["annotations"]["golem_price_glm_core_month"] == "20.0"
    key, expires = answer["created"]
    assert answer["deleted"] == key
    assert answer["updated"] > expires - 50  # a new lifetime of 60 blocks
    old, new = answer["extended"]
    assert (old, new) == (answer["updated"], answer["updated"] + 7)
    sdk_writes = [w for w in double.writes if w.sender == requestor.address]
    assert [w.tx.describe() for w in sdk_writes] == ["1 create", "1 update", "1 extend", "1 delete"]
    assert key not in double.live()
