"""Port verdicts and the `status` severity rules.

Why: several port-check servers may answer, and they may disagree or be down. One
verdict per port comes from a quorum: a port is *reachable* when at least `quorum` of the
servers that answered about it reached it, *unreachable* when enough servers answered but
too few reached it, and *unknown* when fewer than `quorum` servers answered at all. No
single server decides alone unless the operator asks for `quorum=1`.

The rest turns the node's checks into the seed README's status document (`overall`,
`ports.provider`, `ports.ssh`) with the seed's status and issue strings:

- provider `status` is "reachable" only for a reachable verdict; an unknown verdict (the
  checkers failed) counts as unreachable, as the seed says.
- SSH `blocked` when no port of the range is reachable (this includes a failed external
  check); `limited` when a port held by a running proxy is not listening locally or is not
  reachable from outside; `ok` otherwise. Blocked counts the whole range as unreachable.
- overall `error` when Multipass is missing, the provider port is not ready locally or not
  reachable from outside, or SSH is blocked; otherwise `issues` when any issue was found,
  else `healthy`.

Counts are honest: `in_use` is the number of range ports held by running proxies (given
by the caller), and `usable_free` counts only free ports that are externally reachable.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence

import msgspec

from golem_actor.domain.pricing import PriceInfo

from .advertising import AdvertState
from .vpn.status import VpnStatus

__all__ = [
    "ExternalStatus",
    "LocalState",
    "MultipassCheck",
    "Overall",
    "PortsStatus",
    "ProviderCheck",
    "ProviderPortStatus",
    "SshCheck",
    "SshIssues",
    "SshPortSummary",
    "SshStatus",
    "StatusReport",
    "Verdict",
    "build_status",
    "combine",
    "provider_status",
    "ssh_status",
]


class Verdict(enum.StrEnum):
    REACHABLE = "reachable"
    UNREACHABLE = "unreachable"
    UNKNOWN = "unknown"


def combine(
    ports: Iterable[int], answers: Sequence[Mapping[int, bool]], *, quorum: int = 1
) -> dict[int, Verdict]:
    """One verdict per port from the servers' answers (a missing port: no answer)."""
    if quorum < 1:
        raise ValueError(f"quorum must be at least 1, got {quorum}")
    verdicts: dict[int, Verdict] = {}
    for port in ports:
        said = [answer[port] for answer in answers if port in answer]
        if len(said) < quorum:
            verdicts[port] = Verdict.UNKNOWN
        elif sum(said) >= quorum:
            verdicts[port] = Verdict.REACHABLE
        else:
            verdicts[port] = Verdict.UNREACHABLE
    return verdicts


# --- inputs -------------------------------------------------------------------------


class LocalState(enum.StrEnum):
    """The provider port on this host; the values are the seed's `local_detail` texts."""

    LISTENING = "service is listening"
    BINDABLE = "port is free (bindable)"
    UNAVAILABLE = "port unavailable"


class ProviderCheck(msgspec.Struct, frozen=True, kw_only=True):
    port: int
    host: str
    local: LocalState
    local_error: str | None = None  # why it is unavailable, when known
    external: Verdict
    external_error: str | None = None  # the checkers' reason when not reachable


class SshCheck(msgspec.Struct, frozen=True, kw_only=True):
    start: int
    end: int  # exclusive
    verdicts: Mapping[int, Verdict]  # external verdict per port; a missing port is unknown
    in_use: frozenset[int] = frozenset()  # ports held by running proxies
    listening: frozenset[int] = frozenset()  # in-use ports that accepted a local connect


class MultipassCheck(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    ok: bool
    path: str | None = None
    version: str | None = None
    error: str | None = None


# --- the status document ------------------------------------------------------------


class ExternalStatus(msgspec.Struct, frozen=True, kw_only=True):
    status: str  # "reachable" | "unreachable" | "check_failed"
    error: str | None = None


class ProviderPortStatus(msgspec.Struct, frozen=True, kw_only=True):
    port: int
    host: str
    local_ok: bool
    local_detail: str
    external: ExternalStatus
    status: str  # "reachable" | "unreachable"


class SshIssues(msgspec.Struct, frozen=True, kw_only=True):
    unreachable: int
    not_listening: int


class SshPortSummary(msgspec.Struct, frozen=True, kw_only=True):
    port: int
    status: str  # "reachable" | "unreachable" | "unknown"
    listening: bool


class SshStatus(msgspec.Struct, frozen=True, kw_only=True):
    port_range: tuple[int, int] = msgspec.field(name="range")  # [start, end)
    status: str  # "ok" | "limited" | "blocked"
    usable_free: int
    in_use: int
    issues: SshIssues
    ports: tuple[SshPortSummary, ...]


class PortsStatus(msgspec.Struct, frozen=True, kw_only=True):
    provider: ProviderPortStatus
    ssh: SshStatus


class Overall(msgspec.Struct, frozen=True, kw_only=True):
    status: str  # "healthy" | "issues" | "error"
    issues: tuple[str, ...]


class BackendCheck(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The VM backend when it is not Multipass (the seed has a Multipass line only)."""

    kind: str  # "qemu"
    ok: bool
    detail: str | None = None  # version and acceleration, or why it is unusable


class StatusReport(msgspec.Struct, frozen=True, kw_only=True):
    multipass: MultipassCheck | None  # None: not applicable (another VM backend)
    ports: PortsStatus
    overall: Overall
    backend: BackendCheck | None = None
    pricing: PriceInfo | None = None  # the prices and their rates' state
    advert: AdvertState | None = None  # where the node advertises and how that stands
    vpn: VpnStatus | None = None  # the Golem VPN's networks, NICs, drops and links


_EXTERNAL = {
    Verdict.REACHABLE: "reachable",
    Verdict.UNREACHABLE: "unreachable",
    Verdict.UNKNOWN: "check_failed",
}


def provider_status(check: ProviderCheck) -> ProviderPortStatus:
    local_ok = check.local is not LocalState.UNAVAILABLE
    detail = check.local.value
    if not local_ok and check.local_error:
        detail = check.local_error
    error = None if check.external is Verdict.REACHABLE else check.external_error
    return ProviderPortStatus(
        port=check.port,
        host=check.host,
        local_ok=local_ok,
        local_detail=detail,
        external=ExternalStatus(status=_EXTERNAL[check.external], error=error),
        status="reachable" if check.external is Verdict.REACHABLE else "unreachable",
    )


def ssh_status(check: SshCheck) -> SshStatus:
    ports = range(check.start, check.end)
    in_use = {p for p in check.in_use if check.start <= p < check.end}
    listening = in_use & check.listening
    verdict = {p: check.verdicts.get(p, Verdict.UNKNOWN) for p in ports}
    reachable = {p for p in ports if verdict[p] is Verdict.REACHABLE}
    not_listening = len(in_use - listening)
    # An in-use port whose verdict is unknown cannot be promised to a tenant either.
    unreachable = sum(1 for p in listening if verdict[p] is not Verdict.REACHABLE)
    if not reachable:
        status, unreachable = "blocked", len(ports)
    elif unreachable + not_listening:
        status = "limited"
    else:
        status = "ok"
    return SshStatus(
        port_range=(check.start, check.end),
        status=status,
        usable_free=len(reachable - in_use),
        in_use=len(in_use),
        issues=SshIssues(unreachable=unreachable, not_listening=not_listening),
        ports=tuple(
            SshPortSummary(port=p, status=verdict[p].value, listening=p in listening) for p in ports
        ),
    )


def _plural(count: int) -> str:
    return f"{count} SSH port(s)"


def build_status(
    provider: ProviderCheck,
    ssh: SshCheck,
    *,
    multipass: MultipassCheck | None = None,
    backend: BackendCheck | None = None,
) -> StatusReport:
    """The whole status document, with the overall verdict and its issue strings."""
    provider_part = provider_status(provider)
    ssh_part = ssh_status(ssh)
    issues: list[str] = []
    error = False
    if multipass is not None and not multipass.ok:
        issues.append("Multipass not available")
        error = True
    if backend is not None and not backend.ok:
        issues.append(f"VM backend {backend.kind} not available")
        error = True
    if not provider_part.local_ok:
        issues.append(f"Provider port {provider.port} not ready")
        error = True
    if ssh_part.status == "blocked":
        issues.append("No externally reachable SSH ports")
        error = True
    elif ssh_part.issues.unreachable:
        issues.append(f"{_plural(ssh_part.issues.unreachable)} unreachable externally")
    if ssh_part.issues.not_listening:
        issues.append(f"{_plural(ssh_part.issues.not_listening)} not listening")
    if provider_part.status != "reachable":
        issues.append("Provider API port not reachable externally")
        error = True
    if provider.external is Verdict.UNKNOWN and provider.external_error:
        # Nothing could be verified at all: say why (servers down, none configured).
        issues.append(f"Ports not verified: {provider.external_error}")
    overall = "error" if error else ("issues" if issues else "healthy")
    return StatusReport(
        multipass=multipass,
        backend=backend,
        ports=PortsStatus(provider=provider_part, ssh=ssh_part),
        overall=Overall(status=overall, issues=tuple(issues)),
    )
