"""`golem-provider vms list|show|stop|start|delete`: the host operator's view of its VMs.

Why through the API: the node owns the VMs (their state machine, registry and processes),
so these commands ask the running node, with the operator token, exactly as a client
would (`_node_api` finds it). The API's power routes are synchronous: stop, start and
delete answer 200 once the VM got there, or 202 when it is still on its way after the
node's own bound, so each HTTP call here is bounded a little above that bound.

Exit statuses: 0 done, 1 the node failed or the VM did not settle (or ended in ``error``),
3 no node running, 4 no such VM, 5 conflict (e.g. starting a running VM). With ``--json``
the API's document is printed as is, and a failure is ``{"error": code, "detail": ...}``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any
from urllib.parse import quote

import httpx

from golem_actor.settings import Settings

from ._chain_cli import emit_json, table
from ._node_api import NodeApi, NodeUnreachable, locate_node

__all__ = ["add_vms_parser", "vms_command"]

EXIT_FAILED = 1
EXIT_NO_NODE = 3
EXIT_NOT_FOUND = 4
EXIT_CONFLICT = 5

READ_BOUND = 15.0  # list and show: the node answers from memory
STOP_BOUND = 120.0 + 30.0  # the API waits up to 120 s for a stop or a delete to settle
START_MARGIN = 30.0 + 30.0  # the API waits launch_timeout_seconds + 30 s for a start


class _Failed(Exception):
    def __init__(self, code: str, detail: str, status: int) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.status = status


def add_vms_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    vms = commands.add_parser("vms", help="this node's VMs, as its operator (node must run)")
    actions = vms.add_subparsers(dest="vms_command", required=True, metavar="ACTION")
    parsers = [actions.add_parser("list", help="every VM on the node")]
    for name, text in (
        ("show", "one VM in full"),
        ("stop", "power a VM off and wait until it is stopped"),
        ("start", "power a stopped VM on and wait until it runs"),
        ("delete", "delete a VM, its disk and its port, and wait until it is gone"),
    ):
        parser = actions.add_parser(name, help=text)
        parser.add_argument("vm_id", metavar="VM_ID")
        parsers.append(parser)
    for parser in parsers:
        parser.add_argument("--data-dir", help="the node's data directory")
        parser.add_argument("--json", action="store_true", help="the API's JSON document")


def vms_command(settings: Settings, args: argparse.Namespace) -> int:
    as_json: bool = args.json
    try:
        node = locate_node(settings)
    except NodeUnreachable as error:
        if error.running:
            return _fail(_Failed("node_unreachable", str(error), EXIT_FAILED), as_json)
        return _fail(_Failed("no_node", str(error), EXIT_NO_NODE), as_json)
    try:
        return _run(settings, node, args)
    except _Failed as error:
        return _fail(error, as_json)


def _run(settings: Settings, node: NodeApi, args: argparse.Namespace) -> int:
    action: str = args.vms_command
    as_json: bool = args.json
    if action == "list":
        views = _call(node, "GET", "/vms", READ_BOUND)[1]
        if as_json:
            emit_json(views)
        else:
            sys.stdout.write(_list_table(views))
        return 0
    vm_id: str = args.vm_id
    where = quote(vm_id, safe="")  # an id is one path segment, whatever was typed
    if action == "show":
        _, view = _call(node, "GET", f"/vms/{where}", READ_BOUND)
        _print_view(view, as_json)
        return 0
    start_bound = settings.launch_timeout_seconds + START_MARGIN
    method, path, bound, goal = {
        "stop": ("POST", f"/vms/{where}/stop", STOP_BOUND, "stopped"),
        "start": ("POST", f"/vms/{where}/start", start_bound, "running"),
        "delete": ("DELETE", f"/vms/{where}", STOP_BOUND, "deleted"),
    }[action]
    status, body = _call(node, method, path, bound)
    if action == "delete" and not as_json:
        print(f"VM {vm_id}: {body.get('status', '?')}")
    else:
        _print_view(body, as_json)
    if status == 200 and body.get("status") == goal:
        return 0
    why = body.get("error_message") or f"it is {body.get('status', '?')}, not yet {goal}"
    print(f"golem-provider: VM {vm_id} did not get {goal}: {why}", file=sys.stderr)
    return EXIT_FAILED


def _call(node: NodeApi, method: str, path: str, bound: float) -> tuple[int, Any]:
    """One request to the node: (status, decoded JSON) for 2xx, else `_Failed`."""
    timeout = httpx.Timeout(bound, connect=5.0)
    try:
        with httpx.Client(timeout=timeout) as client:
            reply = client.request(method, node.url(path), headers=node.headers())
    except httpx.TimeoutException as exc:
        raise _Failed("timeout", f"the node did not answer within {bound:g}s", EXIT_FAILED) from exc
    except httpx.HTTPError as exc:
        raise _Failed("node_unreachable", f"cannot reach the node: {exc}", EXIT_FAILED) from exc
    try:
        body = reply.json()
    except ValueError:
        body = {"detail": reply.text.strip()[:200]}
    if reply.is_success:
        return reply.status_code, body
    detail = body.get("detail", reply.reason_phrase) if isinstance(body, dict) else str(body)
    if reply.status_code == 404:
        raise _Failed("not_found", str(detail), EXIT_NOT_FOUND)
    if reply.status_code == 409:
        raise _Failed("conflict", str(detail), EXIT_CONFLICT)
    raise _Failed(
        "http_" + str(reply.status_code),
        f"the node answered {reply.status_code}: {detail}",
        EXIT_FAILED,
    )


def _fail(error: _Failed, as_json: bool) -> int:
    if as_json:
        emit_json({"error": error.code, "detail": error.detail})
    print(f"golem-provider: {error.detail}", file=sys.stderr)
    return error.status


def _size(view: dict[str, Any]) -> str:
    res = view.get("resources") or {}
    return f"{res.get('cpu', '?')}C/{res.get('memory', '?')}G/{res.get('storage', '?')}G"


def _list_table(views: list[dict[str, Any]]) -> str:
    if not views:
        return "no VMs\n"
    header = ["ID", "NAME", "STATUS", "SIZE", "SSH PORT", "IMAGE", "CREATED"]
    rows = [
        [
            str(v["id"]),
            str(v["name"]),
            str(v["status"]),
            _size(v),
            "-" if v.get("ssh_port") is None else str(v["ssh_port"]),
            str(v.get("image", "")),
            str(v.get("created_at", "")),
        ]
        for v in views
    ]
    return table(header, rows)


def _print_view(view: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(view)
        return
    rows = [
        ("ID", view.get("id")),
        ("Name", view.get("name")),
        ("Status", view.get("status")),
        ("Size", _size(view)),
        ("Image", view.get("image")),
        ("IP address", view.get("ip_address")),
        ("SSH port", view.get("ssh_port")),
        ("Stream", view.get("stream_id")),
        ("Created", view.get("created_at")),
        ("Updated", view.get("updated_at")),
        ("Error", view.get("error_message")),
    ]
    for label, value in rows:
        print(f"{label + ':':<12}{'-' if value is None else value}")
