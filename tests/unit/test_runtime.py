"""run_node: readiness, stop requests, exit statuses.

Signals are real ones sent to this process; the API's shutdown route is called over HTTP
on the node's own tree (`node_tree`, memory backend) and must stop it without a signal.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import structlog
import trio
import trio.lowlevel
import trio.testing
from kernel_helpers import Recorder, recorder_spec
from lifecycle_harness import OPERATOR_TOKEN, node_parts, node_settings, port_block

from actors.api import ApiActor
from golem_actor.adapters.backend import Endpoint
from golem_actor.adapters.backend.memory import MemoryBackend
from golem_actor.kernel import ChildSpec, Supervisor
from golem_actor.runtime import EXIT_FAILED, EXIT_OK, run_node
from supervisors import node_tree


async def test_first_signal_stops_the_tree_gracefully_in_reverse_order() -> None:
    journal: list[str] = []
    root = Supervisor("node", [recorder_spec(n, journal) for n in ("a", "b", "c")])

    def ready() -> None:
        journal.append("ready")
        os.kill(os.getpid(), signal.SIGTERM)

    with structlog.testing.capture_logs() as logs:
        assert await run_node(root, on_ready=ready) == EXIT_OK
    assert journal == ["start a", "start b", "start c", "ready", "stop c", "stop b", "stop a"]
    events = [entry["event"] for entry in logs]
    assert events[0] == "node ready"
    assert events[-1] == "node stopped"


async def test_second_signal_kills_what_is_still_stopping() -> None:
    journal: list[str] = []
    root = Supervisor(
        "node",
        [recorder_spec("a", journal), recorder_spec("b", journal, hang_on_stop=True, shutdown=60)],
    )

    async def signal_twice() -> None:
        os.kill(os.getpid(), signal.SIGINT)
        await trio.testing.wait_all_tasks_blocked()  # b hangs in its graceful stop
        os.kill(os.getpid(), signal.SIGINT)

    async with trio.open_nursery() as nursery:
        with trio.fail_after(10):  # real time: the kill must not wait for b's 60 s bound
            status = await run_node(root, on_ready=lambda: nursery.start_soon(signal_twice))
    assert status == EXIT_OK
    assert journal == ["start a", "start b", "stop b"]  # a was killed before its on_stop


async def test_a_tree_that_gives_up_exits_non_zero_with_a_logged_reason() -> None:
    class AlwaysCrashes(Recorder):
        async def on_start(self) -> None:
            await super().on_start()
            self.nursery.start_soon(self._crash)

        async def _crash(self) -> None:
            await trio.lowlevel.checkpoint()
            raise OSError("disk on fire")

    journal: list[str] = []
    root = Supervisor(
        "node", [ChildSpec("x", lambda: AlwaysCrashes("x", journal))], intensity=2, period=60
    )
    with structlog.testing.capture_logs() as logs:
        assert await run_node(root) == EXIT_FAILED
    assert journal.count("start x") == 3  # first run + 2 restarts, then it gives up
    gave_up = [entry for entry in logs if entry["event"] == "node gave up"]
    assert len(gave_up) == 1
    assert "more than 2 restart(s)" in gave_up[0]["reason"]
    assert gave_up[0]["cause"] == "OSError: disk on fire"


async def test_a_tree_that_cannot_start_exits_non_zero() -> None:
    root = Supervisor("node", [recorder_spec("a", [], fail_on_start=True)])
    with structlog.testing.capture_logs() as logs:
        assert await run_node(root) == EXIT_FAILED
    (failed,) = [entry for entry in logs if entry["event"] == "node failed to start"]
    assert failed["reason"] == "RuntimeError: a cannot start"


async def test_the_api_shutdown_route_stops_the_node_gracefully(tmp_path: Path) -> None:
    backend = MemoryBackend(ssh=Endpoint("127.0.0.1", 1))
    tree = node_tree(node_parts(node_settings(tmp_path, port_block()), backend))
    replies: list[tuple[str, int]] = []

    async def shut_down() -> None:
        api: ApiActor = tree.root.child_actor("api")
        url = api.bound[0] + "/api/v1"
        async with httpx.AsyncClient() as client:
            for name, headers in (("anonymous", {}), ("tenant", {"Authorization": "Bearer x"})):
                refused = await client.post(f"{url}/admin/shutdown", headers=headers)
                replies.append((name, refused.status_code))
            replies.append(("health", (await client.get(f"{url}/health")).status_code))
            operator = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
            accepted = await client.post(f"{url}/admin/shutdown", headers=operator)
            replies.append(("operator", accepted.status_code))
            assert accepted.json()["status"] == "stopping"

    with structlog.testing.capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            with trio.fail_after(20):
                status = await run_node(
                    tree.root, stop=tree.stop, on_ready=lambda: nursery.start_soon(shut_down)
                )
    assert status == EXIT_OK
    assert replies == [("anonymous", 401), ("tenant", 401), ("health", 200), ("operator", 202)]
    events = [(entry["event"], entry.get("child")) for entry in logs]
    (stopping,) = [entry for entry in logs if entry["event"] == "node stopping"]
    assert stopping["requested_by"] == "api"  # not a signal
    shutdown = events[events.index(("node stopping", None)) :]
    stops = [child for event, child in shutdown if event == "child stopped"]
    assert stops == [
        "api",
        "advertiser",
        "vm_lifecycle",
        "ssh_proxies",
        "vpn_router",
        "port_verifier",
        "resource_tracker",
        "pricing",
    ]
    assert shutdown[-1] == ("node stopped", None)
    assert not any(entry["log_level"] in ("error", "critical") for entry in logs)
