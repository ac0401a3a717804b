"""Our node as a process of its own, for `bench api --against-upstream`.

Why a process: the side-by-side bench measures both servers the same way from outside
(start-up until the API answers, RSS, CPU time of the server's process), so ours must not
share the bench's interpreter. This is the node's tree (`supervisors.node_tree` of
`_node.memory_parts`) with the multipass backend on the given `multipass` executable
(the bench passes the fake, tests/fakes/fake_multipass.py, the same one the upstream
provider drives), capacity for exactly `vms` VMs of 1 CPU / 1 GB / 10 GB, and the
node's default logs (JSON, info: one line per request) on stdout.

The fake multipass gives its instances addresses on 10.196.0.0/16, which do not route
here; the backend's answers are kept, except that a VM's SSH endpoint is the bench's
banner server on 127.0.0.1 (the lifecycle's SSH probe needs a banner to call a VM
running). Every multipass call still runs.

The load benches (bench/cycles.py, bench/connections.py, bench/soak.py) run it too; the
`connections` bench passes SSHD_PORT, an echo server of its own on 127.0.0.1 standing in
for the guests' sshd (then every VM's SSH endpoint is that server), and MAX_CONNECTIONS,
the SSH connections each VM's relay accepts at once.

Usage: python -m bench._api_server DATA_DIR PORT MULTIPASS VMS [SSHD_PORT [MAX_CONNECTIONS]]
"""

from __future__ import annotations

import sys
from dataclasses import replace
from functools import partial
from pathlib import Path

import msgspec
import trio

from golem_actor.adapters.backend import Endpoint, LaunchSpec, Observed
from golem_actor.adapters.multipass import MultipassBackend
from golem_actor.domain.resources import Resources
from golem_actor.images import load_catalog
from golem_actor.logs import configure_logging
from golem_actor.runtime import run_node
from supervisors import node_tree

from ._node import HOST, _fake_sshd, memory_parts


class LoopbackSsh:
    """A multipass backend whose VMs' SSH endpoint is a local banner server."""

    kind = "multipass"

    def __init__(self, inner: MultipassBackend, sshd: Endpoint) -> None:
        self._inner = inner
        self._sshd = sshd

    def _local(self, seen: Observed) -> Observed:
        return seen if seen.ssh is None else msgspec.structs.replace(seen, ssh=self._sshd)

    async def launch(self, spec: LaunchSpec) -> Observed:
        return self._local(await self._inner.launch(spec))

    async def start(self, vm_id: str) -> Observed:
        return self._local(await self._inner.start(vm_id))

    async def stop(self, vm_id: str) -> None:
        await self._inner.stop(vm_id)

    async def delete(self, vm_id: str) -> None:
        await self._inner.delete(vm_id)

    async def inspect(self, vm_id: str) -> Observed:
        return self._local(await self._inner.inspect(vm_id))

    async def list_owned(self) -> list[Observed]:
        return [self._local(seen) for seen in await self._inner.list_owned()]

    async def set_vpn_link(self, vm_id: str, *, up: bool) -> None:
        await self._inner.set_vpn_link(vm_id, up=up)


async def serve(
    data: Path, port: int, multipass: Path, vms: int, sshd_port: int, max_connections: int
) -> int:
    async with trio.open_nursery() as nursery:
        if sshd_port == 0:
            listeners = await nursery.start(partial(trio.serve_tcp, _fake_sshd, 0, host=HOST))
            sshd_port = listeners[0].socket.getsockname()[1]
        sshd = Endpoint(HOST, sshd_port)
        inner = MultipassBackend(
            binary=multipass,
            instance_prefix="golem-bench-",
            images={
                name: entry.multipass
                for name, entry in load_catalog(None).entries.items()
                if entry.multipass is not None
            },
            cloud_init_dir=data / "cloud-init",
            launch_timeout=30.0,
        )
        parts = memory_parts(LoopbackSsh(inner, sshd), data, vms)
        parts = replace(
            parts,
            settings=msgspec.structs.replace(
                parts.settings, port=port, ssh_max_connections_per_vm=max_connections
            ),
            host_capacity=Resources.from_gb(cpus=vms, memory_gb=vms, storage_gb=10 * vms),
        )
        status = await run_node(node_tree(parts).root)
        nursery.cancel_scope.cancel()
    return status


def main() -> None:
    data, port, multipass, vms = sys.argv[1:5]
    sshd_port = int(sys.argv[5]) if len(sys.argv) > 5 else 0  # 0: a banner server of its own
    max_connections = int(sys.argv[6]) if len(sys.argv) > 6 else 4  # as memory_parts sets
    configure_logging(fmt="json", level="info", stream=sys.stdout)
    args = (Path(data), int(port), Path(multipass), int(vms), sshd_port, max_connections)
    sys.exit(trio.run(serve, *args))


if __name__ == "__main__":
    main()
