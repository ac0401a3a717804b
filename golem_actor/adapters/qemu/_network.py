"""Guest networking that keeps tenants away from the host: a network namespace per VM.

The problem: QEMU's user networking (slirp) makes every guest connection from QEMU's own
sockets, and it maps the gateway (10.0.2.2) to the loopback of the network namespace
QEMU runs in. Run on the host, that hands every renter the host's 127.0.0.0/8 (the
node's API, anvil with unlocked accounts, databases), and a guest with root can also
route 127.0.0.0/8 out of its NIC and have slirp connect to any loopback address.

The choice, isolation first:

* **QEMU runs in a user + network namespace of its own** (``unshare --user
  --map-root-user --net``, as the unprivileged VM user; see ``_sandbox``). Whatever a
  guest makes slirp connect to, 10.0.2.2, 10.0.2.3, crafted 127.x destinations included,
  is looked up in that namespace, whose loopback holds only QEMU's own SSH forward.
  This does not depend on any option or filter of the forwarding code being right.
* **pasta** (Debian package ``passt``) connects that namespace to the host, running as
  the same user: it forwards the VM's private SSH port from the host's 127.0.0.1 into
  the namespace (``-t``, spliced socket to socket: as fast as the old hostfwd), and turns
  the namespace's outbound traffic into ordinary host sockets (NAT). ``--no-map-gw`` keeps
  its gateway from meaning the host, ``-T none -U none`` keeps the namespace's loopback
  from reaching the host's; ``-4``: no IPv6 at all. What a guest can reach is therefore
  what any process of the VM user can connect to on a host address other than loopback
  (the outside, and the host's services on its public addresses, as from outside);
  an operator's firewall can single that traffic out with ``meta skuid golem-vm``.
* ``VM_OUTBOUND=none``: slirp runs with ``restrict=on`` (no connection out of the guest;
  forwards still work) and pasta with UDP and ICMP off.

Rejected: passt as QEMU's backend in the host namespace (its gateway mapping can be
turned off, but its sockets still live in the host namespace, so the loopback stays one
crafted route away); a tap per VM with nftables (root-only, host-global rules and
forwarding sysctls to keep in step with VMs). Throughput is the guest's (TCG) either way;
``bench/netns.py`` compares it with the old user networking.

pasta needs ``/dev/net/tun`` usable by the VM user (Debian's udev makes it 0666) and a
host interface with a default route. Its lifetime is not tied to QEMU's: pasta keeps
running after QEMU exits, so the backend ends it with the VM (``kill_pasta``). A pasta is
recognised by the pid and start time the node wrote in ``pasta.json`` when it started it.
"""

from __future__ import annotations

import contextlib
import itertools
import signal
from pathlib import Path
from typing import Literal

import msgspec
import psutil

from golem_actor._atomic import write_atomic

__all__ = [
    "NS_SSH_PORT",
    "PASTA_BIND_FAILURE",
    "Outbound",
    "PastaIdentity",
    "find_pasta",
    "live_pasta",
    "namespace_prefix",
    "pasta_argv",
    "record_pasta",
    "send_kill_pasta",
]

Outbound = Literal["nat", "none"]
NS_SSH_PORT = 2222  # QEMU's SSH forward inside the VM's namespace (nobody else is there)
NS_ADDRESS = "198.18.0.2"  # the namespace's side of pasta's link (RFC 2544 test range)
NS_GATEWAY = "198.18.0.1"
PASTA_BIND_FAILURE = "Failed to bind"


class PastaIdentity(msgspec.Struct, frozen=True):
    """``pasta.json``: which process is this VM's pasta (pid reuse guard: start time)."""

    pid: int
    started: float
    qemu_pid: int


def namespace_prefix() -> list[str]:
    """The argv prefix that runs QEMU in a fresh user + network namespace."""
    return ["unshare", "--user", "--map-root-user", "--net", "--"]


def pasta_argv(*, qemu_pid: int, host_port: int, outbound: Outbound) -> list[str]:
    """pasta for the namespace of ``qemu_pid``, forwarding 127.0.0.1:``host_port`` to
    QEMU's SSH forward in there. Relative file names: it runs in the VM directory."""
    argv = [
        "pasta",
        "--foreground",
        "--quiet",
        "--config-net",
        "--ipv4-only",
        "--no-map-gw",
        "--address",
        NS_ADDRESS,
        "--netmask",
        "24",
        "--gateway",
        NS_GATEWAY,
        "--tcp-ports",
        f"127.0.0.1/{host_port}:{NS_SSH_PORT}",
        "--udp-ports",
        "none",
        "--tcp-ns",
        "none",
        "--udp-ns",
        "none",
    ]
    if outbound == "none":
        argv += ["--no-udp", "--no-icmp"]
    return [
        *argv,
        "--pid",
        "pasta.pid",
        "--log-file",
        "pasta.log",
        "--userns",
        f"/proc/{qemu_pid}/ns/user",
        "--netns",
        f"/proc/{qemu_pid}/ns/net",
    ]


def record_pasta(path: Path, pid: int, qemu_pid: int) -> None:
    """Write ``pasta.json`` for the pasta just started (blocking)."""
    try:
        started = psutil.Process(pid).create_time()
    except psutil.Error:
        started = 0.0  # already gone: the record matches no live process
    identity = PastaIdentity(pid=pid, started=started, qemu_pid=qemu_pid)
    write_atomic(path, msgspec.json.encode(identity) + b"\n")


def _owned(path: Path) -> psutil.Process | None:
    try:
        identity = msgspec.json.decode(path.read_bytes(), type=PastaIdentity)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None
    try:
        process = psutil.Process(identity.pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process if process.create_time() == identity.started else None
    except (psutil.Error, OSError):
        return None


def live_pasta(path: Path) -> int | None:
    """The pid of the pasta ``pasta.json`` at ``path`` names, if it still runs (blocking)."""
    process = _owned(path)
    return None if process is None else process.pid


def find_pasta(qemu_pid: int) -> int | None:
    """A running pasta for the namespace of ``qemu_pid`` (a live QEMU of ours), started by
    a node that died before it wrote ``pasta.json`` (blocking)."""
    mark = ("--netns", f"/proc/{qemu_pid}/ns/net")
    for process in psutil.process_iter(["cmdline", "status"]):
        with contextlib.suppress(psutil.Error, OSError):
            if process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if mark in itertools.pairwise(process.info["cmdline"] or []):
                return int(process.pid)
    return None


def send_kill_pasta(path: Path) -> bool:
    """SIGKILL the VM's pasta if it still runs; whether a signal was sent (blocking)."""
    process = _owned(path)
    if process is None:
        return False
    with contextlib.suppress(psutil.Error, OSError):
        process.send_signal(signal.SIGKILL)
        return True
    return False
