"""Where StreamPayment lives on each payments network, and each network's profile.

Why: the requestor tools and the upstream provider agree on one file format and lookup
order, so an operator can point both at the same deployment. Rules (compatible with the
upstream provider):
- a payments profile name maps to a file basename: ``l2`` and ``l2.holesky`` give ``l2``,
  any other name the part before its first dot (``kaolin.holesky`` gives ``kaolin``);
- the file is looked for in ``$GOLEM_DEPLOYMENTS_DIR/<basename>.json``, then
  ``<data dir>/deployments/<basename>.json``, then the shipped
  ``config/deployments/<basename>.json``; the first one that exists wins;
- its format is ``{"network", "timestamp", "StreamPayment": {"address", "oracle",
  "glmToken"}}``, where a zero ``glmToken`` means native ETH.
Profiles (RPC URL, faucet, chain id, symbols) are data in ``config/payments_profiles.toml``.
"""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Final

import msgspec
from eth_utils.address import to_checksum_address

from golem_actor._atomic import ensure_dir, write_atomic
from golem_actor.domain.streams import ZERO_ADDRESS

__all__ = [
    "DEPLOYMENTS_DIR_ENV",
    "Deployment",
    "DeploymentError",
    "PaymentsProfile",
    "deployment_basename",
    "deployment_candidates",
    "find_deployment",
    "load_payments_profiles",
    "payments_profile",
    "read_deployment",
    "write_deployment",
]

DEPLOYMENTS_DIR_ENV: Final = "GOLEM_DEPLOYMENTS_DIR"
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


class DeploymentError(ValueError):
    """A deployment file or payments profile is missing or malformed."""


class _StreamPaymentEntry(msgspec.Struct, rename={"glm_token": "glmToken"}):
    address: str
    oracle: str
    glm_token: str = ZERO_ADDRESS


class _DeploymentFile(msgspec.Struct, rename={"stream_payment": "StreamPayment"}):
    stream_payment: _StreamPaymentEntry
    network: str = ""
    timestamp: str = ""


class Deployment(msgspec.Struct, frozen=True, kw_only=True):
    """StreamPayment on one network; ``token`` is the zero address in native-ETH mode."""

    network: str
    address: str
    oracle: str
    token: str
    timestamp: str = ""
    source: str = ""


class PaymentsProfile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    rpc_url: str
    faucet_enabled: bool
    faucet_url: str = ""
    chain_id: int | None = None
    token_symbol: str = "GLM"
    native_symbol: str = "ETH"
    # Exchange rates fixed for a chain whose tokens have no market price (local): USD each.
    fixed_glm_usd: float | None = None
    fixed_eth_usd: float | None = None


def deployment_basename(profile: str) -> str:
    if profile in ("l2", "l2.holesky"):
        return "l2"
    return profile.split(".", 1)[0]


def _checksum(value: str, what: str, source: str) -> str:
    if _ADDRESS.fullmatch(value) is None:
        raise DeploymentError(f"{source}: {what} {value!r} is not an address")
    return to_checksum_address(value)


def _parse(data: bytes, source: str) -> Deployment:
    try:
        parsed = msgspec.json.decode(data, type=_DeploymentFile)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise DeploymentError(f"{source}: malformed deployment file: {exc}") from exc
    entry = parsed.stream_payment
    return Deployment(
        network=parsed.network,
        address=_checksum(entry.address, "StreamPayment.address", source),
        oracle=_checksum(entry.oracle, "StreamPayment.oracle", source),
        token=_checksum(entry.glm_token, "StreamPayment.glmToken", source),
        timestamp=parsed.timestamp,
        source=source,
    )


def read_deployment(path: Path) -> Deployment:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DeploymentError(f"{path}: cannot be read: {exc}") from exc
    return _parse(data, str(path))


def deployment_candidates(
    profile: str, *, data_dir: Path | None = None, env: Mapping[str, str] | None = None
) -> list[Path]:
    """The files looked at, in order (the shipped one is not a plain path: see find)."""
    environ = os.environ if env is None else env
    name = f"{deployment_basename(profile)}.json"
    found: list[Path] = []
    override = environ.get(DEPLOYMENTS_DIR_ENV, "")
    if override:
        found.append(Path(override).expanduser() / name)
    if data_dir is not None:
        found.append(data_dir.expanduser() / "deployments" / name)
    return found


def find_deployment(
    profile: str, *, data_dir: Path | None = None, env: Mapping[str, str] | None = None
) -> Deployment | None:
    """The deployment of ``profile`` by the lookup order, or ``None`` if no file has it."""
    for path in deployment_candidates(profile, data_dir=data_dir, env=env):
        if path.is_file():
            return read_deployment(path)
    name = f"{deployment_basename(profile)}.json"
    shipped = resources.files("config").joinpath("deployments", name)
    try:
        data = shipped.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    return _parse(data, f"config/deployments/{name}")


def write_deployment(
    path: Path,
    address: str,
    oracle: str,
    token: str = ZERO_ADDRESS,
    *,
    network: str = "local",
    timestamp: str | None = None,
) -> Deployment:
    """Write a deployment file atomically (for the local profile); returns what it holds."""
    source = str(path)
    stamp = timestamp
    if stamp is None:
        stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    document = {
        "network": network,
        "timestamp": stamp,
        "StreamPayment": {
            "address": _checksum(address, "address", source),
            "oracle": _checksum(oracle, "oracle", source),
            "glmToken": _checksum(token, "token", source),
        },
    }
    data = msgspec.json.format(msgspec.json.encode(document), indent=2) + b"\n"
    ensure_dir(path.parent)
    write_atomic(path, data, mode=0o644)
    return _parse(data, source)


def load_payments_profiles() -> dict[str, PaymentsProfile]:
    """All payments profiles shipped in ``config/payments_profiles.toml``."""
    resource = resources.files("config").joinpath("payments_profiles.toml")
    try:
        return msgspec.toml.decode(resource.read_bytes(), type=dict[str, PaymentsProfile])
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise DeploymentError(f"config/payments_profiles.toml: {exc}") from exc


def payments_profile(name: str) -> PaymentsProfile:
    profiles = load_payments_profiles()
    try:
        return profiles[name]
    except KeyError:
        known = ", ".join(sorted(profiles))
        raise DeploymentError(f"unknown payments profile {name!r} (known: {known})") from None
