"""The node's root supervisor.

Start order is the order below; stop order is its reverse, so the API stops taking
requests first and the SSH proxies (tenants' live sessions) go last.

The root is one_for_one: addresses survive restarts, so a crashed actor comes back
without taking its siblings down with it. rest_for_one would restart every actor started
after the crashed one, and a crash of an early actor would then drop every tenant's SSH
session, which the product promises never to do. The intensity (5 restarts a minute) is
the node-wide burst we tolerate before the process exits non-zero for its service
manager to restart it.

Later issues add wallet, resource_tracker, port_verifier, vpn_router, vm_lifecycle,
stream_monitor, withdraw_scheduler and advertiser at their places in this list.
"""

from __future__ import annotations

import math

from actors.api import ApiActor, ApiConfig
from golem_actor import __version__
from golem_actor.kernel import ChildSpec, DynamicSupervisor, Restart, Strategy, Supervisor
from golem_actor.settings import Settings

ROOT_INTENSITY = 5
ROOT_PERIOD = 60.0


def build_node(settings: Settings) -> Supervisor:
    ssh_proxies = DynamicSupervisor("ssh_proxies", intensity=10, period=60.0)
    api_config = ApiConfig(host=settings.host, port=settings.port, version=__version__)
    children = [
        ChildSpec("ssh_proxies", lambda: ssh_proxies, shutdown=math.inf),
        ChildSpec("api", lambda: ApiActor(api_config), restart=Restart.PERMANENT, shutdown=10.0),
    ]
    return Supervisor(
        "node",
        children,
        strategy=Strategy.ONE_FOR_ONE,
        intensity=ROOT_INTENSITY,
        period=ROOT_PERIOD,
    )
