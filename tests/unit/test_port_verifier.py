"""Port verification against two port-check servers of ours on loopback addresses.

A "firewall" is a probe that reports chosen ports unreachable before probing for real;
everything else goes over real sockets on 127.0.0.0/8.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import pytest
import trio
from lifecycle_harness import port_block

from actors.port_verifier import (
    GetUsablePorts,
    GetVerification,
    PortsInUse,
    PortVerifier,
    Recheck,
    VerifierConfig,
)
from actors.vm_lifecycle import CreateVm
from golem_actor.domain.resources import Resources
from golem_actor.domain.tenancy import Caller
from golem_actor.kernel import ChildSpec, Inbox, Supervisor
from golem_actor.portcheck import ProbeResult, ServerConfig, create_app, serve_app, tcp_probe
from golem_actor.status_render import render_tty

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIRs0B8Yy4n9XlG3I1X3m2zSNQ3xk9lfP6DW3lS7x7zs t"


def firewall(blocked: Iterable[int]):  # type: ignore[no-untyped-def]
    closed = frozenset(blocked)

    async def probe(host: str, port: int, connect_timeout: float) -> ProbeResult:
        if port in closed:
            return ProbeResult(accessible=False, error="Connection timed out")
        return await tcp_probe(host, port, connect_timeout)

    return probe


@asynccontextmanager
async def checkers(
    *blocked: Iterable[int], hosts: tuple[str, ...] = ("127.0.0.1", "127.0.0.2")
) -> AsyncIterator[list[str]]:
    async with trio.open_nursery() as nursery:
        urls = []
        for host, closed in zip(hosts, blocked, strict=True):
            app = create_app(ServerConfig(host=host, port=0), probe=firewall(closed))
            bound = await nursery.start(partial(serve_app, app, host, 0))
            urls.append(bound[0])
        yield urls
        nursery.cancel_scope.cancel()


def config(servers: list[str], ports: range, *, quorum: int = 1) -> VerifierConfig:
    return VerifierConfig(
        provider_host="127.0.0.1",
        provider_port=ports.start - 1,
        ssh_host="127.0.0.1",
        ssh_ports=ports,
        servers=tuple(servers),
        quorum=quorum,
        per_server_timeout=5,
        public_ip=None,
        skip=False,
    )


@asynccontextmanager
async def running(cfg: VerifierConfig) -> AsyncIterator[Supervisor]:
    sup = Supervisor("t", [ChildSpec("port_verifier", lambda: PortVerifier(cfg, interval=3600))])
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run, Inbox("t"))
        yield sup
        sup.request_stop()


async def report_for(servers: list[str], ports: range, *, quorum: int = 1):  # type: ignore[no-untyped-def]
    async with running(config(servers, ports, quorum=quorum)) as sup:
        return await sup.child_address("port_verifier").call(GetVerification())


async def test_everything_reachable_is_healthy() -> None:
    ports = port_block(8)
    async with checkers((), ()) as urls:
        result = await report_for(urls, ports[1:])
    report = result.report
    assert report.overall.status == "healthy", report
    assert report.ports.ssh.status == "ok"
    assert report.ports.ssh.usable_free == 7
    assert result.verified
    assert result.usable == frozenset(ports[1:])
    assert "Overall         Healthy" in render_tty(report)


async def test_unreachable_and_silent_ports_in_use_make_it_limited() -> None:
    ports = port_block(8)
    ssh = ports[1:]
    serving, silent, blocked_free = ssh[0], ssh[1], ssh[2]
    blocked = {serving, blocked_free}
    async with checkers(blocked, blocked) as urls, running(config(urls, ssh)) as sup:
        verifier = sup.child_address("port_verifier")
        # A proxy listens on `serving` (the checkers cannot reach it); `silent` is held
        # by a VM whose proxy is down.
        with trio.socket.socket() as proxy, trio.socket.socket() as api:
            await proxy.bind(("127.0.0.1", serving))
            proxy.listen()
            await api.bind(("127.0.0.1", ports.start))  # the API, running by now
            api.listen()
            in_use = frozenset({serving, silent})
            await verifier.cast(PortsInUse(running=in_use, reserved=in_use))
            await verifier.cast(Recheck())
            result = await verifier.call(GetVerification())
            with trio.fail_after(10):
                for _ in range(1000):  # poll the actor until its recheck landed
                    if result.report.ports.ssh.in_use == 2:
                        break
                    await trio.sleep(0.05)
                    result = await verifier.call(GetVerification())
    report = result.report
    assert report.ports.ssh.status == "limited"
    assert (report.ports.ssh.issues.unreachable, report.ports.ssh.issues.not_listening) == (1, 1)
    assert report.overall.status == "issues"
    assert set(report.overall.issues) == {
        "1 SSH port(s) unreachable externally",
        "1 SSH port(s) not listening",
    }
    assert report.ports.ssh.usable_free == 4  # 7 - 2 in use - 1 blocked
    assert "SSH Ports       " in render_tty(report)
    assert "limited — 2 issue(s)" in render_tty(report)
    # `silent` keeps the verdict of the first check (reachable, before its VM held it):
    # this one could not test it; `serving` was never reachable.
    assert result.usable == frozenset(ssh) - {serving, blocked_free}


async def test_all_servers_down_is_an_error_and_falls_back_to_free_ports() -> None:
    ports = port_block(8)
    dead = [f"http://127.0.0.1:{ports.start}", f"http://127.0.0.2:{ports.start}"]
    result = await report_for(dead, ports[1:])
    assert result.report.overall.status == "error"
    assert result.report.ports.ssh.status == "blocked"
    assert "No externally reachable SSH ports" in result.report.overall.issues
    assert not result.verified
    assert result.answered == 0
    assert result.usable == frozenset(ports[1:])  # unverified fallback, said loudly


@pytest.mark.parametrize(("quorum", "reachable"), [(1, True), (2, False)])
async def test_disagreeing_servers_are_settled_by_the_quorum(quorum: int, reachable: bool) -> None:
    ports = port_block(8)
    ssh = ports[1:]
    disputed = ssh[0]
    async with checkers({disputed}, ()) as urls:  # one says blocked, the other reachable
        result = await report_for(urls, ssh, quorum=quorum)
    assert (disputed in result.usable) is reachable
    verdict = {p.port: p.status for p in result.report.ports.ssh.ports}[disputed]
    assert verdict == ("reachable" if reachable else "unreachable")


async def test_a_vm_created_while_some_ports_are_unverified_gets_a_verified_port(
    tmp_path: Path,
) -> None:
    from lifecycle_harness import fake_sshd, node_parts, node_settings, running_tree  # noqa: PLC0415

    from golem_actor.adapters.backend import Endpoint  # noqa: PLC0415
    from golem_actor.adapters.backend.memory import MemoryBackend  # noqa: PLC0415

    ports = port_block(8)
    ssh = ports[1:]
    blocked = {ssh[0], ssh[1], ssh[2]}
    async with checkers(blocked, blocked) as urls, trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, fake_sshd, 0, host="127.0.0.1"))
        backend = MemoryBackend(ssh=Endpoint("127.0.0.1", listeners[0].socket.getsockname()[1]))
        settings = node_settings(
            tmp_path,
            ssh,
            port=ports.start,  # the API, on a port the checkers can reach
            port_check_servers=urls,
            skip_port_verification=False,
            port_check_timeout_seconds=5.0,
        )
        async with running_tree(node_parts(settings, backend)) as tree:
            usable = await tree.port_verifier.call(GetUsablePorts())
            assert usable.verified
            assert usable.ports == tuple(ssh[3:])
            view = await tree.lifecycle.call(
                CreateVm(
                    caller=Caller(),
                    name="web",
                    resources=Resources.from_gb(cpus=1, memory_gb=1, storage_gb=10),
                    image="test-guest",
                    authorized_keys=(KEY,),
                )
            )
            assert view.ssh_port == ssh[3]  # the lowest *verified* port, not the lowest free one
        nursery.cancel_scope.cancel()
