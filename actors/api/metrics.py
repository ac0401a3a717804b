"""`GET /metrics`: the node's state in the Prometheus text format, for the operator.

Everything is read at scrape time: the VMs from vm_lifecycle, restarts and inbox depths
from the root supervisor's statistics, each SSH proxy's counters through the ssh_proxies
supervisor (asked concurrently: a scrape waits for the slowest proxy, not the sum), the
advert from the advertiser, the streams' runways from one batched chain read. A proxy that
goes away mid-scrape, or a chain that cannot be read, is left out, not an error. The only
numbers the app keeps are the create and delete outcomes it sees go by (`Outcomes`), one
instance per app, so two apps (two tests) never share a count. Each scrape builds a fresh
`CollectorRegistry` over its snapshot: no process-wide registry, nothing shared.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import trio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from actors.advertiser import AdvertState, GetAdvertState
from actors.ssh_proxy import GetProxyStats, ProxyMessage, ProxyStats
from actors.vm_lifecycle import VmView
from actors.vpn_router import GetVpnStats, VpnStats
from golem_actor.domain.advertising import AdvertPhase
from golem_actor.domain.vm_machine import VmStatus
from golem_actor.kernel import (
    ActorError,
    ActorGone,
    Address,
    CallFailed,
    CallTimeout,
    ChildAddress,
    DynamicSupervisorMsg,
    SupervisorStatistics,
    WhichChildren,
)

from .errors import ApiError, translate
from .payments import PaymentGate, StreamStatus, StreamsUnreadable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class Outcomes:
    """What the app saw of creates, deletes and link refusals since it started (counters
    only grow)."""

    creates: Counter[str] = field(default_factory=Counter)  # by outcome
    create_failures: Counter[str] = field(default_factory=Counter)  # by reason
    deletes: Counter[str] = field(default_factory=Counter)  # by outcome
    link_refusals: Counter[str] = field(default_factory=Counter)  # the link route's, by reason

    def create_failed(self, reason: str) -> None:
        self.creates["failed"] += 1
        self.create_failures[reason] += 1


class CreateFailed(ApiError):
    """A create that got as far as the VM and failed there; `reason` labels the metric."""

    def __init__(self, status: int, detail: str, *, reason: str) -> None:
        super().__init__(status, detail)
        self.reason = reason


def failure_reason(error: Exception) -> str:
    """A short label for why a create failed, from a bounded set: the VM's own failure,
    the domain error's class name (errors.py maps them), else the HTTP status answered."""
    if isinstance(error, CreateFailed):
        return error.reason
    if isinstance(error, ApiError):
        return f"http_{error.status}"
    return "internal" if translate(error) is None else type(error).__name__


@dataclass(frozen=True, kw_only=True)
class Observed:
    """Where /metrics reads what the VMs' list does not say (the node's tree wires it)."""

    statistics: Callable[[], SupervisorStatistics]  # the root supervisor's
    proxies: Address[DynamicSupervisorMsg]  # the ssh_proxies supervisor
    advertiser: Address[GetAdvertState]
    vpn: Address[GetVpnStats] | None = None  # the vpn_router's data plane counters


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    vms: list[VmView]
    tree: SupervisorStatistics | None = None  # None: the app runs without the node's tree
    proxies: list[ProxyStats] = field(default_factory=list)
    advert: AdvertState | None = None
    streams: list[StreamStatus] = field(default_factory=list)  # with payments on
    vpn: VpnStats | None = None


async def stream_runways(vms: list[VmView], gate: PaymentGate | None) -> list[StreamStatus]:
    """The VMs' streams as the chain has them now: one batched read (nothing when payments
    are off or the chain cannot be read: a scrape must not fail with the RPC)."""
    paid = [(v, v.stream_id) for v in vms if v.stream_id is not None]
    if gate is None or not paid:
        return []
    try:
        reading = await gate.read([stream_id for _, stream_id in paid])
    except StreamsUnreadable:
        return []
    found = (gate.status(v.vm_id, stream_id, reading, v.resources) for v, stream_id in paid)
    return [status for status in found if status is not None]


_GONE = (ActorError, ActorGone, CallFailed, CallTimeout)  # a proxy or actor gone meanwhile


async def observe(
    vms: list[VmView], observed: Observed | None, gate: PaymentGate | None
) -> Snapshot:
    """One scrape's snapshot: the actors are asked concurrently, none is waited on twice."""
    streams = await stream_runways(vms, gate)
    if observed is None:
        return Snapshot(vms=vms, streams=streams)
    proxies: list[ProxyStats] = []
    advert: list[AdvertState] = []
    vpn: list[VpnStats] = []

    async def one_proxy(child_id: str) -> None:
        with contextlib.suppress(*_GONE):
            address = await observed.proxies.call(ChildAddress[ProxyMessage](child_id))
            proxies.append(await address.call(GetProxyStats()))

    async def the_advert() -> None:
        with contextlib.suppress(*_GONE):
            advert.append(await observed.advertiser.call(GetAdvertState()))

    async def the_vpn() -> None:
        if observed.vpn is not None:
            with contextlib.suppress(*_GONE):
                vpn.append(await observed.vpn.call(GetVpnStats()))

    children = await observed.proxies.call(WhichChildren())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(the_advert)
        nursery.start_soon(the_vpn)
        for child_id in children:
            nursery.start_soon(one_proxy, child_id)
    return Snapshot(
        vms=vms,
        tree=observed.statistics(),
        proxies=sorted(proxies, key=lambda p: p.vm_id),
        advert=advert[0] if advert else None,
        streams=streams,
        vpn=vpn[0] if vpn else None,
    )


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return iter(self._families)


def _vm_families(vms: list[VmView]) -> Iterator[Metric]:
    by_status = Counter(view.status for view in vms)
    gauge = GaugeMetricFamily("golem_vms", "VMs on this node by status", labels=["status"])
    for status in VmStatus:
        gauge.add_metric([status.value], by_status[status])
    yield gauge


def _tree_families(stats: SupervisorStatistics) -> Iterator[Metric]:
    restarts = CounterMetricFamily(
        "golem_actor_restarts", "Restarts of each actor under the root supervisor", labels=["actor"]
    )
    up = GaugeMetricFamily("golem_actor_up", "1 when the actor is running", labels=["actor"])
    depth = GaugeMetricFamily(
        "golem_actor_inbox_depth", "Messages waiting in the actor's inbox", labels=["actor"]
    )
    peak = GaugeMetricFamily(
        "golem_actor_inbox_peak", "The most messages its inbox ever held", labels=["actor"]
    )
    for child in stats.children:
        restarts.add_metric([child.id], max(child.incarnations - 1, 0))
        up.add_metric([child.id], 1 if child.running else 0)
        depth.add_metric([child.id], child.inbox.current_buffer_used)
        peak.add_metric([child.id], child.inbox.peak_buffer_used)
    yield from (restarts, up, depth, peak)
    yield GaugeMetricFamily(
        "golem_supervisor_restarts_in_window",
        "Restarts within the root's intensity period (the node exits past its maximum)",
        value=stats.restarts_in_window,
    )


def _proxy_families(proxies: list[ProxyStats]) -> Iterator[Metric]:
    active = GaugeMetricFamily(
        "golem_ssh_connections_active", "Open SSH connections per VM", labels=["vm_id"]
    )
    accepted = CounterMetricFamily(
        "golem_ssh_connections",
        "SSH connections relayed per VM (since its proxy started)",
        labels=["vm_id"],
    )
    refused = CounterMetricFamily(
        "golem_ssh_connections_refused",
        "SSH connections closed at once: over the per-VM maximum",
        labels=["vm_id"],
    )
    failed = CounterMetricFamily(
        "golem_ssh_upstream_failures",
        "SSH connections whose VM could not be reached",
        labels=["vm_id"],
    )
    moved = CounterMetricFamily(
        "golem_ssh_bytes",
        "Bytes relayed per VM; direction in is client to VM",
        labels=["vm_id", "direction"],
    )
    for p in proxies:
        active.add_metric([p.vm_id], p.active_connections)
        accepted.add_metric([p.vm_id], p.total_connections)
        refused.add_metric([p.vm_id], p.refused_connections)
        failed.add_metric([p.vm_id], p.upstream_failures)
        moved.add_metric([p.vm_id, "in"], p.bytes_in)
        moved.add_metric([p.vm_id, "out"], p.bytes_out)
    yield from (active, accepted, refused, failed, moved)


ADVERT_PHASES: tuple[AdvertPhase, ...] = (
    "disabled",
    "pending",
    "advertised",
    "skipped",
    "failed",
    "withdrawn",
)


def _advert_families(advert: AdvertState) -> Iterator[Metric]:
    phase = GaugeMetricFamily(
        "golem_advert_phase", "1 for the advert's current phase", labels=["phase"]
    )
    for name in ADVERT_PHASES:
        phase.add_metric([name], 1 if advert.phase == name else 0)
    yield phase
    yield CounterMetricFamily(
        "golem_advert_posts",
        "Adverts taken where the node advertises (discovery server, Golem Base or both)",
        value=advert.posts,
    )
    if advert.last_accepted_at is not None:
        yield GaugeMetricFamily(
            "golem_advert_last_accepted_timestamp_seconds",
            "When the advert was last taken where the node advertises (Unix seconds)",
            value=advert.last_accepted_at,
        )


def _stream_families(streams: list[StreamStatus]) -> Iterator[Metric]:
    runway = GaugeMetricFamily(
        "golem_stream_runway_seconds",
        "Seconds the VM's payment stream still pays for",
        labels=["vm_id", "stream_id"],
    )
    verified = GaugeMetricFamily(
        "golem_stream_verified",
        "1 when the VM's stream can pay for it",
        labels=["vm_id", "stream_id"],
    )
    for status in streams:
        labels = [status.vm_id, str(status.stream_id)]
        runway.add_metric(labels, status.computed.remaining_seconds)
        verified.add_metric(labels, 1 if status.verified else 0)
    yield from (runway, verified)


def _outcome_families(outcomes: Outcomes) -> Iterator[Metric]:
    creates = CounterMetricFamily(
        "golem_vm_creates", "VM creates the API answered, by outcome", labels=["outcome"]
    )
    for outcome in ("running", "accepted", "failed"):
        creates.add_metric([outcome], outcomes.creates[outcome])
    failures = CounterMetricFamily(
        "golem_vm_create_failures", "Failed VM creates by reason", labels=["reason"]
    )
    for reason, count in sorted(outcomes.create_failures.items()):
        failures.add_metric([reason], count)
    deletes = CounterMetricFamily(
        "golem_vm_deletes", "VM deletes the API answered, by outcome", labels=["outcome"]
    )
    for outcome in ("deleted", "accepted", "failed"):
        deletes.add_metric([outcome], outcomes.deletes[outcome])
    links = CounterMetricFamily(
        "golem_vpn_link_refused",
        "Connections to the link route refused before or at authentication, by reason",
        labels=["reason"],
    )
    for reason in ("node_busy", "peer_busy", "auth", "timeout"):
        links.add_metric([reason], outcomes.link_refusals[reason])
    yield from (creates, failures, deletes, links)


def _vpn_families(stats: VpnStats) -> Iterator[Metric]:
    frames = CounterMetricFamily(
        "golem_vpn_frames", "Frames the VPN router read from or wrote to its ports", labels=["way"]
    )
    frames.add_metric(["in"], stats.totals.get("frames_in", 0))
    frames.add_metric(["out"], stats.totals.get("frames_out", 0))
    drops = CounterMetricFamily(
        "golem_vpn_dropped_frames", "Frames the VPN router dropped, by reason", labels=["reason"]
    )
    for reason, count in sorted(stats.drops.items()):
        drops.add_metric([reason], count)
    for name in ("no_member", "egress_dropped", "unattached", "send_failed", "link_in_dropped"):
        drops.add_metric([name], stats.totals.get(name, 0))
    ports = GaugeMetricFamily("golem_vpn_ports", "Frame ports the VPN router has attached")
    ports.add_metric([], len(stats.endpoints))
    yield from (frames, drops, ports)
    yield from _link_families(stats)


def _link_families(stats: VpnStats) -> Iterator[Metric]:
    """Links to other nodes' routers (actors/vpn_router/links.py), by link endpoint."""
    labels = ["link", "network_id"]
    up = GaugeMetricFamily("golem_vpn_link_up", "1 while the link to a peer is up", labels=labels)
    sent = CounterMetricFamily(
        "golem_vpn_link_frames_out", "Frames sent to a peer router", labels=labels
    )
    drops = CounterMetricFamily(
        "golem_vpn_link_drops", "Times an up link to a peer ended", labels=labels
    )
    failures = CounterMetricFamily(
        "golem_vpn_link_dial_failures", "Dials to a peer that failed", labels=labels
    )
    unhosted = GaugeMetricFamily(
        "golem_vpn_link_unhosted_nodes",
        "Nodes located at a peer that the peer says it does not host",
        labels=labels,
    )
    for endpoint, link in sorted(stats.links.items()):
        names = [endpoint, str(link["network_id"])]
        up.add_metric(names, int(link["up"]))
        sent.add_metric(names, int(link["frames_out"]))
        drops.add_metric(names, int(link["drops"]))
        failures.add_metric(names, int(link["failures"]))
        missing = str(link.get("unhosted", ""))
        unhosted.add_metric(names, len(missing.split(",")) if missing else 0)
    yield from (up, sent, drops, failures, unhosted)


def render(snapshot: Snapshot, outcomes: Outcomes) -> bytes:
    """The exposition text for one scrape."""
    families = list(_vm_families(snapshot.vms))
    if snapshot.tree is not None:
        families.extend(_tree_families(snapshot.tree))
        families.extend(_proxy_families(snapshot.proxies))
    if snapshot.advert is not None:
        families.extend(_advert_families(snapshot.advert))
    if snapshot.streams:
        families.extend(_stream_families(snapshot.streams))
    if snapshot.vpn is not None:
        families.extend(_vpn_families(snapshot.vpn))
    families.extend(_outcome_families(outcomes))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return generate_latest(registry)
