"""A frame load generator in its own process (for `vpn_fabric`).

Why a process: the router under test is Python on trio, and a sender and a reader thread
in its process take the same GIL, so the bench would measure three loops sharing one
interpreter, not the router on its core. Here the load runs beside it: the sender in a
thread, the reader on the main thread, both on inherited socket fds.

    python -m bench._frame_load SEND_FD RECV_FD N HEX_FRAME

prints one JSON line: frames read, and the seconds from the first send to the last read
(reading stops at `N` or after a quiet second).
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time

__all__ = ["main"]


def _send(sock: socket.socket, data: bytes, n: int) -> None:
    send = sock.send
    for _ in range(n):
        send(data)  # blocking: waits while the far end's queue is full


def main(argv: list[str]) -> None:
    send_fd, recv_fd, n, hex_frame = int(argv[0]), int(argv[1]), int(argv[2]), argv[3]
    out = socket.socket(fileno=send_fd)
    into = socket.socket(fileno=recv_fd)
    out.setblocking(True)
    into.settimeout(1.0)
    data = bytes.fromhex(hex_frame)
    began = time.perf_counter()
    sender = threading.Thread(target=_send, args=(out, data, n), daemon=True)
    sender.start()
    count, last, recv = 0, began, into.recv
    with contextlib.suppress(TimeoutError):
        while count < n:
            recv(2048)
            count += 1
            last = time.perf_counter()
    print(json.dumps({"count": count, "seconds": last - began}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
