"""The update check against a local HTTP index, a closed port and a silent server."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import pytest
import trio

from golem_actor.adapters.pypi import (
    UpdateStatus,
    check_for_update,
    compare_versions,
    index_url_for,
)

LOCAL = "127.0.0.1"


class Index:
    """A one-route HTTP server: answers every GET with `status` and `body`."""

    def __init__(self, status: int = 200, body: bytes = b"") -> None:
        self.status = status
        self.body = body
        self.paths: list[str] = []

    async def handle(self, stream: trio.SocketStream) -> None:
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = await stream.receive_some()
            if not chunk:
                return
            received += chunk
        self.paths.append(received.split(b" ", 2)[1].decode())
        head = (
            f"HTTP/1.1 {self.status} X\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(self.body)}\r\nConnection: close\r\n\r\n"
        )
        await stream.send_all(head.encode() + self.body)
        await stream.aclose()


def pypi_body(version: str) -> bytes:
    return json.dumps(
        {"info": {"name": "golem-actor", "version": version}, "releases": {version: []}}
    ).encode()


@asynccontextmanager
async def serving(index: Index) -> AsyncIterator[str]:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, index.handle, 0, host=LOCAL))
        yield f"http://{LOCAL}:{listeners[0].socket.getsockname()[1]}/pypi/{{package}}/json"
        nursery.cancel_scope.cancel()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOCAL, 0))
        port: int = sock.getsockname()[1]
    return port


async def test_a_newer_release_on_the_index_is_reported() -> None:
    index = Index(body=pypi_body("0.2.0"))
    async with serving(index) as url:
        result = await check_for_update("0.1.0", index_url=url)
    assert result.status is UpdateStatus.NEWER
    assert (result.installed, result.latest, result.update_available) == ("0.1.0", "0.2.0", True)
    assert index.paths == ["/pypi/golem-actor/json"]


@pytest.mark.parametrize("latest", ["0.1.0", "0.1", "0.1.0rc1", "0.0.9"])
async def test_the_same_or_an_older_release_is_up_to_date(latest: str) -> None:
    async with serving(Index(body=pypi_body(latest))) as url:
        result = await check_for_update("0.1.0", index_url=url)
    assert result.status is UpdateStatus.UP_TO_DATE
    assert result.update_available is False
    assert result.latest == latest


async def test_offline_is_unknown_quickly() -> None:
    url = f"http://{LOCAL}:{closed_port()}/pypi/{{package}}/json"
    started = trio.current_time()
    result = await check_for_update("0.1.0", index_url=url)
    assert trio.current_time() - started < 1
    assert result.status is UpdateStatus.UNKNOWN
    assert result.latest is None
    assert result.error


async def test_a_silent_index_is_unknown_within_the_time_limit() -> None:
    async def silent(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, silent, 0, host=LOCAL))
        url = f"http://{LOCAL}:{listeners[0].socket.getsockname()[1]}/"
        started = trio.current_time()
        result = await check_for_update("0.1.0", index_url=url, time_limit=0.3)
        elapsed = trio.current_time() - started
        nursery.cancel_scope.cancel()
    assert elapsed < 1
    assert result.status is UpdateStatus.UNKNOWN
    assert result.error is not None
    assert "0.3" in result.error


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (404, b'{"message": "Not Found"}'),
        (200, b"<html>not json</html>"),
        (200, b'{"info": {}}'),
        (200, pypi_body("not-a-version")),
    ],
)
async def test_bad_answers_are_unknown(status: int, body: bytes) -> None:
    async with serving(Index(status, body)) as url:
        result = await check_for_update("0.1.0", index_url=url)
    assert result.status is UpdateStatus.UNKNOWN
    assert result.error


async def test_an_invalid_index_url_is_unknown() -> None:
    result = await check_for_update("0.1.0", index_url="nope://what")
    assert result.status is UpdateStatus.UNKNOWN


def test_the_default_index_is_the_pypi_json_api() -> None:
    assert index_url_for("golem-actor") == "https://pypi.org/pypi/golem-actor/json"
    assert index_url_for("x", "http://mirror/{package}.json") == "http://mirror/x.json"


@pytest.mark.parametrize(
    ("left", "right", "order"),
    [
        ("0.2.0", "0.1.9", 1),
        ("1.0", "1.0.0", 0),
        ("1.10.0", "1.9.0", 1),
        ("1.0rc1", "1.0", -1),
        ("1.0a2", "1.0b1", -1),
        ("1.0.dev1", "1.0a1", -1),
        ("1.0.post1", "1.0", 1),
        ("v2.0", "1.99", 1),
    ],
)
def test_version_order(left: str, right: str, order: int) -> None:
    assert compare_versions(left, right) == order
    assert compare_versions(right, left) == -order


def test_unparseable_versions_do_not_compare() -> None:
    assert compare_versions("latest", "1.0") is None
