"""Shared fixtures of the end-to-end tests: the tiny test guest and SSH keys.

The guest is built once into a cache shared across test runs (``GOLEM_TEST_CACHE``, else
``~/.cache/golem-actor-tests``); a warm cache costs a manifest read. Hosts without
QEMU or the Debian tools fail these tests (``.ci/install-guest-deps.sh`` installs them).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import trio

from golem_actor.adapters.guest import GuestImage, build_test_guest

GUEST_TOOLS = ("qemu-system-x86_64", "apt-get", "apt-cache", "dpkg-deb", "ssh", "ssh-keygen")


def guest_cache_dir() -> Path:
    env = os.environ.get("GOLEM_TEST_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "golem-actor-tests"


@pytest.fixture(scope="session")
def test_guest() -> GuestImage:
    """The test guest (kernel, initrd, cmdline), built on first use and cached."""
    missing = [tool for tool in GUEST_TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)} (run .ci/install-guest-deps.sh)")

    def progress(message: str) -> None:
        print(f"test guest: {message}")

    return trio.run(functools.partial(build_test_guest, guest_cache_dir(), on_progress=progress))


@pytest.fixture
def ssh_keypair(tmp_path: Path) -> tuple[Path, str]:
    """A fresh passphrase-less ed25519 key: (private key path, public key line)."""
    key = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "golem-e2e", "-f", str(key)],
        check=True,
    )
    return key, key.with_suffix(".pub").read_text().strip()
