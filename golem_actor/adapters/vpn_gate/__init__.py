"""The Net API's gates: how the requestor reaches into a Golem VPN network from the node.

TCP gate (`GET …/net/{id}/tcp/{ip}/{port}`): the TCP end is the kernel's, in a network
namespace of the network's own (the *gate namespace*, `_namespace.py`), whose TAP device
`gate0` holds the requestor's first address of the network (`ip/prefix`, MAC
`a0:13:<ip>`, the network's MTU like its guests: 1220 unless the network asked for
another). The namespace is made by a small helper process under `unshare --user
--map-root-user --net` (`_helper.py`, no host root needed), which
hands the TAP's fd and fresh sockets back over SCM_RIGHTS; the node connects those
sockets itself on its trio loop. A real kernel TCP means retransmission, window scaling,
SACK, keep-alive and a correct FIN/RST for free; the websocket carries the bytes
(`_pump.py`: backpressure, close and abort propagated at once).

Raw gate (`…/raw/from/{src}/to/{dst}`): a socketpair port of the router holding the
requestor's address `src`; one websocket message is one Ethernet frame. An address has
one holder: the first address is the gate namespace's while TCP gate connections are
open, and a raw gate's otherwise (the namespace is then closed, and reopened by the next
TCP gate once the raw gate is gone).

Integration with the router (the seam): `Gates(router)` takes any `RouterPorts`, whose
`attach_port(GatePort(network_id, port_id, ip, mac), fd)` makes `fd` (a TAP, or one end
of a datagram socketpair: one frame per read/write) a LOCAL switch port of that network
and owns the fd from then on, and whose `detach_port(port_id)` removes it and closes the
fd. Gate ports are `gate:<network id>` (the namespace's TAP) and `raw:<network id>:<src>`.
On the node that is `actors.vpn_router.gate_ports.RouterGatePorts` (the router's
`AttachPort`/`DetachPort`), built once in `supervisors/tree.py`.
The API holds the `Gates` (`ApiContext.gates`): the first TCP gate into a network opens
its namespace and attaches it; `DELETE /net/{id}` calls `Gates.close_network`, which
ends that network's gate connections, detaches its ports and ends the helper; the node's
stop calls `Gates.aclose`. A root node passes `runas=HelperUser(...)` (the VM user's ids,
qemu `vm_user()`), so that the helpers are not root on the host's files; `/dev/net/tun`
must then be usable by that user (0666, as pasta needs already).
"""

from ._gates import (
    MAX_CONNECTIONS,
    AddressBusy,
    GateConnection,
    GatePort,
    Gates,
    RawPort,
    RouterPorts,
    TooManyConnections,
)
from ._namespace import (
    CONNECT_TIMEOUT,
    GATE_MTU,
    GateError,
    GateNamespace,
    GateRefused,
    GateUnanswered,
    HelperUser,
    open_gate_namespace,
)
from ._pump import CHUNK, GateEnd, SocketTcp, TcpSide, WsEnded, WsSide, pump

__all__ = [
    "CHUNK",
    "CONNECT_TIMEOUT",
    "GATE_MTU",
    "MAX_CONNECTIONS",
    "AddressBusy",
    "GateConnection",
    "GateEnd",
    "GateError",
    "GateNamespace",
    "GatePort",
    "GateRefused",
    "GateUnanswered",
    "Gates",
    "HelperUser",
    "RawPort",
    "RouterPorts",
    "SocketTcp",
    "TcpSide",
    "TooManyConnections",
    "WsEnded",
    "WsSide",
    "open_gate_namespace",
    "pump",
]
