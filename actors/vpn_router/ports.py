"""Frame ports: the file descriptors the router's fabric reads frames from and writes to.

Every port carries *one Ethernet frame per datagram* (or per `read`): a SOCK_DGRAM or
SOCK_SEQPACKET socket (a socketpair end, a unix datagram socket facing QEMU) or a TAP
device opened with IFF_NO_PI. So one non-blocking `recv`/`read` is one frame, and the
fabric never parses a length prefix. Two kinds:

* `FdPort`: an fd handed to the router (a socketpair end for the raw gate, a TAP for the
  TCP gate); the router owns it from then on and closes it when the port goes.
* `NicPort`: a VM's VPN NIC. QEMU runs `-netdev dgram` between two socket *paths* in the
  VM directory: its own `vpn.sock` (QEMU binds it) and `vpn-router.sock` (bound here).
  Path sockets outlive both ends' restarts: QEMU keeps sending to the router's path,
  and a new router binds it again (a stale file is unlinked first) and reconnects to
  QEMU's. The router's socket is *connected* to QEMU's: the kernel then delivers to it
  only what QEMU's socket sent (another process that reaches the path cannot inject),
  and `poll` reports it writable only while QEMU's receive queue has room, so a full
  guest is waited for, never spun on. While QEMU is not there (not started yet, or
  restarted with a new socket) frames to it are dropped and counted; the router's
  periodic `refresh` notices a new QEMU socket (its inode or change time differs) and
  reconnects. Both paths are in the VM directory because QEMU (the VM user, in its own
  user namespace) may be unable to traverse the node's data directory; the socket file
  is made writable for it. Unix socket paths are not bound to a network namespace, so
  QEMU's own namespace is no obstacle. A socket address holds at most 107 bytes: the
  router names both sockets through an fd of the VM directory (`/proc/self/fd/N/...`).

Limits (measured): a unix datagram socket queues at most `net.unix.max_dgram_qlen`
datagrams (10 by default, per network namespace) from a sender it is not connected to.
The router's socket is connected to QEMU's, so QEMU may queue to it up to its send
buffer (~90 frames of 1234 bytes); QEMU's socket is not connected (it `sendto`s), so
the router can queue 11 frames to it, then `poll` says not writable and `drain` waits.
That bound is QEMU's network namespace's value, not the host's; raising it there to 512
did not change VM-to-VM throughput beyond noise (README, Benchmarks, `vpn`): the TCG
guests' per-packet cost is the bound, which larger frames (a network's `mtu`) lower.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from pathlib import Path
from typing import Protocol

from golem_actor.adapters.qemu import VmPaths

__all__ = ["NIC_QEMU_SOCKET", "NIC_ROUTER_SOCKET", "FdPort", "FramePort", "NicPort"]

NIC_QEMU_SOCKET = VmPaths.VPN_NIC  # in the VM directory: QEMU's end (QEMU binds it)
NIC_ROUTER_SOCKET = VmPaths.VPN_ROUTER  # in the VM directory: the router's end
MAX_FRAME = 65536  # larger than any frame the switch lets through (MTU + 14)
_GONE = (errno.ECONNREFUSED, errno.ENOENT, errno.ENOTCONN, errno.EDESTADDRREQ)


class FramePort(Protocol):
    """What the fabric needs of a port: an fd to wait on, batched reads, one write."""

    def fileno(self) -> int: ...

    def receive(self, limit: int) -> list[bytes]:
        """Up to `limit` frames, without blocking ([] when none is waiting); EOFError
        when the other end is closed for good."""
        ...

    def send(self, frame: bytes) -> bool | None:
        """True: sent; None: the peer's queue is full (wait writable); False: dropped."""
        ...

    def close(self) -> None: ...


class FdPort:
    """A non-blocking fd of one frame per read (socket of datagrams, or a TAP)."""

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)
        self._fd = fd

    def fileno(self) -> int:
        return self._fd

    def receive(self, limit: int) -> list[bytes]:
        frames: list[bytes] = []
        read, fd = os.read, self._fd
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while len(frames) < limit:
                frame = read(fd, MAX_FRAME)
                if not frame:  # the other end closed: nothing more will come
                    if frames:
                        break
                    raise EOFError
                frames.append(frame)
        return frames

    def send(self, frame: bytes) -> bool | None:
        try:
            os.write(self._fd, frame)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            return False  # the other end is gone (EPIPE, ECONNREFUSED): a dropped frame
        return True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


class NicPort:
    """The router's end of a VM's VPN NIC (see the module doc). Creating one binds its
    socket and `refresh` stats QEMU's: both touch the filesystem (run them in a thread)."""

    def __init__(self, vm_dir: Path) -> None:
        self.router_path = vm_dir / NIC_ROUTER_SOCKET
        self.qemu_path = vm_dir / NIC_QEMU_SOCKET
        # A socket address holds at most 107 bytes and a VM directory's path may be
        # longer: names go through the directory's fd (`/proc/self/fd/N/name`).
        self._dir = os.open(vm_dir, os.O_PATH | os.O_DIRECTORY)
        self._router_name = f"/proc/self/fd/{self._dir}/{NIC_ROUTER_SOCKET}"
        self._qemu_name = f"/proc/self/fd/{self._dir}/{NIC_QEMU_SOCKET}"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            with contextlib.suppress(FileNotFoundError):
                self.router_path.unlink()  # a previous router's: nobody listens there
            sock.bind(self._router_name)
            os.chmod(self.router_path, 0o666)  # QEMU, the VM user, sends to it
        except OSError:
            sock.close()
            os.close(self._dir)
            raise
        self._sock = sock
        self._peer: tuple[int, int] | None = None  # QEMU's socket we are connected to
        self.refresh()

    @property
    def connected(self) -> bool:
        return self._peer is not None

    def refresh(self) -> bool:
        """Connect to QEMU's socket when it is new (QEMU started or restarted); whether
        connected. A socket not connected to QEMU is connected to itself, which makes
        the kernel refuse every other sender."""
        try:
            info = os.stat(self.qemu_path)
        except OSError:
            identity = None
        else:  # inode numbers are reused at once: the change time tells a new file apart
            identity = (info.st_ino, info.st_ctime_ns)
        if identity is not None and identity == self._peer:
            return True
        self._peer = None
        if identity is not None:
            with contextlib.suppress(OSError):
                self._sock.connect(self._qemu_name)
                self._peer = identity
                return True
        with contextlib.suppress(OSError):
            self._sock.connect(self._router_name)
        return False

    def fileno(self) -> int:
        return self._sock.fileno()

    def receive(self, limit: int) -> list[bytes]:
        frames: list[bytes] = []
        recv = self._sock.recv
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while len(frames) < limit:
                frames.append(recv(MAX_FRAME))
        return frames

    def send(self, frame: bytes) -> bool | None:
        if self._peer is None:
            return False  # connected to itself: the frame would come back
        try:
            self._sock.send(frame)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            if exc.errno in _GONE:
                self._peer = None  # QEMU went away: the next refresh reconnects
            return False
        return True

    def close(self) -> None:
        """Close the socket; its file stays (the VM directory's, removed with it, and
        unlinked by the next bind)."""
        self._sock.close()
        with contextlib.suppress(OSError):
            os.close(self._dir)
