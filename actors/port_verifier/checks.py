"""One verification of the node's ports: local checks, then external ones.

Locally, the provider port must be listening (or, before the API starts, bindable), a
free SSH port must be bindable, and a port in use by a proxy must accept a connection.
Externally, the configured port-check servers are asked whether each port is reachable;
while they probe, free ports are held open by temporary listeners (a closed port cannot
be told from a blocked one). Their answers are combined by quorum (domain/port_verdict).

Which SSH ports new VMs may use: the free ones the servers verified reachable, and those
of the node's own VMs that an earlier verification found usable (it cannot bind them now
to test them again). When no
server answered at all (an offline or local-only host) the node falls back to the
locally free ports and says so loudly in the status (`Error`); with verification turned
off it uses the locally free ports without asking anyone.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass

import msgspec

from golem_actor.adapters.local_ports import accepts, bindable
from golem_actor.adapters.public_ip import discover_public_ip
from golem_actor.domain.port_verdict import (
    BackendCheck,
    LocalState,
    MultipassCheck,
    ProviderCheck,
    SshCheck,
    StatusReport,
    Verdict,
    build_status,
    combine,
)
from golem_actor.portcheck.client import check_ports

__all__ = ["Verification", "VerifierConfig", "verify"]


@dataclass(frozen=True, kw_only=True)
class VerifierConfig:
    provider_host: str
    provider_port: int
    ssh_host: str  # where the SSH proxies listen
    ssh_ports: range
    servers: tuple[str, ...]
    quorum: int
    per_server_timeout: float
    public_ip: str | None  # sent to the servers when known (upstream servers need it)
    skip: bool  # verification turned off: every locally free port is usable
    public_ip_services: tuple[str, ...] = ()  # asked when public_ip is None


class Verification(msgspec.Struct, frozen=True, kw_only=True):
    report: StatusReport
    usable: frozenset[int]  # SSH ports new VMs may get
    verified: bool  # False: no server answered, or verification is off
    answered: int  # servers that answered


@asynccontextmanager
async def holding_open(host: str, ports: Iterable[int]) -> AsyncIterator[None]:
    """Listen on `ports` (no accepting needed: the kernel completes the handshake)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets = []
    try:
        for port in ports:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
                sock.listen(16)
            except OSError:
                sock.close()
                continue
            sockets.append(sock)
        yield
    finally:
        for sock in sockets:
            with suppress(OSError):
                sock.close()


async def verify(
    config: VerifierConfig,
    *,
    in_use: frozenset[int],
    api_running: bool,
    multipass: MultipassCheck | None = None,
    backend: BackendCheck | None = None,
    progress: Callable[[str], None] = lambda _: None,
    known_usable: frozenset[int] = frozenset(),
) -> Verification:
    """One verification. `known_usable`: ports of the node's own VMs that an earlier one
    found usable; those this one cannot test (a proxy listens on them) stay usable, so a
    VM's port is offered again once the VM is deleted, not only after the next check."""
    provider_free = False
    if api_running:
        listening = await accepts(config.provider_host, config.provider_port)
        local = LocalState.LISTENING if listening else LocalState.UNAVAILABLE
    else:
        provider_free = bindable(config.provider_host, config.provider_port)
        local = LocalState.BINDABLE if provider_free else LocalState.UNAVAILABLE
    free = frozenset(
        p for p in config.ssh_ports if p not in in_use and bindable(config.ssh_host, p)
    )
    proxies_up = frozenset([p for p in sorted(in_use) if await accepts(config.ssh_host, p)])
    progress(
        f"local checks: provider port {local.value}; {len(free)} SSH ports free,"
        f" {len(proxies_up)}/{len(in_use)} in use and listening"
    )
    ports = [config.provider_port, *config.ssh_ports]
    answers: list[dict[int, bool]] = []
    errors: list[str] = []
    public_ip = config.public_ip
    if public_ip is None and config.public_ip_services and config.servers and not config.skip:
        public_ip, failures = await discover_public_ip(config.public_ip_services)
        progress(
            f"public IP {public_ip}"
            if public_ip
            else "public IP unknown (the port-check servers will use this host's source address): "
            + "; ".join(failures)
        )
    if config.servers and not config.skip:
        progress(f"asking {len(config.servers)} port-check server(s) about {len(ports)} ports")
        held = [*free, *([config.provider_port] if provider_free else [])]
        async with holding_open(config.ssh_host, held):
            replies = await check_ports(
                config.servers,
                ports,
                provider_ip=config.public_ip,
                per_server_timeout=config.per_server_timeout,
            )
        answers = [r.reachable() for r in replies if r.answered]
        errors = [f"{r.server}: {r.error}" for r in replies if not r.answered]
        progress(f"{len(answers)}/{len(config.servers)} server(s) answered")
    if config.skip:
        errors = ["port verification is turned off"]
    elif not config.servers:
        errors = ["no port-check servers configured"]
    verdicts = combine(ports, answers, quorum=config.quorum)
    report = build_status(
        ProviderCheck(
            port=config.provider_port,
            host=config.provider_host,
            local=local,
            external=verdicts[config.provider_port],
            external_error="; ".join(errors) or None,
        ),
        SshCheck(
            start=config.ssh_ports.start,
            end=config.ssh_ports.stop,
            verdicts={p: verdicts[p] for p in config.ssh_ports},
            in_use=in_use,
            listening=proxies_up,
        ),
        multipass=multipass,
        backend=backend,
    )
    if config.skip or not answers:
        usable, verified = free, False
    else:
        usable = frozenset(p for p in free if verdicts[p] is Verdict.REACHABLE)
        verified = True
    usable |= known_usable - free
    return Verification(report=report, usable=usable, verified=verified, answered=len(answers))
