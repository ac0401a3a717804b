"""Links between the routers of two nodes: the wire format and the rules, pure.

A network that spans nodes is created by the requestor on every node it uses, with the
same `linkSecret` (its own choice) on each; it tells each node where the other nodes'
VMs live (a node's `location`: the peer router's link URL for its copy of the network,
`ws://host:port/net-api/v1/net/<peer network id>/link`). Each router then *dials* every
location of its networks and sends the frames for the VMs there over that connection;
it receives the peer's frames on the connection the peer dialed. So each direction has
its own websocket, nobody has to decide who dials, and a link is *up* when our dial is
connected and authenticated.

Handshake (binary messages, `MAGIC` first; the secret never travels):

1. server -> client: MAGIC + server nonce (32 random bytes)
2. client -> server: MAGIC + client nonce + HMAC-SHA256(secret, "client" | target | ns | nc)
3. server -> client: MAGIC + HMAC-SHA256(secret, "server" | target | ns | nc)

`target` is the server's network id (in the URL the client dialed), so a proof is bound
to one network of one node and a recorded one is useless with fresh nonces. Each side
checks the other's proof (constant time); a mismatch closes the connection.

After its proof the server tells the client which node ids its copy of the network hosts
(its own VMs there): MAGIC + "H" + a JSON list of ids, again whenever that set changes.
The client checks them against the locations it was given, so a location that names a
VM the far node does not have is reported, not routed into the void. A peer that never
sends it (an older node) leaves the answer unknown; nothing else is sent server to client.

Frames: one websocket message carries a batch of Ethernet frames, each prefixed by its
length (2 bytes, big endian); at most `MAX_BATCH_BYTES` per message. A malformed batch
is dropped whole (the frames before the fault are kept).

Reconnects: after a failed dial or a drop the dialer waits `backoff(attempt)`: doubling
from 0.5 s up to 10 s, with jitter supplied by the caller so this stays deterministic.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import urlsplit

import msgspec

from .networks import InvalidRequest, VpnNetwork

__all__ = [
    "MAGIC",
    "MAX_BATCH_BYTES",
    "MAX_LOCATION",
    "NONCE_LEN",
    "PROOF_LEN",
    "LinkAuthError",
    "backoff",
    "challenge",
    "check_location",
    "check_secret",
    "client_hello",
    "client_proof",
    "decode_batch",
    "encode_batches",
    "hosted_message",
    "parse_challenge",
    "parse_client_hello",
    "parse_hosted",
    "parse_server_proof",
    "server_proof",
    "wanted_links",
    "with_location",
    "with_secret",
]

MAGIC = b"GVL1"
NONCE_LEN = 32
PROOF_LEN = 32
MAX_BATCH_BYTES = 60 * 1024  # under trio-websocket's and hypercorn's message bounds
MAX_FRAME = 0xFFFF
MAX_LOCATION = 512
MIN_SECRET, MAX_SECRET = 16, 256
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 10.0


class LinkAuthError(Exception):
    """The peer's handshake message is malformed or its proof is wrong."""


# -- the network's extension fields ------------------------------------------------------


def check_secret(secret: str) -> str | None:
    """What is wrong with a `linkSecret`, or None."""
    if not MIN_SECRET <= len(secret) <= MAX_SECRET or not secret.isprintable():
        return f"a linkSecret has {MIN_SECRET} to {MAX_SECRET} printable characters"
    return None


def check_location(location: str) -> str | None:
    """What is wrong with a node's `location` (a peer router's link URL), or None."""
    if len(location) > MAX_LOCATION:
        return f"a location has at most {MAX_LOCATION} characters"
    try:
        parts = urlsplit(location)
        port = parts.port
    except ValueError:
        return f"location {location!r} is not a URL"
    if parts.scheme not in ("ws", "wss") or not parts.hostname or not parts.path:
        return f"location {location!r} must be a ws:// or wss:// URL with a path"
    if parts.username or parts.password or parts.fragment or port == 0:
        return f"location {location!r} must not carry credentials, fragment or port 0"
    return None


# -- handshake ----------------------------------------------------------------------------


def _proof(secret: bytes, role: bytes, target: str, ns: bytes, nc: bytes) -> bytes:
    message = role + b"|" + target.encode() + b"|" + ns + nc
    return hmac.new(secret, message, hashlib.sha256).digest()


def challenge(server_nonce: bytes) -> bytes:
    return MAGIC + server_nonce


def parse_challenge(message: bytes) -> bytes:
    if len(message) != len(MAGIC) + NONCE_LEN or not message.startswith(MAGIC):
        raise LinkAuthError("malformed challenge")
    return message[len(MAGIC) :]


def client_proof(secret: bytes, target: str, ns: bytes, nc: bytes) -> bytes:
    return _proof(secret, b"client", target, ns, nc)


def server_proof(secret: bytes, target: str, ns: bytes, nc: bytes) -> bytes:
    return _proof(secret, b"server", target, ns, nc)


def client_hello(secret: bytes, target: str, ns: bytes, nc: bytes) -> bytes:
    return MAGIC + nc + client_proof(secret, target, ns, nc)


def parse_client_hello(message: bytes) -> tuple[bytes, bytes]:
    """(client nonce, client proof)."""
    if len(message) != len(MAGIC) + NONCE_LEN + PROOF_LEN or not message.startswith(MAGIC):
        raise LinkAuthError("malformed hello")
    body = message[len(MAGIC) :]
    return body[:NONCE_LEN], body[NONCE_LEN:]


def parse_server_proof(message: bytes, expected: bytes) -> None:
    if len(message) != len(MAGIC) + PROOF_LEN or not message.startswith(MAGIC):
        raise LinkAuthError("malformed server proof")
    if not hmac.compare_digest(message[len(MAGIC) :], expected):
        raise LinkAuthError("the server does not know the network's secret")


_HOSTED = MAGIC + b"H"
_ids = msgspec.json.Decoder(list[str])


def hosted_message(node_ids: Iterable[str]) -> bytes:
    """The server's list of the node ids it hosts in the linked network (sorted)."""
    return _HOSTED + msgspec.json.encode(sorted(node_ids))


def parse_hosted(message: bytes) -> frozenset[str]:
    """The ids of a `hosted_message`; LinkAuthError when `message` is not one."""
    if not message.startswith(_HOSTED) or len(message) > MAX_BATCH_BYTES:
        raise LinkAuthError("malformed hosted list")
    try:
        return frozenset(_ids.decode(message[len(_HOSTED) :]))
    except msgspec.DecodeError as exc:
        raise LinkAuthError("malformed hosted list") from exc


# -- frames -------------------------------------------------------------------------------


def encode_batches(frames: Iterable[bytes]) -> list[bytes]:
    """Length-prefixed frames, packed into messages of at most MAX_BATCH_BYTES (a frame
    longer than 65535 bytes cannot be carried and is left out)."""
    messages: list[bytes] = []
    parts: list[bytes] = []
    size = 0
    for frame in frames:
        length = len(frame)
        if length > MAX_FRAME:
            continue
        if size + 2 + length > MAX_BATCH_BYTES and parts:
            messages.append(b"".join(parts))
            parts, size = [], 0
        parts.append(length.to_bytes(2, "big"))
        parts.append(frame)
        size += 2 + length
    if parts:
        messages.append(b"".join(parts))
    return messages


def decode_batch(message: bytes) -> tuple[list[bytes], bool]:
    """The frames of one message, and whether it was well formed to its end."""
    frames: list[bytes] = []
    offset, end = 0, len(message)
    view = memoryview(message)
    while offset < end:
        if offset + 2 > end:
            return frames, False
        length = int.from_bytes(view[offset : offset + 2], "big")
        offset += 2
        if length == 0 or offset + length > end:
            return frames, False
        frames.append(bytes(view[offset : offset + length]))
        offset += length
    return frames, True


def backoff(attempt: int, jitter: float = 0.0) -> float:
    """Seconds to wait before dial number `attempt` (1 = the first retry); `jitter` in
    [0, 1) spreads up to a quarter more."""
    base = min(BACKOFF_MAX, BACKOFF_FIRST * 2.0 ** max(0, attempt - 1))
    return base * (1.0 + 0.25 * jitter)


# -- the registry's side --------------------------------------------------------------------


def with_location(network: VpnNetwork, node_id: str, location: str | None) -> VpnNetwork:
    """Point every address of `node_id` at `location` (None: not located). A VM of this
    node has no location; a located node needs the network to have a linkSecret."""
    if location is not None:
        problem = check_location(location)
        if problem is not None:
            raise InvalidRequest(problem)
        if network.link_secret is None:
            raise InvalidRequest("a node's location needs the network's linkSecret first")
    nodes = []
    for node in network.nodes:
        if node.node_id == node_id and node.location != location:
            if node.vm and location is not None:
                raise InvalidRequest(f"{node_id} is a VM of this node: it has no location")
            nodes.append(msgspec.structs.replace(node, location=location))
        else:
            nodes.append(node)
    if tuple(nodes) == network.nodes:
        return network
    return msgspec.structs.replace(network, nodes=tuple(nodes))


def with_secret(network: VpnNetwork, secret: str) -> VpnNetwork:
    problem = check_secret(secret)
    if problem is not None:
        raise InvalidRequest(problem)
    if network.link_secret == secret:
        return network
    return msgspec.structs.replace(network, link_secret=secret)


def wanted_links(networks: Iterable[VpnNetwork]) -> list[tuple[str, str, str]]:
    """(network id, location, secret) of every link the registry asks for, sorted."""
    links = {
        (network.id, node.location, network.link_secret)
        for network in networks
        if network.link_secret is not None
        for node in network.nodes
        if node.location is not None and not node.vm
    }
    return sorted(links)
