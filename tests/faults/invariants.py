"""What must hold of a node and the world around it after any fault, checked from outside.

`settle` waits until no VM is between two states; `check_world` then compares what the
node says (its VM list, its capacity) with what the host shows (QEMU and pasta processes,
listeners in the SSH port range, VM directories, the state files) and logs in to every
running VM. Each finding is a short sentence; a healthy node has none.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import psutil
import trio
from node_helpers import NodeProcess, ssh

SETTLED = ("running", "stopped", "error")


async def listing(client: httpx.AsyncClient, node: NodeProcess) -> dict[str, dict[str, Any]]:
    reply = await client.get(f"{node.url}/vms", headers=node.operator)
    assert reply.status_code == 200, reply.text
    return {vm["id"]: vm for vm in reply.json()}


async def settle(
    client: httpx.AsyncClient, node: NodeProcess, bound: float = 240
) -> dict[str, dict[str, Any]]:
    """Every VM of the node once none is creating, starting, stopping or deleting."""
    with trio.fail_after(bound):
        while True:
            try:
                vms = await listing(client, node)
            except httpx.TransportError:
                vms = None  # still starting
            if vms is not None and all(vm["status"] in SETTLED for vm in vms.values()):
                return vms
            await trio.sleep(0.5)


def listeners(ports: range) -> set[int]:
    """Ports of `ports` with a TCP listener on this host."""
    found = set()
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port in ports:
            found.add(conn.laddr.port)
    return found


def vm_dirs(node: NodeProcess) -> set[str]:
    vms = node.data / "vms"
    if not vms.exists():
        return set()
    return {p.name for p in vms.iterdir() if not p.name.startswith(".")}


def qemu_owners(node: NodeProcess) -> list[str]:
    """The VM id of every live QEMU of the node (its working directory is the VM's)."""
    owners = []
    for process in node.qemus():
        try:
            owners.append(Path(process.cwd()).name)
        except psutil.Error:
            continue
    return owners


def alive(process: psutil.Process) -> bool:
    """Running, not a zombie waiting for its parent (a killed pasta, for a moment)."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def anvils(port: int) -> list[psutil.Process]:
    """The anvil processes serving `port` (a node's own chain: one, never an orphan more)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        argv = process.info["cmdline"] or []
        if any(Path(a).name == "anvil" for a in argv[:2]) and str(port) in argv:
            found.append(process)
    return found


def state_files(node: NodeProcess) -> list[str]:
    """Findings about the state directory: every file parses, nothing half-written."""
    found = []
    for path in sorted((node.data / "state").glob("*")):
        if path.suffix != ".json":
            found.append(f"stray file in the state directory: {path.name}")
            continue
        try:
            json.loads(path.read_text())
        except ValueError as exc:
            found.append(f"{path.name} does not parse: {exc}")
    return found


async def check_world(
    client: httpx.AsyncClient, node: NodeProcess, key: Path, vms: dict[str, dict[str, Any]]
) -> list[str]:
    """Findings (empty when healthy) about a settled node whose VMs are `vms`."""
    found = []
    running = {vm_id for vm_id, vm in vms.items() if vm["status"] == "running"}
    errors = {vm_id: vm.get("error") for vm_id, vm in vms.items() if vm["status"] == "error"}
    if errors:
        found.append(f"VMs in error: {errors}")
    owners = qemu_owners(node)
    if sorted(owners) != sorted(running):
        found.append(f"QEMUs of {sorted(owners)}, running VMs {sorted(running)}")
    pastas = len([p for p in node.guest_processes() if alive(p)]) - len(node.qemus())
    if pastas != len(running):
        found.append(f"{pastas} pasta processes for {len(running)} running VMs")
    ports = [vm["ssh_port"] for vm in vms.values()]
    if len(set(ports)) != len(ports):
        found.append(f"an SSH port handed out twice: {sorted(ports)}")
    open_ports = listeners(node.ports)
    expected = {vms[vm_id]["ssh_port"] for vm_id in running}
    if open_ports != expected:
        found.append(f"listeners on {sorted(open_ports)}, running VMs' ports {sorted(expected)}")
    if vm_dirs(node) != set(vms):
        found.append(f"VM directories {sorted(vm_dirs(node))}, VMs {sorted(vms)}")
    streams = node.data / "streams.json"
    mapping = json.loads(streams.read_text()) if streams.exists() else {}
    wanted = {i: vm["stream_id"] for i, vm in vms.items() if vm.get("stream_id") is not None}
    if mapping != wanted:
        found.append(f"streams.json {mapping}, VMs' streams {wanted}")
    found.extend(state_files(node))
    state = (await client.get(f"{node.url}/admin/state", headers=node.operator)).json()
    if state["capacity"]["vms"] != len(vms):
        found.append(f"{state['capacity']['vms']} VMs booked for {len(vms)} VMs")
    for vm_id in sorted(running):
        vm = vms[vm_id]
        login = await ssh(key, vm["ssh_port"], "root", "hostname")
        if login.stdout.decode().strip() != vm["name"]:
            found.append(f"{vm_id} on port {vm['ssh_port']}: {login.stderr.decode().strip()}")
    return found
