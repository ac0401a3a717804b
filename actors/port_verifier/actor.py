"""`PortVerifier`: which ports the world can reach, verified at start and then periodically.

The first verification runs before the actor reports ready (bounded by the port-check
servers' time limit), so VMs created after start get verified ports; later ones (a timer's
`Recheck`, or one cast by anyone) run as work that reports back `Checked`, which replaces
the result, so queries answer at once. One recheck at a time: a `Recheck` while one runs
is dropped. A verification that fails with an exception crashes the actor (its
supervisor restarts it, and the restart verifies again).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import structlog

from golem_actor.domain.port_verdict import BackendCheck, MultipassCheck
from golem_actor.kernel import Actor

from .checks import Verification, VerifierConfig, verify
from .messages import (
    Checked,
    GetUsablePorts,
    GetVerification,
    PortsInUse,
    PortVerifierMsg,
    Recheck,
    UsablePorts,
)

log = structlog.get_logger("golem_actor.port_verifier")

BackendProbe = Callable[[], Awaitable[tuple[MultipassCheck | None, BackendCheck | None]]]


RECHECK = "recheck"  # the key of the running recheck


class PortVerifier(Actor[PortVerifierMsg]):
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

    async def on_start(self) -> None:
        self._verification = await self._verify(
            in_use=self._running, api_running=False, known_usable=frozenset()
        )
        self.every(self._interval, Recheck())

    async def _verify(
        self, *, in_use: frozenset[int], api_running: bool, known_usable: frozenset[int]
    ) -> Verification:
        multipass, backend = (None, None)
        if self._backend_probe is not None:
            multipass, backend = await self._backend_probe()
        result = await verify(
            self._config,
            in_use=in_use,
            api_running=api_running,
            multipass=multipass,
            backend=backend,
            progress=lambda text: log.info("port verification", progress=text),
            known_usable=known_usable,
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

    async def handle_cast(self, message: PortVerifierMsg) -> None:
        match message:
            case PortsInUse(running=running, reserved=reserved):
                self._running, self._reserved = running, reserved
            case Recheck():
                if self.work_for(RECHECK) is None:  # one at a time; a slow one skips ticks
                    assert self._verification is not None
                    check = partial(
                        self._verify,
                        in_use=self._running,
                        api_running=True,
                        known_usable=self._verification.usable & self._reserved,
                    )
                    self.start_work(check, then=Checked, key=RECHECK)
            case Checked(verification=verification):
                self._verification = verification
            case _:
                await super().handle_cast(message)

    async def handle_call(self, request: PortVerifierMsg) -> Any:
        match request:
            case GetUsablePorts():
                assert self._verification is not None
                free = sorted(self._verification.usable - self._reserved)
                held = frozenset[int]()
                if self.work_for(RECHECK) is not None:  # it holds the free ports it checks
                    held = frozenset(self._config.ssh_ports) - self._running
                return UsablePorts(
                    ports=tuple(free), verified=self._verification.verified, held=held
                )
            case GetVerification():
                assert self._verification is not None
                return self._verification
        return await super().handle_call(request)
