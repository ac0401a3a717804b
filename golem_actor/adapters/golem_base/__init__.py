"""Golem Base (the market's decentralised advert store): its wire format and a client."""

from .client import EntityMeta, GolemBaseClient, GolemBaseError, Write
from .storage import (
    STORAGE_ADDRESS,
    Annotations,
    Create,
    Extend,
    StorageTx,
    Update,
    decode_storage_tx,
    encode_storage_tx,
    entity_key,
)

__all__ = [
    "STORAGE_ADDRESS",
    "Annotations",
    "Create",
    "EntityMeta",
    "Extend",
    "GolemBaseClient",
    "GolemBaseError",
    "StorageTx",
    "Update",
    "Write",
    "decode_storage_tx",
    "encode_storage_tx",
    "entity_key",
]
