"""Links between routers: batches, the HMAC handshake over memory channels, backoff, and
the registry's extension fields (golem_actor/domain/vpn/link.py, actors/vpn_router/links.py)."""

from __future__ import annotations

import pytest
import trio

from actors.vpn_router.links import accept_handshake, dial_handshake, target_of
from golem_actor.domain.vpn import link as wire, networks as rules

SECRET = b"s" * 20


class Channel:
    def __init__(
        self, send: trio.MemorySendChannel[bytes], receive: trio.MemoryReceiveChannel[bytes]
    ):
        self._send, self._receive = send, receive
        self.sent: list[bytes] = []

    async def send(self, message: bytes) -> None:
        self.sent.append(message)
        await self._send.send(message)

    async def receive(self) -> bytes:
        return await self._receive.receive()


def channels() -> tuple[Channel, Channel]:
    a_send, b_receive = trio.open_memory_channel[bytes](4)
    b_send, a_receive = trio.open_memory_channel[bytes](4)
    return Channel(a_send, a_receive), Channel(b_send, b_receive)


def test_frames_round_trip_in_length_prefixed_batches_of_bounded_size() -> None:
    frames = [bytes([n]) * (1000 + n) for n in range(100)]
    messages = wire.encode_batches(frames)
    assert len(messages) > 1
    assert all(len(m) <= wire.MAX_BATCH_BYTES for m in messages)
    decoded = [f for m in messages for f in wire.decode_batch(m)[0]]
    assert decoded == frames
    assert wire.encode_batches([b"x" * 70000, b"ok"]) == [b"\x00\x02ok"]  # too long: left out


@pytest.mark.parametrize(
    ("message", "kept"),
    [(b"\x00\x02ok\x00", 1), (b"\x00\x05abc", 0), (b"\x00\x00", 0), (b"\x00\x02ok\x00\x09x", 1)],
)
def test_a_malformed_batch_keeps_the_frames_before_the_fault(message: bytes, kept: int) -> None:
    frames, whole = wire.decode_batch(message)
    assert not whole
    assert len(frames) == kept


async def test_the_handshake_proves_the_secret_both_ways_without_sending_it() -> None:
    client, server = channels()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(accept_handshake, server, SECRET, "net-b")
        await dial_handshake(client, SECRET, "net-b")
    assert all(SECRET not in m for m in client.sent + server.sent)
    assert [len(m) for m in server.sent] == [36, 36]
    assert len(client.sent) == 1


@pytest.mark.parametrize(
    ("client_secret", "client_target"),
    [(b"w" * 20, "net-b"), (SECRET, "net-c")],  # a wrong secret; a proof for another network
)
async def test_the_server_refuses_a_client_without_the_secret(
    client_secret: bytes, client_target: str
) -> None:
    client, server = channels()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(dial_handshake, client, client_secret, client_target)
        with pytest.raises(wire.LinkAuthError, match="client does not know"):
            await accept_handshake(server, SECRET, "net-b")
        nursery.cancel_scope.cancel()
    assert len(server.sent) == 1  # no proof of its own went out


async def test_the_client_refuses_a_server_without_the_secret() -> None:
    client, server = channels()

    async def impostor() -> None:
        await server.send(wire.challenge(b"n" * 32))
        await server.receive()
        await server.send(wire.MAGIC + b"p" * 32)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(impostor)
        with pytest.raises(wire.LinkAuthError, match="server does not know"):
            await dial_handshake(client, SECRET, "net-b")


async def test_a_malformed_challenge_is_refused() -> None:
    client, server = channels()
    await server.send(b"HTTP/1.1 200 OK")
    with pytest.raises(wire.LinkAuthError, match="malformed"):
        await dial_handshake(client, SECRET, "net-b")


def test_the_hosted_list_round_trips_and_nothing_else_passes_for_one() -> None:
    message = wire.hosted_message(["vm-b", "vm-a", "vm-a"])
    assert message == wire.MAGIC + b'H["vm-a","vm-a","vm-b"]'
    assert wire.parse_hosted(message) == frozenset({"vm-a", "vm-b"})
    assert wire.parse_hosted(wire.hosted_message([])) == frozenset()
    for other in (
        wire.challenge(b"n" * wire.NONCE_LEN),  # MAGIC, but not "H"
        wire.MAGIC + b'H{"vm-a": 1}',
        wire.MAGIC + b"H[1, 2]",
        wire.MAGIC + b"H[",
        b'H["vm-a"]',
        wire.MAGIC + b'H["' + b"x" * wire.MAX_BATCH_BYTES + b'"]',
    ):
        with pytest.raises(wire.LinkAuthError):
            wire.parse_hosted(other)


def test_backoff_doubles_up_to_its_cap_with_bounded_jitter() -> None:
    assert [wire.backoff(n) for n in (1, 2, 3, 4, 5, 6, 7)] == [0.5, 1, 2, 4, 8, 10, 10]
    assert wire.backoff(1, 0.99) < 0.5 * 1.25


def test_locations_and_secrets_are_checked_and_persisted_on_the_network() -> None:
    network = rules.new_network("n" * 32, "owner", "10.1.0.0/24", None, None, owned=0)
    network = rules.add_node(network, "vm-remote", "10.1.0.3", vm=False)
    url = "ws://127.0.0.1:7000/net-api/v1/net/abc/link"
    with pytest.raises(rules.InvalidRequest, match="linkSecret first"):
        wire.with_location(network, "vm-remote", url)
    with pytest.raises(rules.InvalidRequest, match="16 to 256"):
        wire.with_secret(network, "short")
    network = wire.with_secret(network, "x" * 16)
    for bad in ("http://h/x", "ws://user:pw@h/x", "ws://h:0/x", "not a url", "ws://" + "h" * 600):
        with pytest.raises(rules.InvalidRequest):
            wire.with_location(network, "vm-remote", bad)
    located = wire.with_location(network, "vm-remote", url)
    assert wire.with_location(located, "vm-remote", url) is located  # idempotent
    assert wire.wanted_links([located]) == [(network.id, url, "x" * 16)]
    local = rules.add_node(located, "vm-here", "10.1.0.4", vm=True)
    with pytest.raises(rules.InvalidRequest, match="VM of this node"):
        wire.with_location(local, "vm-here", url)
    assert target_of(url) == "abc"
    assert target_of("ws://h/elsewhere") == ""
