"""The api actor: a thin Quart-Trio app on hypercorn, translating HTTP into messages."""

from .actor import ApiActor, ApiConfig

__all__ = ["ApiActor", "ApiConfig"]
