"""Fixtures of the fault-injection suite: its size (bounded in CI, full on demand), its
seed, and the end-to-end fixtures it shares with tests/e2e (the test guest, SSH keys).

``GOLEM_FAULTS=full`` runs the full counts (50 SIGKILLs of the node, a 5-minute chain
outage); anything else, or nothing, runs CI's bounded version. ``GOLEM_FAULTS_SEED=N``
replays a run: every test prints the seed it used.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "e2e"))  # node_helpers, shared with e2e

from node_helpers import make_keypair, shared_test_guest

from golem_actor.adapters.guest import GuestImage

FULL = os.environ.get("GOLEM_FAULTS", "") == "full"


def runs(ci: int, full: int) -> int:
    """How many times a fault is injected: `full` with GOLEM_FAULTS=full, else `ci`."""
    return full if FULL else ci


@pytest.fixture
def rng() -> random.Random:
    """The test's randomness, seeded from GOLEM_FAULTS_SEED or at random (printed)."""
    seed = int(os.environ.get("GOLEM_FAULTS_SEED") or random.randrange(2**32))
    print(f"faults: seed {seed} (GOLEM_FAULTS_SEED={seed} replays it)")
    return random.Random(seed)


@pytest.fixture(scope="session")
def test_guest() -> GuestImage:
    return shared_test_guest()


@pytest.fixture
def ssh_keypair(tmp_path: Path) -> tuple[Path, str]:
    return make_keypair(tmp_path / "id_ed25519")
