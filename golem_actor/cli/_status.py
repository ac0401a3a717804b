"""`golem-provider status [--json]`: the node's ports, its VM backend, and updates.

With the node running, the report is the node's own latest verification (read through
the operator-only `/admin/status` route with the token from the data directory); without
it, the same checks run here. The price state (known, stale or unknown, and why) is the
node's pricing actor's, or, without the node, the cached rates with one fetch of the feeds.
The advert's state (where, when last accepted, why not) is the node's advertiser's;
without the node, nothing is advertised.
Exit status 1 when the overall verdict is `error`.
"""

from __future__ import annotations

import sys

import httpx
import msgspec
import trio

from actors.port_verifier import verify
from golem_actor import __version__
from golem_actor.adapters.pypi import UpdateCheck, check_for_update
from golem_actor.domain.advertising import AdvertState
from golem_actor.domain.port_verdict import StatusReport
from golem_actor.images import load_catalog
from golem_actor.settings import Settings
from golem_actor.status_render import render_json, render_tty
from supervisors import verifier_settings
from supervisors.backend import choose_backend, probe_backend

from ._node_api import NodeUnreachable, locate_node
from ._pricing import current_prices

NOT_RUNNING = AdvertState(
    target="",
    phase="disabled",
    why="the node is not running",
    last_accepted_at=None,
    last_attempt_at=None,
    advert=None,
    posts=0,
)


async def _from_node(settings: Settings) -> StatusReport | None:
    try:
        node = locate_node(settings)
    except NodeUnreachable as error:
        if not error.running:
            return None
        print(f"golem-provider: {error}; checking here", file=sys.stderr)
        return None
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            reply = await client.get(node.url("/admin/status"), headers=node.headers())
        reply.raise_for_status()
        return msgspec.json.decode(reply.content, type=StatusReport)
    except (httpx.HTTPError, msgspec.DecodeError) as error:
        print(
            f"golem-provider: the running node did not answer ({error}); checking here",
            file=sys.stderr,
        )
        return None


async def _here(settings: Settings) -> StatusReport:
    backend = choose_backend(settings, load_catalog(settings.data_path))
    multipass, vm_backend = await probe_backend(settings, backend.kind)
    verification = await verify(
        verifier_settings(settings),
        in_use=frozenset(),
        api_running=False,
        multipass=multipass,
        backend=vm_backend,
    )
    return verification.report


async def _gather(settings: Settings) -> tuple[StatusReport, UpdateCheck]:
    update = await check_for_update(__version__, index_url=settings.update_index_url or None)
    report = await _from_node(settings) or await _here(settings)
    if report.pricing is None:
        report = msgspec.structs.replace(report, pricing=await current_prices(settings))
    if report.advert is None:  # only a running node advertises
        report = msgspec.structs.replace(report, advert=NOT_RUNNING)
    return report, update


def status(settings: Settings, as_json: bool) -> int:
    report, update = trio.run(_gather, settings)
    render = render_json if as_json else render_tty
    sys.stdout.write(render(report, update=update))
    return 1 if report.overall.status == "error" else 0
