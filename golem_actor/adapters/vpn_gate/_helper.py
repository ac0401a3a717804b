"""The gate namespace's helper process: it holds a network's gate namespace and hands out
file descriptors made inside it.

Why a process: a network namespace of our own, without host root, needs a user namespace
too, and a threaded process (the node) cannot enter a new user namespace. So the node
starts this module under `unshare --user --map-root-user --net`; inside, it is root of an
empty network namespace. A socket's namespace is fixed when the socket is created, so the
node needs nothing from the helper but fresh sockets: it connects them itself, non-
blocking, on its trio loop, and they keep working after the helper is gone.

Protocol, over the SOCK_SEQPACKET socket whose fd is the first argument (one message per
datagram; the others are `ip/prefix`, MAC and MTU):
- at start the helper creates the TAP device (`gate0`, no packet information: one read
  or write is one Ethernet frame), gives it the MAC, the MTU and `ip/prefix` it was given,
  brings it and the loopback up, turns IPv6 off (the network is IPv4), and sends `ready`
  with the TAP's fd attached (SCM_RIGHTS), or `error <why>` and exits 1;
- then each `tcp` request is answered with `ok` and a new, unconnected TCP socket;
- end of file on the control socket (the node closed its end, or died) ends the helper.

Standard library only (Python 3.9+), run from its source (`python3 -I -c <this file>`),
so the process starts fast (about 0.1 s) under any user; the ioctls are Linux's
(`netdevice(7)`).
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import socket
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_UP = 0x1
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
SIOCSIFADDR = 0x8916
SIOCSIFNETMASK = 0x891C
SIOCSIFMTU = 0x8922
SIOCSIFHWADDR = 0x8924
ARPHRD_ETHER = 1
TAP_NAME = "gate0"


def _ifreq_name(name: str) -> bytes:
    return struct.pack("16s", name.encode())


def _set_up(ctl: socket.socket, name: str) -> None:
    answer = fcntl.ioctl(ctl, SIOCGIFFLAGS, _ifreq_name(name) + bytes(24))
    flags = struct.unpack_from("16sh", answer)[1]
    fcntl.ioctl(ctl, SIOCSIFFLAGS, struct.pack("16sh22x", name.encode(), flags | IFF_UP))


def _sockaddr_in(name: str, address: ipaddress.IPv4Address) -> bytes:
    return struct.pack("16sHH4s16x", name.encode(), socket.AF_INET, 0, address.packed)


def make_tap(interface: ipaddress.IPv4Interface, mac: bytes, mtu: int) -> int:
    """The configured TAP device of this namespace, as an fd (one frame per read/write)."""
    tap = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(tap, TUNSETIFF, struct.pack("16sH22x", TAP_NAME.encode(), IFF_TAP | IFF_NO_PI))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as ctl:
        fcntl.ioctl(
            ctl, SIOCSIFHWADDR, struct.pack("16sH6s16x", TAP_NAME.encode(), ARPHRD_ETHER, mac)
        )
        fcntl.ioctl(ctl, SIOCSIFMTU, struct.pack("16si20x", TAP_NAME.encode(), mtu))
        fcntl.ioctl(ctl, SIOCSIFADDR, _sockaddr_in(TAP_NAME, interface.ip))
        fcntl.ioctl(ctl, SIOCSIFNETMASK, _sockaddr_in(TAP_NAME, interface.netmask))
        _set_up(ctl, TAP_NAME)
        _set_up(ctl, "lo")
    return tap


def _no_ipv6() -> None:
    """No router solicitations or MLD reports on the TAP: the network is IPv4 only."""
    for path in ("all", "default", TAP_NAME):
        try:
            with open(f"/proc/sys/net/ipv6/conf/{path}/disable_ipv6", "w") as knob:
                knob.write("1")
        except OSError:
            pass  # a kernel without IPv6: nothing to turn off


def serve(control: socket.socket) -> None:
    while True:
        request = control.recv(64)
        if not request:
            return
        if request == b"tcp":
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as made:
                socket.send_fds(control, [b"ok"], [made.fileno()])
        else:
            control.send(b"error unknown request")


def main(argv: list[str]) -> int:
    control = socket.socket(fileno=int(argv[0]))
    try:
        interface = ipaddress.IPv4Interface(argv[1])
        mac = bytes.fromhex(argv[2].replace(":", ""))
        mtu = int(argv[3])
        _no_ipv6()
        tap = make_tap(interface, mac, mtu)
    except (OSError, ValueError, IndexError) as exc:
        control.send(f"error {exc}".encode()[:1000])
        return 1
    socket.send_fds(control, [b"ready"], [tap])
    os.close(tap)
    serve(control)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
