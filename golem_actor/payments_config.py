"""Where the node's payments live: RPC URL, StreamPayment and token addresses, faucet.

Why one resolver: the node and the ``golem-provider`` CLI must agree on which contract
and which chain they talk to, so the precedence is written once, as a function of the
settings, the environment and the deployment files (no network IO):
- RPC URL: ``polygon_rpc_url`` when set, else the payments profile's ``rpc_url`` (may be
  empty: then nothing can be read);
- StreamPayment address: ``stream_payment_address`` when set (the zero address, set
  explicitly, turns payments off as the seed says, like ``--payments-network none``), else
  the deployment file of ``payments_network`` (``find_deployment``), else zero (payments
  off);
- token: a non-zero ``glm_token_address`` wins, else the deployment's ``glmToken`` but only
  when that deployment is the contract in use (a token belongs to its contract), else zero
  (native ETH);
- faucet: offered only when the profile says so; its URLs can be overridden with
  ``GOLEM_L2_FAUCET_URL``, ``GOLEM_L2_CAPTCHA_URL``, ``GOLEM_L2_CAPTCHA_API_KEY`` (not
  ``GOLEM_PROVIDER_*``: the settings loader rejects names it does not know).
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from eth_utils.address import to_checksum_address

from golem_actor.adapters.chain.deployments import (
    DeploymentError,
    PaymentsProfile,
    find_deployment,
    load_payments_profiles,
)
from golem_actor.settings import ZERO_ADDRESS, Settings

__all__ = [
    "CAPTCHA_API_KEY_ENV",
    "CAPTCHA_URL_ENV",
    "DEFAULT_CAPTCHA_API_KEY",
    "DEFAULT_CAPTCHA_URL",
    "FAUCET_URL_ENV",
    "DeploymentError",
    "FaucetConfig",
    "PaymentsConfig",
    "resolve_payments",
]

DEFAULT_CAPTCHA_URL = "https://cap.gobas.me"
DEFAULT_CAPTCHA_API_KEY = "05381a2cef5e"
FAUCET_URL_ENV = "GOLEM_L2_FAUCET_URL"
CAPTCHA_URL_ENV = "GOLEM_L2_CAPTCHA_URL"
CAPTCHA_API_KEY_ENV = "GOLEM_L2_CAPTCHA_API_KEY"


class FaucetConfig(msgspec.Struct, frozen=True, kw_only=True):
    """The PoW faucet of a testnet profile (protocol: ``golem_actor.adapters.faucet``)."""

    faucet_url: str
    captcha_url: str
    captcha_api_key: str


class PaymentsConfig(msgspec.Struct, frozen=True, kw_only=True):
    """The resolved payments setup; addresses are checksummed, zero when absent."""

    network: str
    rpc_url: str
    stream_payment_address: str
    token_address: str
    address_source: str  # "settings", a deployment file, or "" when payments are off
    off_reason: str  # why payments are off (for messages), "" when they are on
    profile: PaymentsProfile | None  # None: an unknown payments network
    faucet: FaucetConfig | None  # None: no faucet on this network

    @property
    def enabled(self) -> bool:
        """A zero StreamPayment address means stream-gated rentals are off."""
        return not _is_zero(self.stream_payment_address)

    @property
    def native(self) -> bool:
        """Streams are paid in the chain's native coin (the token address is zero)."""
        return _is_zero(self.token_address)

    @property
    def symbol(self) -> str:
        """The unit amounts are shown in."""
        profile = self.profile
        if self.native:
            return profile.native_symbol if profile else "ETH"
        return profile.token_symbol if profile else "GLM"

    @property
    def native_symbol(self) -> str:
        return self.profile.native_symbol if self.profile else "ETH"


def _is_zero(address: str) -> bool:
    return address.lower() == ZERO_ADDRESS


def resolve_payments(settings: Settings, *, env: Mapping[str, str]) -> PaymentsConfig:
    """The payments setup of ``settings``; raises ``DeploymentError`` on a malformed file."""
    network = settings.payments_network
    profile = load_payments_profiles().get(network)
    rpc_url = settings.polygon_rpc_url or (profile.rpc_url if profile else "")

    unset = not settings.stream_payment_address
    address: str = to_checksum_address(settings.stream_payment_address or ZERO_ADDRESS)
    token: str = to_checksum_address(settings.glm_token_address)
    source = "settings"
    deployment_token = ZERO_ADDRESS
    if not settings.payments_switched_off and (unset or _is_zero(token)):
        deployment = find_deployment(network, data_dir=settings.data_path, env=env)
        if deployment is not None and unset:
            address, source = deployment.address, deployment.source
        if deployment is not None and deployment.address == address:
            deployment_token = deployment.token
    off_reason = ""
    if settings.payments_switched_off:
        off_reason = "STREAM_PAYMENT_ADDRESS is the zero address"
    elif _is_zero(address):
        off_reason = f"no StreamPayment address for payments network {network!r}"
    if off_reason:
        source = ""
    if _is_zero(token):
        token = to_checksum_address(deployment_token)

    faucet = None
    if profile is not None and profile.faucet_enabled:
        faucet = FaucetConfig(
            faucet_url=env.get(FAUCET_URL_ENV) or profile.faucet_url,
            captcha_url=env.get(CAPTCHA_URL_ENV) or DEFAULT_CAPTCHA_URL,
            captcha_api_key=env.get(CAPTCHA_API_KEY_ENV) or DEFAULT_CAPTCHA_API_KEY,
        )
        if not faucet.faucet_url:
            faucet = None
    return PaymentsConfig(
        network=network,
        rpc_url=rpc_url,
        stream_payment_address=address,
        token_address=token,
        address_source=source,
        off_reason=off_reason,
        profile=profile,
        faucet=faucet,
    )
