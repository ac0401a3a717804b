"""What the node needs for payments, when they are on.

Payments are on when the payments network resolves to a StreamPayment address: one set
in the settings, or a deployment file (`GOLEM_DEPLOYMENTS_DIR`, the data directory, or the
one shipped for the network, as the seed's provider auto-loads `l2.json`). The same
resolver serves the CLI, so the node and `golem-provider streams` always agree.
`--payments-network none` (no deployment, no address) turns payments off, and so does
`STREAM_PAYMENT_ADDRESS` set explicitly to the zero address (the seed's switch).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from actors.api.payments import PaymentGate
from golem_actor.adapters.chain.rpc import RpcClient
from golem_actor.adapters.chain.stream_payment import StreamPaymentClient
from golem_actor.payments_config import resolve_payments
from golem_actor.settings import Settings


@dataclass(frozen=True)
class Payments:
    client: StreamPaymentClient
    gate: PaymentGate
    rpc_url: str = ""
    contract: str = ""
    token: str = ""


def payments_for(settings: Settings, provider: str) -> Payments | None:
    config = resolve_payments(settings, env=os.environ)
    if not config.enabled:
        return None
    if not config.rpc_url:
        raise ValueError(
            "GOLEM_PROVIDER_POLYGON_RPC_URL: payments are on but the payments network"
            f" {settings.payments_network!r} has no RPC URL; set one"
        )
    client = StreamPaymentClient(RpcClient(config.rpc_url), config.stream_payment_address)
    gate = PaymentGate(
        client=client,
        provider=provider,
        token=config.token_address,
        min_remaining=settings.stream_min_remaining_seconds,
        wei_per_core_month=settings.price_wei_per_core_month,
        wei_per_gb_ram_month=settings.price_wei_per_gb_ram_month,
        wei_per_gb_disk_month=settings.price_wei_per_gb_storage_month,
    )
    return Payments(
        client=client,
        gate=gate,
        rpc_url=config.rpc_url,
        contract=config.stream_payment_address,
        token=config.token_address,
    )
