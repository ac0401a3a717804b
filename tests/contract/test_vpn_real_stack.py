"""The switch core against real Linux network stacks and a real DHCP client.

Each "VM" is a network namespace the test creates, with a TAP device whose other end is
this process: a small pump thread reads frames from the TAPs, asks `Switch.route` where
they go and writes them out (what the vpn_router actor will do with QEMU's sockets).
busybox `udhcpc` (what the test guest runs) configures each TAP from the router's DHCP
replies; the kernel then ARPs and pings through the router. Nothing leaves the
namespaces: the TAPs are created inside them (the opening thread enters the namespace).
Needs root and busybox (.ci/install-guest-deps.sh).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import selectors
import shutil
import signal
import struct
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from golem_actor.domain.vpn.addressing import format_mac, guest_mac
from golem_actor.domain.vpn.switch import Drop, Switch, SwitchNetwork, SwitchPort

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
CLONE_NEWNET = 0x40000000
CIDR = IPv4Network("10.8.0.0/16")
GATEWAY = IPv4Address("10.8.0.1")
TAP = "vpn0"

SCRIPT = """#!/bin/sh
# udhcpc calls this with the lease in its environment: apply it like a distro script does
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$subnet" broadcast "$broadcast" dev "$interface"
    [ -n "$mtu" ] && ip link set dev "$interface" mtu "$mtu"
    env > "$LEASE_FILE"
    ;;
esac
exit 0
"""


DHCLIENT_SCRIPT = """#!/bin/sh
# dhclient's variant: new_* variables, reason BOUND/RENEW/REBOOT, a cleared environment
case "$reason" in
  BOUND|RENEW|REBIND|REBOOT)
    ip addr flush dev "$interface"
    ip addr add "$new_ip_address/$new_subnet_mask" dev "$interface"
    [ -n "$new_interface_mtu" ] && ip link set dev "$interface" mtu "$new_interface_mtu"
    env > "@LEASE_FILE@"
    ;;
esac
exit 0
"""


def run(*argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=timeout)


def open_tap_in(netns: str) -> int:
    """Create TAP `vpn0` inside `netns` and return its fd (the thread enters the netns)."""
    result: list[int | BaseException] = []

    def inside() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            ns_fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            try:
                if libc.setns(ns_fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            finally:
                os.close(ns_fd)
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
            fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", TAP.encode(), IFF_TAP | IFF_NO_PI))
            result.append(fd)
        except BaseException as exc:  # handed to the test thread
            result.append(exc)

    thread = threading.Thread(target=inside)  # it ends, and its netns with it
    thread.start()
    thread.join()
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


@dataclass
class Guest:
    netns: str
    port_id: str
    ip: IPv4Address
    fd: int

    def sh(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run("ip", "netns", "exec", self.netns, *argv, check=check)

    def ping(self, target: IPv4Address, *extra: str) -> bool:
        argv = ("busybox", "ping", "-c", "2", "-W", "2", *extra, str(target))
        return self.sh(*argv, check=False).returncode == 0


class Pump:
    """The actor's job in miniature: TAP fd -> route -> TAP fd, until stopped."""

    def __init__(self, switch: Switch) -> None:
        self.switch = switch
        self.lock = threading.Lock()  # the test changes the tables while frames flow
        self.fds: dict[str, int] = {}
        self.ports: dict[int, str] = {}
        self.selector = selectors.DefaultSelector()
        self.stop_r, self.stop_w = os.pipe()
        self.selector.register(self.stop_r, selectors.EVENT_READ)
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def attach(self, port_id: str, fd: int) -> None:
        with self.lock:
            self.fds[port_id] = fd
            self.ports[fd] = port_id
            self.selector.register(fd, selectors.EVENT_READ)

    def loop(self) -> None:
        while True:
            for key, _ in self.selector.select():
                if key.fd == self.stop_r:
                    return
                try:
                    frame = os.read(key.fd, 65536)
                except BlockingIOError:
                    continue
                with self.lock:
                    routed = self.switch.route(self.ports[key.fd], frame)
                    for out, data in routed:
                        # a full TAP queue drops the frame, as the egress queue would
                        with contextlib.suppress(BlockingIOError):
                            os.write(self.fds[out], data)

    def stop(self) -> None:
        os.write(self.stop_w, b"x")
        self.thread.join(timeout=5)
        for fd in (*self.fds.values(), self.stop_r, self.stop_w):
            os.close(fd)


World = tuple[Switch, Pump, list[str], Path]  # the switch, its pump, namespaces, script


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    assert os.geteuid() == 0, "creating network namespaces needs root"
    assert shutil.which("busybox"), "busybox is missing: run .ci/install-guest-deps.sh"
    switch = Switch()
    switch.add_network(SwitchNetwork("net-a", CIDR, GATEWAY, lease_seconds=600))
    switch.add_network(SwitchNetwork("net-b", CIDR, GATEWAY))
    pump = Pump(switch)
    pump.thread.start()
    namespaces: list[str] = []
    script = tmp_path / "udhcpc.script"
    script.write_text(SCRIPT)
    script.chmod(0o755)
    try:
        yield switch, pump, namespaces, script
    finally:
        pump.stop()
        for netns in namespaces:
            run("ip", "netns", "delete", netns, check=False)


def guest(world: World, name: str, network: str, addr: str) -> Guest:
    switch, pump, namespaces, _ = world
    netns = f"gvpn-{os.getpid()}-{name}"
    run("ip", "netns", "add", netns)
    namespaces.append(netns)
    ip = IPv4Address(addr)
    fd = open_tap_in(netns)
    member = Guest(netns, name, ip, fd)
    member.sh("ip", "link", "set", "lo", "up")
    # QEMU gets `mac=` derived from the IP; the TAP stands in for the guest NIC
    member.sh("ip", "link", "set", TAP, "address", format_mac(guest_mac(ip)), "up")
    with pump.lock:
        switch.add_port(SwitchPort(name, network, ip))
    pump.attach(name, fd)
    return member


def dhcp(world: World, member: Guest) -> dict[str, str]:
    lease_file = world[3].parent / f"{member.port_id}.lease"
    result = run(
        "ip", "netns", "exec", member.netns, "env", f"LEASE_FILE={lease_file}",
        "busybox", "udhcpc", "-i", TAP, "-f", "-q", "-n", "-t", "3", "-T", "1",
        "-s", str(world[3]),
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    pairs = (line.split("=", 1) for line in lease_file.read_text().splitlines() if "=" in line)
    return dict(pairs)


def test_udhcpc_configures_the_nic_and_the_kernel_talks_through_the_router(world: World) -> None:
    switch = world[0]
    a = guest(world, "a", "net-a", "10.8.0.2")
    b = guest(world, "b", "net-a", "10.8.0.3")
    lease = dhcp(world, a)
    assert (lease["ip"], lease["subnet"], lease["router"]) == (
        "10.8.0.2",
        "255.255.0.0",
        "10.8.0.1",
    )
    assert (lease["mtu"], lease["lease"], lease["serverid"]) == ("1220", "600", "10.8.0.1")
    assert (lease["broadcast"]) == "10.8.255.255"
    shown = a.sh("ip", "-4", "-o", "addr", "show", "dev", TAP).stdout
    assert "inet 10.8.0.2/16" in shown
    assert "mtu 1220" in a.sh("ip", "-o", "link", "show", "dev", TAP).stdout
    assert dhcp(world, b)["ip"] == "10.8.0.3"

    assert a.ping(GATEWAY), "the router answers ARP and ICMP echo for the gateway"
    assert a.ping(b.ip)
    assert b.ping(a.ip)
    assert switch.counters("b").tx_frames >= 2


def test_dhclient_takes_the_same_lease(world: World, tmp_path: Path) -> None:
    """isc-dhcp-client (Debian's cloud images) is stricter than udhcpc about replies."""
    assert shutil.which("dhclient"), "dhclient is missing: run .ci/install-guest-deps.sh"
    a = guest(world, "a", "net-a", "10.8.0.2")
    lease_file = tmp_path / "dhclient.env"
    script = tmp_path / "dhclient.script"
    script.write_text(DHCLIENT_SCRIPT.replace("@LEASE_FILE@", str(lease_file)))
    script.chmod(0o755)
    result = a.sh(
        "dhclient", "-1", "-v", "-cf", "/dev/null", "-sf", str(script),
        "-lf", str(tmp_path / "leases"), "-pf", str(tmp_path / "pid"), TAP,
        check=False,
    )  # fmt: skip
    # bound, dhclient went to the background to renew: stop the process it left
    with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
        os.kill(int((tmp_path / "pid").read_text()), signal.SIGTERM)
    assert result.returncode == 0, result.stderr
    assert lease_file.exists(), result.stderr
    env = dict(line.split("=", 1) for line in lease_file.read_text().splitlines() if "=" in line)
    assert env["reason"] == "BOUND"
    assert (env["new_ip_address"], env["new_subnet_mask"]) == ("10.8.0.2", "255.255.0.0")
    assert (env["new_routers"], env["new_dhcp_server_identifier"]) == ("10.8.0.1", "10.8.0.1")
    assert "inet 10.8.0.2/16" in a.sh("ip", "-4", "-o", "addr", "show", "dev", TAP).stdout
    assert a.ping(GATEWAY)


def test_isolation_spoofing_and_leaving_with_real_stacks(world: World) -> None:
    switch, pump = world[0], world[1]
    a = guest(world, "a", "net-a", "10.8.0.2")
    b = guest(world, "b", "net-a", "10.8.0.3")
    c = guest(world, "c", "net-b", "10.8.0.3")  # same address, other network
    for member in (a, b, c):
        assert dhcp(world, member)["ip"] == str(member.ip)
    assert a.ping(b.ip)
    assert not c.ping(a.ip)
    assert switch.counters("a").rx_frames > 0
    assert switch.counters("c").drops[Drop.UNKNOWN_DESTINATION] > 0

    # a guest that claims another address gets nothing through
    a.sh("ip", "addr", "add", "10.8.0.9/16", "dev", TAP)
    assert not a.ping(b.ip, "-I", "10.8.0.9")
    assert switch.counters("a").drops[Drop.SPOOFED] > 0

    with pump.lock:
        switch.remove_port("b")
    assert not a.ping(b.ip)
