"""The development mode's fault hook on the API: crash a named actor, operator only; a
production node has no such route at all."""

from __future__ import annotations

from pathlib import Path

import httpx
from lifecycle_harness import OPERATOR_TOKEN, running_api

from golem_actor.kernel import SupervisorStatistics

OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


def incarnations(stats: SupervisorStatistics, child: str) -> int:
    return next(c.incarnations for c in stats.children if c.id == child)


async def test_development_mode_crashes_a_named_actor_for_the_operator(tmp_path: Path) -> None:
    async with (
        running_api(tmp_path, environment="development") as node,
        httpx.AsyncClient() as client,
    ):
        crash = f"{node.url}/admin/faults/crash"
        assert (await client.post(f"{crash}/vm_lifecycle")).status_code == 401
        assert incarnations(node.node.tree.statistics(), "vm_lifecycle") == 1

        crashed = await client.post(f"{crash}/vm_lifecycle", headers=OPERATOR)
        assert crashed.status_code == 200, crashed.text
        assert crashed.json()["actor"] == "vm_lifecycle"
        assert "InjectedCrash" in crashed.json()["reason"]
        listed = await client.get(f"{node.url}/vms", headers=OPERATOR)  # served again
        assert listed.status_code == 200
        assert incarnations(node.node.tree.statistics(), "vm_lifecycle") == 2

        unknown = await client.post(f"{crash}/no_such_actor", headers=OPERATOR)
        assert unknown.status_code == 404
        assert "no running child 'no_such_actor'" in unknown.json()["detail"]
        paths = (await client.get(f"{node.url}/openapi.json")).json()["paths"]
        assert "/api/v1/admin/faults/crash/{actor}" in paths


async def test_a_production_node_has_no_fault_hook(tmp_path: Path) -> None:
    async with running_api(tmp_path) as node, httpx.AsyncClient() as client:
        crashed = await client.post(f"{node.url}/admin/faults/crash/vm_lifecycle", headers=OPERATOR)
        assert crashed.status_code == 404
        assert incarnations(node.node.tree.statistics(), "vm_lifecycle") == 1
        paths = (await client.get(f"{node.url}/openapi.json")).json()["paths"]
        assert not any("faults" in path for path in paths)
