"""The typed settings object and the names operators use for its fields.

Why: every part of the node reads its configuration from one frozen, fully typed object, so a
typo or a bad value is caught once, at start, and never deep inside an actor. Field names are
lower_snake; the environment variable of field ``x_y`` is ``GOLEM_PROVIDER_X_Y`` (the upstream
provider's names, so existing ``.env`` files keep working). Constraints live on the types
(``msgspec.Meta``) so that the loader can both enforce them and describe them in errors.

The Python defaults mirror ``config/defaults.toml`` (a test keeps the two equal): the file is
what operators read, the defaults here let tests build ``Settings()`` without any IO.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import msgspec

ENV_PREFIX = "GOLEM_PROVIDER_"
ZERO_ADDRESS = "0x" + "0" * 40

Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0)]
NonEmptyStr = Annotated[str, msgspec.Meta(min_length=1)]
Percent = Annotated[
    float, msgspec.Meta(gt=0, le=100, extra={"expected": "a percentage above 0, at most 100"})
]
# A finite ratio >= 1 (the loader refuses inf; msgspec refuses nan through the bound).
Ratio = Annotated[
    float, msgspec.Meta(ge=1.0, extra={"expected": "a finite ratio of at least 1.0, e.g. 2.0"})
]
Address = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^0x[0-9a-fA-F]{40}$",
        extra={"expected": "an address of the form 0x followed by 40 hex digits"},
    ),
]
OptionalAddress = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^(0x[0-9a-fA-F]{40})?$",
        extra={"expected": "an address of the form 0x followed by 40 hex digits, or empty"},
    ),
]
CountryCode = Annotated[
    str, msgspec.Meta(pattern=r"^[A-Z]{2}$", extra={"expected": "a two-letter country code"})
]
HttpUrl = Annotated[
    str, msgspec.Meta(pattern=r"^https?://\S+$", extra={"expected": "an http:// or https:// URL"})
]
OptionalHttpUrl = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^(https?://\S+)?$",
        extra={"expected": "an http:// or https:// URL, or an empty string"},
    ),
]
WsUrl = Annotated[
    str, msgspec.Meta(pattern=r"^wss?://\S+$", extra={"expected": "a ws:// or wss:// URL"})
]
OptionalWsUrl = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^(wss?://\S+)?$",
        extra={"expected": "a ws:// or wss:// URL, or an empty string"},
    ),
]
UrlList = Annotated[
    list[HttpUrl],
    msgspec.Meta(extra={"expected": "a JSON array or a comma-separated list of http(s):// URLs"}),
]

DEFAULT_PORT_CHECK_SERVERS = ("https://ports1.golem.network", "https://ports2.golem.network")


IdList = Annotated[
    list[Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9-]*$")]],
    msgspec.Meta(
        min_length=1, extra={"expected": "a comma-separated list of lower-case CoinGecko ids"}
    ),
]

DEFAULT_COINGECKO_API_URL = "https://api.coingecko.com/api/v3"
DEFAULT_COINGECKO_IDS = ("golem", "golem-network-tokens")


def _default_coingecko_api_url() -> list[str]:
    return [DEFAULT_COINGECKO_API_URL]


def _default_coingecko_ids() -> list[str]:
    return list(DEFAULT_COINGECKO_IDS)


DEFAULT_PUBLIC_IP_SERVICES = ("https://api.ipify.org", "https://ifconfig.me/ip")


def _default_public_ip_services() -> list[str]:
    return list(DEFAULT_PUBLIC_IP_SERVICES)


def _default_port_check_servers() -> list[str]:
    return list(DEFAULT_PORT_CHECK_SERVERS)


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Every setting of the node, typed and validated. Build it with ``load_settings``."""

    # Where and how the node runs.
    data_dir: NonEmptyStr = "~/.golem/provider"
    host: NonEmptyStr = "0.0.0.0"
    port: Port = 7466
    environment: Literal["production", "development"] = "production"
    network: Literal["testnet", "mainnet", "development"] = "testnet"
    payments_network: NonEmptyStr = "l2.holesky"
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    stop_vms_on_exit: bool = False
    shutdown_timeout_seconds: PositiveFloat = 15.0

    # Bounds on the HTTP API, per client (source address; the operator token is exempt).
    api_rate_read_per_minute: PositiveFloat = 1200.0
    api_rate_read_burst: PositiveInt = 200
    api_rate_write_per_minute: PositiveFloat = 120.0
    api_rate_write_burst: PositiveInt = 60
    api_max_concurrent_creates_per_client: PositiveInt = 4
    api_keep_alive_timeout_seconds: PositiveFloat = 5.0
    api_body_timeout_seconds: PositiveFloat = 10.0
    api_max_header_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 16384
    api_max_pending_links: PositiveInt = 64
    api_max_pending_links_per_peer: PositiveInt = 8

    # Identity on the market.
    provider_name: NonEmptyStr = "golem-provider"
    provider_country: CountryCode = "SE"

    # Resources offered.
    max_vms: PositiveInt = 10
    min_cpu_cores: PositiveInt = 1
    min_memory_gb: PositiveInt = 1
    min_storage_gb: PositiveInt = 10
    launch_timeout_seconds: PositiveFloat = 300.0
    reserve_cpu_cores: NonNegativeInt = 0
    # VM cores sold per host core: floor(cores x ratio) - the reserve are for sale (1: none).
    cpu_overcommit: Ratio = 1.0
    reserve_memory_gb: NonNegativeInt = 1
    reserve_storage_gb: NonNegativeInt = 10
    # Host usage (percent) above which the node offers and accepts less (100: at full).
    cpu_threshold: Percent = 90.0
    memory_threshold: Percent = 85.0
    storage_threshold: Percent = 90.0
    resource_monitor_interval_seconds: PositiveFloat = 10.0

    # How VMs run.
    vm_backend: Literal["auto", "qemu", "multipass"] = "auto"
    qemu_accel: Literal["auto", "kvm", "tcg"] = "auto"
    vm_outbound: Literal["nat", "none"] = "nat"
    multipass_binary_path: str = ""
    ssh_listen_host: NonEmptyStr = "0.0.0.0"
    ssh_idle_timeout_seconds: PositiveFloat = 7200.0
    ssh_max_connections_per_vm: PositiveInt = 32

    # SSH ports (end excluded) and their verification.
    port_range_start: Port = 50800
    port_range_end: Port = 50900
    public_ip: NonEmptyStr = "auto"
    port_check_servers: UrlList = msgspec.field(default_factory=_default_port_check_servers)
    skip_port_verification: bool = False
    port_check_quorum: PositiveInt = 1
    port_check_timeout_seconds: PositiveFloat = 10.0
    port_check_interval_seconds: PositiveInt = 900
    public_ip_services: UrlList = msgspec.field(default_factory=_default_public_ip_services)
    update_index_url: OptionalHttpUrl = ""

    # Advertising.
    advertiser_type: Literal["golem_base", "discovery_server", "both"] = "golem_base"
    advertisement_interval: PositiveInt = 240
    discovery_url: HttpUrl = "http://discovery.golem.network:9001"
    golem_base_rpc_url: HttpUrl = "https://ethwarsaw.holesky.golemdb.io/rpc"
    golem_base_ws_url: WsUrl = "wss://ethwarsaw.holesky.golemdb.io/rpc/ws"
    # Upstream's development overrides of the two (GOLEM_BASE_DEV_*, with the prefix or
    # without): with ENVIRONMENT=development a non-empty one replaces its URL at load.
    golem_base_dev_rpc_url: OptionalHttpUrl = ""
    golem_base_dev_ws_url: OptionalWsUrl = ""
    # Golem Base: checked every third of this (s); an entity lives twice this many blocks.
    golem_base_advertisement_interval: PositiveInt = 3600
    # The PoW faucet that pays Golem Base gas (testnets; empty FAUCET_URL: none).
    faucet_url: OptionalHttpUrl = "https://ethwarsaw.holesky.golemdb.io/faucet"
    captcha_url: HttpUrl = "https://cap.gobas.me"
    captcha_api_key: NonEmptyStr = "05381a2cef5e"

    # Pricing, in USD per unit and month.
    price_usd_per_core_month: NonNegativeFloat = 5.0
    price_usd_per_gb_ram_month: NonNegativeFloat = 2.0
    price_usd_per_gb_storage_month: NonNegativeFloat = 0.1
    # CoinGecko-compatible price feeds (several: asked in order) and the GLM ids there.
    coingecko_api_url: UrlList = msgspec.field(default_factory=_default_coingecko_api_url)
    coingecko_ids: IdList = msgspec.field(default_factory=_default_coingecko_ids)
    pricing_update_min_delta_percent: NonNegativeFloat = 1.0
    pricing_update_interval_discovery: PositiveInt = 900
    pricing_update_interval_golem_base: PositiveInt = 14400
    pricing_max_age_seconds: PositiveInt = 86400  # an older rate prices nothing

    # Streaming payments.
    polygon_rpc_url: OptionalHttpUrl = ""
    # Empty: the payments network's deployment file; the zero address: payments off.
    stream_payment_address: OptionalAddress = ""
    glm_token_address: Address = ZERO_ADDRESS
    stream_min_remaining_seconds: NonNegativeInt = 0
    stream_monitor_enabled: bool = True
    stream_monitor_interval_seconds: PositiveInt = 30
    stream_withdraw_enabled: bool = False
    stream_withdraw_interval_seconds: PositiveInt = 1800
    stream_min_withdraw_wei: NonNegativeInt = 0
    price_wei_per_core_month: NonNegativeInt = 0
    price_wei_per_gb_ram_month: NonNegativeInt = 0
    price_wei_per_gb_storage_month: NonNegativeInt = 0
    tx_max_fee_wei: PositiveInt = 100_000_000_000  # 100 gwei per gas, at most

    @property
    def data_path(self) -> Path:
        """The data directory (absolute once loaded by ``load_settings``)."""
        return Path(self.data_dir).expanduser()

    @property
    def env_file(self) -> Path:
        """The ``.env`` file read from the data directory."""
        return self.data_path / ".env"

    @property
    def log_dir(self) -> Path:
        """Where the daemon writes its log files."""
        return self.data_path / "logs"

    @property
    def pid_file(self) -> Path:
        """The PID file of a daemonised node."""
        return self.data_path / "provider.pid"

    @property
    def state_dir(self) -> Path:
        """Root of the actors' persisted state (see ``golem_actor.state_store``)."""
        return self.data_path / "state"

    @property
    def key_dir(self) -> Path:
        """Where the node's Ethereum key lives."""
        return self.data_path / "keys"

    @property
    def ssh_ports(self) -> range:
        """The SSH port range, end excluded."""
        return range(self.port_range_start, self.port_range_end)

    @property
    def payments_switched_off(self) -> bool:
        """``STREAM_PAYMENT_ADDRESS`` is explicitly the zero address: payments are off.

        Unset (empty), the address comes from the payments network's deployment file.
        """
        return self.stream_payment_address.lower() == ZERO_ADDRESS


FIELD_NAMES: tuple[str, ...] = Settings.__struct_fields__

# Other names accepted for a field, in priority order after the canonical name. Within one
# layer the canonical name wins; across layers the usual precedence applies.
ALIASES: dict[str, str] = {
    "GOLEM_PROVIDER_L2_RPC_URL": "polygon_rpc_url",
    "GOLEM_PROVIDER_KAOLIN_RPC_URL": "polygon_rpc_url",
    "GOLEM_PROVIDER_NAME": "provider_name",
    "GOLEM_PROVIDER_COUNTRY": "provider_country",
    "GOLEM_ENVIRONMENT": "environment",
    "GOLEM_PROVIDER_DISCOVERY_ADVERTISEMENT_INTERVAL": "advertisement_interval",
    "GOLEM_BASE_DEV_RPC_URL": "golem_base_dev_rpc_url",
    "GOLEM_BASE_DEV_WS_URL": "golem_base_dev_ws_url",
}

# Upstream variables that are not settings: accepted and ignored. A non-empty reason means the
# operator probably expected an effect and deserves a warning.
IGNORED: dict[str, str] = {
    "GOLEM_PROVIDER_SKIP_BOOTSTRAP": "",
    "GOLEM_PROVIDER_LAUNCH_GUI": "",
    "GOLEM_PROVIDER_ID": "the provider id is derived from the node's key",
    "GOLEM_PROVIDER_PRICING_UPDATE_ENABLED": "the node always keeps its exchange rates fresh",
    "GOLEM_PROVIDER_PRICE_GLM_PER_CORE_MONTH": "GLM prices are computed from the USD prices",
    "GOLEM_PROVIDER_PRICE_GLM_PER_GB_RAM_MONTH": "GLM prices are computed from the USD prices",
    "GOLEM_PROVIDER_PRICE_GLM_PER_GB_STORAGE_MONTH": "GLM prices are computed from the USD prices",
}


def env_var_name(field: str) -> str:
    """The canonical environment variable of a settings field."""
    return ENV_PREFIX + field.upper()


def cli_flag(field: str) -> str:
    """The command-line flag of a settings field, as named in errors."""
    return "--" + field.replace("_", "-")
