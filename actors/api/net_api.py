"""The Golem Net API (yagna's VPN routes), served by the node next to the VM API.

The same routes live under `/net-api/v1` (what yapapi, golem-core and golem-js call) and
`/net-api/v2/vpn` (the Rust ya-client), with yagna's camelCase models: `Network {id, ip,
mask, gateway}` (`ip` in CIDR form, `mask` dotted), `Address {ip}` (CIDR form, as yagna
answers), `Node {id, ip}` (plain ip). POSTs that yagna answers with `null` answer `null`.

Auth is the VM API's tenant model: `Authorization: Bearer <token>` or, for websocket
clients that cannot set headers, `?authToken=<token>`; the token's tenant owns what it
creates, and the operator's token reaches every network. Unlike the VM API there is no
id-only access: a network needs an owner, so no token is 401.

Statuses (golem_actor/domain/vpn/networks.py gives the reasons): 400 malformed or
impossible input, 401 no token, 404 a network that does not exist *or is not yours*
(yagna says 403 for the second when you own others), 409 an address someone else holds
or a limit reached, 503 the node is busy. The gates' websockets are served by gates.py
(ASGI, below Quart); a plain GET of a gate path is 400 here. Error bodies carry
yagna's `ErrorMessage` field `message` and the VM API's `detail`, with the same text.

Routes only translate: the rules are in the domain module, the registry in vpn_router.
Whether a node id is a VM of the network owner's is asked of vm_lifecycle here, because
the vpn_router starts before vm_lifecycle and calls only go from later actors to earlier
ones.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, TypeVar

import msgspec
from quart import Response, request
from quart_trio import QuartTrio

from actors.vm_lifecycle import ListVms
from actors.vpn_router import (
    AddAddress,
    AddNode,
    CreateNetwork,
    GetNetwork,
    ListNetworks,
    NetRefused,
    NetworkNotFound,
    RemoveNetwork,
    RemoveNode,
)
from actors.vpn_router.link_messages import GetLinkHosting
from golem_actor.domain.tenancy import VM_ID_PREFIX, Caller, token_digest
from golem_actor.domain.vpn.networks import VpnNetwork, vms_seen_by
from golem_actor.kernel import CallTimeout

from .context import ApiContext
from .gate_paths import NET_API_PREFIXES

__all__ = ["NET_API_PREFIXES", "register_net_api"]

MAX_TOKEN = 512
_STATUS_OF_REFUSAL = {"invalid": 400, "taken": 409, "limit": 409}
_encoder = msgspec.json.Encoder()
T = TypeVar("T")


# -- wire models (ya-client model/src/net.rs) ------------------------------------------------


class NewNetworkBody(msgspec.Struct, frozen=True):
    ip: str
    mask: str | None = None
    gateway: str | None = None  # a client-sent `id` is ignored, as in yagna
    linkSecret: str | None = None  # extension (net_links.py): the secret of its links
    mtu: int | None = None  # extension: the guests' MTU in this network (576 to 9000)


class AddressBody(msgspec.Struct, frozen=True):
    ip: str


class NodeBody(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    ip: str
    location: str | None = None  # extension (net_links.py): another node's link URL
    # extension, listed only: whether the node at `location` said it hosts this id
    hosted: bool | None = None


class NetworkReply(msgspec.Struct, frozen=True):
    id: str
    ip: str
    mask: str
    gateway: str


class ConnectionReply(msgspec.Struct, frozen=True, rename="camel"):
    """An open TCP gate connection (`Connection` of ya-client's net model)."""

    protocol: int
    local_ip: str
    local_port: int
    remote_ip: str
    remote_port: int


TCP_PROTOCOL = 6


class ErrorMessage(msgspec.Struct, frozen=True):
    message: str
    detail: str


class NetApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _json(body: Any, status: int = 200) -> Response:
    return Response(_encoder.encode(body), status=status, content_type="application/json")


def _error(status: int, message: str) -> Response:
    return _json(ErrorMessage(message=message, detail=message), status)


def network_reply(network: VpnNetwork) -> NetworkReply:
    net = network.net
    return NetworkReply(
        id=network.id, ip=network.network, mask=str(net.netmask), gateway=network.gateway
    )


# -- auth and input ----------------------------------------------------------------------------


def caller_from(header: str | None, query_token: str, operator_token: str) -> Caller:
    """The caller an `Authorization` header or an `?authToken=` proves; 401 otherwise."""
    if header is not None:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise NetApiError(401, "Authorization must be 'Bearer <token>'")
    else:
        token = query_token.strip()
        if not token:
            raise NetApiError(401, "Missing application key (Bearer header or ?authToken=)")
    if len(token) > MAX_TOKEN:
        raise NetApiError(401, "the token is too long")
    if hmac.compare_digest(token.encode(), operator_token.encode()):
        return Caller(operator=True)
    return Caller(tenant=token_digest(token))


def net_caller(operator_token: str) -> Caller:
    """The caller of the current Quart request (gates are ASGI websockets: gates.py)."""
    header = request.headers.get("Authorization")
    return caller_from(header, request.args.get("authToken", ""), operator_token)


async def _body(kind: type[T]) -> T:
    raw = await request.get_data()
    if not raw:
        raise NetApiError(400, "a JSON body is required")
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        raise NetApiError(400, f"invalid body: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise NetApiError(400, f"malformed JSON: {exc}") from exc


Handler = Callable[..., Awaitable[Response]]


def _answering(handler: Handler) -> Handler:
    """Turn the expected failures of a Net API route into its error answers."""

    @wraps(handler)
    async def route(**params: str) -> Response:
        try:
            return await handler(**params)
        except NetApiError as error:
            return _error(error.status, error.message)
        except NetworkNotFound as error:
            return _error(404, str(error))
        except NetRefused as error:
            return _error(_STATUS_OF_REFUSAL[error.kind], error.message)
        except CallTimeout:
            return _error(503, "the node is busy; try again")

    return route


# -- routes ------------------------------------------------------------------------------------


def register_net_api(app: QuartTrio, context: ApiContext) -> None:
    """Serve the Net API's routes under both of its prefixes."""
    routes = _routes(context)
    for prefix in NET_API_PREFIXES:
        scope = prefix.strip("/").replace("/", "_").replace("-", "_")
        for path, methods, handler in routes:
            endpoint = f"{scope}.{handler.__name__}"
            app.add_url_rule(prefix + path, endpoint, _answering(handler), methods=methods)
        for path, handler in _gates(context):
            # The websocket upgrades are served below Quart (gates.py); a plain GET is answered.
            app.add_url_rule(
                prefix + path, f"{scope}.{handler.__name__}", _answering(handler), methods=["GET"]
            )


def _routes(context: ApiContext) -> list[tuple[str, list[str], Handler]]:
    vpn = context.vpn_router

    def caller() -> Caller:
        return net_caller(context.operator_token)

    async def get_networks() -> Response:
        networks = await vpn.call(ListNetworks(caller()))
        return _json([network_reply(n) for n in networks])

    async def create_network() -> Response:
        who = caller()
        body = await _body(NewNetworkBody)
        network = await vpn.call(
            CreateNetwork(
                caller=who,
                ip=body.ip,
                mask=body.mask,
                gateway=body.gateway,
                link_secret=body.linkSecret,
                mtu=body.mtu,
            )
        )
        return _json(network_reply(network))

    async def get_network(network_id: str) -> Response:
        return _json(network_reply(await vpn.call(GetNetwork(caller(), network_id))))

    async def remove_network(network_id: str) -> Response:
        await vpn.call(RemoveNetwork(caller(), network_id))
        if context.gates is not None:  # its gate connections end, its ports go
            await context.gates.close_network(network_id)
        return _json(None)

    async def get_addresses(network_id: str) -> Response:
        network = await vpn.call(GetNetwork(caller(), network_id))
        prefix = network.net.prefixlen
        return _json([AddressBody(f"{ip}/{prefix}") for ip in network.addresses])

    async def add_address(network_id: str) -> Response:
        who = caller()
        body = await _body(AddressBody)
        await vpn.call(AddAddress(who, network_id, body.ip))
        return _json(None)

    async def get_nodes(network_id: str) -> Response:
        network = await vpn.call(GetNetwork(caller(), network_id))
        hosting = await vpn.call(GetLinkHosting(network_id)) if network.link_secret else {}
        return _json(
            [NodeBody(n.node_id, n.ip, n.location, hosting.get(n.node_id)) for n in network.nodes]
        )

    async def add_node(network_id: str) -> Response:
        who = caller()
        body = await _body(NodeBody)
        vm = False
        if body.id.startswith(VM_ID_PREFIX):  # only the network owner's VMs join its traffic
            owner = vms_seen_by(await vpn.call(GetNetwork(who, network_id)))
            vm = any(v.vm_id == body.id for v in await context.lifecycle.call(ListVms(owner)))
        await vpn.call(
            AddNode(
                caller=who,
                network_id=network_id,
                node_id=body.id,
                ip=body.ip,
                vm=vm,
                location=body.location,
            )
        )
        return _json(None)

    async def remove_node(network_id: str, node_id: str) -> Response:
        await vpn.call(RemoveNode(caller(), network_id, node_id))
        return _json(None)

    async def get_connections(network_id: str) -> Response:
        await vpn.call(GetNetwork(caller(), network_id))
        open_now = [] if context.gates is None else context.gates.connections(network_id)
        return _json(
            [
                ConnectionReply(
                    protocol=TCP_PROTOCOL,
                    local_ip=c.local[0],
                    local_port=c.local[1],
                    remote_ip=c.remote[0],
                    remote_port=c.remote[1],
                )
                for c in open_now
            ]
        )

    return [
        ("/net", ["GET"], get_networks),
        ("/net", ["POST"], create_network),
        ("/net/<network_id>", ["GET"], get_network),
        ("/net/<network_id>", ["DELETE"], remove_network),
        ("/net/<network_id>/addresses", ["GET"], get_addresses),
        ("/net/<network_id>/addresses", ["POST"], add_address),
        ("/net/<network_id>/nodes", ["GET"], get_nodes),
        ("/net/<network_id>/nodes", ["POST"], add_node),
        ("/net/<network_id>/nodes/<node_id>", ["DELETE"], remove_node),
        ("/net/<network_id>/tcp", ["GET"], get_connections),
    ]


def _gates(context: ApiContext) -> list[tuple[str, Handler]]:
    async def no_upgrade(network_id: str) -> Response:
        await context.vpn_router.call(GetNetwork(net_caller(context.operator_token), network_id))
        return _error(400, "a gate is a websocket: send an upgrade request")

    async def tcp_gate(network_id: str, ip: str, port: str) -> Response:
        return await no_upgrade(network_id)

    async def raw_gate(network_id: str, src: str, dst: str) -> Response:
        return await no_upgrade(network_id)

    return [
        ("/net/<network_id>/tcp/<ip>/<port>", tcp_gate),
        ("/net/<network_id>/raw/from/<src>/to/<dst>", raw_gate),
    ]
