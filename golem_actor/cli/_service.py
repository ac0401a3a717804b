"""`golem-provider service install`: the systemd unit that runs the node as a service.

Why these settings (README "Running as a service" says the same to operators):

- ``Type=notify``: the node sends ``READY=1`` on ``$NOTIFY_SOCKET`` once its tree is up
  and its API serves (`golem_actor.adapters.sd_notify`), so ``systemctl start`` returns
  when the node really is ready and a failed start is a failed unit.
- ``KillMode=process``: stopping the service signals the node's own process only. The
  VMs' QEMU (and pasta) processes run in sessions of their own but stay in the service's
  cgroup; they must outlive the node, which adopts them at its next start. ``mixed`` or
  ``control-group`` would SIGKILL them with the rest of the cgroup.
- ``TimeoutStopSec`` above the node's graceful drain (``shutdown_timeout_seconds``) so
  systemd's SIGKILL is only for a node that hangs.
- ``Restart=on-failure``: the node exits 1 when it cannot start or its root supervisor
  gives up, 0 after a requested stop.
"""

from __future__ import annotations

import argparse
import math
import os
import pwd
import re
import sys
from pathlib import Path

from golem_actor._atomic import write_atomic
from golem_actor.settings import Settings

__all__ = ["UNIT_PATH", "add_service_parser", "render_unit", "service_command"]

UNIT_PATH = Path("/etc/systemd/system/golem-provider.service")
STOP_MARGIN = 30  # seconds above the node's drain bound before systemd kills it
START_BOUND = 300  # the first start may build the test guest or pull an image
_PLAIN = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")


def add_service_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    service = commands.add_parser("service", help="run the node as a systemd service")
    actions = service.add_subparsers(dest="service_command", required=True, metavar="ACTION")
    install = actions.add_parser("install", help=f"write {UNIT_PATH}")
    install.add_argument("--data-dir", help="the node's data directory")
    install.add_argument("--user", help="the account the node runs as (default: root)")
    install.add_argument("--dry-run", action="store_true", help="print the unit, write nothing")
    install.add_argument("--unit-path", type=Path, default=UNIT_PATH, help=argparse.SUPPRESS)


def executable() -> list[str]:
    """How to run this very installation: its `golem-provider` script, else the module."""
    script = Path(sys.executable).with_name("golem-provider")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "golem_actor.cli"]


def quote(word: str) -> str:
    """One word of a unit's command line: specifiers (%) and variables ($) taken literally."""
    escaped = word.replace("%", "%%").replace("$", "$$")
    if _PLAIN.fullmatch(word):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_unit(
    *, command: list[str], data_dir: Path, user: str | None, shutdown_timeout: float
) -> str:
    start = " ".join(quote(word) for word in [*command, "start", "--data-dir", str(data_dir)])
    lines = [
        "# Written by `golem-provider service install`.",
        "[Unit]",
        "Description=Golem provider node (VM on Golem)",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={start}",
        *([f"User={user}"] if user else []),
        # Only the node's process is signalled: its VMs keep running and are adopted at
        # the next start (mixed/control-group would SIGKILL their QEMUs).
        "KillMode=process",
        "KillSignal=SIGTERM",
        f"TimeoutStartSec={START_BOUND}",
        f"TimeoutStopSec={math.ceil(shutdown_timeout) + STOP_MARGIN}",
        "Restart=on-failure",
        "RestartSec=5",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"


def _data_dir(settings: Settings, args: argparse.Namespace) -> Path:
    if args.data_dir is None and args.user:
        try:
            home = Path(pwd.getpwnam(args.user).pw_dir)
        except KeyError:
            raise ValueError(f"no user named {args.user!r}") from None
        return home / ".golem" / "provider"
    return settings.data_path.resolve()


def service_command(settings: Settings, args: argparse.Namespace) -> int:
    try:
        data_dir = _data_dir(settings, args)
    except ValueError as error:
        print(f"golem-provider: {error}", file=sys.stderr)
        return 2
    unit = render_unit(
        command=executable(),
        data_dir=data_dir,
        user=args.user,
        shutdown_timeout=settings.shutdown_timeout_seconds,
    )
    if args.dry_run:
        sys.stdout.write(unit)
        return 0
    path: Path = args.unit_path
    try:
        write_atomic(path, unit.encode(), mode=0o644)
    except OSError as error:
        print(f"golem-provider: cannot write {path}: {error}", file=sys.stderr)
        return 1
    print(f"wrote {path}; now: systemctl daemon-reload && systemctl enable --now {path.stem}")
    return 0
