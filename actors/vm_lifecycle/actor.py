"""`VmLifecycle`: the VM registry, one state machine per VM, and the work behind them.

Theory of operation
-------------------
Requests (create, stop, start, delete) are decided at once by the domain state machine:
the new status is written to the registry file *before* any work starts, then the
state's effects run as one work per VM (`start_work`, keyed by the VM's id), whose
outcome comes back as an `OpOutcome` message that feeds the machine again. So the inbox
keeps flowing and status queries answer at once, whatever a launch costs.

A newer request on the same VM (a delete during a create) supersedes the running work
of that VM: the kernel cancels it, waits for it to end, then starts the new one, and the
superseded work never reports. Expected failures of the outside world come back as an
outcome with an error; anything else crashes the actor (its supervisor restarts it and
it reconciles, below).

After every change the actor commits, in this order: persist the registry (and the
seed's `streams.json`), release the resources of deleted VMs (and their VPN memberships:
`VmsGone` to the vpn_router), tell the port_verifier which ports are in use, and answer
the `WaitVm` callers whose VM got where they wait for (or was deleted: `VmNotFound`);
see `waiters.py`.

When the vpn_router says that the address offered to a VM's VPN NIC changed
(`LeasesChanged`), a running VM's VPN link goes down for `LINK_BOUNCE` seconds and up
again (the backend's `set_vpn_link`), as work of its own per VM: the guest's DHCP client
(systemd-networkd, NetworkManager; the test guest's carrier watcher) asks again at once.
The link is brought back up even when that work is cancelled, and a failure is logged:
the guest then learns its address at its lease's renewal, as without the bounce.

At start, before serving, the actor reconciles the registry with the world: it re-books
every live VM's resources, resumes each interrupted operation (a `creating` VM is
launched again: launches are idempotent per id; `deleting` is deleted again), adopts
running VMs by reopening their proxies on the same ports, and deletes backend VMs that
it created but has no record of. A timer keeps doing the cheap half of that while the
node runs: proxies that vanished (their supervisor restarted) come back, and a guest
that powered itself off, or whose machine ended under it (its QEMU killed), is reported
stopped with the backend's reason in its `error` (cleared when it starts again). A look is
a snapshot taken over time (a `multipass list` takes a while), so it says nothing of a VM
that changed after the look began: such VMs are left to the next look (else a create
finishing during a look would be reported as a VM that disappeared).
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import msgspec
import structlog
import trio

from actors.port_verifier import GetUsablePorts, PortsInUse, PortVerifierMsg
from actors.resource_tracker import Release, Reserve, ResourceMsg
from actors.ssh_proxy import proxy_child_id
from actors.vpn_router import LeasesChanged, VmsGone, VmsKnown, VpnMsg
from golem_actor._atomic import write_atomic
from golem_actor.adapters.backend import BackendError, BackendState, Observed, VmBackend
from golem_actor.adapters.local_ports import bindable
from golem_actor.domain.tenancy import Caller, can_access, lists, new_job_id, new_vm_id
from golem_actor.domain.vm_machine import (
    ENTRY_EFFECTS,
    Effect,
    Event,
    InvalidTransition,
    VmStatus,
    next_status,
)
from golem_actor.kernel import Actor, Address, WhichChildren
from golem_actor.state_store import StateStore

from .listing import VmListing
from .messages import (
    Conflict,
    CreateVm,
    DeleteVm,
    GetJob,
    GetVm,
    JobNotFound,
    JobView,
    LifecycleMsg,
    ListVms,
    NameTaken,
    NoFreePort,
    Observation,
    ObservationFailed,
    OpOutcome,
    StartVm,
    StateNotSaved,
    StopVm,
    StreamInUse,
    Tick,
    VmNotFound,
    VmView,
    WaitVm,
)
from .operations import OperationFailed, Operations
from .registry import REGISTRY, SCHEMA_VERSION, Registry, VmRecord, utcnow
from .waiters import Waiters

log = structlog.get_logger("golem_actor.vm_lifecycle")

_OBSERVING = ("observe",)  # the key of the periodic look's work (VM ids are strings)
_DRIFTS = (VmStatus.RUNNING, VmStatus.STOPPED)  # the states a look compares with the backend
LINK_BOUNCE = 1.0  # s a VPN link stays down: long enough for a guest to see the carrier go
_LINK_UP_TIMEOUT = 10.0  # s to bring a bounced link back up, even when cancelled


class VmLifecycle(Actor[LifecycleMsg]):
    def __init__(
        self,
        *,
        operations: Operations,
        store: StateStore,
        resources: Address[ResourceMsg],
        port_range: range,
        tick_interval: float = 5.0,
        streams_file: Path | None = None,
        port_verifier: Address[PortVerifierMsg] | None = None,
        vpn: Address[VpnMsg] | None = None,
        listing: VmListing | None = None,
    ) -> None:
        super().__init__()
        self._listing = listing
        self._ops = operations
        self._backend: VmBackend = operations.backend
        self._store = store
        self._resources = resources
        self._port_range = port_range
        self._tick_interval = tick_interval
        self._streams_file = streams_file
        self._port_verifier = port_verifier
        self._vpn = vpn
        self._vms: dict[str, VmRecord] = {}
        self._released: list[str] = []  # deleted since the last commit
        self._changed: dict[str, float] = {}  # VM -> when its status or work last changed
        self._waiters = Waiters()

    @property
    def waiting(self) -> int:
        """How many `WaitVm` callers are held (abandoned ones until the next prune)."""
        return len(self._waiters)

    # -- start: reconcile before serving ------------------------------------------------

    async def on_start(self) -> None:
        for stale in await self._store.sweep():
            log.warning("removed a half-written state file", path=str(stale))
        registry = await self._store.load(REGISTRY, Registry, schema_version=SCHEMA_VERSION)
        self._vms = {r.vm_id: r for r in (registry.vms if registry else [])}
        machines = {o.vm_id: o for o in await self._backend.list_owned()}
        for record in list(self._vms.values()):
            await self._resources.call(Reserve(record.vm_id, record.resources, adopt=True))
            self._resume(record, machines.get(record.vm_id))
        for vm_id in machines.keys() - self._vms.keys():
            log.warning("deleting a VM this node has no record of", vm_id=vm_id)
            await self._backend.delete(vm_id)
        await self._commit()
        if self._vpn is not None:  # VPN memberships of VMs deleted meanwhile go
            await self._vpn.cast(VmsKnown(frozenset(self._vms)))
        self.every(self._tick_interval, Tick())
        log.info("vm registry ready", vms=len(self._vms), backend=self._backend.kind)

    def _resume(self, record: VmRecord, machine: Observed | None) -> None:
        state = machine.state if machine else BackendState.MISSING
        match record.status:
            case VmStatus.CREATING | VmStatus.STARTING | VmStatus.STOPPING | VmStatus.DELETING:
                self._start_op(record, ENTRY_EFFECTS[record.status])
            case VmStatus.RUNNING | VmStatus.STOPPED if state is BackendState.MISSING:
                self._apply(record, Event.VANISHED, error="the VM disappeared from the backend")
            case VmStatus.RUNNING if state is BackendState.STOPPED:
                self._powered_off(record, machine)
            case VmStatus.RUNNING:
                target = machine.ssh if machine else None
                self._vms[record.vm_id] = record.evolve(target=target or record.target)
                self._start_op(self._vms[record.vm_id], (Effect.OPEN_PROXY,))
                # A node killed mid-bounce left that link down: up again (a no-op if up).
                self.start_work(partial(self._vpn_link_up, record.vm_id), key=("vpn", record.vm_id))
            case VmStatus.STOPPED if state is BackendState.RUNNING:
                self._start_op(record, (Effect.POWER_OFF,))  # keep the recorded intent
            case _:
                pass

    # -- requests ------------------------------------------------------------------------

    async def handle_call(self, request: LifecycleMsg) -> object:
        try:
            return await self._answer(request)
        finally:
            self._publish()

    async def _answer(self, request: LifecycleMsg) -> object:
        match request:
            case CreateVm():
                return await self._create(request)
            case GetVm(caller=caller, vm_id=vm_id):
                return self._view(self._find(caller, vm_id))
            case WaitVm(caller=caller, vm_id=vm_id, until=until):
                return self._wait(request, self._find(caller, vm_id), until)
            case ListVms(caller=caller):
                return [self._view(r) for r in self._vms.values() if lists(caller, r.owner)]
            case StopVm(caller=caller, vm_id=vm_id):
                return await self._request(caller, vm_id, Event.REQUEST_STOP)
            case StartVm(caller=caller, vm_id=vm_id):
                return await self._request(caller, vm_id, Event.REQUEST_START)
            case DeleteVm(caller=caller, vm_id=vm_id):
                return await self._request(caller, vm_id, Event.REQUEST_DELETE)
            case GetJob(caller=caller, job_id=job_id):
                return self._job(caller, job_id)
        return await super().handle_call(request)

    async def _create(self, request: CreateVm) -> VmView:
        if any(r.name == request.name for r in self._vms.values()):
            raise NameTaken(f"a VM named {request.name!r} already exists on this node")
        if request.stream_id is not None:
            for other in self._vms.values():
                if other.stream_id == request.stream_id:
                    raise StreamInUse(f"stream {request.stream_id} already backs another VM")
        vm_id = new_vm_id()
        port = await self._free_port()
        await self._resources.call(Reserve(vm_id, request.resources))
        now = utcnow()
        record = VmRecord(
            vm_id=vm_id,
            name=request.name,
            owner=request.caller.tenant,
            status=VmStatus.CREATING,
            resources=request.resources,
            image=request.image,
            authorized_keys=request.authorized_keys,
            ssh_port=port,
            stream_id=request.stream_id,
            job_id=new_job_id() if request.with_job else None,
            created_at=now,
            updated_at=now,
        )
        try:
            await self._save_ahead(record)
        except StateNotSaved:
            await self._resources.cast(Release(vm_id))
            raise
        self._vms[vm_id] = record
        await self._commit()
        log.info("vm creating", vm_id=vm_id, name=record.name, port=port, image=record.image)
        self._start_op(record, ENTRY_EFFECTS[VmStatus.CREATING])
        return self._view(record)

    async def _request(self, caller: Caller, vm_id: str, event: Event) -> VmView:
        record = self._find(caller, vm_id)
        try:
            after = next_status(record.status, event)
        except InvalidTransition as refused:
            raise Conflict(str(refused)) from None
        if after is not None:
            await self._save_ahead(record.evolve(status=after))
            self._transition(record, after)
            await self._commit()
        return self._view(self._vms.get(vm_id, record))

    def _wait(self, request: WaitVm, record: VmRecord, until: frozenset[VmStatus]) -> VmView | None:
        """The view at once if the VM is already there; else hold the reply until it is."""
        self._waiters.prune()
        if record.status in until:
            return self._view(record)
        self._waiters.hold(record.vm_id, until, self.defer(request))
        return None  # ignored: the deferred reply answers

    # -- outcomes and drift ------------------------------------------------------------------

    async def handle_cast(self, message: LifecycleMsg) -> None:
        try:
            await self._react(message)
        finally:
            self._publish()

    async def _react(self, message: LifecycleMsg) -> None:
        match message:
            case OpOutcome():
                await self._outcome(message)
            case Tick():
                self._waiters.prune()
                # no look while one goes on, nor while no VM could drift: an idle node
                # spawns no backend process every tick (a `multipass list` costs ~25 ms)
                watched = any(r.status in _DRIFTS for r in self._vms.values())
                if watched and self.work_for(_OBSERVING) is None:
                    self.start_work(
                        self._look, then=_observation, failed=_observation_failed, key=_OBSERVING
                    )
            case Observation():
                await self._drift(message)
            case ObservationFailed(error=error):
                log.warning("could not observe the backend", error=error)
            case LeasesChanged(vm_ids=vm_ids):
                for vm_id in vm_ids:
                    record = self._vms.get(vm_id)
                    if record is not None and record.status is VmStatus.RUNNING:
                        self.start_work(partial(self._bounce_vpn_link, vm_id), key=("vpn", vm_id))
            case _:
                await super().handle_cast(message)

    async def _bounce_vpn_link(self, vm_id: str) -> None:
        """Down, a pause, up: the guest's DHCP client starts over (a newer bounce of the
        same VM supersedes this one; the link still comes back up)."""
        try:
            await self._backend.set_vpn_link(vm_id, up=False)
            await trio.sleep(LINK_BOUNCE)
        except BackendError as error:
            log.warning("vpn link not bounced", vm_id=vm_id, error=str(error))
        finally:
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + _LINK_UP_TIMEOUT
                if await self._vpn_link_up(vm_id):
                    log.info("vpn link bounced: the guest asks for its address", vm_id=vm_id)

    async def _vpn_link_up(self, vm_id: str) -> bool:
        try:
            await self._backend.set_vpn_link(vm_id, up=True)
        except BackendError as error:
            log.warning("vpn link not brought up", vm_id=vm_id, error=str(error))
            return False
        return True

    async def _outcome(self, outcome: OpOutcome) -> None:
        record = self._vms.get(outcome.vm_id)
        if record is None:
            return  # deleted meanwhile
        self._changed[record.vm_id] = trio.current_time()
        if outcome.error:
            log.warning("vm operation failed", vm_id=record.vm_id, error=outcome.error)
        if outcome.observed is not None:
            record = record.evolve(
                target=outcome.observed.ssh or record.target,
                ip_address=outcome.observed.ip_address or record.ip_address,
            )
            self._vms[record.vm_id] = record
        if outcome.event is None:
            return
        self._apply(record, outcome.event, error=outcome.error)
        await self._commit()

    async def _drift(self, seen: Observation) -> None:
        changed = False
        for record in list(self._vms.values()):
            if self.work_for(record.vm_id) is not None:
                continue  # an operation is deciding this VM's fate
            if self._changed.get(record.vm_id, -math.inf) >= seen.began:
                continue  # it changed after the look began: the look may predate that
            machine = seen.machines.get(record.vm_id)
            state = machine.state if machine else BackendState.MISSING
            if record.status not in _DRIFTS:
                continue
            if state is BackendState.MISSING:
                self._apply(record, Event.VANISHED, error="the VM disappeared from the backend")
                changed = True
            elif record.status is VmStatus.RUNNING and state is BackendState.STOPPED:
                self._powered_off(record, machine)
                changed = True
            elif record.status is VmStatus.RUNNING and machine is not None:
                moved = machine.ssh is not None and machine.ssh != record.target
                current = record.evolve(target=machine.ssh) if moved else record
                self._vms[record.vm_id] = current
                if moved or proxy_child_id(record.vm_id) not in seen.proxies:
                    self._start_op(current, (Effect.OPEN_PROXY,))
        if changed:
            await self._commit()

    # -- the machine's bookkeeping ---------------------------------------------------------

    def _powered_off(self, record: VmRecord, machine: Observed | None) -> None:
        """A running VM found off without a stop request: `stopped`, saying why."""
        reason = (machine.reason if machine else None) or "the VM stopped without a stop request"
        log.warning("vm stopped without a stop request", vm_id=record.vm_id, reason=reason)
        self._apply(record, Event.POWERED_OFF, error=reason)
        # The machine ended on its own: a stop ends what it left running (QEMU's pasta,
        # which holds its private port), as a requested stop does.
        self._start_op(self._vms[record.vm_id], (Effect.CLOSE_PROXY, Effect.POWER_OFF))

    def _apply(self, record: VmRecord, event: Event, *, error: str | None = None) -> None:
        try:
            after = next_status(record.status, event)
        except InvalidTransition:
            log.error("unexpected vm event", vm_id=record.vm_id, status=record.status, event=event)
            raise
        if after is not None:
            self._transition(record, after, error=error)

    def _transition(self, record: VmRecord, status: VmStatus, *, error: str | None = None) -> None:
        log.info(
            "vm status",
            vm_id=record.vm_id,
            status=status.value,
            was=record.status.value,
            error=error,
        )
        self._changed[record.vm_id] = trio.current_time()
        if status is VmStatus.DELETED:
            self._vms.pop(record.vm_id, None)
            self._changed.pop(record.vm_id, None)
            self._released.append(record.vm_id)  # its resources go at the commit
            log.info("vm deleted", vm_id=record.vm_id, port=record.ssh_port)
            return
        keep_error = status in (VmStatus.ERROR, VmStatus.STOPPED)  # why it failed or stopped
        record = record.evolve(status=status, error=error if keep_error else None)
        self._vms[record.vm_id] = record
        effects = ENTRY_EFFECTS[status]
        if effects:
            self._start_op(record, effects)

    def _start_op(self, record: VmRecord, effects: tuple[Effect, ...]) -> None:
        """Run `effects` as the VM's work; a running work of the VM is superseded."""
        self.start_work(
            partial(self._perform, record, effects),
            then=partial(_outcome_of, record.vm_id),
            failed=partial(_failure_of, record.vm_id, effects),
            key=record.vm_id,
            name=f"vm {record.vm_id}: {', '.join(effects)}",
        )

    async def _perform(
        self, record: VmRecord, effects: tuple[Effect, ...]
    ) -> tuple[Event | None, Observed | None]:
        structlog.contextvars.bind_contextvars(vm_id=record.vm_id)  # this work's task only
        return await self._ops.perform(record, effects)

    async def _look(self) -> tuple[float, list[Observed], tuple[str, ...]]:
        """The periodic look at the world, to notice drift (work: it waits on the backend)."""
        began = trio.current_time()
        machines = await self._backend.list_owned()
        return began, machines, await self._ops.proxies.call(WhichChildren())

    # -- committing a change -------------------------------------------------------------

    async def _commit(self) -> None:
        """Persist first; then tell the others and answer the waiters (see the top)."""
        await self._save()
        released, self._released = self._released, []
        for vm_id in released:
            await self._resources.cast(Release(vm_id))
        if released and self._vpn is not None:
            await self._vpn.cast(VmsGone(tuple(released)))  # they leave their networks
        await self._share_ports()
        self._publish()  # before any waiter hears of it: its client may list at once
        self._waiters.settle(self._view_of)

    async def _save_ahead(self, record: VmRecord) -> None:
        """Persist the registry as it will be with `record` before anything changes, so a
        request the disk cannot record (full, failing) is refused and changes nothing:
        no VM in memory that the file lacks, no work started, no booking kept."""
        vms = {**self._vms, record.vm_id: record}
        try:
            await self._store.save(
                REGISTRY, Registry(vms=list(vms.values())), schema_version=SCHEMA_VERSION
            )
        except OSError as exc:
            log.error("vm registry not saved", vm_id=record.vm_id, error=str(exc))
            raise StateNotSaved(
                f"the node cannot save its state ({exc.strerror or exc}); "
                "its data directory needs free space"
            ) from exc

    async def _save(self) -> None:
        registry = Registry(vms=list(self._vms.values()))
        await self._store.save(REGISTRY, registry, schema_version=SCHEMA_VERSION)
        if self._streams_file is not None:
            # The seed's `streams.json`: a VM -> stream map for tools that read it; the
            # registry above stays the source of truth.
            mapping = {r.vm_id: r.stream_id for r in self._vms.values() if r.stream_id is not None}
            data = msgspec.json.format(msgspec.json.encode(mapping))
            await trio.to_thread.run_sync(write_atomic, self._streams_file, data)

    async def _share_ports(self) -> None:
        if self._port_verifier is None:
            return
        running = frozenset(r.ssh_port for r in self._vms.values() if r.status is VmStatus.RUNNING)
        reserved = frozenset(r.ssh_port for r in self._vms.values())
        await self._port_verifier.cast(PortsInUse(running=running, reserved=reserved))

    # -- helpers ------------------------------------------------------------------------------

    def _find(self, caller: Caller, vm_id: str) -> VmRecord:
        record = self._vms.get(vm_id)
        if record is None or not can_access(caller, record.owner):
            # "Not Found" verbatim: the existing requestor treats such an error as gone.
            raise VmNotFound(f"Not Found: no VM {vm_id} on this node")
        return record

    def _job(self, caller: Caller, job_id: str) -> JobView:
        for record in self._vms.values():
            if record.job_id == job_id and can_access(caller, record.owner):
                status = {VmStatus.CREATING: "creating", VmStatus.ERROR: "failed"}.get(
                    record.status, "ready"
                )
                return JobView(
                    job_id=job_id,
                    vm_id=record.vm_id,
                    status=status,  # type: ignore[arg-type]
                    error=record.error,
                    created_at=record.created_at,
                    updated_at=record.updated_at,
                )
        raise JobNotFound(f"job {job_id} not found")

    async def _free_port(self) -> int:
        """The lowest usable port: verified reachable by the port_verifier when there is
        one (it falls back to unverified ports only when no checker answered)."""
        candidates: tuple[int, ...] | range = self._port_range
        held = frozenset[int]()
        if self._port_verifier is not None:
            usable = await self._port_verifier.call(GetUsablePorts())
            candidates, held = usable.ports, usable.held
        taken = {r.ssh_port for r in self._vms.values()}
        for port in candidates:
            if port not in taken and (port in held or bindable(self._ops.listen_host, port)):
                return port
        span = f"{self._port_range.start}-{self._port_range.stop - 1}"
        verified = " verified reachable" if self._port_verifier is not None else ""
        raise NoFreePort(f"no free{verified} SSH port in {span}")

    def _publish(self) -> None:
        """The registry as clients see it, for readers that do not call (listing.py)."""
        if self._listing is not None:
            self._listing.publish(tuple((r.owner, self._view(r)) for r in self._vms.values()))

    def _view_of(self, vm_id: str) -> VmView | None:
        record = self._vms.get(vm_id)
        return None if record is None else self._view(record)

    @staticmethod
    def _view(record: VmRecord) -> VmView:
        # The view is the record less what clients must not see (owner, keys, target):
        # taken by field name, so a field added to both can never be forgotten here.
        return VmView(**{name: getattr(record, name) for name in VmView.__struct_fields__})


def _ends_with_event(effects: tuple[Effect, ...]) -> bool:
    """Operations that drive a transition fail the VM; proxy housekeeping does not."""
    return any(e not in (Effect.OPEN_PROXY, Effect.CLOSE_PROXY) for e in effects)


# -- what works report back (as messages to the actor's own inbox) ----------------------


def _outcome_of(vm_id: str, result: tuple[Event | None, Observed | None]) -> OpOutcome:
    event, observed = result
    return OpOutcome(vm_id=vm_id, event=event, observed=observed)


def _failure_of(vm_id: str, effects: tuple[Effect, ...], error: Exception) -> OpOutcome:
    """An expected failure of the outside world becomes an outcome; anything else is a
    bug: re-raised here, in the work, it crashes the actor (let it crash)."""
    if not isinstance(error, OperationFailed):
        raise error
    event = Event.FAILED if _ends_with_event(effects) else None
    return OpOutcome(vm_id=vm_id, event=event, error=str(error))


def _observation(seen: tuple[float, list[Observed], tuple[str, ...]]) -> Observation:
    began, machines, proxies = seen
    return Observation(
        machines={o.vm_id: o for o in machines}, proxies=frozenset(proxies), began=began
    )


def _observation_failed(error: Exception) -> ObservationFailed:
    if not isinstance(error, BackendError):
        raise error  # a bug, or the proxies' supervisor not answering: let it crash
    return ObservationFailed(str(error))
