"""A router and VMs made of real kernel stacks, for the gate tests.

`SwitchRouter` is the vpn_router's data plane in miniature (the real one attaches QEMU's
sockets): a thread reads one frame per read from every attached fd, asks `Switch.route`
where it goes and writes it there. It is the gates' `RouterPorts`. A "VM" is a network
namespace the test creates, with a TAP whose fd is attached to the router, configured
statically as a guest would be by DHCP; its TCP servers are sockets made inside it (a
socket keeps its namespace), served by the test's trio code. Needs root.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import selectors
import socket
import struct
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import TypeVar

from golem_actor.adapters.vpn_gate import GatePort
from golem_actor.domain.vpn.addressing import format_mac, guest_mac
from golem_actor.domain.vpn.switch import Switch, SwitchNetwork, SwitchPort

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
CLONE_NEWNET = 0x40000000
TAP = "vpn0"
T = TypeVar("T")


def run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=30).stdout


def inside(netns: str, make: Callable[[], T]) -> T:
    """`make()` run by a thread that entered `netns` (sockets and TAPs made there stay)."""
    result: list[T | BaseException] = []

    def enter() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            ns_fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            try:
                if libc.setns(ns_fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            finally:
                os.close(ns_fd)
            result.append(make())
        except BaseException as exc:  # handed to the caller's thread
            result.append(exc)

    thread = threading.Thread(target=enter)
    thread.start()
    thread.join()
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


def _tap() -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", TAP.encode(), IFF_TAP | IFF_NO_PI))
    return fd


class SwitchRouter:
    """`RouterPorts` over a `Switch`, pumped by a thread."""

    def __init__(self) -> None:
        self.switch = Switch()
        self.lock = threading.Lock()
        self.fds: dict[str, int] = {}
        self.ports: dict[int, str] = {}
        self.selector = selectors.DefaultSelector()
        self.stop_r, self.stop_w = os.pipe()
        self.selector.register(self.stop_r, selectors.EVENT_READ)
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def add_network(self, network_id: str, cidr: IPv4Network, gateway: IPv4Address) -> None:
        with self.lock:
            self.switch.add_network(SwitchNetwork(network_id, cidr, gateway))

    def attach(self, spec: SwitchPort, fd: int) -> None:
        os.set_blocking(fd, False)
        with self.lock:
            self.switch.add_port(spec)
            self.fds[spec.id] = fd
            self.ports[fd] = spec.id
            self.selector.register(fd, selectors.EVENT_READ)

    async def attach_port(self, port: GatePort, fd: int) -> None:
        self.attach(SwitchPort(port.port_id, port.network_id, port.ip, mac=port.mac), fd)

    async def detach_port(self, port_id: str) -> None:
        with self.lock:
            self.switch.remove_port(port_id)
            fd = self.fds.pop(port_id, None)
            if fd is not None:
                del self.ports[fd]
                self.selector.unregister(fd)
                os.close(fd)

    def _loop(self) -> None:
        while True:
            for key, _ in self.selector.select():
                if key.fd == self.stop_r:
                    return
                with self.lock:
                    port_id = self.ports.get(key.fd)
                    if port_id is None:
                        continue
                    try:
                        frame = os.read(key.fd, 65536)
                    except (BlockingIOError, OSError):
                        continue
                    for out, data in self.switch.route(port_id, frame):
                        with contextlib.suppress(BlockingIOError, OSError):
                            os.write(self.fds[out], data)  # a full queue drops the frame

    def stop(self) -> None:
        os.write(self.stop_w, b"x")
        self.thread.join(timeout=5)
        for fd in (*self.fds.values(), self.stop_r, self.stop_w):
            os.close(fd)


@dataclass
class Vm:
    netns: str
    ip: IPv4Address

    def listener(self, port: int) -> socket.socket:
        """A listening TCP socket on `ip:port` inside the VM's namespace."""

        def make() -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((str(self.ip), port))
            sock.listen(8)
            return sock

        return inside(self.netns, make)


def make_vm(router: SwitchRouter, netns: str, network_id: str, ip: IPv4Address, prefix: int) -> Vm:
    run("ip", "netns", "add", netns)
    fd = inside(netns, _tap)
    for argv in (
        ("ip", "link", "set", "lo", "up"),
        ("ip", "link", "set", TAP, "address", format_mac(guest_mac(ip)), "mtu", "1220", "up"),
        ("ip", "addr", "add", f"{ip}/{prefix}", "dev", TAP),
    ):
        run("ip", "netns", "exec", netns, *argv)
    router.attach(SwitchPort(netns, network_id, ip), fd)
    return Vm(netns, ip)


def deaf_member(router: SwitchRouter, network_id: str, ip: IPv4Address) -> socket.socket:
    """A member that takes frames and never answers (a VM whose stack hangs)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    router.attach(SwitchPort(f"deaf-{ip}", network_id, ip), theirs.detach())
    return ours


def dropbear_argv(vm: Vm, work: Path) -> tuple[list[str], Path]:
    """An SSH server (dropbear) on the VM's port 22, and the client key it accepts.

    It logs in a user `gatetest` (uid 0, home in `work`) that exists only in a private
    mount namespace's copy of /etc/passwd: nothing of the host's accounts is touched."""
    home = work / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    home.chmod(0o700)
    key = work / "client"
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
    authorized = home / ".ssh" / "authorized_keys"
    authorized.write_text((work / "client.pub").read_text())
    authorized.chmod(0o600)
    run("dropbearkey", "-t", "ed25519", "-f", str(work / "hostkey"))
    passwd = work / "passwd"
    passwd.write_text(Path("/etc/passwd").read_text() + f"gatetest:x:0:0::{home}:/bin/sh\n")
    inner = (
        f"mount --bind {passwd} /etc/passwd && exec dropbear -F -E -s -r {work / 'hostkey'}"
        f" -p {vm.ip}:22 -P {work / 'dropbear.pid'}"
    )
    argv = ["ip", "netns", "exec", vm.netns, "unshare", "--mount", "--propagation", "private"]
    return [*argv, "sh", "-c", inner], key
