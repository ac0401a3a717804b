"""How local tools reach the running node's own HTTP API, as its operator.

Why: `status` and `vms` both talk to the node of a data directory through its API, with
the operator token, and must agree on how it is found: the PID file says a node runs,
``<data dir>/node.json`` (written once the node is ready) says where its API listens, and
``<data dir>/operator.token`` is the bearer token. A missing or unreadable piece is one
`NodeUnreachable` with a sentence saying which.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from golem_actor.settings import Settings

from . import _pidfile

__all__ = ["NodeApi", "NodeFile", "NodeUnreachable", "locate_node", "node_file"]


class NodeFile(msgspec.Struct, frozen=True):
    """`<data dir>/node.json` while a node runs: how local tools reach its API."""

    pid: int
    api: str  # http://host:port


class NodeUnreachable(Exception):
    """No running node, or no way to talk to it; `running` says whether one runs."""

    def __init__(self, message: str, *, running: bool) -> None:
        super().__init__(message)
        self.running = running


class NodeApi(msgspec.Struct, frozen=True):
    """The running node's API root (``.../api/v1``) and the operator's bearer token."""

    root: str
    token: str

    def url(self, path: str) -> str:
        return f"{self.root}{path}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def node_file(settings: Settings) -> Path:
    return settings.data_path / "node.json"


def token_file(settings: Settings) -> Path:
    return settings.data_path / "operator.token"


def locate_node(settings: Settings) -> NodeApi:
    """The API of the node running in the data directory, or `NodeUnreachable`."""
    if _pidfile.running_pid(settings.pid_file) is None:
        raise NodeUnreachable(f"no node running in {settings.data_path}", running=False)
    try:
        node = msgspec.json.decode(node_file(settings).read_bytes(), type=NodeFile)
        token = token_file(settings).read_text().strip()
    except FileNotFoundError as exc:
        raise NodeUnreachable(
            f"the node is not ready yet (no {exc.filename})", running=True
        ) from exc
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise NodeUnreachable(f"cannot read the node's address: {exc}", running=True) from exc
    return NodeApi(root=f"{node.api}/api/v1", token=token)
