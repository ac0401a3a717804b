"""Least privilege for the processes that run guests: the VM user and the VM directory.

Why: a guest that escapes into QEMU must not own the host. So each QEMU (and its pasta,
see ``_network``) runs as an unprivileged system user, ``golem-vm`` by default, created
with ``useradd --system`` when missing (added to ``kvm`` when that group exists, for
``/dev/kvm``), under QEMU's seccomp sandbox (``_argv.SANDBOX``). Each VM directory is
mode 0700 and owned by that user, so other users read nothing of it and QEMU can write
there and, outside it, only where any unprivileged user could.

The node itself may run as root: it still reads and writes every VM directory. The
files QEMU must write (the disks, the serial log) are handed to the VM user before each
start; files linked from the image cache (``st_nlink > 1``: the test guest's kernel and
initrd) are never chowned, since that would hand the cache's copy over too.

A node that does not run as root cannot switch users: QEMU then runs as the node's own
user, still sandboxed and in its own namespaces (``vm_user`` returns None and the
backend logs it once).

QEMU is given names relative to the VM directory (its working directory): the VM user
may be unable to reach the directory's absolute path (a data dir under ``/root``). For
the same reason the kernel and initrd of the test guest are hard links in the VM
directory (a copy where the cache lives on another filesystem), and so is the base image
of an overlay disk, as ``base``, which the overlay then names instead of its absolute
path (``qemu-img rebase -u``: metadata only). The VM keeps that base for its life even
when the image cache is cleaned or refreshed.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

import msgspec

from golem_actor.adapters.backend import BackendError

__all__ = ["BASE", "VM_USER", "RunAs", "link_into", "localize_backing", "own_vm_dir", "vm_user"]

VM_USER = "golem-vm"
BASE = "base"  # an overlay's base image, linked into the VM directory


class RunAs(msgspec.Struct, frozen=True, kw_only=True):
    """The identity QEMU and pasta switch to before exec."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]


def _create_user(name: str) -> None:
    argv = [
        "useradd",
        "--system",
        "--user-group",
        "--no-create-home",
        "--home-dir",
        "/nonexistent",
        "--shell",
        "/usr/sbin/nologin",
        "--comment",
        "golem-provider virtual machines",
    ]
    try:
        grp.getgrnam("kvm")
    except KeyError:
        pass
    else:
        argv += ["--groups", "kvm"]
    try:
        result = subprocess.run(
            [*argv, name], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackendError(f"cannot create the VM user {name!r}: {exc}") from exc
    if result.returncode != 0 and not _exists(name):
        raise BackendError(
            f"cannot create the VM user {name!r}: useradd exit {result.returncode}:"
            f" {result.stderr.strip()}"
        )


def _exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def vm_user(name: str = VM_USER) -> RunAs | None:
    """The user to run guests as (created when missing); None when the node is not root
    (guests then run as the node's own user). Blocking."""
    if os.geteuid() != 0:
        return None
    if not _exists(name):
        _create_user(name)
    entry = pwd.getpwnam(name)
    if entry.pw_uid == 0:
        raise BackendError(f"the VM user {name!r} is root; pick an unprivileged user")
    groups = tuple(sorted(set(os.getgrouplist(name, entry.pw_gid))))
    return RunAs(name=name, uid=entry.pw_uid, gid=entry.pw_gid, groups=groups)


def own_vm_dir(directory: Path, runas: RunAs | None) -> None:
    """Mode 0700 for the VM directory; with ``runas``, the directory and its files of
    one link are chowned to it (see the module docstring). Blocking."""
    os.chmod(directory, 0o700)
    if runas is None:
        return
    os.chown(directory, runas.uid, runas.gid)
    for entry in os.scandir(directory):
        info = entry.stat(follow_symlinks=False)
        if stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
            continue  # shared with the image cache
        if (info.st_uid, info.st_gid) != (runas.uid, runas.gid):
            os.chown(entry.path, runas.uid, runas.gid, follow_symlinks=False)


def link_into(directory: Path, name: str, source: Path) -> str:
    """``source`` as ``directory/name`` (a hard link, a copy across filesystems); the
    relative name QEMU gets. Blocking."""
    target = directory / name
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
        os.chmod(target, 0o644)
    return name


def _qemu_img(argv: list[str]) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackendError(f"cannot run {argv[0]}: {exc}") from exc
    if result.returncode != 0:
        raise BackendError(f"{' '.join(argv[:2])} failed: {result.stderr.strip()}")
    return result.stdout


def localize_backing(directory: Path, disk: str, *, qemu_img: str = "qemu-img") -> None:
    """Make the overlay ``directory/disk`` name its base as ``base`` in ``directory``
    (linked there first); nothing for a disk without a base or already done. Blocking."""
    info = json.loads(
        _qemu_img([qemu_img, "info", "--force-share", "--output=json", str(directory / disk)])
    )
    backing = info.get("backing-filename")
    if backing is None or backing == BASE:
        return
    if not (directory / BASE).exists():
        link_into(directory, BASE, Path(info.get("full-backing-filename", backing)))
    rebase = [qemu_img, "rebase", "-u", "-b", BASE]
    if info.get("backing-filename-format"):
        rebase += ["-F", str(info["backing-filename-format"])]
    _qemu_img([*rebase, str(directory / disk)])
