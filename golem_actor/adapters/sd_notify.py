"""systemd's readiness protocol (sd_notify), the few lines of it the node needs.

Why: with ``Type=notify`` systemd counts the service as started only when the process
says ``READY=1`` on the unix datagram socket named by ``$NOTIFY_SOCKET``, so units ordered
after the node (and ``systemctl start`` itself) wait until its API really serves. Without
the variable (not under systemd) this does nothing. A name starting with ``@`` is in the
abstract namespace. The send never blocks the caller (the event loop): a full or missing
socket is reported to the caller as `False`, since readiness must not stop the node.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

__all__ = ["notify", "notify_ready"]


def _address(name: str) -> str | bytes:
    return b"\0" + name[1:].encode() if name.startswith("@") else name


def notify(message: str, env: Mapping[str, str] | None = None) -> bool:
    """Send one sd_notify `message` (``KEY=VALUE`` lines); whether it was delivered."""
    name = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
    if not name:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.sendto(message.encode(), _address(name))
    except OSError:
        return False
    return True


def notify_ready(env: Mapping[str, str] | None = None) -> bool:
    return notify(f"READY=1\nMAINPID={os.getpid()}", env)
