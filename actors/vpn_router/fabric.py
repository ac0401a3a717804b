"""The router's data plane: frame ports in, `Switch.route`, bounded egress queues out.

Theory of operation
-------------------
The vpn_router actor owns one `Fabric`. An *endpoint* is one frame port (see `ports`):
a VM's VPN NIC, or an fd attached through the router's `AttachPort` seam. An endpoint
holds one *member* per network it is in (the switch's port, id `<endpoint>/<network>`);
a frame read from an endpoint belongs to the member whose IP is its source (ARP: the
sender's), or to the endpoint's first member (a DHCP request from 0.0.0.0), so one NIC
can sit in several networks. The control plane changes the tables through `apply`
(networks and members wanted, diffed against what the switch has: a member that left is
gone before the next frame is routed) and `attach`/`detach` (endpoints).

Each endpoint has two loops, started by the actor with its `start_work` (so they live and
die with the actor's nursery, and a crash in them crashes the actor):

* `pump`: wait until the fd is readable, read a batch of up to `batch` frames without
  blocking, route each through the switch, queue what it returns (`EgressQueues`: a full
  queue drops the newest frame and counts it), then write out every queue that has
  frames. No message per frame, no await per frame.
* `drain`: sleeps until a write to its endpoint would have blocked (the peer's receive
  queue is full); then waits writable and writes that endpoint's queues out. Meanwhile
  frames for it wait in their bounded queues, so a guest that stops reading costs only
  its own queue.

Counters: the switch's (per member, and drops by reason) plus the fabric's own totals
(`FabricCounters`), read by `GetVpnStats`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address

import trio
import trio.lowlevel

from golem_actor.domain.vpn.egress import EgressQueues
from golem_actor.domain.vpn.switch import PortKind, Switch, SwitchNetwork, SwitchPort

from .ports import FramePort

__all__ = ["DEFAULT_BATCH", "Fabric", "FabricCounters", "Member", "member_id"]

DEFAULT_BATCH = 64
_IPV4 = b"\x08\x00"
_ARP = b"\x08\x06"


@dataclass(frozen=True, slots=True, order=True)
class Member:
    """An endpoint in a network on an address, with its NIC's MAC. A VM on another node
    is a member of its link's endpoint, of kind REMOTE (link up) or UNLOCATED (down);
    one link carries every VM of that node in the network, so those members also name
    their `node` (its id tells them apart)."""

    endpoint: str
    network_id: str
    ip: IPv4Address
    mac: bytes
    kind: PortKind = PortKind.LOCAL
    link: str | None = None
    node: str = ""

    @property
    def id(self) -> str:
        base = member_id(self.endpoint, self.network_id)
        return f"{base}/{self.node}" if self.node else base


def member_id(endpoint: str, network_id: str) -> str:
    return f"{endpoint}/{network_id}"


@dataclass(slots=True)
class FabricCounters:
    frames_in: int = 0
    frames_out: int = 0
    no_member: int = 0  # read from an endpoint that is in no network
    egress_dropped: int = 0  # a destination queue was full
    unattached: int = 0  # routed to a member whose endpoint is not attached
    send_failed: int = 0  # the endpoint's peer was gone


@dataclass(slots=True)
class _Endpoint:
    id: str
    io: FramePort
    members: dict[bytes, str] = field(default_factory=dict)  # packed IP -> member id
    first: str | None = None
    blocked: bool = False
    wake: trio.Event = field(default_factory=trio.Event)

    def member_for(self, frame: bytes) -> str | None:
        if len(self.members) < 2:
            return self.first
        if frame.startswith(_IPV4, 12):
            return self.members.get(frame[26:30], self.first)
        if frame.startswith(_ARP, 12):
            return self.members.get(frame[28:32], self.first)
        return self.first


def _relocated(old: Member, new: Member) -> bool:
    """Only the kind or link differ: the port stays (with its counters), relocated."""
    return (old.id, old.ip, old.mac) == (new.id, new.ip, new.mac)


class Fabric:
    def __init__(
        self,
        *,
        batch: int = DEFAULT_BATCH,
        queue_frames: int = 256,
        queue_bytes: int = 512 * 1024,
    ) -> None:
        self.switch = Switch()
        self.queues = EgressQueues(queue_frames, queue_bytes)
        self.counters = FabricCounters()
        self._batch = batch
        self._endpoints: dict[str, _Endpoint] = {}
        self._networks: dict[str, SwitchNetwork] = {}
        self._members: dict[str, Member] = {}  # member id -> member
        self._owner: dict[str, _Endpoint] = {}  # member id -> its endpoint, when attached

    # -- tables (the actor's handlers call these) ---------------------------------------

    def apply(self, networks: Iterable[SwitchNetwork], members: Iterable[Member]) -> list[str]:
        """Make the switch hold exactly these networks and members; the members refused
        (an address or a MAC taken twice), as messages for the log."""
        wanted_nets = {n.id: n for n in networks}
        for network_id, spec in list(self._networks.items()):
            if wanted_nets.get(network_id) != spec:
                for mid in [m for m, v in self._members.items() if v.network_id == network_id]:
                    self._forget(mid)
                self.switch.remove_network(network_id)
                del self._networks[network_id]
        for network_id, spec in wanted_nets.items():
            if network_id not in self._networks:
                self.switch.add_network(spec)
                self._networks[network_id] = spec
        wanted = {m.id: m for m in members}
        for mid, member in list(self._members.items()):
            new = wanted.get(mid)
            if new is not None and new != member and _relocated(member, new):
                self.switch.locate(mid, new.kind, new.link)  # a link went up or down
                self._members[mid] = new
            elif new != member:
                self._forget(mid)
        refused = []
        for mid, member in sorted(wanted.items()):
            if mid in self._members or member.network_id not in self._networks:
                continue
            try:
                port = SwitchPort(
                    mid, member.network_id, member.ip, member.kind, member.link, member.mac
                )
                self.switch.add_port(port)
            except ValueError as error:
                refused.append(f"{mid}: {error}")
                continue
            self._members[mid] = member
            endpoint = self._endpoints.get(member.endpoint)
            if endpoint is not None:
                self._bind(endpoint, mid, member)
        return refused

    def attach(self, endpoint_id: str, io: FramePort) -> None:
        if endpoint_id in self._endpoints:
            raise ValueError(f"endpoint {endpoint_id} is attached already")
        endpoint = self._endpoints[endpoint_id] = _Endpoint(endpoint_id, io)
        for mid, member in sorted(self._members.items()):
            if member.endpoint == endpoint_id:
                self._bind(endpoint, mid, member)

    def detach(self, endpoint_id: str) -> None:
        """Forget an endpoint and close its port (its loops must be cancelled first)."""
        endpoint = self._endpoints.pop(endpoint_id, None)
        if endpoint is None:
            return
        for mid in endpoint.members.values():
            self._owner.pop(mid, None)
            self.counters.egress_dropped += self.queues.discard(mid)
        with contextlib.suppress(OSError):
            trio.lowlevel.notify_closing(endpoint.io.fileno())
        endpoint.io.close()

    def attached(self) -> frozenset[str]:
        return frozenset(self._endpoints)

    def io(self, endpoint_id: str) -> FramePort | None:
        endpoint = self._endpoints.get(endpoint_id)
        return None if endpoint is None else endpoint.io

    def members(self) -> dict[str, Member]:
        return dict(self._members)

    def _bind(self, endpoint: _Endpoint, mid: str, member: Member) -> None:
        self._owner[mid] = endpoint
        endpoint.members[member.ip.packed] = mid
        endpoint.first = min(endpoint.members.values())

    def _forget(self, mid: str) -> None:
        member = self._members.pop(mid)
        self.switch.remove_port(mid)
        self.counters.egress_dropped += self.queues.discard(mid)
        endpoint = self._owner.pop(mid, None)
        if endpoint is not None:
            endpoint.members.pop(member.ip.packed, None)
            endpoint.first = min(endpoint.members.values(), default=None)

    # -- the loops (run through the actor's start_work) -----------------------------------

    async def pump(self, endpoint_id: str) -> None:
        endpoint = self._endpoints[endpoint_id]
        io, fd, batch = endpoint.io, endpoint.io.fileno(), self._batch
        route, push, counters = self.switch.route, self.queues.push_all, self.counters
        try:
            while True:
                await trio.lowlevel.wait_readable(fd)
                frames = io.receive(batch)
                counters.frames_in += len(frames)
                member_for = endpoint.member_for
                for frame in frames:
                    mid = member_for(frame)
                    if mid is None:
                        counters.no_member += 1
                        continue
                    routed = route(mid, frame)
                    if routed:
                        counters.egress_dropped += push(routed)
                self.flush()
        except (trio.ClosedResourceError, EOFError):
            return  # detached while waiting, or the other end closed

    async def drain(self, endpoint_id: str) -> None:
        endpoint = self._endpoints[endpoint_id]
        fd = endpoint.io.fileno()
        try:
            while True:
                await endpoint.wake.wait()
                endpoint.wake = trio.Event()
                await trio.lowlevel.wait_writable(fd)
                endpoint.blocked = False
                for mid in list(endpoint.members.values()):
                    self._write(endpoint, mid)
        except trio.ClosedResourceError:
            return

    def flush(self) -> None:
        """Write out every queue with frames (what cannot go now waits for `drain`)."""
        ready = self.queues.ready
        for mid in list(ready):
            endpoint = self._owner.get(mid)
            if endpoint is None:
                self.counters.unattached += self.queues.discard(mid)
            elif not endpoint.blocked:
                self._write(endpoint, mid)

    def _write(self, endpoint: _Endpoint, mid: str) -> None:
        queue = self.queues.queue(mid)
        send, counters = endpoint.io.send, self.counters
        while queue:
            frame = queue.peek()
            assert frame is not None
            sent = send(frame)
            if sent is None:
                endpoint.blocked = True
                endpoint.wake.set()
                return
            queue.pop()
            if sent:
                counters.frames_out += 1
            else:
                counters.send_failed += 1
        self.queues.ready.pop(mid, None)
