"""Editing `<data dir>/.env`: keys replaced in place, everything else kept, read back right."""

from __future__ import annotations

import stat
from pathlib import Path

from golem_actor.cli._dotenv import (
    format_value,
    restore_dotenv,
    set_dotenv_values,
    update_dotenv_text,
)
from golem_actor.settings import load_settings

MON = "GOLEM_PROVIDER_STREAM_MONITOR_ENABLED"
INT = "GOLEM_PROVIDER_STREAM_MONITOR_INTERVAL_SECONDS"


def test_appends_to_empty_text() -> None:
    assert update_dotenv_text("", {MON: "true"}) == f"{MON}=true\n"


def test_replaces_in_place_and_keeps_the_rest() -> None:
    text = (
        "# my settings\n"
        "GOLEM_PROVIDER_PORT=7467  # the API\n"
        "\n"
        f"export {INT}=10\n"
        "GOLEM_PROVIDER_PROVIDER_NAME='x'\n"
    )
    new = update_dotenv_text(text, {INT: "45", MON: "false"})
    assert new == (
        "# my settings\n"
        "GOLEM_PROVIDER_PORT=7467  # the API\n"
        "\n"
        f"{INT}=45\n"
        "GOLEM_PROVIDER_PROVIDER_NAME='x'\n"
        f"{MON}=false\n"
    )


def test_duplicates_collapse_to_the_first_place() -> None:
    text = f"{INT}=1\nA=b\n{INT}=2\n"
    assert update_dotenv_text(text, {INT: "3"}) == f"{INT}=3\nA=b\n"


def test_comments_mentioning_the_key_are_kept() -> None:
    text = f"# {INT}=1\n#{INT}=2\n"
    assert update_dotenv_text(text, {INT: "3"}) == f"# {INT}=1\n#{INT}=2\n{INT}=3\n"


def test_multiline_arrays_are_skipped_or_replaced_whole() -> None:
    text = (
        "GOLEM_PROVIDER_PORT_CHECK_SERVERS=[\n"
        '  "http://a",\n'
        f"  {INT}=7\n"  # not a line of its own: inside the array
        "]\n"
        f"{MON}=[\n"
        '  "junk"\n'
        "]\n"
        "TAIL=1\n"
    )
    new = update_dotenv_text(text, {INT: "9", MON: "true"})
    assert new == (
        "GOLEM_PROVIDER_PORT_CHECK_SERVERS=[\n"
        '  "http://a",\n'
        f"  {INT}=7\n"
        "]\n"
        f"{MON}=true\n"
        "TAIL=1\n"
        f"{INT}=9\n"
    )


def test_text_without_final_newline() -> None:
    assert update_dotenv_text("A=1", {MON: "true"}) == f"A=1\n{MON}=true\n"


def test_format_value_quotes_what_needs_it() -> None:
    assert format_value("123") == "123"
    assert format_value("http://x:1/y") == "http://x:1/y"
    assert format_value("a b") == '"a b"'
    assert format_value('say "hi" #1') == '"say \\"hi\\" #1"'
    assert format_value("") == ""


def test_file_round_trip_through_the_loader(tmp_path: Path) -> None:
    data = tmp_path / "data"
    path = data / ".env"
    old = set_dotenv_values(path, {MON: "false", INT: "77"})
    assert old is None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    settings = load_settings(env={}, cli={"data_dir": str(data)})
    assert settings.stream_monitor_enabled is False
    assert settings.stream_monitor_interval_seconds == 77

    path.write_text(f"# keep me\nGOLEM_PROVIDER_PORT=7470\n{INT}=5\n")
    path.chmod(0o640)
    old = set_dotenv_values(path, {INT: "6", "GOLEM_PROVIDER_PROVIDER_NAME": "my node #1"})
    assert old is not None
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # the operator's mode is kept
    settings = load_settings(env={}, cli={"data_dir": str(data)})
    assert settings.port == 7470
    assert settings.stream_monitor_interval_seconds == 6
    assert settings.provider_name == "my node #1"
    assert path.read_text().startswith("# keep me\n")
    assert not [p for p in data.iterdir() if p.name != ".env"]  # no temp file left

    restore_dotenv(path, old)
    assert path.read_text() == old
    restore_dotenv(path, None)
    assert not path.exists()
