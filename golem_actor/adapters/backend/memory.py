"""An in-memory `VmBackend` for tests and benchmarks (httpcore ships its mock backend too).

Machines are records in a dict; every one of them "runs sshd" at the one `ssh` endpoint
given at construction (a test's banner server), so the lifecycle's proxy and SSH probe
work for real. Failures are injected per operation with `fail_next`, and `hold` makes
launches wait until released, to test requests that arrive mid-operation.
"""

from __future__ import annotations

import trio

from golem_actor.adapters.backend import (
    BackendError,
    BackendState,
    Endpoint,
    LaunchSpec,
    Observed,
)

__all__ = ["MemoryBackend"]


class MemoryBackend:
    def __init__(self, *, ssh: Endpoint, kind: str = "qemu") -> None:
        self.kind = kind
        self.ssh = ssh
        self.machines: dict[str, Observed] = {}
        self.calls: list[tuple[str, str]] = []
        self.fail_next: dict[str, str] = {}  # operation -> error message, used once
        self.hold: trio.Event | None = None  # launches wait for it when set

    def _check(self, operation: str, vm_id: str) -> None:
        self.calls.append((operation, vm_id))
        message = self.fail_next.pop(operation, None)
        if message is not None:
            raise BackendError(message)

    def _running(self, vm_id: str, spec: LaunchSpec | None = None) -> Observed:
        previous = self.machines.get(vm_id)
        resources = spec.resources if spec else (previous.resources if previous else None)
        observed = Observed(
            vm_id=vm_id,
            state=BackendState.RUNNING,
            ssh=self.ssh,
            ip_address="10.0.2.15",
            resources=resources,
        )
        self.machines[vm_id] = observed
        return observed

    async def launch(self, spec: LaunchSpec) -> Observed:
        if self.hold is not None:
            await self.hold.wait()
        await trio.lowlevel.checkpoint()
        self._check("launch", spec.vm_id)
        return self._running(spec.vm_id, spec)

    async def start(self, vm_id: str) -> Observed:
        await trio.lowlevel.checkpoint()
        self._check("start", vm_id)
        if vm_id not in self.machines:
            raise BackendError(f"no VM {vm_id}")
        return self._running(vm_id)

    async def stop(self, vm_id: str) -> None:
        await trio.lowlevel.checkpoint()
        self._check("stop", vm_id)
        if vm_id in self.machines:
            self.power_off(vm_id)

    async def delete(self, vm_id: str) -> None:
        await trio.lowlevel.checkpoint()
        self._check("delete", vm_id)
        self.machines.pop(vm_id, None)

    async def inspect(self, vm_id: str) -> Observed:
        await trio.lowlevel.checkpoint()
        return self.machines.get(vm_id) or Observed(vm_id=vm_id, state=BackendState.MISSING)

    async def list_owned(self) -> list[Observed]:
        await trio.lowlevel.checkpoint()
        return list(self.machines.values())

    async def set_vpn_link(self, vm_id: str, *, up: bool) -> None:
        await trio.lowlevel.checkpoint()
        self._check("vpn_link_up" if up else "vpn_link_down", vm_id)
        if vm_id not in self.machines:
            raise BackendError(f"no VM {vm_id}")

    def power_off(self, vm_id: str) -> None:
        """What a guest's own `poweroff` looks like from outside."""
        machine = self.machines[vm_id]
        self.machines[vm_id] = Observed(
            vm_id=vm_id, state=BackendState.STOPPED, resources=machine.resources
        )
