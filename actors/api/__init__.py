"""The api actor: a thin Quart-Trio app on hypercorn, translating HTTP into messages."""

from .actor import ApiActor
from .context import ApiContext
from .limits import ApiLimits
from .schemas import ProviderInfo

__all__ = ["ApiActor", "ApiContext", "ApiLimits", "ProviderInfo"]
