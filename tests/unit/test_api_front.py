"""The API's fast lane at the byte level: what it answers, and what it hands to hypercorn."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import trio
from lifecycle_harness import OPERATOR_TOKEN, ApiNode, running_api

INFO = b"GET /api/v1/provider/info HTTP/1.1\r\nHost: x\r\n\r\n"
VMS = b"GET /api/v1/vms HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n" % (
    OPERATOR_TOKEN.encode()
)
MISSING = b"GET /api/v1/vms/vm-nothing HTTP/1.1\r\nHost: x\r\n\r\n"  # the app's 404


async def connect(api: ApiNode) -> trio.SocketStream:
    address = urlsplit(api.url)
    assert address.hostname is not None
    assert address.port is not None
    return await trio.open_tcp_stream(address.hostname, address.port)


async def read_answers(stream: trio.SocketStream, count: int) -> list[tuple[int, bytes]]:
    """`count` answers (status, body), read by their content-length; fails on EOF."""
    data = b""
    answers: list[tuple[int, bytes]] = []
    with trio.fail_after(10):
        while len(answers) < count:
            end = data.find(b"\r\n\r\n")
            if end >= 0:
                head = data[:end].decode("latin-1").split("\r\n")
                fields = dict(line.lower().split(": ", 1) for line in head[1:])
                size = int(fields["content-length"])
                if len(data) >= end + 4 + size:
                    status = int(head[0].split(" ")[1])
                    answers.append((status, data[end + 4 : end + 4 + size]))
                    data = data[end + 4 + size :]
                    continue
            chunk = await stream.receive_some(65536)
            assert chunk, f"closed after {len(answers)} answers"
            data += chunk
    return answers


async def test_pipelined_requests_are_answered_in_order_across_the_handover(
    tmp_path: Path,
) -> None:
    """Two lane requests, one for the app, then a lane request that hypercorn now serves."""
    async with running_api(tmp_path) as api:
        stream = await connect(api)
        await stream.send_all(INFO + VMS + MISSING + INFO)
        answers = await read_answers(stream, 4)
        assert [status for status, _ in answers] == [200, 200, 404, 200]
        assert answers[0][1] == answers[3][1]
        assert answers[1][1] == b"[]"
        assert b"detail" in answers[2][1]
        await stream.send_all(VMS)  # the connection stays usable
        assert await read_answers(stream, 1) == [(200, b"[]")]
        await stream.aclose()


async def test_a_head_in_pieces_and_odd_heads_are_answered_as_hypercorn_does(
    tmp_path: Path,
) -> None:
    async with running_api(tmp_path) as api:
        stream = await connect(api)
        await stream.send_all(INFO[:20])
        await trio.sleep(0.1)
        await stream.send_all(INFO[20:])
        [(status, body)] = await read_answers(stream, 1)
        assert status == 200
        assert body.startswith(b'{"provider_id"')
        await stream.aclose()
        odd = [
            b"GET /api/v1/provider/info HTTP/1.1\r\n\r\n",  # no Host: h11 refuses it
            b"GET /api/v1/provider%2Finfo HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /api/v1/provider/info HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n",
        ]
        statuses = []
        for request in odd:
            stream = await connect(api)
            await stream.send_all(request)
            statuses.append((await read_answers(stream, 1))[0][0])
            await stream.aclose()
        assert statuses[0] == 400
        assert statuses[1] == 200  # hypercorn decodes the path: the app's route
        assert statuses[2] == 400


async def test_connection_close_is_honoured(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api:
        stream = await connect(api)
        await stream.send_all(INFO.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        assert (await read_answers(stream, 1))[0][0] == 200
        with trio.fail_after(5):
            while await stream.receive_some(65536):
                pass  # EOF: the server closed it


async def test_idle_connections_close_after_the_keep_alive_timeout(tmp_path: Path) -> None:
    async with running_api(tmp_path, api_keep_alive_timeout_seconds=0.5) as api:
        stream = await connect(api)
        await stream.send_all(INFO)
        assert (await read_answers(stream, 1))[0][0] == 200
        began = trio.current_time()
        with trio.fail_after(5):
            assert await stream.receive_some(65536) == b""
        assert 0.4 <= trio.current_time() - began < 3


async def test_a_stopping_node_closes_idle_connections_at_once(tmp_path: Path) -> None:
    """A graceful stop does not wait out the keep-alive timeout of idle clients."""
    async with running_api(tmp_path, api_keep_alive_timeout_seconds=60.0) as api:
        stream = await connect(api)
        await stream.send_all(INFO)
        assert (await read_answers(stream, 1))[0][0] == 200
        stopping = trio.current_time()
    assert trio.current_time() - stopping < 5
    with trio.fail_after(5):
        assert await stream.receive_some(65536) == b""


async def test_a_head_that_trickles_is_cut_at_the_keep_alive_timeout(tmp_path: Path) -> None:
    """Late first bytes do not buy a slow client a second keep-alive period."""
    async with running_api(tmp_path, api_keep_alive_timeout_seconds=1.0) as api:
        stream = await connect(api)
        began = trio.current_time()
        await trio.sleep(0.7)
        await stream.send_all(INFO[:10])
        with trio.fail_after(5):
            while True:
                with trio.move_on_after(0.2):
                    if await stream.receive_some(65536) == b"":
                        break
                await stream.send_all(b"x")  # a byte now and then: never silent
        assert trio.current_time() - began < 1.6
