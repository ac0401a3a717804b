"""Public IP discovery from echo services (local HTTP servers standing in for them)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial

import msgspec
import trio

from golem_actor.adapters.public_ip import discover_public_ip, lan_ipv4, pick_lan_ipv4
from golem_actor.settings import Settings
from supervisors.advertising import public_ip_source


@asynccontextmanager
async def echo_service(answer: Callable[[], bytes]) -> AsyncIterator[str]:
    async def handle(stream: trio.SocketStream) -> None:
        async with stream:
            await stream.receive_some(4096)
            body = answer()
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s"
                % (len(body), body)
            )

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
        yield f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}/"
        nursery.cancel_scope.cancel()


async def test_the_first_good_answer_wins_and_bad_ones_are_reported() -> None:
    async with (
        echo_service(lambda: b"not an address") as garbage,
        echo_service(lambda: b"10.1.2.3\n") as private,
        echo_service(lambda: b"1.0.0.1\n") as good,
    ):
        address, failures = await discover_public_ip([garbage, private, good])
    assert address == "1.0.0.1"  # only a string our local stand-in answers with
    assert any("ValueError" in f for f in failures)
    assert any("unusable answer '10.1.2.3'" in f for f in failures)


async def test_a_public_answer_is_returned() -> None:
    async with echo_service(lambda: b"1.1.1.1") as service:
        assert await discover_public_ip([service]) == ("1.1.1.1", [])


async def test_nothing_answering_is_a_clear_report_not_a_hang() -> None:
    with trio.fail_after(5):
        address, failures = await discover_public_ip(["http://127.0.0.1:9/"], time_limit=1.0)
    assert address is None
    assert failures[0].startswith("http://127.0.0.1:9/: ConnectError")


def test_the_lan_address_is_a_private_ipv4_of_an_interface_that_is_up() -> None:
    table = {
        "lo": [(socket.AF_INET, "127.0.0.1")],
        "docker0": [(socket.AF_INET, "172.17.0.1")],
        "eth0": [
            (socket.AF_INET6, "fe80::1"),
            (socket.AF_INET, "169.254.3.4"),
            (socket.AF_INET, "192.168.1.20"),
        ],
        "wan": [(socket.AF_INET, "203.0.113.9")],
    }
    assert pick_lan_ipv4(table, up={"lo", "eth0", "wan"}) == "192.168.1.20"
    assert pick_lan_ipv4(table, up={"lo", "docker0", "eth0"}) == "172.17.0.1"  # by name
    assert pick_lan_ipv4(table, up={"lo", "wan"}) is None


async def test_development_adverts_carry_the_lan_address_without_asking_anyone() -> None:
    settings = msgspec.structs.replace(
        Settings(), environment="development", public_ip_services=["http://127.0.0.1:9/"]
    )
    found = await public_ip_source(settings)()
    assert found == await lan_ipv4()  # this host's, from its interfaces
    fixed = msgspec.structs.replace(settings, public_ip="198.51.100.4")
    assert await public_ip_source(fixed)() == "198.51.100.4"
