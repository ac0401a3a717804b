"""Shared fixtures of the end-to-end tests: the tiny test guest and SSH keys.

The guest is built once into a cache shared across test runs (``GOLEM_TEST_CACHE``, else
``~/.cache/golem-actor-tests``); a warm cache costs a manifest read. Hosts without
QEMU or the Debian tools fail these tests (``.ci/install-guest-deps.sh`` installs them).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from node_helpers import make_keypair, shared_test_guest

from golem_actor.adapters.guest import GuestImage


@pytest.fixture(scope="session")
def test_guest() -> GuestImage:
    """The test guest (kernel, initrd, cmdline), built on first use and cached."""
    return shared_test_guest()


@pytest.fixture
def ssh_keypair(tmp_path: Path) -> tuple[Path, str]:
    """A fresh passphrase-less ed25519 key: (private key path, public key line)."""
    return make_keypair(tmp_path / "id_ed25519")
