"""Settings: layers and precedence, conversions, and errors that name the variable."""

from __future__ import annotations

import importlib.resources
import re
from pathlib import Path

import msgspec
import pytest

from golem_actor.settings import (
    ZERO_ADDRESS,
    Settings,
    SettingsError,
    env_var_name,
    load_settings,
    resolve_settings,
)

FIELDS = Settings.__struct_fields__


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


def base_env(data_dir: Path, **variables: str) -> dict[str, str]:
    env = {"HOME": str(data_dir.parent / "home"), "PATH": "/usr/bin"}
    env["GOLEM_PROVIDER_DATA_DIR"] = str(data_dir)
    env.update({f"GOLEM_PROVIDER_{k}": v for k, v in variables.items()})
    return env


def write_dotenv(data_dir: Path, text: str) -> Path:
    path = data_dir / ".env"
    path.write_text(text, encoding="utf-8")
    return path


def settings_error(env: dict[str, str], cli: dict[str, object] | None = None) -> SettingsError:
    with pytest.raises(SettingsError) as info:
        load_settings(env=env, cli=cli)
    return info.value


# --- defaults ---------------------------------------------------------------------------------


def test_defaults_match_the_struct_and_expand_the_data_dir(tmp_path: Path) -> None:
    settings = load_settings(env={"HOME": str(tmp_path)})
    assert settings.data_dir == str(tmp_path / ".golem" / "provider")
    assert settings == msgspec.structs.replace(Settings(), data_dir=settings.data_dir)
    assert settings.port == 7466
    assert settings.network == "testnet"
    assert settings.port_check_servers == [
        "https://ports1.golem.network",
        "https://ports2.golem.network",
    ]
    assert settings.stream_payment_address == ""  # unset: the deployment file decides
    assert not settings.payments_switched_off


def test_defaults_file_lists_every_field() -> None:
    resource = importlib.resources.files("config") / "defaults.toml"
    assert set(msgspec.toml.decode(resource.read_bytes())) == set(FIELDS)


def test_example_env_documents_every_variable_with_a_valid_default(data_dir: Path) -> None:
    text = (importlib.resources.files("config") / "example.env").read_text(encoding="utf-8")
    for field in FIELDS:
        assert f"# {env_var_name(field)}=" in text, field
    uncommented = "\n".join(
        line.removeprefix("# ")
        for line in text.splitlines()
        if re.match(r"# GOLEM_PROVIDER_[A-Z0-9_]+=", line) and "DATA_DIR" not in line
    )
    write_dotenv(data_dir, uncommented)
    settings = load_settings(env=base_env(data_dir))
    assert settings == msgspec.structs.replace(Settings(), data_dir=str(data_dir))


def test_paths_under_the_data_dir(data_dir: Path) -> None:
    settings = load_settings(env=base_env(data_dir))
    assert settings.data_path == data_dir
    assert settings.pid_file == data_dir / "provider.pid"
    assert settings.state_dir == data_dir / "state"
    assert settings.log_dir == data_dir / "logs"
    assert settings.env_file == data_dir / ".env"
    assert settings.ssh_ports == range(50800, 50900)


# --- layers and precedence --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("in_dotenv", "in_env", "in_cli", "expected"),
    [
        (None, None, None, 7466),
        ("8001", None, None, 8001),
        ("8001", "8002", None, 8002),
        ("8001", "8002", 8003, 8003),
        (None, None, 8003, 8003),
        ("8001", None, 8003, 8003),
    ],
)
def test_precedence_defaults_dotenv_env_cli(
    data_dir: Path, in_dotenv: str | None, in_env: str | None, in_cli: int | None, expected: int
) -> None:
    if in_dotenv is not None:
        write_dotenv(data_dir, f"GOLEM_PROVIDER_PORT={in_dotenv}\n")
    env = base_env(data_dir) if in_env is None else base_env(data_dir, PORT=in_env)
    assert load_settings(env=env, cli={"port": in_cli}).port == expected


def test_cli_none_values_are_ignored(data_dir: Path) -> None:
    settings = load_settings(env=base_env(data_dir, PORT="8002"), cli={"port": None, "host": None})
    assert settings.port == 8002


def test_data_dir_cli_beats_env_and_its_dotenv_is_read(tmp_path: Path, data_dir: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    write_dotenv(data_dir, "GOLEM_PROVIDER_MAX_VMS=3\n")
    write_dotenv(other, "GOLEM_PROVIDER_MAX_VMS=4\n")
    assert load_settings(env=base_env(data_dir)).max_vms == 3
    settings = load_settings(env=base_env(data_dir), cli={"data_dir": other})
    assert (settings.data_dir, settings.max_vms) == (str(other), 4)


def test_data_dir_expands_home_from_env_and_becomes_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"HOME": str(tmp_path), "GOLEM_PROVIDER_DATA_DIR": "~/node"}
    assert load_settings(env=env).data_dir == str(tmp_path / "node")
    monkeypatch.chdir(tmp_path)
    assert load_settings(env={"GOLEM_PROVIDER_DATA_DIR": "rel"}).data_dir == str(tmp_path / "rel")


def test_data_dir_cannot_come_from_the_dotenv(data_dir: Path) -> None:
    path = write_dotenv(data_dir, "# comment\nGOLEM_PROVIDER_DATA_DIR=/elsewhere\n")
    error = settings_error(base_env(data_dir))
    assert (error.variable, error.source) == ("GOLEM_PROVIDER_DATA_DIR", f"{path} line 2")


def test_invalid_value_in_a_shadowed_layer_still_fails(data_dir: Path) -> None:
    path = write_dotenv(data_dir, "GOLEM_PROVIDER_PORT=oops\n")
    error = settings_error(base_env(data_dir, PORT="8000"))
    assert error.source == f"{path} line 1"


def test_origins_name_the_variable_and_source(data_dir: Path) -> None:
    path = write_dotenv(data_dir, "GOLEM_PROVIDER_HOST=127.0.0.1\n")
    loaded = resolve_settings(env=base_env(data_dir, PORT="8000"), cli={"max_vms": 2})
    assert loaded.origins["host"] == f"GOLEM_PROVIDER_HOST ({path} line 1)"
    assert loaded.origins["port"] == "GOLEM_PROVIDER_PORT (environment)"
    assert loaded.origins["max_vms"] == "--max-vms (command line)"
    assert loaded.origins["min_cpu_cores"].startswith("min_cpu_cores (")


# --- conversions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        ("Yes", True),
        ("false", False),
        ("False", False),
        ("0", False),
        ("no", False),
        ("NO", False),
    ],
)
def test_booleans(data_dir: Path, text: str, expected: bool) -> None:
    settings = load_settings(env=base_env(data_dir, SKIP_PORT_VERIFICATION=text))
    assert settings.skip_port_verification is expected


def test_numbers(data_dir: Path) -> None:
    env = base_env(
        data_dir,
        MAX_VMS=" 12 ",
        SHUTDOWN_TIMEOUT_SECONDS="2.5",
        LAUNCH_TIMEOUT_SECONDS="60",
        STREAM_MIN_WITHDRAW_WEI="1000000000000000000000",
    )
    settings = load_settings(env=env)
    assert settings.max_vms == 12
    assert settings.shutdown_timeout_seconds == 2.5
    assert settings.launch_timeout_seconds == 60.0
    assert isinstance(settings.launch_timeout_seconds, float)
    assert settings.stream_min_withdraw_wei == 10**21


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '["http://127.0.0.1:9000", "https://b.example"]',
            ["http://127.0.0.1:9000", "https://b.example"],
        ),
        (
            "http://127.0.0.1:9000, https://b.example",
            ["http://127.0.0.1:9000", "https://b.example"],
        ),
        ("http://127.0.0.1:9000", ["http://127.0.0.1:9000"]),
        ("", []),
        ("[]", []),
    ],
)
def test_lists(data_dir: Path, text: str, expected: list[str]) -> None:
    settings = load_settings(env=base_env(data_dir, PORT_CHECK_SERVERS=text))
    assert settings.port_check_servers == expected


def test_literals_and_strings(data_dir: Path) -> None:
    env = base_env(
        data_dir,
        NETWORK="mainnet",
        LOG_FORMAT="json",
        LOG_LEVEL="debug",
        PROVIDER_NAME="my node",
        STREAM_PAYMENT_ADDRESS="0x" + "aB" * 20,
    )
    settings = load_settings(env=env)
    assert (settings.network, settings.log_format, settings.log_level) == (
        "mainnet",
        "json",
        "debug",
    )
    assert settings.provider_name == "my node"
    assert settings.stream_payment_address == "0x" + "aB" * 20
    assert not settings.payments_switched_off


@pytest.mark.parametrize(
    ("value", "switched_off"),
    [("", False), (ZERO_ADDRESS, True), ("0x" + "aB" * 20, False)],
)
def test_stream_payment_address_unset_set_or_explicitly_zero(
    data_dir: Path, value: str, switched_off: bool
) -> None:
    # The zero address, written by the operator, is the seed's "payments off" switch; only
    # an empty (or absent) value leaves the choice to the payments network's deployment.
    from_env = load_settings(env=base_env(data_dir, STREAM_PAYMENT_ADDRESS=value))
    assert (from_env.stream_payment_address, from_env.payments_switched_off) == (
        value,
        switched_off,
    )
    write_dotenv(data_dir, f"GOLEM_PROVIDER_STREAM_PAYMENT_ADDRESS={value}\n")
    from_file = load_settings(env=base_env(data_dir))
    assert from_file.payments_switched_off is switched_off


def test_cli_values_are_typed_or_text(data_dir: Path) -> None:
    cli: dict[str, object] = {
        "port": "8080",
        "stop_vms_on_exit": True,
        "port_check_servers": ("http://127.0.0.1:1",),
        "shutdown_timeout_seconds": 3,
    }
    settings = load_settings(env=base_env(data_dir), cli=cli)
    assert settings.port == 8080
    assert settings.stop_vms_on_exit is True
    assert settings.port_check_servers == ["http://127.0.0.1:1"]
    assert settings.shutdown_timeout_seconds == 3.0


# --- invalid values name the variable ---------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("PORT", "abc", "expected an integer between 1 and 65535, got 'abc'"),
        ("PORT", "0", "expected an integer between 1 and 65535, got '0'"),
        ("PORT", "70000", "expected an integer between 1 and 65535, got '70000'"),
        ("PORT", "80.5", "expected an integer between 1 and 65535, got '80.5'"),
        ("MAX_VMS", "0", "expected an integer greater than 0, got '0'"),
        ("STREAM_MIN_WITHDRAW_WEI", "-1", "expected an integer of at least 0, got '-1'"),
        ("SHUTDOWN_TIMEOUT_SECONDS", "soon", "expected a number greater than 0, got 'soon'"),
        ("STOP_VMS_ON_EXIT", "maybe", "expected a boolean (true/false, yes/no, 1/0), got 'maybe'"),
        (
            "NETWORK",
            "staging",
            "expected one of 'testnet', 'mainnet', 'development', got 'staging'",
        ),
        ("GLM_TOKEN_ADDRESS", "0x12", "expected an address of the form 0x followed by 40 hex"),
        ("STREAM_PAYMENT_ADDRESS", "0x12", "expected an address of the form 0x followed by"),
        ("PROVIDER_COUNTRY", "se", "expected a two-letter country code, got 'se'"),
        ("PORT_CHECK_SERVERS", "ftp://x", "expected a JSON array or a comma-separated list of"),
        ("PORT_CHECK_SERVERS", '["http://a", 1]', "expected a JSON array or a comma-separated"),
        ("PORT_CHECK_SERVERS", "[not json", "expected a JSON array or a comma-separated"),
        ("HOST", "", "expected a non-empty string, got ''"),
        ("POLYGON_RPC_URL", "localhost:8545", "expected an http:// or https:// URL, or an empty"),
    ],
)
def test_invalid_environment_value_names_the_variable(
    data_dir: Path, variable: str, value: str, message: str
) -> None:
    error = settings_error(base_env(data_dir, **{variable: value}))
    assert error.variable == f"GOLEM_PROVIDER_{variable}"
    assert error.source == "environment"
    assert str(error).startswith(f"GOLEM_PROVIDER_{variable} (environment): {message}")


def test_invalid_dotenv_value_names_file_and_line(data_dir: Path) -> None:
    path = write_dotenv(data_dir, "# settings\n\nGOLEM_PROVIDER_PORT=abc\n")
    error = settings_error(base_env(data_dir))
    assert str(error) == (
        f"GOLEM_PROVIDER_PORT ({path} line 3): expected an integer between 1 and 65535, got 'abc'"
    )


@pytest.mark.parametrize("value", [0, "abc", 1.5, True, [1]])
def test_invalid_cli_value_names_the_flag(data_dir: Path, value: object) -> None:
    error = settings_error(base_env(data_dir), cli={"port_range_start": value})
    assert (error.variable, error.source) == ("--port-range-start", "command line")
    assert "expected an integer between 1 and 65535" in str(error)


def test_unknown_cli_key_with_suggestion(data_dir: Path) -> None:
    error = settings_error(base_env(data_dir), cli={"prot": 1})
    assert error.variable == "--prot"
    assert str(error) == "--prot (command line): unknown setting; did you mean --port?"


# --- unknown and ignored variables ------------------------------------------------------------


def test_unknown_environment_variable_with_suggestion(data_dir: Path) -> None:
    error = settings_error(base_env(data_dir, STREAM_MONITOR_INTERVAL="30"))
    assert error.variable == "GOLEM_PROVIDER_STREAM_MONITOR_INTERVAL"
    assert str(error).endswith(
        "unknown setting; did you mean GOLEM_PROVIDER_STREAM_MONITOR_INTERVAL_SECONDS?"
    )


def test_unknown_variable_without_close_match(data_dir: Path) -> None:
    error = settings_error(base_env(data_dir, XYZZY="1"))
    assert str(error) == "GOLEM_PROVIDER_XYZZY (environment): unknown setting"


def test_unknown_dotenv_variable_names_the_line(data_dir: Path) -> None:
    path = write_dotenv(data_dir, "GOLEM_PROVIDER_PORT=8000\nGOLEM_PROVIDER_PROT=8001\n")
    error = settings_error(base_env(data_dir))
    assert (error.variable, error.source) == ("GOLEM_PROVIDER_PROT", f"{path} line 2")
    assert "did you mean GOLEM_PROVIDER_PORT?" in str(error)


def test_unprefixed_dotenv_key_is_unknown(data_dir: Path) -> None:
    write_dotenv(data_dir, "DEBUG=1\n")
    assert settings_error(base_env(data_dir)).variable == "DEBUG"


def test_other_environment_variables_are_not_ours(data_dir: Path) -> None:
    env = base_env(data_dir) | {"GOLEM_SILENCE_LOGS": "1", "golem_provider_port": "x"}
    assert load_settings(env=env).port == 7466


def test_known_upstream_variables_are_ignored(data_dir: Path) -> None:
    write_dotenv(data_dir, "GOLEM_PROVIDER_ID=0xabc\n")
    env = base_env(data_dir, SKIP_BOOTSTRAP="1", LAUNCH_GUI="0")
    loaded = resolve_settings(env=env)
    assert loaded.ignored == (
        "GOLEM_PROVIDER_ID",
        "GOLEM_PROVIDER_LAUNCH_GUI",
        "GOLEM_PROVIDER_SKIP_BOOTSTRAP",
    )
    assert len(loaded.warnings) == 1
    assert loaded.warnings[0].startswith("GOLEM_PROVIDER_ID (")
    assert "derived from the node's key" in loaded.warnings[0]


# --- aliases ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "field", "value"),
    [
        ("NAME", "provider_name", "alias-node"),
        ("COUNTRY", "provider_country", "PL"),
        ("L2_RPC_URL", "polygon_rpc_url", "http://127.0.0.1:8545"),
        ("KAOLIN_RPC_URL", "polygon_rpc_url", "http://127.0.0.1:8546"),
    ],
)
def test_aliases(data_dir: Path, variable: str, field: str, value: str) -> None:
    settings = load_settings(env=base_env(data_dir, **{variable: value}))
    assert getattr(settings, field) == value


def test_canonical_name_beats_alias_in_one_layer_with_a_warning(data_dir: Path) -> None:
    env = base_env(
        data_dir,
        POLYGON_RPC_URL="http://127.0.0.1:1",
        L2_RPC_URL="http://127.0.0.1:2",
        KAOLIN_RPC_URL="http://127.0.0.1:3",
    )
    loaded = resolve_settings(env=env)
    assert loaded.settings.polygon_rpc_url == "http://127.0.0.1:1"
    assert len(loaded.warnings) == 2
    assert all("GOLEM_PROVIDER_POLYGON_RPC_URL is also set" in w for w in loaded.warnings)


def test_alias_in_a_higher_layer_beats_canonical_in_a_lower_one(data_dir: Path) -> None:
    write_dotenv(data_dir, "GOLEM_PROVIDER_PROVIDER_NAME=from-dotenv\n")
    settings = load_settings(env=base_env(data_dir, NAME="from-env"))
    assert settings.provider_name == "from-env"


def test_invalid_alias_value_names_the_alias(data_dir: Path) -> None:
    error = settings_error(base_env(data_dir, COUNTRY="Sweden"))
    assert error.variable == "GOLEM_PROVIDER_COUNTRY"


def test_unprefixed_golem_environment(data_dir: Path) -> None:
    env = base_env(data_dir) | {"GOLEM_ENVIRONMENT": "development"}
    assert load_settings(env=env).environment == "development"
    env["GOLEM_PROVIDER_ENVIRONMENT"] = "production"
    assert load_settings(env=env).environment == "production"
    env["GOLEM_ENVIRONMENT"] = "staging"
    assert settings_error(env).variable == "GOLEM_ENVIRONMENT"


def test_golem_base_dev_urls_replace_the_urls_in_development_only(data_dir: Path) -> None:
    dev = {
        "GOLEM_BASE_DEV_RPC_URL": "http://127.0.0.1:8545/rpc",  # upstream's unprefixed name
        "GOLEM_PROVIDER_GOLEM_BASE_DEV_WS_URL": "ws://127.0.0.1:8545/rpc/ws",
    }
    production = resolve_settings(env=base_env(data_dir) | dev).settings
    assert production.golem_base_rpc_url == "https://ethwarsaw.holesky.golemdb.io/rpc"
    assert production.golem_base_ws_url == "wss://ethwarsaw.holesky.golemdb.io/rpc/ws"
    env = base_env(data_dir) | dev | {"GOLEM_ENVIRONMENT": "development"}
    loaded = resolve_settings(env=env)
    assert loaded.settings.golem_base_rpc_url == "http://127.0.0.1:8545/rpc"
    assert loaded.settings.golem_base_ws_url == "ws://127.0.0.1:8545/rpc/ws"
    assert loaded.origins["golem_base_rpc_url"] == "GOLEM_BASE_DEV_RPC_URL (environment)"
    only_rpc = base_env(data_dir) | {"GOLEM_ENVIRONMENT": "development"}
    only_rpc["GOLEM_BASE_DEV_RPC_URL"] = "http://127.0.0.1:8545/rpc"
    kept = load_settings(env=only_rpc)
    assert kept.golem_base_ws_url == "wss://ethwarsaw.holesky.golemdb.io/rpc/ws"  # unset: kept
    bad = base_env(data_dir) | {"GOLEM_BASE_DEV_WS_URL": "http://not-a-websocket"}
    assert settings_error(bad).variable == "GOLEM_BASE_DEV_WS_URL"


def test_golem_environment_in_the_dotenv(data_dir: Path) -> None:
    write_dotenv(data_dir, "GOLEM_ENVIRONMENT=development\n")
    assert load_settings(env=base_env(data_dir)).environment == "development"


# --- cross-field checks ---------------------------------------------------------------------------


@pytest.mark.parametrize("end", ["50800", "50700"])
def test_port_range_end_must_exceed_start(data_dir: Path, end: str) -> None:
    error = settings_error(base_env(data_dir, PORT_RANGE_END=end))
    assert (error.variable, error.source) == ("GOLEM_PROVIDER_PORT_RANGE_END", "environment")
    assert "must be greater than its start (50800, from port_range_start (" in str(error)


def test_api_port_outside_the_ssh_range(data_dir: Path) -> None:
    error = settings_error(base_env(data_dir), cli={"port": 50850})
    assert (error.variable, error.source) == ("--port", "command line")
    assert "inside the SSH port range 50800-50899" in str(error)
    assert load_settings(env=base_env(data_dir), cli={"port": 50900}).port == 50900


def test_public_ip_is_auto_or_an_address(data_dir: Path) -> None:
    assert load_settings(env=base_env(data_dir, PUBLIC_IP="203.0.113.7")).public_ip == "203.0.113.7"
    assert load_settings(env=base_env(data_dir, PUBLIC_IP="2001:db8::1")).public_ip == "2001:db8::1"
    error = settings_error(base_env(data_dir, PUBLIC_IP="my-host"))
    assert error.variable == "GOLEM_PROVIDER_PUBLIC_IP"
    assert "expected 'auto' or an IP address, got 'my-host'" in str(error)


# --- .env syntax ------------------------------------------------------------------------------


def test_dotenv_syntax(data_dir: Path) -> None:
    write_dotenv(
        data_dir,
        "\n".join(
            [
                "# a comment",
                "",
                "export GOLEM_PROVIDER_HOST=127.0.0.1",
                'GOLEM_PROVIDER_PROVIDER_NAME="name with # hash and \\"quotes\\""  # comment',
                "GOLEM_PROVIDER_PAYMENTS_NETWORK='l2.holesky'",
                "GOLEM_PROVIDER_PORT=8000  # Default: 7466",
                "  GOLEM_PROVIDER_MAX_VMS = 5  ",
                "GOLEM_PROVIDER_PORT_CHECK_SERVERS=[",
                '    "http://127.0.0.1:9000",',
                '    "http://127.0.0.1:9001"',
                "]",
                "GOLEM_PROVIDER_MAX_VMS=6",
                "GOLEM_PROVIDER_POLYGON_RPC_URL=",
            ]
        ),
    )
    settings = load_settings(env=base_env(data_dir))
    assert settings.host == "127.0.0.1"
    assert settings.provider_name == 'name with # hash and "quotes"'
    assert settings.payments_network == "l2.holesky"
    assert settings.port == 8000
    assert settings.max_vms == 6
    assert settings.port_check_servers == ["http://127.0.0.1:9000", "http://127.0.0.1:9001"]
    assert settings.polygon_rpc_url == ""


@pytest.mark.parametrize(
    ("text", "line", "variable", "problem"),
    [
        ("GOLEM_PROVIDER_PORT 8000\n", 1, ".env", "expected KEY=value"),
        ("# ok\n=8000\n", 2, ".env", "expected KEY=value"),
        ("\n\n9PORT=1\n", 3, ".env", "expected KEY=value"),
        ('GOLEM_PROVIDER_HOST="unterminated\n', 1, "GOLEM_PROVIDER_HOST", "unterminated"),
        ("GOLEM_PROVIDER_HOST='a' b\n", 1, "GOLEM_PROVIDER_HOST", "after the closing quote"),
        ("GOLEM_PROVIDER_PORT_CHECK_SERVERS=[\n", 1, "GOLEM_PROVIDER_PORT_CHECK_SERVERS", "']'"),
    ],
)
def test_malformed_dotenv_names_file_and_line(
    data_dir: Path, text: str, line: int, variable: str, problem: str
) -> None:
    path = write_dotenv(data_dir, text)
    error = settings_error(base_env(data_dir))
    assert (error.variable, error.source) == (variable, f"{path} line {line}")
    assert problem in str(error)


def test_unreadable_dotenv(data_dir: Path) -> None:
    (data_dir / ".env").write_bytes(b"GOLEM_PROVIDER_HOST=\xff\n")
    error = settings_error(base_env(data_dir))
    assert (error.variable, error.source) == (".env", str(data_dir / ".env"))


def test_missing_data_dir_means_no_dotenv(tmp_path: Path) -> None:
    env = {"GOLEM_PROVIDER_DATA_DIR": str(tmp_path / "absent")}
    assert load_settings(env=env).data_dir == str(tmp_path / "absent")
