"""The systemd unit `service install` writes: parsed back as systemd would read its keys."""

from __future__ import annotations

import configparser
import shlex
import subprocess
from pathlib import Path

import pytest

from golem_actor.cli import _main
from golem_actor.cli._service import quote, render_unit


def parse(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    parser.read_string(text)
    return parser


def test_the_unit_keeps_vms_alive_and_waits_for_readiness() -> None:
    unit = parse(
        render_unit(
            command=["/opt/gp/bin/golem-provider"],
            data_dir=Path("/var/lib/golem"),
            user="golem",
            shutdown_timeout=15.0,
        )
    )
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert service["KillMode"] == "process"  # not mixed: QEMUs in the cgroup must survive
    assert service["Restart"] == "on-failure"
    assert int(service["TimeoutStopSec"]) > 15
    assert service["User"] == "golem"
    assert shlex.split(service["ExecStart"]) == [
        "/opt/gp/bin/golem-provider",
        "start",
        "--data-dir",
        "/var/lib/golem",
    ]
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_the_stop_bound_follows_the_drain_bound() -> None:
    text = render_unit(command=["gp"], data_dir=Path("/d"), user=None, shutdown_timeout=90.5)
    service = parse(text)["Service"]
    assert int(service["TimeoutStopSec"]) >= 91
    assert "User" not in service


@pytest.mark.parametrize(
    ("word", "written"),
    [
        ("/plain/path", "/plain/path"),
        ("/with space", '"/with space"'),
        ('a"b', '"a\\"b"'),
        ("50%$HOME", '"50%%$$HOME"'),
    ],
)
def test_words_are_quoted_for_systemd(word: str, written: str) -> None:
    assert quote(word) == written


def test_install_writes_the_unit_and_dry_run_prints_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data dir"
    target = tmp_path / "golem-provider.service"
    where = ["--data-dir", str(data), "--unit-path", str(target)]
    assert _main.main(["service", "install", "--dry-run", *where]) == 0
    printed = capsys.readouterr().out
    assert not target.exists()
    assert _main.main(["service", "install", *where]) == 0
    assert target.read_text() == printed
    assert target.stat().st_mode & 0o777 == 0o644
    exec_start = parse(printed)["Service"]["ExecStart"]
    assert shlex.split(exec_start)[-2:] == ["--data-dir", str(data)]


def test_an_unknown_user_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert _main.main(["service", "install", "--dry-run", "--user", "no-such-user-x"]) == 2
    assert "no user named 'no-such-user-x'" in capsys.readouterr().err


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    """systemd's own parser: every key known and every value valid (it warns otherwise)."""
    target = tmp_path / "golem-provider.service"
    where = ["--data-dir", "/srv/gp", "--unit-path", str(target)]
    assert _main.main(["service", "install", *where]) == 0
    checked = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (checked.returncode, checked.stderr) == (0, "")
