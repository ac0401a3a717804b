"""NoCloud ``cidata`` seeds: the one way the node hands SSH keys and a hostname to a VM.

Why one format for everything: real cloud images run cloud-init, which looks for a block
device labelled ``cidata`` holding ``meta-data`` and ``user-data``; our tiny test guest
reads the same seed (``/etc/rc`` scans labels and reads a YAML subset).  So the node
provisions every VM the same way, and the e2e tests exercise the production path.

The ``user-data`` is written the way cloud-init on an Ubuntu cloud image needs it:

* ``users:`` defines ``root`` and ``ubuntu`` explicitly, each with the keys.  Listing
  ``ubuntu`` ourselves (instead of ``- default``) keeps the file explicit and gives it
  the usual default-user settings (sudo, groups, locked password).
* top-level ``ssh_authorized_keys`` as well (cloud-init's classic key list).
* ``disable_root: false``: otherwise Ubuntu's cloud-init prefixes root's keys with a
  ``command="echo Please login as the user ubuntu..."`` option and root logins fail.
* keys are single-quoted YAML scalars (``'`` doubled inside), which both cloud-init's
  YAML parser and the guest's awk reader understand.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from golem_actor.adapters.guest._iso9660 import build_iso

SEED_LABEL = "cidata"
DEFAULT_USERS = ("root", "ubuntu")
_HOSTNAME = re.compile(r"(?=.{1,63}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?")
_INSTANCE_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_KEY = re.compile(r"[^\x00-\x1f\x7f]+")


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _check_keys(authorized_keys: Sequence[str]) -> list[str]:
    keys = [k.strip() for k in authorized_keys if k.strip()]
    if not keys:
        raise ValueError("at least one SSH authorized key is required")
    for key in keys:
        if not _KEY.fullmatch(key) or len(key.split()) < 2:
            raise ValueError(f"not a single-line OpenSSH public key: {key[:40]!r}")
    return keys


def render_user_data(authorized_keys: Sequence[str]) -> str:
    """The ``#cloud-config`` user-data giving ``root`` and ``ubuntu`` the keys."""
    keys = _check_keys(authorized_keys)
    key_list = "".join(f"  - {_quote(k)}\n" for k in keys)
    user_keys = "".join(f"      - {_quote(k)}\n" for k in keys)
    return (
        "#cloud-config\n"
        "# Written by golem-actor: the same seed serves cloud images and the test guest.\n"
        "disable_root: false\n"
        "ssh_pwauth: false\n"
        f"ssh_authorized_keys:\n{key_list}"
        "users:\n"
        "  - name: root\n"
        f"    ssh_authorized_keys:\n{user_keys}"
        "  - name: ubuntu\n"
        "    gecos: Ubuntu\n"
        "    shell: /bin/bash\n"
        "    groups: adm, sudo\n"
        "    sudo: 'ALL=(ALL) NOPASSWD:ALL'\n"
        "    lock_passwd: true\n"
        f"    ssh_authorized_keys:\n{user_keys}"
    )


def render_meta_data(*, hostname: str, instance_id: str) -> str:
    """The NoCloud meta-data: instance id (cloud-init's "is this a new VM") and hostname."""
    if not _HOSTNAME.fullmatch(hostname):
        raise ValueError(f"invalid hostname (one DNS label expected): {hostname!r}")
    if not _INSTANCE_ID.fullmatch(instance_id):
        raise ValueError(f"invalid instance id: {instance_id!r}")
    return f"instance-id: {instance_id}\nlocal-hostname: {hostname}\n"


def make_nocloud_seed(
    dest: Path, *, authorized_keys: Sequence[str], hostname: str, instance_id: str
) -> None:
    """Write a NoCloud seed image (ISO 9660, label ``cidata``) to ``dest``, atomically.

    Attach it read-only as a raw drive (virtio-blk); it is ~46 KiB.
    """
    image = build_iso(
        {
            "meta-data": render_meta_data(hostname=hostname, instance_id=instance_id).encode(),
            "user-data": render_user_data(authorized_keys).encode(),
        },
        volume_id=SEED_LABEL,
    )
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".seed-", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(image)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
