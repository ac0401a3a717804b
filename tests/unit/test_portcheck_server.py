"""The port-check server over real sockets on loopback addresses (127.0.0.0/8 only)."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial

import httpx
import pytest
import structlog
import trio

from golem_actor.domain.port_verdict import Verdict, combine
from golem_actor.logs import reset_logging
from golem_actor.portcheck import (
    ProbeResult,
    ServerConfig,
    check_ports,
    create_app,
    main,
    serve_app,
    tcp_probe,
)
from golem_actor.portcheck.probe import NOT_CHECKED, ProbeFn

LOCAL = "127.0.0.1"
OTHER = "127.0.0.2"


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def checker(
    config: ServerConfig | None = None,
    *,
    probe: ProbeFn = tcp_probe,
    clock: Callable[[], float] = trio.current_time,
) -> AsyncIterator[str]:
    app = create_app(config or ServerConfig(), probe=probe, clock=clock)
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve_app, app, LOCAL, 0))
        yield binds[0]
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def listening(host: str, count: int = 1) -> AsyncIterator[list[int]]:
    """`count` listeners on `host` that accept and close every connection."""

    async def handler(stream: trio.SocketStream) -> None:
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        ports = []
        for _ in range(count):
            listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host=host))
            ports.append(listeners[0].socket.getsockname()[1])
        yield ports
        nursery.cancel_scope.cancel()


def closed_port(host: str = LOCAL) -> int:
    """A port on `host` with no listener (bound, then released)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port


def client_from(address: str, **kwargs: object) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(transport=transport, timeout=10, **kwargs)  # type: ignore[arg-type]


async def post(url: str, body: object, *, source: str = LOCAL, **headers: str) -> httpx.Response:
    async with client_from(source) as client:
        return await client.post(f"{url}/check-ports", json=body, headers=headers)


async def test_reachable_and_unreachable_ports_against_real_listeners() -> None:
    shut = closed_port()
    async with checker() as url, listening(LOCAL, 2) as (first, second):
        reply = await post(url, {"provider_ip": LOCAL, "ports": [first, shut, second, first]})
    assert reply.status_code == 200
    body = reply.json()
    assert body["results"] == {
        str(first): {"accessible": True, "error": None},
        str(shut): {"accessible": False, "error": "Connection refused"},
        str(second): {"accessible": True, "error": None},
    }
    assert body["success"] is True
    assert body["message"] == "Successfully verified 2 out of 3 ports"


async def test_json_shapes_match_the_reference() -> None:
    shut = closed_port()
    async with checker() as url, httpx.AsyncClient() as client:
        health = await client.get(f"{url}/health")
        reply = await client.post(
            f"{url}/check-ports", json={"provider_ip": LOCAL, "ports": [shut]}
        )
        empty = await client.post(f"{url}/check-ports", json={"provider_ip": LOCAL, "ports": []})
        refused = await client.post(f"{url}/check-ports", json={"provider_ip": OTHER, "ports": [1]})
        openapi = await client.get(f"{url}/openapi.json")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert reply.headers["content-type"] == "application/json"
    body = reply.json()
    assert list(body) == ["success", "results", "message"]
    assert body["success"] is False  # success = at least one port reachable
    assert list(body["results"]) == [str(shut)]  # keys are port numbers written as strings
    assert list(body["results"][str(shut)]) == ["accessible", "error"]
    assert body["message"] == "Successfully verified 0 out of 1 ports"
    assert empty.json() == {
        "success": False,
        "results": {},
        "message": "Successfully verified 0 out of 0 ports",
    }
    assert list(refused.json()) == ["detail"]
    assert set(openapi.json()["paths"]) == {"/check-ports", "/health"}


async def test_a_provider_ip_other_than_the_caller_is_refused_without_probing() -> None:
    probed: list[tuple[str, int]] = []

    async def recording(host: str, port: int, connect_timeout: float) -> ProbeResult:
        probed.append((host, port))
        return await tcp_probe(host, port, connect_timeout)

    async with checker(probe=recording) as url, listening(OTHER) as (port,):
        other = await post(url, {"provider_ip": OTHER, "ports": [port]})
        public = await post(url, {"provider_ip": "203.0.113.7", "ports": [22]})
        name = await post(url, {"provider_ip": "localhost", "ports": [22]})
    assert other.status_code == 403
    assert "only checks the caller's own address" in other.json()["detail"]
    assert "127.0.0.2" in other.json()["detail"]
    assert public.status_code == 403
    assert name.status_code == 422
    assert probed == []


async def test_the_tcp_peer_is_the_target_and_untrusted_forwarding_headers_are_ignored() -> None:
    async with checker() as url, listening(OTHER) as (port,):
        implicit = await post(url, {"ports": [port]}, source=OTHER)
        explicit = await post(url, {"provider_ip": OTHER, "ports": [port]}, source=OTHER)
        spoofed = await post(
            url,
            {"provider_ip": "127.0.0.3", "ports": [port]},
            source=OTHER,
            **{"X-Forwarded-For": "127.0.0.3"},
        )
        # The same port on 127.0.0.1 has no listener: a caller there gets its own answer.
        local = await post(url, {"ports": [port]}, source=LOCAL)
    assert implicit.json()["results"][str(port)]["accessible"] is True
    assert explicit.json()["results"][str(port)]["accessible"] is True
    assert spoofed.status_code == 403
    assert local.json()["results"][str(port)] == {
        "accessible": False,
        "error": "Connection refused",
    }


async def test_through_a_trusted_proxy_the_forwarded_client_is_the_caller() -> None:
    config = ServerConfig(trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),))
    async with checker(config) as url, listening(OTHER) as (port,):
        forwarded = await post(
            url, {"provider_ip": OTHER, "ports": [port]}, **{"X-Forwarded-For": OTHER}
        )
        # A client wrote a victim in front; the proxy appended the real client.
        appended = await post(
            url,
            {"provider_ip": "127.0.0.9", "ports": [port]},
            **{"X-Forwarded-For": f"127.0.0.9, {OTHER}"},
        )
        appended_own = await post(
            url, {"ports": [port]}, **{"X-Forwarded-For": f"127.0.0.9, {OTHER}"}
        )
        missing = await post(url, {"provider_ip": LOCAL, "ports": [port]})
        garbage = await post(url, {"ports": [port]}, **{"X-Forwarded-For": "not-an-ip"})
        # A caller that is not the proxy cannot use the header at all.
        direct = await post(
            url,
            {"provider_ip": "127.0.0.9", "ports": [port]},
            source=OTHER,
            **{"X-Forwarded-For": "127.0.0.9"},
        )
    assert forwarded.status_code == 200
    assert forwarded.json()["results"][str(port)]["accessible"] is True
    assert appended.status_code == 403
    assert appended_own.json()["results"][str(port)]["accessible"] is True
    assert missing.status_code == 400
    assert "X-Forwarded-For" in missing.json()["detail"]
    assert garbage.status_code == 400
    assert direct.status_code == 403


async def test_invalid_requests_and_too_many_ports_are_refused() -> None:
    config = ServerConfig(max_ports=4, max_body=1024, per_ip_rate=600, burst=100)
    async with checker(config) as url, httpx.AsyncClient() as client:
        shut = closed_port()
        too_many = await post(url, {"ports": [shut + i for i in range(5)]})
        duplicates = await post(url, {"ports": [shut] * 6})
        zero = await post(url, {"ports": [0]})
        high = await post(url, {"ports": [65536]})
        text = await post(url, {"ports": ["22"]})
        boolean = await post(url, {"ports": [True]})
        missing = await post(url, {"provider_ip": LOCAL})
        malformed = await client.post(f"{url}/check-ports", content=b"{nope")
        huge = await client.post(f"{url}/check-ports", content=b" " * 4096)
    assert too_many.status_code == 422
    assert too_many.json()["detail"] == "at most 4 distinct ports per request, got 5"
    assert duplicates.status_code == 200
    assert list(duplicates.json()["results"]) == [str(shut)]
    for reply in (zero, high, text, boolean, missing):
        assert reply.status_code == 422, reply.text
        assert "detail" in reply.json()
    assert malformed.status_code == 400
    assert huge.status_code == 413


async def test_rate_limit_answers_429_with_retry_after_then_recovers() -> None:
    clock = ManualClock()
    config = ServerConfig(per_ip_rate=6, burst=2)  # one request per 10 s after 2 at once
    shut = closed_port()
    async with checker(config, clock=clock) as url:
        assert (await post(url, {"ports": [shut]})).status_code == 200
        assert (await post(url, {"ports": [shut]})).status_code == 200
        limited = await post(url, {"ports": [shut]})
        other_source = await post(url, {"ports": [shut]}, source=OTHER)
        clock.now += 9.0
        still = await post(url, {"ports": [shut]})
        clock.now += 1.0
        recovered = await post(url, {"ports": [shut]})
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "10"
    assert "too many requests" in limited.json()["detail"]
    assert other_source.status_code == 200
    assert still.status_code == 429
    assert still.headers["Retry-After"] == "1"
    assert recovered.status_code == 200


async def test_concurrent_probes_stay_within_the_global_bound() -> None:
    active = 0
    peak = 0

    async def counting(host: str, port: int, connect_timeout: float) -> ProbeResult:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        try:
            await trio.sleep(0.02)
            return await tcp_probe(host, port, connect_timeout)
        finally:
            active -= 1

    config = ServerConfig(concurrency=3)
    shut = closed_port()
    ports = [shut, *range(40000, 40011)]
    async with checker(config, probe=counting) as url:
        replies: list[httpx.Response] = []

        async def ask(source: str) -> None:
            replies.append(await post(url, {"ports": ports}, source=source))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask, LOCAL)
            nursery.start_soon(ask, OTHER)
    assert [r.status_code for r in replies] == [200, 200]
    assert all(len(r.json()["results"]) == len(ports) for r in replies)
    assert peak == 3


async def test_the_request_deadline_bounds_slow_probes() -> None:
    async def stuck(host: str, port: int, connect_timeout: float) -> ProbeResult:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    config = ServerConfig(request_timeout=0.3)
    async with checker(config, probe=stuck) as url:
        with trio.fail_after(5):
            reply = await post(url, {"ports": [1, 2]})
    assert reply.json()["results"] == {
        "1": {"accessible": False, "error": NOT_CHECKED},
        "2": {"accessible": False, "error": NOT_CHECKED},
    }


async def test_a_source_cannot_run_more_than_its_share_of_checks_at_once() -> None:
    release = trio.Event()

    async def held(host: str, port: int, connect_timeout: float) -> ProbeResult:
        await release.wait()
        return ProbeResult(False, "Connection refused")

    config = ServerConfig(max_inflight_per_source=2)
    async with checker(config, probe=held) as url:
        codes: list[int] = []
        first_answer = trio.Event()

        async def ask() -> None:
            codes.append((await post(url, {"ports": [1]})).status_code)
            first_answer.set()

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(ask)
            with trio.fail_after(5):
                await first_answer.wait()
            assert codes == [429]
            release.set()
    assert sorted(codes) == [200, 200, 429]


async def test_one_structured_log_line_per_request() -> None:
    shut = closed_port()
    async with checker() as url, listening(LOCAL) as (port,):
        with structlog.testing.capture_logs() as logs:
            await post(url, {"ports": [port, shut]})
            await post(url, {"provider_ip": OTHER, "ports": [port]})
    lines = [entry for entry in logs if entry["event"] == "check-ports"]
    assert len(lines) == 2
    ok, refused = lines
    assert (ok["source"], ok["ports"], ok["reachable"], ok["unreachable"]) == (LOCAL, 2, 1, 1)
    assert ok["status"] == 200
    assert (refused["status"], refused["source"]) == (403, LOCAL)
    assert "only checks" in refused["detail"]


async def test_the_client_asks_every_server_and_a_quorum_decides() -> None:
    dead = f"http://{LOCAL}:{closed_port()}"
    async with (
        checker() as first,
        checker() as second,
        listening(LOCAL, 3) as ports,
    ):
        shut = closed_port()
        with trio.fail_after(5):
            answers = await check_ports(
                [first, second, dead],
                [*ports, shut],
                provider_ip=LOCAL,
                per_server_timeout=2,
                batch_size=2,
            )
        refused = await check_ports([first], [ports[0]], provider_ip=OTHER)
    assert [a.server for a in answers] == [first, second, dead]
    assert [a.answered for a in answers] == [True, True, False]
    assert answers[0].results[shut].error == "Connection refused"
    verdicts = combine([*ports, shut], [a.reachable() for a in answers], quorum=2)
    assert verdicts == {**dict.fromkeys(ports, Verdict.REACHABLE), shut: Verdict.UNREACHABLE}
    strict = combine([*ports, shut], [a.reachable() for a in answers], quorum=3)
    assert set(strict.values()) == {Verdict.UNKNOWN}
    assert refused[0].error is not None
    assert refused[0].error.startswith("HTTP 403")
    assert refused[0].results == {}


async def test_a_silent_server_costs_only_its_own_timeout() -> None:
    async def silent(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery, checker() as good:
        listeners = await nursery.start(partial(trio.serve_tcp, silent, 0, host=LOCAL))
        slow = f"http://{LOCAL}:{listeners[0].socket.getsockname()[1]}"
        started = trio.current_time()
        answers = await check_ports([slow, good], [closed_port()], per_server_timeout=0.3)
        elapsed = trio.current_time() - started
        nursery.cancel_scope.cancel()
    assert elapsed < 2
    assert answers[0].error is not None
    assert "no answer within" in answers[0].error
    assert answers[1].answered


def test_bad_command_line_values_fail_at_start(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--trust", "not-a-network"])
    assert exited.value.code == 2
    assert "not-a-network" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["serve", "--max-ports", "0"])
    with pytest.raises(SystemExit):
        main(["serve", "--trust", "0.0.0.0/0"])
    assert "refusing to trust every address" in capsys.readouterr().err


async def first_line(stream: trio.abc.ReceiveStream) -> bytes:
    received = b""
    while b"\n" not in received:
        chunk = await stream.receive_some()
        assert chunk, f"the server exited early: {received!r}"
        received += chunk
    return received.split(b"\n", 1)[0]


@pytest.mark.tools  # a process of its own
async def test_the_module_runs_as_a_command_and_stops_on_sigterm() -> None:
    argv = [sys.executable, "-m", "golem_actor.portcheck", "serve", "--host", LOCAL]
    argv += ["--port", "0", "--log-format", "json"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = await trio.lowlevel.open_process(argv, stderr=subprocess.PIPE, env=env)
    assert process.stderr is not None
    try:
        with trio.fail_after(10):
            started = json.loads(await first_line(process.stderr))
        assert started["event"] == "port checker listening"
        url = started["binds"][0]
        async with httpx.AsyncClient() as client:
            health = await client.get(f"{url}/health")
        assert health.json() == {"status": "ok"}
    finally:
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(10):
            code = await process.wait()
        await process.stderr.aclose()
    assert code == 0


def test_a_taken_port_is_reported_with_exit_code_1(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind((LOCAL, 0))
        taken.listen()
        port = taken.getsockname()[1]
        try:
            code = main(["serve", "--host", LOCAL, "--port", str(port), "--log-format", "json"])
        finally:
            reset_logging()
    assert code == 1
    assert "Address already in use" in capsys.readouterr().err
