"""Drives the Net API with ya-aioclient's generated `ya_net` client, as yapapi and
golem-core do. It runs in its own venv (.ci/install-net-client.sh: ya-aioclient pins an
old certifi), so the trio tests talk to it over pipes, one JSON object a line:

  in:  {"base": url, "token": str | null, "op": name, "args": {...}}
  out: {"ok": reply} | {"status": http status, "body": text} | {"exception": repr}
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from ya_net import ApiClient, Configuration, RequestorApi, models
from ya_net.exceptions import ApiException


def plain(value: Any) -> Any:
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value.to_dict() if hasattr(value, "to_dict") else value


async def run(api: RequestorApi, op: str, args: dict[str, Any]) -> Any:
    net = args.get("network_id")
    if op == "create_network":
        return await api.create_network(models.Network(**args))
    if op == "get_networks":
        return await api.get_networks()
    if op == "get_network":
        return await api.get_network(net)
    if op == "remove_network":
        return await api.remove_network(net)
    if op == "get_addresses":
        return await api.get_addresses(net)
    if op == "add_address":
        return await api.add_address(net, models.Address(ip=args["ip"]))
    if op == "get_nodes":
        return await api.get_nodes(net)
    if op == "add_node":
        return await api.add_node(net, models.Node(id=args["id"], ip=args["ip"]))
    if op == "remove_node":
        return await api.remove_node(net, args["node_id"])
    if op == "get_connections":
        return await api.get_connections(net)
    raise ValueError(f"unknown op {op!r}")


async def main() -> None:
    clients: dict[tuple[str, str | None], ApiClient] = {}
    loop = asyncio.get_running_loop()
    try:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            ask = json.loads(line)
            key = (ask["base"], ask.get("token"))
            if key not in clients:
                config = Configuration(host=key[0])
                config.access_token = key[1]  # None: no Authorization header
                clients[key] = ApiClient(config)
            try:
                answer = {
                    "ok": plain(await run(RequestorApi(clients[key]), ask["op"], ask["args"]))
                }
            except ApiException as error:
                body = error.body.decode() if isinstance(error.body, bytes) else error.body
                answer = {"status": error.status, "body": body}
            except Exception as error:  # reported to the test, which fails on it
                answer = {"exception": repr(error)}
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
    finally:
        for client in clients.values():
            await client.close()


if __name__ == "__main__":
    asyncio.run(main())
