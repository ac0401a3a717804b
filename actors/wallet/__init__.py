"""The wallet actor: the provider's key, its nonce, and every chain transaction."""

from .actor import GetWalletInfo, Wallet, WalletInfo, Withdraw, WithdrawOutcome

__all__ = ["GetWalletInfo", "Wallet", "WalletInfo", "Withdraw", "WithdrawOutcome"]
