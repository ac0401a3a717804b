"""Run inside a network namespace with only a loopback (see test_debian_guest.py): start a
node whose image cache is empty, ask it for a ``debian-12`` VM, and print as JSON what the
requestor sees (the create's answer, the VM's final status, how long it took) and the
node's image-build log events. Not a test module: the test runs it under ``unshare``."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import httpx
import trio
from node_helpers import NodeProcess, free_block, free_port


async def main(work: Path, public_key: str) -> None:
    cache = work / "cache"
    cache.mkdir(parents=True)
    node = NodeProcess(data=work / "node", port=free_port(), ports=free_block(4), guest_cache=cache)
    await node.start()
    try:
        async with httpx.AsyncClient(timeout=60) as client:
            started = time.monotonic()
            created = await client.post(
                f"{node.url}/vms?async=true",
                json={
                    "name": "offline",
                    "image": "debian-12",
                    "resources": {"cpu": 1, "memory": 1, "storage": 10},
                    "ssh_key": public_key,
                },
            )
            vm: dict[str, object] = {}
            if created.status_code == 202:
                vm_id = created.json()["vm_id"]
                with trio.move_on_after(240):
                    while True:
                        reply = await client.get(f"{node.url}/vms/{vm_id}", headers=node.operator)
                        vm = reply.json()
                        if vm.get("status") != "creating":
                            break
                        await trio.sleep(0.5)
            seconds = time.monotonic() - started
    finally:
        await node.stop()
    lines = (node.data / "logs" / "provider.log").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    builds = [e for e in events if str(e.get("event", "")).startswith("image_build")]
    print(
        json.dumps(
            {
                "create_status": created.status_code,
                "create": created.json(),
                "vm": vm,
                "seconds": seconds,
                "build_events": builds,
            }
        )
    )


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]), sys.argv[2])
