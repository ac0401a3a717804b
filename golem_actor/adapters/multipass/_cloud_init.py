"""The cloud-init user-data of a Multipass VM, and its short-lived file.

Why a tiny emitter instead of a YAML library: the document has one fixed shape, and every
string in it is written as a JSON string literal, which YAML reads as a double-quoted scalar
with the same escapes. Nothing a requestor sends (hostname, keys) can therefore end a scalar
early, start a new key, or smuggle a YAML tag; the only plain (unquoted) tokens are our own
keys and booleans.

What the document asks of cloud-init (and why, see upstream notes in the reference):
* ``hostname`` with ``preserve_hostname: false`` so the guest takes the requested name;
* the keys both at top level (they go to the image's default user, ``ubuntu``) and on a
  ``root`` user, with ``users`` starting with ``default`` so the default user is still made;
* ``disable_root: false`` so root's keys are written without cloud-init's "please log in as
  ubuntu" command prefix, and an sshd drop-in (early in the include order, since sshd keeps
  the first value it reads) allowing root logins by key only;
* no ``package_update``/``package_upgrade``: a first boot stays seconds, not minutes.

The file lives only for the duration of ``multipass launch`` (multipass copies it into the
instance's cloud-init seed); it is world-readable (0644) because the multipass daemon runs as
another user (root, possibly snap-confined) and holds nothing secret: public keys, a name.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TypeAlias

import structlog
import trio

from golem_actor._atomic import ensure_dir, write_atomic

log = structlog.get_logger("golem_actor.adapters.multipass")

YamlValue: TypeAlias = "str | bool | int | list[YamlValue] | dict[str, YamlValue]"

SSHD_DROP_IN = "/etc/ssh/sshd_config.d/05-golem-root-login.conf"
SSHD_DROP_IN_CONTENT = (
    "# written by golem-actor through cloud-init\nPermitRootLogin prohibit-password\n"
)
FILE_MODE = 0o644
DIR_MODE = 0o755

_PLAIN_KEY = re.compile(r"[a-z_][a-z0-9_]*")


def user_data(*, hostname: str, authorized_keys: tuple[str, ...]) -> dict[str, YamlValue]:
    """The cloud-config document as a value tree (keys in the order they are written)."""
    keys: list[YamlValue] = list(authorized_keys)
    return {
        "hostname": hostname,
        "preserve_hostname": False,
        "ssh_authorized_keys": keys,
        "disable_root": False,
        "users": ["default", {"name": "root", "ssh_authorized_keys": list(keys)}],
        "write_files": [
            {
                "path": SSHD_DROP_IN,
                "owner": "root:root",
                "permissions": "0644",
                "content": SSHD_DROP_IN_CONTENT,
            }
        ],
        "runcmd": ["systemctl try-reload-or-restart ssh.service sshd.service || true"],
    }


def render(document: dict[str, YamlValue]) -> str:
    """``document`` as a ``#cloud-config`` YAML text."""
    lines = ["#cloud-config"]
    _emit_mapping(document, 0, lines)
    return "\n".join(lines) + "\n"


def _scalar(value: str | bool | int) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, ensure_ascii=True)


def _key(key: str) -> str:
    return key if _PLAIN_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=True)


def _emit_mapping(mapping: dict[str, YamlValue], indent: int, lines: list[str]) -> None:
    pad = " " * indent
    for key, value in mapping.items():
        if isinstance(value, dict | list):
            if not value:
                lines.append(f"{pad}{_key(key)}: {'{}' if isinstance(value, dict) else '[]'}")
                continue
            lines.append(f"{pad}{_key(key)}:")
            _emit_block(value, indent + 2, lines)
        else:
            lines.append(f"{pad}{_key(key)}: {_scalar(value)}")


def _emit_block(
    value: list[YamlValue] | dict[str, YamlValue], indent: int, lines: list[str]
) -> None:
    if isinstance(value, dict):
        _emit_mapping(value, indent, lines)
    else:
        _emit_sequence(value, indent, lines)


def _emit_sequence(items: list[YamlValue], indent: int, lines: list[str]) -> None:
    pad = " " * indent
    for item in items:
        if isinstance(item, dict | list):
            if not item:
                lines.append(f"{pad}- {'{}' if isinstance(item, dict) else '[]'}")
                continue
            # Emit the nested block two columns further in, then hang its first line on "- ".
            start = len(lines)
            _emit_block(item, indent + 2, lines)
            lines[start] = f"{pad}- {lines[start][indent + 2 :]}"
        else:
            lines.append(f"{pad}- {_scalar(item)}")


def file_for(directory: Path, instance: str) -> Path:
    """The cloud-init file of one instance: one per instance name, so per vm_id and node."""
    return directory / f"{instance}.cloud-init.yaml"


async def write(path: Path, text: str) -> None:
    def _write() -> None:
        ensure_dir(path.parent, DIR_MODE)
        write_atomic(path, text.encode(), mode=FILE_MODE)

    await trio.to_thread.run_sync(_write)


def remove(path: Path) -> None:
    """Remove the file if present; synchronous (one unlink) so it can run in a ``finally``.

    Never raises: a file that cannot be removed must not hide how the launch went.
    """
    try:
        os.unlink(path)
    except (FileNotFoundError, NotADirectoryError):
        pass
    except OSError as exc:
        log.warning("multipass_cloud_init_not_removed", path=str(path), error=str(exc))
