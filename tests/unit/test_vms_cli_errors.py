"""`golem-provider vms`: how it finds the node and fails, without a node process.

The PID check is faked (this test process is no golem-provider); the node's API is a real
loopback socket that accepts and never answers, or answers with a canned status.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from golem_actor.cli import _main, _pidfile, _vms


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(_pidfile, "running_pid", lambda path: 4242)
    for name in list(os.environ):
        if name.startswith("GOLEM_"):
            monkeypatch.delenv(name)
    (tmp_path / "operator.token").write_text("secret-token\n")
    return tmp_path


def point_at(data: Path, port: int) -> None:
    (data / "node.json").write_text(json.dumps({"pid": 4242, "api": f"http://127.0.0.1:{port}"}))


@pytest.fixture
def silent() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]  # connections queue up and never get an answer


class Canned(BaseHTTPRequestHandler):
    status = 200
    body: object = []
    seen: list[tuple[str, str, str | None]] = []

    def _answer(self) -> None:
        Canned.seen.append((self.command, self.path, self.headers.get("Authorization")))
        payload = json.dumps(Canned.body).encode()
        self.send_response(Canned.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def canned() -> Iterator[int]:
    server = HTTPServer(("127.0.0.1", 0), Canned)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Canned.seen = []
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def run(data: Path, *args: str) -> int:
    return _main.main(["vms", *args, "--data-dir", str(data)])


def test_a_node_that_never_answers_fails_within_the_bound(
    data: Path, silent: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_vms, "READ_BOUND", 0.5)
    point_at(data, silent)
    assert run(data, "list", "--json") == 1
    out = capsys.readouterr()
    assert json.loads(out.out) == {
        "error": "timeout",
        "detail": "the node did not answer within 0.5s",
    }


def test_a_node_not_ready_yet_is_no_crash(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(data, "show", "vm-1") == 1  # a PID, but no node.json yet
    assert "not ready yet" in capsys.readouterr().err


def test_no_node_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_pidfile, "running_pid", lambda path: None)
    assert run(tmp_path, "list") == 3
    assert f"no node running in {tmp_path}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [(404, 4, "not_found"), (409, 5, "conflict"), (503, 1, "http_503"), (500, 1, "http_500")],
)
def test_refusals_map_to_exit_statuses(
    data: Path,
    canned: int,
    capsys: pytest.CaptureFixture[str],
    status: int,
    code: int,
    error: str,
) -> None:
    Canned.status, Canned.body = status, {"detail": "the node says no"}
    point_at(data, canned)
    assert run(data, "start", "vm-1", "--json") == code
    out = capsys.readouterr()
    assert json.loads(out.out)["error"] == error
    assert "the node says no" in out.err
    assert Canned.seen == [("POST", "/api/v1/vms/vm-1/start", "Bearer secret-token")]


def test_a_vm_that_did_not_settle_is_a_failure(
    data: Path, canned: int, capsys: pytest.CaptureFixture[str]
) -> None:
    Canned.status, Canned.body = 202, {"vm_id": "vm-1", "status": "stopping"}
    point_at(data, canned)
    assert run(data, "delete", "vm-1") == 1
    out = capsys.readouterr()
    assert out.out == "VM vm-1: stopping\n"
    assert "did not get deleted: it is stopping" in out.err
    assert Canned.seen[0][:2] == ("DELETE", "/api/v1/vms/vm-1")


def test_a_vm_id_is_one_path_segment(data: Path, canned: int) -> None:
    Canned.status, Canned.body = 404, {"detail": "no such VM"}
    point_at(data, canned)
    assert run(data, "show", "../admin/state") == 4
    assert Canned.seen[0][1] == "/api/v1/vms/..%2Fadmin%2Fstate"
