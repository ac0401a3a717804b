"""Test tiers as pytest markers, decided by where a test lives so none can miss its tier.

The hook is registered by the repository's root conftest.py (a module named `conftest`
here would clash, for mypy, with tests/e2e/conftest.py).

- `e2e`:   tests/e2e/    real processes end to end (QEMU guests, anvil, the daemon);
- `tools`: tests/contract/, and tests elsewhere marked `pytest.mark.tools`: they run
           external programs or real processes (solcjs, qemu-img, fake executables,
           a module as a command);
- `slow`:  tests/slow/   long fuzzing runs, and load tests marked `pytest.mark.slow`;
- `faults`: tests/faults/ fault injection on real node processes and guests (SIGKILLs,
           crashed actors, a chain outage, a full disk); CI runs their bounded version,
           `GOLEM_FAULTS=full` the full counts (tests/faults/conftest.py);
- `fast`:  everything else (tests/unit/ not marked `tools`): in-process, about a minute
           in all. A developer runs `pytest -m fast`; CI runs plain `pytest`: every tier.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).parent
BY_DIRECTORY = {"e2e": "e2e", "contract": "tools", "slow": "slow", "faults": "faults"}
NOT_FAST = ("e2e", "tools", "slow", "faults")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        top = item.path.relative_to(TESTS).parts[0]
        if top in BY_DIRECTORY:
            item.add_marker(BY_DIRECTORY[top])
        if not any(item.get_closest_marker(name) for name in NOT_FAST):
            item.add_marker("fast")
