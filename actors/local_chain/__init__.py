"""The local_chain actor: an anvil chain on 127.0.0.1 for the `local` payments profile."""

from .actor import LOCAL_STREAM_PAYMENT, LocalChain

__all__ = ["LOCAL_STREAM_PAYMENT", "LocalChain"]
