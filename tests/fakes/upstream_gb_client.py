"""Run with golem-base-sdk's venv (.tools/golem-base-sdk): Golem Base's own Python client
against an endpoint, as the upstream requestor and provider use it. Prints one JSON object.

Usage: python upstream_gb_client.py RPC_URL WS_URL PRIVATE_KEY_HEX QUERY

1. `GolemBaseClient.create` (opens the WebSocket too), then what the requestor's discovery
   does: `query_entities(QUERY)` and `get_entity_metadata` of each hit -> "found";
2. a write of each kind through the SDK's own encoding and signing: create, update,
   extend, delete of an entity of its own -> "created", "updated", "extended", "deleted".
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from golem_base_sdk import GolemBaseClient
from golem_base_sdk.types import (
    Annotation,
    EntityKey,
    GenericBytes,
    GolemBaseCreate,
    GolemBaseDelete,
    GolemBaseExtend,
    GolemBaseUpdate,
)


async def main(rpc_url: str, ws_url: str, key: str, query: str) -> dict[str, Any]:
    client = await GolemBaseClient.create(rpc_url, ws_url, bytes.fromhex(key))
    try:
        found = []
        for result in await client.query_entities(query):
            # As the requestor does: the query gives the key as a hex string.
            entity_key = EntityKey(GenericBytes.from_hex_string(str(result.entity_key)))
            meta = await client.get_entity_metadata(entity_key)
            annotations: dict[str, Any] = {a.key: a.value for a in meta.string_annotations}
            annotations.update({a.key: a.value for a in meta.numeric_annotations})
            found.append(
                {
                    "key": entity_key.as_hex_string(),
                    "owner": meta.owner.as_hex_string(),
                    "expires_at_block": meta.expires_at_block,
                    "annotations": annotations,
                }
            )
        (created,) = await client.create_entities(
            [
                GolemBaseCreate(
                    data=b"sdk",
                    btl=50,
                    string_annotations=[Annotation("golem_type", "sdk")],
                    numeric_annotations=[Annotation("n", 3)],
                )
            ]
        )
        key_ = created.entity_key
        (updated,) = await client.update_entities(
            [GolemBaseUpdate(key_, b"sdk2", 60, [Annotation("golem_type", "sdk2")], [])]
        )
        (extended,) = await client.extend_entities([GolemBaseExtend(key_, 7)])
        (deleted,) = await client.delete_entities([GolemBaseDelete(key_)])
        return {
            "found": found,
            "created": [key_.as_hex_string(), created.expiration_block],
            "updated": updated.expiration_block,
            "extended": [extended.old_expiration_block, extended.new_expiration_block],
            "deleted": deleted.as_hex_string(),
        }
    finally:
        await client.disconnect()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(*sys.argv[1:5]))))
