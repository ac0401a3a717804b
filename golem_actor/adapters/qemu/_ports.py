"""Private SSH forward ports on 127.0.0.1.

Why a module of its own: QEMU's user networking binds the host side of ``hostfwd`` itself,
so we can only *guess* a free port and let QEMU try; if another process takes it in
between, QEMU exits with "Could not set up host forwarding rule" and the backend retries
with another guess (:data:`HOSTFWD_FAILURE` is how it recognises that case).
"""

from __future__ import annotations

import socket

__all__ = ["HOSTFWD_FAILURE", "LOOPBACK", "pick_free_port", "port_is_free"]

LOOPBACK = "127.0.0.1"
HOSTFWD_FAILURE = "Could not set up host forwarding rule"


def port_is_free(port: int) -> bool:
    """Whether a listener could bind ``127.0.0.1:port`` now (as QEMU's slirp does:
    with ``SO_REUSEADDR``, so connections in TIME_WAIT do not count as taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def pick_free_port() -> int:
    """A port the kernel considers free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])
