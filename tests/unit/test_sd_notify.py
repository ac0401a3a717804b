"""sd_notify's datagrams, on real unix sockets: filesystem and abstract names, and none."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from golem_actor.adapters.sd_notify import notify, notify_ready


def test_ready_reaches_a_socket_on_the_filesystem(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        assert notify_ready({"NOTIFY_SOCKET": str(path)})
        assert listener.recv(4096) == f"READY=1\nMAINPID={os.getpid()}".encode()


def test_an_abstract_socket_name_starts_with_at() -> None:
    name = f"golem-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(b"\0" + name.encode())
        assert notify("STATUS=ok", {"NOTIFY_SOCKET": "@" + name})
        assert listener.recv(4096) == b"STATUS=ok"


def test_without_systemd_nothing_is_sent(tmp_path: Path) -> None:
    assert not notify_ready({})
    assert not notify_ready({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
