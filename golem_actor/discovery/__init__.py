"""The discovery service shipped with the node: where requestors find providers' adverts.

Why a service of our own: the upstream discovery server took any advert from anyone (the
signature header was never checked), answered 500 when rate-limiting, and its adverts
lack the `provider_name` the requestor's table reads. This one keeps upstream's API and
shapes, verifies EIP-191 signatures by the provider's key, stores adverts in SQLite, and
bounds rates and sizes. `signing` also holds the provider's side (`sign`, `sign_delete`).
"""

from __future__ import annotations

from .app import create_app
from .cli import main
from .config import DiscoveryConfig
from .schemas import Advert, AdvertBody, Resources
from .server import Running, run_server
from .signing import delete_message, sign, sign_delete
from .store import AdvertStore, StoreError

__all__ = [
    "Advert",
    "AdvertBody",
    "AdvertStore",
    "DiscoveryConfig",
    "Resources",
    "Running",
    "StoreError",
    "create_app",
    "delete_message",
    "main",
    "run_server",
    "sign",
    "sign_delete",
]
