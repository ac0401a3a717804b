"""`python -m bench._echo`: an echo server on 127.0.0.1 standing in for a guest's sshd.

The `connections` bench's far end, in a process of its own so that neither the node nor
the load generator shares its loop. It says an SSH banner on each connection, then echoes
every byte until the client closes. It prints its port on stdout once it listens, then
serves until killed.
"""

from __future__ import annotations

from contextlib import suppress
from functools import partial

import trio

BANNER = b"SSH-2.0-bench_echo\r\n"


async def _echo(stream: trio.SocketStream) -> None:
    async with stream:
        with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await stream.send_all(BANNER)
            async for chunk in stream:
                await stream.send_all(chunk)


async def serve() -> None:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, _echo, 0, host="127.0.0.1"))
        print(listeners[0].socket.getsockname()[1], flush=True)


if __name__ == "__main__":
    with suppress(KeyboardInterrupt):
        trio.run(serve)
