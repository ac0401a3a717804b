"""One TLS context for the node's HTTP clients, built once and off the event loop.

Why: `httpx.AsyncClient()` builds a fresh `ssl.SSLContext` and loads the CA bundle into it
on the calling thread: tens of milliseconds of CPU (80 ms on a small shared VM) that, on
the trio loop, stall every actor and every API request. The clients the node makes
again and again (each advert post, each price refresh, each public-IP lookup) pass
`verify=await tls_context()`, which builds the context the first time in a worker thread
and then hands out the same one (an `SSLContext` is safe to share between connections).
"""

from __future__ import annotations

import ssl

import trio

__all__ = ["tls_context"]

_built: list[ssl.SSLContext] = []  # at most one; two first calls at once may both build


async def tls_context() -> ssl.SSLContext:
    """The shared default-verifying client context (built once, in a worker thread)."""
    if not _built:
        context = await trio.to_thread.run_sync(ssl.create_default_context)
        if not _built:
            _built.append(context)
    return _built[0]
