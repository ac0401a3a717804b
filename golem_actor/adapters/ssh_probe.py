"""Is SSH up? Read an `SSH-` banner through a TCP port.

The lifecycle reports a VM `running` only once this succeeds through the VM's *public*
port, i.e. through the proxy a client will use. While the guest boots, the proxy accepts
and then closes (its upstream refuses), so a probe keeps trying until a banner arrives;
the caller bounds the whole wait.
"""

from __future__ import annotations

import trio

__all__ = ["read_banner", "wait_for_banner"]

# QEMU's user networking accepts a connection on the host side before the guest is up and
# then holds it silently, so a long attempt wastes its whole bound; attempts start short
# (a banner comes ~60 ms after connecting once sshd runs) and grow for slow guests.
FIRST_ATTEMPT = 0.5
LAST_ATTEMPT = 5.0
RETRY_DELAY = 0.05
MAX_BANNER = 255  # RFC 4253: the identification line is at most 255 bytes


async def read_banner(host: str, port: int, *, within: float = LAST_ATTEMPT) -> str | None:
    """One attempt: the banner line, or None when the port gave none within `within` s."""
    with trio.move_on_after(within):
        try:
            stream = await trio.open_tcp_stream(host, port)
        except OSError:
            return None
        async with stream:
            received = b""
            while b"\n" not in received and len(received) < MAX_BANNER:
                try:
                    chunk = await stream.receive_some(MAX_BANNER)
                except (trio.BrokenResourceError, OSError):
                    return None
                if not chunk:
                    break
                received += chunk
            if received.startswith(b"SSH-"):
                return received.split(b"\n", 1)[0].rstrip(b"\r").decode("ascii", "replace")
    return None


async def wait_for_banner(host: str, port: int) -> str:
    """Try until a banner arrives (bound it with `trio.fail_after` at the call site)."""
    within = FIRST_ATTEMPT
    while True:
        banner = await read_banner(host, port, within=within)
        if banner is not None:
            return banner
        within = min(within * 2, LAST_ATTEMPT)
        await trio.sleep(RETRY_DELAY)
