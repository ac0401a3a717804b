"""`PortVerifier`: which ports the world can reach, verified at start and then periodically.

The first verification runs before the actor reports ready (bounded by the port-check
servers' time limit), so VMs created after start get verified ports; later ones run in
the actor's nursery and replace the result when they finish, so queries answer at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
import trio

from golem_actor.domain.port_verdict import BackendCheck, MultipassCheck
from golem_actor.kernel import Actor, Call

from .checks import Verification, VerifierConfig, verify
from .messages import Checked, GetUsablePorts, GetVerification, PortsInUse, Recheck, UsablePorts

log = structlog.get_logger("golem_actor.port_verifier")

BackendProbe = Callable[[], Awaitable[tuple[MultipassCheck | None, BackendCheck | None]]]


class PortVerifier(Actor[object]):
    def __init__(
        self, config: VerifierConfig, *, interval: float, backend_probe: BackendProbe | None = None
    ) -> None:
        super().__init__()
        self._config = config
        self._interval = interval
        self._backend_probe = backend_probe
        self._running = frozenset[int]()
        self._reserved = frozenset[int]()
        self._verification: Verification | None = None
        self._checking = False

    async def on_start(self) -> None:
        self._verification = await self._verify(api_running=False)
        self.nursery.start_soon(self._timer)

    async def _verify(self, *, api_running: bool) -> Verification:
        multipass, backend = (None, None)
        if self._backend_probe is not None:
            multipass, backend = await self._backend_probe()
        result = await verify(
            self._config,
            in_use=self._running,
            api_running=api_running,
            multipass=multipass,
            backend=backend,
            progress=lambda text: log.info("port verification", progress=text),
        )
        ssh = result.report.ports.ssh
        log.info(
            "ports verified",
            overall=result.report.overall.status,
            ssh=ssh.status,
            usable=len(result.usable),
            verified=result.verified,
            servers=result.answered,
            issues=list(result.report.overall.issues),
        )
        if not result.verified and not self._config.skip:
            log.warning("no port-check server answered: using unverified, locally free ports")
        return result

    async def _timer(self) -> None:
        while True:
            await trio.sleep(self._interval)
            await self.address.cast(Recheck())

    async def _recheck(self) -> None:
        try:
            await self.address.cast(Checked(await self._verify(api_running=True)))
        finally:
            self._checking = False

    async def handle_cast(self, message: object) -> None:
        match message:
            case PortsInUse(running=running, reserved=reserved):
                self._running, self._reserved = running, reserved
            case Recheck():
                if not self._checking:
                    self._checking = True
                    self.nursery.start_soon(self._recheck)
            case Checked(verification=verification):
                self._verification = verification
            case _:
                await super().handle_cast(message)

    async def handle_call(self, request: Call[Any]) -> Any:
        match request:
            case GetUsablePorts():
                assert self._verification is not None
                free = sorted(self._verification.usable - self._reserved)
                return UsablePorts(ports=tuple(free), verified=self._verification.verified)
            case GetVerification():
                assert self._verification is not None
                return self._verification
        return await super().handle_call(request)
