"""`VmLifecycle`: the VM registry, one state machine per VM, and the work behind them.

Theory of operation
-------------------
Requests (create, stop, start, delete) are decided at once by the domain state machine:
the new status is written to the registry file *before* any work starts, then the
state's effects run as one background operation per VM in the actor's nursery, and the
operation's outcome comes back as an `OpOutcome` message that feeds the machine again.
So the inbox keeps flowing and status queries answer at once, whatever a launch costs.

Each operation has an id; a newer request on the same VM (a delete during a create)
cancels the running operation, waits for it to end, then starts its own, and outcomes
of superseded operations are ignored.

At start, before serving, the actor reconciles the registry with the world: it re-books
every live VM's resources, resumes each interrupted operation (a `creating` VM is
launched again: launches are idempotent per id; `deleting` is deleted again), adopts
running VMs by reopening their proxies on the same ports, and deletes backend VMs that
it created but has no record of. A timer keeps doing the cheap half of that while the
node runs: proxies that vanished (their supervisor restarted) come back, and a guest
that powered itself off is reported stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import structlog
import trio

from actors.port_verifier import GetUsablePorts, PortsInUse
from actors.resource_tracker import Release, Reserve
from actors.ssh_proxy import proxy_child_id
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
from golem_actor.kernel import Actor, Address, Call, WhichChildren
from golem_actor.state_store import StateStore

from .messages import (
    Conflict,
    CreateVm,
    DeleteVm,
    GetJob,
    GetVm,
    JobNotFound,
    JobView,
    ListVms,
    NameTaken,
    NoFreePort,
    Observation,
    OpOutcome,
    StartVm,
    StopVm,
    StreamInUse,
    Tick,
    VmNotFound,
    VmView,
)
from .operations import OperationFailed, Operations
from .registry import REGISTRY, SCHEMA_VERSION, Registry, VmRecord, utcnow

log = structlog.get_logger("golem_actor.vm_lifecycle")


class _RunningOp:
    def __init__(self, op_id: int) -> None:
        self.op_id = op_id
        self.scope = trio.CancelScope()
        self.done = trio.Event()


class VmLifecycle(Actor[object]):
    def __init__(
        self,
        *,
        operations: Operations,
        store: StateStore,
        resources: Address[Any],
        port_range: range,
        tick_interval: float = 5.0,
        streams_file: Path | None = None,
        port_verifier: Address[Any] | None = None,
    ) -> None:
        super().__init__()
        self._ops = operations
        self._backend: VmBackend = operations.backend
        self._store = store
        self._resources = resources
        self._port_range = port_range
        self._tick_interval = tick_interval
        self._streams_file = streams_file
        self._port_verifier = port_verifier
        self._vms: dict[str, VmRecord] = {}
        self._running: dict[str, _RunningOp] = {}
        self._next_op = 0

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
        await self._save()
        self.nursery.start_soon(self._timer)
        log.info("vm registry ready", vms=len(self._vms), backend=self._backend.kind)

    def _resume(self, record: VmRecord, machine: Observed | None) -> None:
        state = machine.state if machine else BackendState.MISSING
        match record.status:
            case VmStatus.CREATING | VmStatus.STARTING | VmStatus.STOPPING | VmStatus.DELETING:
                self._start_op(record, ENTRY_EFFECTS[record.status])
            case VmStatus.RUNNING | VmStatus.STOPPED if state is BackendState.MISSING:
                self._apply(record, Event.VANISHED, error="the VM disappeared from the backend")
            case VmStatus.RUNNING if state is BackendState.STOPPED:
                self._apply(record, Event.POWERED_OFF)
            case VmStatus.RUNNING:
                target = machine.ssh if machine else None
                self._vms[record.vm_id] = record.evolve(target=target or record.target)
                self._start_op(self._vms[record.vm_id], (Effect.OPEN_PROXY,))
            case VmStatus.STOPPED if state is BackendState.RUNNING:
                self._start_op(record, (Effect.POWER_OFF,))  # keep the recorded intent
            case _:
                pass

    # -- requests ------------------------------------------------------------------------

    async def handle_call(self, request: Call[Any]) -> Any:
        match request:
            case CreateVm():
                return await self._create(request)
            case GetVm(caller=caller, vm_id=vm_id):
                return self._view(self._find(caller, vm_id))
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
        self._vms[vm_id] = record
        await self._save()
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
            self._transition(record, after)
            await self._save()
        return self._view(self._vms.get(vm_id, record))

    # -- outcomes and drift ------------------------------------------------------------------

    async def handle_cast(self, message: object) -> None:
        match message:
            case OpOutcome():
                await self._outcome(message)
            case Tick():
                self.nursery.start_soon(self._observe)
            case Observation():
                await self._drift(message)
            case _:
                await super().handle_cast(message)

    async def _outcome(self, outcome: OpOutcome) -> None:
        running = self._running.get(outcome.vm_id)
        record = self._vms.get(outcome.vm_id)
        if running is None or running.op_id != outcome.op_id or record is None:
            return  # superseded by a newer request
        del self._running[outcome.vm_id]
        if outcome.observed is not None:
            record = record.evolve(
                target=outcome.observed.ssh or record.target,
                ip_address=outcome.observed.ip_address or record.ip_address,
            )
            self._vms[record.vm_id] = record
        if outcome.event is None:
            if outcome.error:
                log.warning("vm operation failed", vm_id=record.vm_id, error=outcome.error)
            return
        self._apply(record, outcome.event, error=outcome.error)
        await self._save()

    async def _drift(self, seen: Observation) -> None:
        changed = False
        for record in list(self._vms.values()):
            if record.vm_id in self._running:
                continue  # an operation is deciding this VM's fate
            machine = seen.machines.get(record.vm_id)
            state = machine.state if machine else BackendState.MISSING
            if record.status not in (VmStatus.RUNNING, VmStatus.STOPPED):
                continue
            if state is BackendState.MISSING:
                self._apply(record, Event.VANISHED, error="the VM disappeared from the backend")
                changed = True
            elif record.status is VmStatus.RUNNING and state is BackendState.STOPPED:
                log.info("vm powered off by its guest", vm_id=record.vm_id)
                self._apply(record, Event.POWERED_OFF)
                changed = True
            elif record.status is VmStatus.RUNNING and machine is not None:
                moved = machine.ssh is not None and machine.ssh != record.target
                current = record.evolve(target=machine.ssh) if moved else record
                self._vms[record.vm_id] = current
                if moved or proxy_child_id(record.vm_id) not in seen.proxies:
                    self._start_op(current, (Effect.OPEN_PROXY,))
        if changed:
            await self._save()

    # -- the machine's bookkeeping ---------------------------------------------------------

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
        if status is VmStatus.DELETED:
            self._release(record)
            return
        keep_error = status is VmStatus.ERROR
        record = record.evolve(status=status, error=error if keep_error else None)
        self._vms[record.vm_id] = record
        effects = ENTRY_EFFECTS[status]
        if effects:
            self._start_op(record, effects)

    def _release(self, record: VmRecord) -> None:
        self._vms.pop(record.vm_id, None)
        self.nursery.start_soon(self._resources.call, Release(record.vm_id))
        log.info("vm deleted", vm_id=record.vm_id, port=record.ssh_port)

    def _start_op(self, record: VmRecord, effects: tuple[Effect, ...]) -> None:
        previous = self._running.get(record.vm_id)
        if previous is not None:
            previous.scope.cancel(reason="superseded by a newer request")
        self._next_op += 1
        running = self._running[record.vm_id] = _RunningOp(self._next_op)
        self.nursery.start_soon(self._run_op, record, effects, running, previous)

    async def _run_op(
        self,
        record: VmRecord,
        effects: tuple[Effect, ...],
        running: _RunningOp,
        previous: _RunningOp | None,
    ) -> None:
        structlog.contextvars.bind_contextvars(vm_id=record.vm_id)
        try:
            with running.scope:
                if previous is not None:
                    await previous.done.wait()
                try:
                    event, observed = await self._ops.perform(record, effects)
                    outcome = OpOutcome(
                        vm_id=record.vm_id, op_id=running.op_id, event=event, observed=observed
                    )
                except OperationFailed as failure:
                    log.warning("vm operation failed", effects=list(effects), error=str(failure))
                    failed = Event.FAILED if _ends_with_event(effects) else None
                    outcome = OpOutcome(
                        vm_id=record.vm_id, op_id=running.op_id, event=failed, error=str(failure)
                    )
        finally:
            running.done.set()
        if not running.scope.cancelled_caught:
            await self.address.cast(outcome)

    # -- periodic observation ------------------------------------------------------------------

    async def _timer(self) -> None:
        while True:
            await trio.sleep(self._tick_interval)
            await self.address.cast(Tick())

    async def _observe(self) -> None:
        try:
            machines = {o.vm_id: o for o in await self._backend.list_owned()}
        except BackendError as error:
            log.warning("could not observe the backend", error=str(error))
            return
        children: tuple[str, ...] = await self._ops.proxies.call(WhichChildren())
        await self.address.cast(Observation(machines=machines, proxies=frozenset(children)))

    # -- helpers ------------------------------------------------------------------------------

    async def _save(self) -> None:
        if self._port_verifier is not None:
            running = frozenset(
                r.ssh_port for r in self._vms.values() if r.status is VmStatus.RUNNING
            )
            reserved = frozenset(r.ssh_port for r in self._vms.values())
            await self._port_verifier.cast(PortsInUse(running=running, reserved=reserved))
        registry = Registry(vms=list(self._vms.values()))
        await self._store.save(REGISTRY, registry, schema_version=SCHEMA_VERSION)
        if self._streams_file is not None:
            # The seed's `streams.json`: a VM -> stream map for tools that read it; the
            # registry above stays the source of truth.
            mapping = {r.vm_id: r.stream_id for r in self._vms.values() if r.stream_id is not None}
            data = msgspec.json.format(msgspec.json.encode(mapping))
            await trio.to_thread.run_sync(write_atomic, self._streams_file, data)

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
        if self._port_verifier is not None:
            candidates = (await self._port_verifier.call(GetUsablePorts())).ports
        taken = {r.ssh_port for r in self._vms.values()}
        for port in candidates:
            if port not in taken and bindable(self._ops.listen_host, port):
                return port
        span = f"{self._port_range.start}-{self._port_range.stop - 1}"
        verified = " verified reachable" if self._port_verifier is not None else ""
        raise NoFreePort(f"no free{verified} SSH port in {span}")

    @staticmethod
    def _view(record: VmRecord) -> VmView:
        return VmView(
            vm_id=record.vm_id,
            name=record.name,
            status=record.status,
            resources=record.resources,
            image=record.image,
            ip_address=record.ip_address,
            ssh_port=record.ssh_port,
            stream_id=record.stream_id,
            job_id=record.job_id,
            error=record.error,
            created_at=record.created_at,
            updated_at=record.updated_at,
        )


def _ends_with_event(effects: tuple[Effect, ...]) -> bool:
    """Operations that drive a transition fail the VM; proxy housekeeping does not."""
    return any(e not in (Effect.OPEN_PROXY, Effect.CLOSE_PROXY) for e in effects)
