"""One network's gate namespace, seen from the node: a TAP fd for the router, TCP out.

`open_gate_namespace` starts the helper (`_helper.py`) under `unshare --user
--map-root-user --net`, which needs no host root (only unprivileged user namespaces and a
`/dev/net/tun` the node's user may open, as the QEMU isolation needs already), and reads
the TAP's fd back. `GateNamespace.connect` asks the helper for a fresh socket made in the
namespace and connects it here, non-blocking on the trio loop, within `connect_timeout`:

- a RST (`ECONNREFUSED`) is `GateRefused` (the API's 400);
- no answer within the bound, or the kernel giving up first (no ARP answer: the router
  knows no such member, `EHOSTUNREACH` after about 3 s), is `GateUnanswered` (504).

The namespace lives as long as anything made in it: the helper, the TAP fd (the router's
port) and the connected sockets. `aclose` ends the helper; the router closes the TAP fd
when it detaches the port, and then the device and the namespace go away.
"""

from __future__ import annotations

import array
import errno
import functools
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path
from typing import Any

import trio

__all__ = [
    "CONNECT_TIMEOUT",
    "GATE_MTU",
    "GateError",
    "GateNamespace",
    "GateRefused",
    "GateUnanswered",
    "HelperUser",
    "NamespaceGone",
    "open_gate_namespace",
]

CONNECT_TIMEOUT = 5.0  # yagna's TCP_CONN_TIMEOUT (golem-vpn.md §7.3): a dead port is 504 by then
# Run from its source (`-c`): no package imports, so a fast start, and no file of ours
# need be readable by the helper's user.
HELPER = Path(__file__).with_name("_helper.py")
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
GATE_MTU = 1220  # the guests' VPN MTU (switch.DEFAULT_MTU): MSS 1180 both ways
_HELPER_ANSWER = 5.0  # the helper answers in microseconds; past this it is hung
_UNANSWERED = frozenset(
    {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT, errno.EHOSTDOWN, errno.ENETDOWN}
)


@dataclass(frozen=True)
class HelperUser:
    """Who the helper runs as (the node being root): e.g. the VM user's ids."""

    uid: int
    gid: int
    groups: tuple[int, ...] = ()


class GateError(Exception):
    """The gate could not do what was asked; the message says why, for the client."""


class GateRefused(GateError):
    """The destination answered with a reset: nothing listens on that port."""


class GateUnanswered(GateError):
    """Nothing answered within the connect bound."""


class NamespaceGone(GateError):
    """The helper is gone (killed, say): this namespace makes no more sockets."""


@functools.cache
def _helper_source() -> str:
    return HELPER.read_text()  # once per process, 5 KB


def _interpreter(runas: HelperUser | None) -> str:
    """The node's Python, or for another user a system `python3` that user can run (the
    helper needs the standard library only)."""
    if runas is None:
        return sys.executable
    found = shutil.which("python3", path=SYSTEM_PATH)
    if found is None:
        raise GateError("no python3 in /usr/bin or /bin for the gate helper's user")
    return found


def _unshare() -> str:
    found = shutil.which("unshare")
    if found is None:
        raise GateError("`unshare` (util-linux) is missing: the gate needs it")
    return found


@dataclass(eq=False)
class GateNamespace:
    """A running helper: the namespace's TAP fd (until taken) and a socket vendor."""

    interface: IPv4Interface
    mac: bytes
    process: trio.Process
    control: trio.socket.SocketType
    tap_fd: int | None
    connect_timeout: float = CONNECT_TIMEOUT
    _lock: trio.Lock = field(default_factory=trio.Lock)

    def take_tap(self) -> int:
        """The TAP's fd, once: whoever takes it (the router) closes it."""
        fd, self.tap_fd = self.tap_fd, None
        if fd is None:
            raise GateError("the TAP fd was taken already")
        return fd

    async def _new_socket(self) -> socket.socket:
        message, fds = b"", list[int]()
        # One request in flight, and never abandoned halfway (shielded), so that every
        # answer goes to the request it answers; a helper that hangs counts as gone.
        async with self._lock:
            with trio.CancelScope(shield=True), trio.move_on_after(_HELPER_ANSWER):
                try:
                    await self.control.send(b"tcp")
                    message, fds = await _receive_fds(self.control)
                except OSError as exc:
                    raise NamespaceGone(f"the gate namespace is gone: {exc}") from exc
        if not message:
            raise NamespaceGone("the gate namespace is gone")
        if message != b"ok" or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            raise GateError(f"the gate namespace answered {message[:100]!r}")
        return socket.socket(fileno=fds[0])

    async def connect(self, ip: IPv4Address, port: int) -> trio.SocketStream:
        """A TCP connection from the namespace to `ip:port` (see the module comment)."""
        sock = trio.socket.from_stdlib_socket(await self._new_socket())
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # interactive: SSH
            with trio.move_on_after(self.connect_timeout):
                await sock.connect((str(ip), port))
                return trio.SocketStream(sock)
            raise GateUnanswered(f"{ip}:{port} did not answer within {self.connect_timeout:g} s")
        except OSError as exc:
            if exc.errno == errno.ECONNREFUSED:
                raise GateRefused(f"{ip}:{port} refused the connection") from exc
            if exc.errno in _UNANSWERED:
                raise GateUnanswered(f"{ip}:{port} is unreachable: {exc.strerror}") from exc
            raise GateError(f"connecting to {ip}:{port} failed: {exc}") from exc
        finally:
            if sock.fileno() != -1 and not _connected(sock):
                sock.close()

    async def aclose(self) -> None:
        """End the helper (connections and the TAP fd live on until closed)."""
        if self.tap_fd is not None:
            os.close(self.tap_fd)
            self.tap_fd = None
        self.control.close()
        with trio.move_on_after(5) as waiting:
            await self.process.wait()
        if waiting.cancelled_caught:
            self.process.kill()
            with trio.CancelScope(shield=True):
                await self.process.wait()


def _connected(sock: trio.socket.SocketType) -> bool:
    try:
        sock.getpeername()
    except OSError:
        return False
    return True


async def _receive_fds(control: trio.socket.SocketType) -> tuple[bytes, list[int]]:
    size = socket.CMSG_SPACE(array.array("i").itemsize)
    message, ancillary, _flags, _address = await control.recvmsg(1024, size)
    fds: list[int] = []
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            received = array.array("i")
            received.frombytes(data[: len(data) - len(data) % received.itemsize])
            fds.extend(received)
    return message, fds


async def open_gate_namespace(
    interface: IPv4Interface,
    mac: bytes,
    *,
    mtu: int = GATE_MTU,
    connect_timeout: float = CONNECT_TIMEOUT,
    runas: HelperUser | None = None,
) -> GateNamespace:
    """A new gate namespace whose TAP holds `interface` (the requestor's address).

    `runas`: the unprivileged user the helper runs as when the node is root (the VM user,
    so that a root node's helper is not root on the host's files); None: the node's own."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    argv = [
        _unshare(), "--user", "--map-root-user", "--net", "--",
        _interpreter(runas), "-I", "-c", _helper_source(),
        str(theirs.fileno()), str(interface), mac.hex(":"), str(mtu),
    ]  # fmt: skip
    try:
        identity: dict[str, Any] = {}
        if runas is not None:
            identity = {"user": runas.uid, "group": runas.gid, "extra_groups": runas.groups}
        process = await trio.lowlevel.open_process(
            argv, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, **identity
        )
    finally:
        theirs.close()
    control = trio.socket.from_stdlib_socket(ours)
    try:
        with trio.fail_after(10):
            message, fds = await _receive_fds(control)
    except (trio.TooSlowError, OSError) as exc:
        control.close()
        process.kill()
        raise GateError(f"the gate namespace did not start: {exc}") from exc
    if message != b"ready" or len(fds) != 1:
        for fd in fds:
            os.close(fd)
        control.close()
        await process.wait()
        raise GateError(f"the gate namespace did not start: {message.decode(errors='replace')}")
    return GateNamespace(interface, mac, process, control, fds[0], connect_timeout)
