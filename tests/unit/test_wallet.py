"""The wallet on a chain that cannot be reached (127.0.0.1:9, nothing listens): its calls
are answered later, from work, with a refusal or a failed outcome, and it keeps running.
The happy path on a real chain is in tests/e2e/chain/test_payments_node.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from payments_fakes import hosted

from actors.wallet import GetWalletInfo, Wallet, WalletUnavailable, Withdraw
from golem_actor.domain.streams import ZERO_ADDRESS


async def test_an_unreachable_chain_is_refused_and_the_wallet_keeps_running(
    tmp_path: Path,
) -> None:
    wallet = Wallet(
        key_dir=tmp_path, rpc_url="http://127.0.0.1:9/", contract=ZERO_ADDRESS, max_fee_cap_wei=1
    )
    async with hosted(wallet, "wallet") as address:
        with trio.fail_after(30):
            with pytest.raises(WalletUnavailable, match="cannot read the wallet's balance"):
                await address.call(GetWalletInfo())
            outcome = await address.call(Withdraw(stream_id=3, withdrawable_wei=10**18, min_wei=1))
            with pytest.raises(WalletUnavailable):  # still running, still answering
                await address.call(GetWalletInfo())
    assert outcome.stream_id == 3
    assert not outcome.withdrawn
    assert outcome.detail.startswith("failed: ")
    assert "127.0.0.1:9" in outcome.detail
