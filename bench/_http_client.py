"""`python -m bench._http_client`: timed synchronous creates against one node, then deletes.

The client side of the `gating` benchmark, in its own process so that its work never
shares the server's interpreter (GIL, loop). Standard library only: it starts in tens of
milliseconds. It reads one JSON job on stdin:

    {"url": "http://127.0.0.1:PORT/api/v1", "token": "...", "bodies": [{...}, ...]}

and, on one keep-alive connection (opened and warmed with `GET /health` first), for each
body: `POST /vms` (synchronous: the answer comes when the VM runs), timed from the first
byte sent to the last byte of the answer read, then `DELETE /vms/{id}` (not timed, so the
node's capacity never runs out). It writes `{"seconds": [...]}` on stdout; any answer
other than 200 exits non-zero with the answer on stderr.
"""

from __future__ import annotations

import http.client
import json
import sys
import time
from typing import Any
from urllib.parse import urlsplit


def _request(
    conn: http.client.HTTPConnection, method: str, path: str, token: str, body: Any = None
) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"}
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=payload, headers=headers)
    reply = conn.getresponse()
    return reply.status, reply.read()


def _expect(status: int, data: bytes, what: str) -> Any:
    if status != 200:
        sys.exit(f"{what}: HTTP {status} {data.decode(errors='replace')}")
    return json.loads(data)


def run(job: dict[str, Any]) -> list[float]:
    url = urlsplit(job["url"])
    token: str = job["token"]
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=60)
    try:
        _expect(*_request(conn, "GET", f"{url.path}/health", token), "warm-up")
        seconds: list[float] = []
        for body in job["bodies"]:
            began = time.perf_counter()
            status, data = _request(conn, "POST", f"{url.path}/vms", token, body)
            seconds.append(time.perf_counter() - began)
            vm = _expect(status, data, f"creating {body['name']}")
            deleted = _request(conn, "DELETE", f"{url.path}/vms/{vm['id']}", token)
            _expect(*deleted, f"deleting {body['name']}")
    finally:
        conn.close()
    return seconds


def main() -> None:
    seconds = run(json.load(sys.stdin))
    json.dump({"seconds": seconds}, sys.stdout)


if __name__ == "__main__":
    main()
