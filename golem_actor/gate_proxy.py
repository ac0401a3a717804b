"""`python -m golem_actor.gate_proxy URL`: stdin/stdout <-> a TCP gate websocket.

What `ssh -o ProxyCommand=…` needs to reach a VM's port through the Net API's TCP gate,
as websocat is used with yagna, without websocat: it opens the websocket (the token from
`--token` or `$GOLEM_NET_TOKEN`, sent as `Authorization: Bearer`; or `?authToken=` in the
URL), then copies stdin into binary messages (at most 64 KiB each) and every message into
stdout, until either side ends; stdin's end closes the websocket (the VM gets a FIN).
A refused handshake exits 2 with the status on stderr (400 refused, 504 no answer, ...).

    ssh -o ProxyCommand="python -m golem_actor.gate_proxy \\
        ws://NODE:PORT/net-api/v1/net/NET_ID/tcp/10.0.0.2/22" root@10.0.0.2

Needs only trio and trio-websocket, not a running node.
"""

from __future__ import annotations

import argparse
import os
import sys

import trio
import trio_websocket

CHUNK = 64 * 1024


async def _stdin_to_ws(ws: trio_websocket.WebSocketConnection, done: trio.CancelScope) -> None:
    stdin = trio.lowlevel.FdStream(os.dup(0))
    async with stdin:
        while data := await stdin.receive_some(CHUNK):
            await ws.send_message(data)
    await ws.aclose(code=1000)
    done.cancel()


async def _ws_to_stdout(ws: trio_websocket.WebSocketConnection, done: trio.CancelScope) -> None:
    stdout = trio.lowlevel.FdStream(os.dup(1))
    async with stdout:
        try:
            while True:
                message = await ws.get_message()
                await stdout.send_all(message.encode() if isinstance(message, str) else message)
        except trio_websocket.ConnectionClosed:
            pass
    done.cancel()


async def bridge(url: str, token: str | None) -> int:
    headers = [] if not token else [(b"Authorization", f"Bearer {token}".encode())]
    try:
        async with (
            trio_websocket.open_websocket_url(
                url, extra_headers=headers, max_message_size=16 * 1024 * 1024
            ) as ws,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(_stdin_to_ws, ws, nursery.cancel_scope)
            nursery.start_soon(_ws_to_stdout, ws, nursery.cancel_scope)
    except trio_websocket.ConnectionRejected as rejected:
        body = (rejected.body or b"").decode(errors="replace")
        print(f"gate_proxy: the gate refused: {rejected.status_code} {body}", file=sys.stderr)
        return 2
    except (OSError, trio_websocket.HandshakeError) as exc:
        print(f"gate_proxy: cannot reach the gate: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gate_proxy", description=__doc__.split("\n")[0])
    parser.add_argument("url", help="ws://…/net-api/v1/net/{id}/tcp/{ip}/{port}")
    parser.add_argument("--token", default=os.environ.get("GOLEM_NET_TOKEN"))
    args = parser.parse_args(argv)
    return trio.run(bridge, args.url, args.token)


if __name__ == "__main__":
    sys.exit(main())
