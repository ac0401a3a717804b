"""What the node needs for payments, when they are on (a non-zero StreamPayment address)."""

from __future__ import annotations

from dataclasses import dataclass

from actors.api.payments import PaymentGate
from golem_actor.adapters.chain.deployments import payments_profile
from golem_actor.adapters.chain.rpc import RpcClient
from golem_actor.adapters.chain.stream_payment import StreamPaymentClient
from golem_actor.settings import Settings


@dataclass(frozen=True)
class Payments:
    client: StreamPaymentClient
    gate: PaymentGate
    rpc_url: str = ""


def payments_for(settings: Settings, provider: str) -> Payments | None:
    if not settings.payments_enabled:
        return None
    url = settings.polygon_rpc_url or payments_profile(settings.payments_network).rpc_url
    if not url:
        raise ValueError(
            "GOLEM_PROVIDER_POLYGON_RPC_URL: payments are on but the payments network"
            f" {settings.payments_network!r} has no RPC URL; set one"
        )
    client = StreamPaymentClient(RpcClient(url), settings.stream_payment_address)
    gate = PaymentGate(
        client=client,
        provider=provider,
        token=settings.glm_token_address,
        min_remaining=settings.stream_min_remaining_seconds,
        wei_per_core_month=settings.price_wei_per_core_month,
        wei_per_gb_ram_month=settings.price_wei_per_gb_ram_month,
        wei_per_gb_disk_month=settings.price_wei_per_gb_storage_month,
    )
    return Payments(client=client, gate=gate, rpc_url=url)
