"""vm_lifecycle through its address, over a MemoryBackend, real proxies and sockets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
import trio.testing
from lifecycle_harness import BANNER, OPERATOR, SMALL, WAIT_BOUND, Node, running_node

from actors.resource_tracker import GetCapacity, InsufficientResources
from actors.vm_lifecycle import (
    Conflict,
    CreateVm,
    DeleteVm,
    GetJob,
    GetVm,
    ListVms,
    NameTaken,
    StartVm,
    StateNotSaved,
    StopVm,
    StreamInUse,
    VmLifecycle,
    VmNotFound,
    VmView,
    WaitVm,
)
from actors.vm_lifecycle.registry import REGISTRY, SCHEMA_VERSION, Registry, VmRecord, utcnow
from golem_actor.adapters.backend import BackendState, Endpoint, Observed
from golem_actor.adapters.backend.memory import MemoryBackend
from golem_actor.adapters.ssh_probe import read_banner
from golem_actor.domain.resources import Resources
from golem_actor.domain.tenancy import Caller, token_digest
from golem_actor.domain.vm_machine import VmStatus
from golem_actor.kernel import CallFailed, CallTimeout, WhichChildren
from golem_actor.kernel._messages import Call

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIRs0B8Yy4n9XlG3I1X3m2zSNQ3xk9lfP6DW3lS7x7zs t"


def create(
    name: str, caller: Caller = OPERATOR, resources: Resources = SMALL, **kw: object
) -> CreateVm:
    return CreateVm(
        caller=caller,
        name=name,
        resources=resources,
        image="test-guest",
        authorized_keys=(KEY,),
        **kw,  # type: ignore[arg-type]
    )


async def banner(port: int) -> str | None:
    return await read_banner("127.0.0.1", port)


async def refused(port: int) -> bool:
    try:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
    except OSError:
        return True
    await stream.aclose()
    return False


async def test_the_journey_create_stop_start_delete(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node:
        view = await node.lifecycle.call(create("web"))
        assert view.status is VmStatus.CREATING
        assert view.ssh_port in node.ports
        running = await node.wait_status(view.vm_id, VmStatus.RUNNING)
        assert running.ip_address == "10.0.2.15"
        assert await banner(view.ssh_port) == BANNER.decode().strip()

        await node.lifecycle.call(StopVm(OPERATOR, view.vm_id))
        await node.wait_status(view.vm_id, VmStatus.STOPPED)
        assert await refused(view.ssh_port)  # the proxy is closed while the VM is off
        assert node.backend.machines[view.vm_id].state is BackendState.STOPPED

        await node.lifecycle.call(StartVm(OPERATOR, view.vm_id))
        again = await node.wait_status(view.vm_id, VmStatus.RUNNING)
        assert again.ssh_port == view.ssh_port  # the port stayed reserved
        assert await banner(view.ssh_port) is not None

        await node.lifecycle.call(DeleteVm(OPERATOR, view.vm_id))
        await node.wait_gone(view.vm_id)
        assert view.vm_id not in node.backend.machines
        assert await refused(view.ssh_port)
        capacity = await node.resources.call(GetCapacity())
        assert capacity.vms == 0
        reused = await node.lifecycle.call(create("web"))  # the name and the port are free again
        assert reused.ssh_port == view.ssh_port


async def test_state_is_written_before_the_work_starts(tmp_path: Path) -> None:
    backend = MemoryBackend(ssh=Endpoint("127.0.0.1", 1))
    backend.hold = trio.Event()
    async with running_node(tmp_path, backend) as node:
        view = await node.lifecycle.call(create("web"))
        saved = await node.store.load(REGISTRY, Registry, schema_version=SCHEMA_VERSION)
        assert saved is not None
        assert [(r.vm_id, r.status) for r in saved.vms] == [(view.vm_id, VmStatus.CREATING)]
        backend.hold.set()
        await node.wait_status(view.vm_id, VmStatus.RUNNING)


async def test_refusals(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node:
        view = await node.lifecycle.call(create("web"))
        with pytest.raises(NameTaken):
            await node.lifecycle.call(create("web"))
        with pytest.raises(Conflict, match="cannot stop a VM that is creating"):
            await node.lifecycle.call(StopVm(OPERATOR, view.vm_id))
        big = Resources.from_gb(cpus=8, memory_gb=1, storage_gb=10)
        with pytest.raises(
            InsufficientResources, match="not enough CPU cores: requested 8, available 3"
        ):
            await node.lifecycle.call(create("big", resources=big))
        with pytest.raises(VmNotFound):
            await node.lifecycle.call(GetVm(OPERATOR, "vm-nothing"))


async def test_a_failed_launch_is_an_error_that_can_be_deleted(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node:
        node.backend.fail_next["launch"] = "qemu: could not allocate memory"
        view = await node.lifecycle.call(create("web"))
        failed = await node.wait_status(view.vm_id, VmStatus.ERROR)
        assert failed.error == "qemu: could not allocate memory"
        await node.lifecycle.call(DeleteVm(OPERATOR, view.vm_id))
        await node.wait_gone(view.vm_id)
        assert (await node.resources.call(GetCapacity())).vms == 0


async def test_delete_during_create_cancels_the_launch(tmp_path: Path) -> None:
    backend = MemoryBackend(ssh=Endpoint("127.0.0.1", 1))
    backend.hold = trio.Event()  # launches never finish
    async with running_node(tmp_path, backend) as node:
        view = await node.lifecycle.call(create("web"))
        await trio.testing.wait_all_tasks_blocked()
        await node.lifecycle.call(DeleteVm(OPERATOR, view.vm_id))
        await node.wait_gone(view.vm_id)
        assert ("delete", view.vm_id) in backend.calls
        assert ("launch", view.vm_id) not in backend.calls  # cancelled while it waited


async def test_tenants_see_only_their_own_vms(tmp_path: Path) -> None:
    alice, bob = Caller(tenant=token_digest("alice")), Caller(tenant=token_digest("bob"))
    async with running_node(tmp_path) as node:
        hers = await node.lifecycle.call(create("alice-vm", alice))
        open_vm = await node.lifecycle.call(create("anon-vm", Caller()))
        for request in (
            GetVm(bob, hers.vm_id),
            StopVm(bob, hers.vm_id),
            DeleteVm(bob, hers.vm_id),
            GetVm(Caller(), hers.vm_id),
        ):
            with pytest.raises(VmNotFound):
                await node.lifecycle.call(request)
        assert (await node.lifecycle.call(GetVm(alice, hers.vm_id))).name == "alice-vm"
        assert (
            await node.lifecycle.call(GetVm(bob, open_vm.vm_id))
        ).name == "anon-vm"  # capability
        assert [v.name for v in await node.lifecycle.call(ListVms(alice))] == ["alice-vm"]
        assert await node.lifecycle.call(ListVms(bob)) == []
        assert await node.lifecycle.call(ListVms(Caller())) == []
        everything = await node.lifecycle.call(ListVms(OPERATOR))
        assert len(everything) == 2


async def test_async_create_has_a_job(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node:
        view = await node.lifecycle.call(create("web", with_job=True))
        assert view.job_id is not None
        job = await node.lifecycle.call(GetJob(OPERATOR, view.job_id))
        assert (job.vm_id, job.status) in {(view.vm_id, "creating"), (view.vm_id, "ready")}
        await node.wait_status(view.vm_id, VmStatus.RUNNING)
        assert (await node.lifecycle.call(GetJob(OPERATOR, view.job_id))).status == "ready"


async def test_one_stream_backs_one_vm_and_the_map_follows_the_vms(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node:
        first = await node.lifecycle.call(create("paid", stream_id=7))
        with pytest.raises(StreamInUse, match="stream 7 already backs another VM"):
            await node.lifecycle.call(create("reuse", stream_id=7))
        await node.lifecycle.call(create("free"))
        mapping = json.loads((tmp_path / "streams.json").read_text())
        assert mapping == {first.vm_id: 7}
        await node.wait_status(first.vm_id, VmStatus.RUNNING)
        await node.lifecycle.call(DeleteVm(OPERATOR, first.vm_id))
        await node.wait_gone(first.vm_id)
        assert json.loads((tmp_path / "streams.json").read_text()) == {}
        await node.lifecycle.call(create("reuse", stream_id=7))  # free again


class Crash(Call[None], frozen=True):
    pass


async def test_a_lifecycle_crash_keeps_vms_and_live_ssh_sessions(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node:
        view = await node.lifecycle.call(create("web"))
        await node.wait_status(view.vm_id, VmStatus.RUNNING)
        session = await trio.open_tcp_stream("127.0.0.1", view.ssh_port)
        assert (await session.receive_some(100)).startswith(b"SSH-")
        untyped = node.tree.child_address("vm_lifecycle")  # mypy would refuse Crash()
        with pytest.raises(CallFailed):
            await untyped.call(Crash())  # an unknown call crashes the actor
        # The new incarnation reloaded the registry and adopted the VM...
        assert (await node.wait_status(view.vm_id, VmStatus.RUNNING)).ssh_port == view.ssh_port
        stats = node.tree.statistics()
        assert {c.id: c.incarnations for c in stats.children}["vm_lifecycle"] == 2
        # ...and the session opened before the crash still works.
        await session.send_all(b"still here")
        assert await session.receive_some(100) == b"still here"
        await session.aclose()


async def test_start_resumes_interrupted_work_and_cleans_orphans(tmp_path: Path) -> None:
    now = utcnow()

    def record(vm_id: str, status: VmStatus, port: int) -> VmRecord:
        return VmRecord(
            vm_id=vm_id,
            name=vm_id,
            owner=None,
            status=status,
            resources=SMALL,
            image="test-guest",
            authorized_keys=(KEY,),
            ssh_port=port,
            created_at=now,
            updated_at=now,
        )

    backend = MemoryBackend(ssh=Endpoint("127.0.0.1", 1))
    async with running_node(tmp_path / "first", backend) as node:
        ports = list(node.ports)
    for vm_id in ("vm-running", "vm-deleting", "vm-orphan", "vm-stopping"):
        backend.machines[vm_id] = Observed(vm_id=vm_id, state=BackendState.RUNNING, ssh=backend.ssh)
    records = [
        record("vm-creating", VmStatus.CREATING, ports[0]),  # crashed mid-create
        record("vm-running", VmStatus.RUNNING, ports[1]),
        record("vm-deleting", VmStatus.DELETING, ports[2]),
        record("vm-lost", VmStatus.RUNNING, ports[3]),  # its machine is gone
        record("vm-stopping", VmStatus.STOPPING, ports[4]),
    ]
    from golem_actor.state_store import StateStore  # noqa: PLC0415

    await StateStore(tmp_path / "second").save(
        REGISTRY, Registry(vms=records), schema_version=SCHEMA_VERSION
    )
    async with running_node(tmp_path / "second", backend) as node:
        # the harness picked new ports; the records keep theirs
        await node.wait_status("vm-creating", VmStatus.RUNNING)
        await node.wait_status("vm-running", VmStatus.RUNNING)
        await node.wait_status("vm-stopping", VmStatus.STOPPED)
        lost = await node.wait_status("vm-lost", VmStatus.ERROR)
        assert lost.error == "the VM disappeared from the backend"
        await node.wait_gone("vm-deleting")
        assert set(backend.machines) == {"vm-creating", "vm-running", "vm-stopping"}  # orphan gone
        assert await banner(ports[1]) is not None  # adopted: proxied on its old port
        assert (await node.resources.call(GetCapacity())).vms == 4


async def test_drift_a_guest_powering_off_and_a_lost_proxy(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node:
        first = await node.lifecycle.call(create("one"))
        second = await node.lifecycle.call(create("two"))
        await node.wait_status(first.vm_id, VmStatus.RUNNING)
        await node.wait_status(second.vm_id, VmStatus.RUNNING)
        node.backend.power_off(first.vm_id)  # `poweroff` inside the guest
        await node.wait_status(first.vm_id, VmStatus.STOPPED)
        # A proxy lost behind the lifecycle's back (its supervisor restarted) comes back.
        from golem_actor.kernel import TerminateChild  # noqa: PLC0415

        await node.proxies.call(TerminateChild(f"ssh_proxy:{second.vm_id}"))
        assert await refused(second.ssh_port)
        with trio.fail_after(5):
            while f"ssh_proxy:{second.vm_id}" not in await node.proxies.call(  # noqa: ASYNC110
                WhichChildren()
            ):
                await trio.sleep(0.01)  # polling another actor, on purpose
        assert await banner(second.ssh_port) is not None


# -- WaitVm: deferred replies -------------------------------------------------------------


def lifecycle_of(node: Node) -> VmLifecycle:
    actor: VmLifecycle = node.tree.child_actor("vm_lifecycle")
    return actor


def incarnations(node: Node, child: str) -> int:
    return {c.id: c.incarnations for c in node.tree.statistics().children}[child]


async def test_wait_vm_is_answered_on_the_transition(tmp_path: Path) -> None:
    backend = MemoryBackend(ssh=Endpoint("127.0.0.1", 1))
    backend.hold = trio.Event()  # the launch waits until the test lets it go
    async with running_node(tmp_path, backend) as node, trio.open_nursery() as nursery:
        view = await node.lifecycle.call(create("web"))
        answers: list[VmView] = []
        answered = trio.Event()

        async def wait() -> None:
            until = frozenset({VmStatus.RUNNING, VmStatus.ERROR})
            request = WaitVm(OPERATOR, view.vm_id, until)
            answers.append(await node.lifecycle.with_call_timeout(WAIT_BOUND).call(request))
            answered.set()

        nursery.start_soon(wait)
        await trio.testing.wait_all_tasks_blocked()
        assert answers == []  # still creating: the caller is held, not answered
        assert lifecycle_of(node).waiting == 1
        backend.hold.set()
        with trio.fail_after(WAIT_BOUND):
            await answered.wait()
        assert [a.status for a in answers] == [VmStatus.RUNNING]
        assert answers[0].ip_address == "10.0.2.15"
        assert lifecycle_of(node).waiting == 0
        # The answer came after the commit: the registry on disk already says so.
        saved = await node.store.load(REGISTRY, Registry, schema_version=SCHEMA_VERSION)
        assert saved is not None
        assert [r.status for r in saved.vms] == [VmStatus.RUNNING]


async def test_wait_vm_is_answered_at_once_when_the_vm_is_there(tmp_path: Path) -> None:
    backend = MemoryBackend(ssh=Endpoint("127.0.0.1", 1))
    backend.hold = trio.Event()  # the VM cannot leave `creating` during the test
    async with running_node(tmp_path, backend) as node:
        view = await node.lifecycle.call(create("web"))
        wait = WaitVm(OPERATOR, view.vm_id, frozenset({VmStatus.CREATING, VmStatus.RUNNING}))
        answer = await node.lifecycle.call(wait)
        assert (answer.vm_id, answer.status) == (view.vm_id, VmStatus.CREATING)
        assert lifecycle_of(node).waiting == 0
        with pytest.raises(VmNotFound):  # an unknown VM is refused at once too
            await node.lifecycle.call(WaitVm(OPERATOR, "vm-nothing", frozenset()))
        stranger = Caller(tenant=token_digest("stranger"))
        mine = await node.lifecycle.call(create("mine", Caller(tenant=token_digest("me"))))
        with pytest.raises(VmNotFound):  # and so is a VM the caller may not see
            await node.lifecycle.call(WaitVm(stranger, mine.vm_id, frozenset({VmStatus.CREATING})))
        backend.hold.set()


async def test_wait_vm_is_refused_when_the_vm_is_deleted(tmp_path: Path) -> None:
    backend = MemoryBackend(ssh=Endpoint("127.0.0.1", 1))
    backend.hold = trio.Event()  # launches never finish
    async with running_node(tmp_path, backend) as node, trio.open_nursery() as nursery:
        view = await node.lifecycle.call(create("web"))
        refusals: list[Exception] = []

        async def wait() -> None:
            try:
                await node.lifecycle.with_call_timeout(WAIT_BOUND).call(
                    WaitVm(OPERATOR, view.vm_id, frozenset({VmStatus.RUNNING}))
                )
            except VmNotFound as refused:
                refusals.append(refused)

        nursery.start_soon(wait)
        await trio.testing.wait_all_tasks_blocked()
        assert lifecycle_of(node).waiting == 1
        await node.lifecycle.call(DeleteVm(OPERATOR, view.vm_id))
        await node.wait_gone(view.vm_id)
        await trio.testing.wait_all_tasks_blocked()
        assert [str(r) for r in refusals] == [f"Not Found: VM {view.vm_id} was deleted"]
        assert lifecycle_of(node).waiting == 0
        assert (await node.resources.call(GetCapacity())).vms == 0


async def test_a_caller_that_gives_up_leaves_the_lifecycle_healthy(tmp_path: Path) -> None:
    backend = MemoryBackend(ssh=Endpoint("127.0.0.1", 1))
    backend.hold = trio.Event()
    async with running_node(tmp_path, backend) as node:
        view = await node.lifecycle.call(create("web"))
        impatient = node.lifecycle.with_call_timeout(0.05)
        with pytest.raises(CallTimeout):
            await impatient.call(WaitVm(OPERATOR, view.vm_id, frozenset({VmStatus.RUNNING})))
        # The next request prunes the abandoned waiter; nothing else changed.
        now = await node.lifecycle.call(WaitVm(OPERATOR, view.vm_id, frozenset(VmStatus)))
        assert now.status is VmStatus.CREATING
        assert lifecycle_of(node).waiting == 0
        backend.hold.set()  # the transition finds no one to answer, and that is fine
        await node.wait_status(view.vm_id, VmStatus.RUNNING)
        assert incarnations(node, "vm_lifecycle") == 1


async def test_a_lifecycle_crash_fails_waiting_callers_at_once(tmp_path: Path) -> None:
    backend = MemoryBackend(ssh=Endpoint("127.0.0.1", 1))
    backend.hold = trio.Event()
    async with running_node(tmp_path, backend) as node, trio.open_nursery() as nursery:
        view = await node.lifecycle.call(create("web"))
        failures: list[Exception] = []

        async def wait() -> None:
            try:  # far longer than the test may take: only the crash can end this wait
                await node.lifecycle.with_call_timeout(3600).call(
                    WaitVm(OPERATOR, view.vm_id, frozenset({VmStatus.RUNNING}))
                )
            except CallFailed as failed:
                failures.append(failed)

        nursery.start_soon(wait)
        await trio.testing.wait_all_tasks_blocked()
        assert lifecycle_of(node).waiting == 1
        with trio.fail_after(WAIT_BOUND):
            with pytest.raises(CallFailed):  # untyped: Crash is no lifecycle request
                await node.tree.child_address("vm_lifecycle").call(Crash())
            await trio.testing.wait_all_tasks_blocked()
        assert len(failures) == 1
        assert incarnations(node, "vm_lifecycle") == 2
        backend.hold.set()  # the next incarnation resumed the create
        await node.wait_status(view.vm_id, VmStatus.RUNNING)


class SlowLook(MemoryBackend):
    """A backend whose listing is a snapshot that takes a while to come back, as a
    `multipass list` does: what it reports was true when the call started."""

    def __init__(self, *, ssh: Endpoint, delay: float) -> None:
        super().__init__(ssh=ssh)
        self.delay = delay
        self._started = trio.Event()

    async def look_started(self) -> None:
        """Until a look starts (from now on)."""
        self._started = trio.Event()
        await self._started.wait()

    async def list_owned(self) -> list[Observed]:
        snapshot = list(self.machines.values())
        self._started.set()
        await trio.sleep(self.delay)
        return snapshot


class CountedLooks(MemoryBackend):
    """A backend that counts the periodic looks (`list_owned` calls)."""

    looks = 0

    async def list_owned(self) -> list[Observed]:
        self.looks += 1
        return await super().list_owned()


async def test_a_node_without_vms_looks_at_nothing(tmp_path: Path) -> None:
    # The look compares running and stopped VMs with the backend: with none, a
    # `multipass list` every tick would be work for nothing.
    backend = CountedLooks(ssh=Endpoint("127.0.0.1", 9))
    async with running_node(tmp_path, backend) as node:
        at_start = backend.looks  # the start's reconciliation lists the backend once
        await trio.sleep(0.5)  # ten ticks
        assert backend.looks == at_start
        view = await node.lifecycle.call(create("watched"))
        await node.wait_status(view.vm_id, VmStatus.RUNNING)
        await trio.sleep(0.5)
        assert backend.looks >= at_start + 3


async def test_a_look_older_than_a_vm_s_last_change_does_not_undo_it(tmp_path: Path) -> None:
    # A look takes 0.3 s here; a create, then a stop and a start, each finish while a look
    # that began before them is still out: its report (the VM missing, then stopped
    # while it runs again) is stale and must change nothing.
    # A node with no VM running or stopped looks at nothing, so a bystander comes first.
    backend = SlowLook(ssh=Endpoint("127.0.0.1", 9), delay=0.3)
    async with running_node(tmp_path, backend) as node:
        bystander = await node.lifecycle.call(create("bystander"))
        await node.wait_status(bystander.vm_id, VmStatus.RUNNING)
        await backend.look_started()
        view = await node.lifecycle.call(create("fresh"))
        await node.wait_status(view.vm_id, VmStatus.RUNNING)
        await trio.sleep(0.5)  # the look that started before the create has reported
        now = await node.lifecycle.call(GetVm(OPERATOR, view.vm_id))
        assert now.status is VmStatus.RUNNING, now.error
        await node.lifecycle.call(StopVm(OPERATOR, view.vm_id))
        await node.wait_status(view.vm_id, VmStatus.STOPPED)
        await backend.look_started()
        await node.lifecycle.call(StartVm(OPERATOR, view.vm_id))
        await node.wait_status(view.vm_id, VmStatus.RUNNING)
        await trio.sleep(0.5)
        now = await node.lifecycle.call(GetVm(OPERATOR, view.vm_id))
        assert now.status is VmStatus.RUNNING, now.error
        # A real drift is still seen once a look starts after the last change.
        node.backend.power_off(view.vm_id)
        await node.wait_status(view.vm_id, VmStatus.STOPPED)


async def test_a_machine_that_ends_under_a_running_vm_is_stopped_with_the_reason(
    tmp_path: Path,
) -> None:
    async with running_node(tmp_path) as node:
        view = await node.lifecycle.call(create("crashy"))
        await node.wait_status(view.vm_id, VmStatus.RUNNING)
        why = "QEMU ended while the guest ran (killed or crashed); its disk is kept"
        node.backend.machines[view.vm_id] = Observed(
            vm_id=view.vm_id, state=BackendState.STOPPED, reason=why
        )
        stopped = await node.wait_status(view.vm_id, VmStatus.STOPPED)  # seen by the timer
        assert stopped.error == why
        assert await refused(view.ssh_port)
        for _ in range(100):  # and what the machine left is ended (its pasta)
            if ("stop", view.vm_id) in node.backend.calls:
                break
            await trio.sleep(0.01)
        assert ("stop", view.vm_id) in node.backend.calls
        saved = await node.store.load(REGISTRY, Registry, schema_version=SCHEMA_VERSION)
        assert saved is not None
        assert [vm.error for vm in saved.vms] == [why]  # it survives a restart

        await node.lifecycle.call(StartVm(OPERATOR, view.vm_id))
        again = await node.wait_status(view.vm_id, VmStatus.RUNNING)
        assert again.error is None  # the reason went with the stop


async def test_a_failed_clean_up_after_a_machine_ended_is_an_error_not_a_crash(
    tmp_path: Path,
) -> None:
    async with running_node(tmp_path) as node:
        view = await node.lifecycle.call(create("crashy"))
        await node.wait_status(view.vm_id, VmStatus.RUNNING)
        node.backend.fail_next["stop"] = "pasta of the VM survived SIGKILL"
        node.backend.power_off(view.vm_id)
        failed = await node.wait_status(view.vm_id, VmStatus.ERROR)
        assert failed.error == "pasta of the VM survived SIGKILL"
        incarnations = {c.id: c.incarnations for c in node.tree.statistics().children}
        assert incarnations["vm_lifecycle"] == 1


async def test_a_request_the_disk_cannot_record_is_refused_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_node(tmp_path) as node:
        view = await node.lifecycle.call(create("kept"))
        await node.wait_status(view.vm_id, VmStatus.RUNNING)
        saving = node.store.save

        async def disk_full(*args: object, **kwargs: object) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(node.store, "save", disk_full)
        with pytest.raises(StateNotSaved, match="No space left on device"):
            await node.lifecycle.call(create("more"))
        with pytest.raises(StateNotSaved, match="needs free space"):
            await node.lifecycle.call(StopVm(OPERATOR, view.vm_id))
        listed = await node.lifecycle.call(ListVms(OPERATOR))
        assert [(v.name, v.status) for v in listed] == [("kept", VmStatus.RUNNING)]
        assert (await node.resources.call(GetCapacity())).vms == 1  # the booking went back
        assert await banner(view.ssh_port) is not None  # the VM was never touched

        monkeypatch.setattr(node.store, "save", saving)  # space is back
        more = await node.lifecycle.call(create("more"))
        await node.wait_status(more.vm_id, VmStatus.RUNNING)
        await node.lifecycle.call(StopVm(OPERATOR, view.vm_id))
        await node.wait_status(view.vm_id, VmStatus.STOPPED)
        incarnations = {c.id: c.incarnations for c in node.tree.statistics().children}
        assert incarnations["vm_lifecycle"] == 1  # refused, never crashed
