"""The port verifier's rechecks in virtual time: one at a time, the old result answering
meanwhile, replaced when the recheck reports back, and a broken check crashes the actor.

No port-check servers (verification off) and no TCP connects (`accepts` is scripted), so
nothing but the backend probe, which the test holds open, takes any time.
"""

from __future__ import annotations

import socket

import pytest
import trio
from lifecycle_harness import port_block
from payments_fakes import hosted

from actors.port_verifier import (
    GetUsablePorts,
    GetVerification,
    PortsInUse,
    PortVerifier,
    Recheck,
    VerifierConfig,
    checks,
)
from golem_actor.domain.port_verdict import BackendCheck, MultipassCheck

INTERVAL = 10.0


class HeldProbe:
    """A backend probe: the first call answers at once, later ones wait for `release`."""

    def __init__(self, *, broken: bool = False) -> None:
        self.calls = 0
        self.release = trio.Event()
        self.broken = broken

    async def __call__(self) -> tuple[MultipassCheck | None, BackendCheck | None]:
        self.calls += 1
        if self.calls > 1:
            if self.broken:
                raise RuntimeError("the probe broke")
            await self.release.wait()
        return None, None


async def no_listener(host: str, port: int, *, within: float = 2.0) -> bool:
    return False


def verifier(ssh: range, probe: HeldProbe) -> PortVerifier:
    config = VerifierConfig(
        provider_host="127.0.0.1",
        provider_port=ssh.start - 1,
        ssh_host="127.0.0.1",
        ssh_ports=ssh,
        servers=(),
        quorum=1,
        per_server_timeout=5,
        public_ip=None,
        skip=True,
    )
    return PortVerifier(config, interval=INTERVAL, backend_probe=probe)


async def test_a_recheck_while_one_runs_starts_no_second_one(
    autojump_clock: trio.abc.Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checks, "accepts", no_listener)
    ports = port_block(5)
    ssh = ports[1:]
    probe = HeldProbe()
    async with hosted(verifier(ssh, probe), "port_verifier") as address:
        assert probe.calls == 1  # the first verification ran before readiness
        first = await address.call(GetVerification())
        assert first.report.ports.ssh.in_use == 0
        held = frozenset({ssh[0]})
        await address.cast(PortsInUse(running=held, reserved=held))
        await trio.sleep(INTERVAL + 1)
        assert probe.calls == 2  # the timer's recheck runs, held by the probe
        await address.cast(Recheck())
        await trio.sleep(5 * INTERVAL)
        assert probe.calls == 2  # neither the ticks nor the cast started a second one
        with trio.fail_after(0.1):
            assert await address.call(GetVerification()) is first  # answered at once
        probe.release.set()
        await trio.sleep(1)
        second = await address.call(GetVerification())
        assert second.report.ports.ssh.in_use == 1  # the recheck saw the port in use
        assert second.report.ports.ssh.issues.not_listening == 1  # no proxy accepts on it
        await trio.sleep(INTERVAL)
        assert probe.calls == 3  # the next tick rechecks again


async def test_a_broken_recheck_crashes_the_verifier(
    autojump_clock: trio.abc.Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checks, "accepts", no_listener)
    probe = HeldProbe(broken=True)
    with pytest.raises(ExceptionGroup) as crashed:
        async with hosted(verifier(port_block(5)[1:], probe), "port_verifier"):
            await trio.sleep(INTERVAL + 1)
    assert crashed.group_contains(RuntimeError, match="the probe broke")


async def test_while_a_recheck_runs_the_ports_it_may_hold_are_reported_held(
    autojump_clock: trio.abc.Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A recheck holds free SSH ports open with its own listeners; a VM created meanwhile
    must still get one (vm_lifecycle skips its bindability probe for held ports)."""
    monkeypatch.setattr(checks, "accepts", no_listener)
    ports = port_block(5)
    ssh = ports[1:]
    probe = HeldProbe()
    async with hosted(verifier(ssh, probe), "port_verifier") as address:
        assert (await address.call(GetUsablePorts())).held == frozenset()
        running = frozenset({ssh[0]})
        await address.cast(PortsInUse(running=running, reserved=running))
        await trio.sleep(INTERVAL + 1)
        assert probe.calls == 2  # a recheck runs now
        during = await address.call(GetUsablePorts())
        assert during.held == frozenset(ssh) - running  # never a port a proxy listens on
        probe.release.set()
        await trio.sleep(1)
        assert (await address.call(GetUsablePorts())).held == frozenset()


async def test_a_port_in_use_during_a_recheck_is_usable_again_once_its_vm_is_gone(
    autojump_clock: trio.abc.Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A recheck cannot bind a port a VM's proxy listens on, so it learns nothing new of
    it: the port keeps what was known, and a deleted VM's port is offered again at once,
    not after the next recheck (with as many ports as VMs, creates would fail till then)."""
    monkeypatch.setattr(checks, "accepts", no_listener)
    ports = port_block(4)
    ssh = ports[1:]
    probe = HeldProbe()
    async with hosted(verifier(ssh, probe), "port_verifier") as address:
        assert set((await address.call(GetUsablePorts())).ports) == set(ssh)
        with socket.socket() as proxy:  # the VM's proxy, listening during the recheck
            proxy.bind(("127.0.0.1", ssh[0]))
            proxy.listen()
            await address.cast(PortsInUse(running=frozenset(), reserved=frozenset({ssh[0]})))
            await trio.sleep(INTERVAL + 1)
            assert probe.calls == 2
            probe.release.set()
            await trio.sleep(1)
        await address.cast(PortsInUse(running=frozenset(), reserved=frozenset()))  # deleted
        assert set((await address.call(GetUsablePorts())).ports) == set(ssh)
