"""The wallet actor: the provider's key, its nonce, and every chain transaction."""

from .actor import Wallet
from .messages import (
    GetWalletInfo,
    WalletInfo,
    WalletMsg,
    WalletUnavailable,
    Withdraw,
    WithdrawOutcome,
)

__all__ = [
    "GetWalletInfo",
    "Wallet",
    "WalletInfo",
    "WalletMsg",
    "WalletUnavailable",
    "Withdraw",
    "WithdrawOutcome",
]
