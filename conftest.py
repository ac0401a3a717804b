"""pytest's root conftest: the test tiers (fast, tools, slow, e2e) of tests/tiers.py, and
logging reset after every test (the CLI run in-process configures it process-wide, and a
leftover level filter would hide the events later tests capture)."""

from collections.abc import Iterator

import pytest

from golem_actor.logs import reset_logging
from tests.tiers import pytest_collection_modifyitems

__all__ = ["fresh_logging", "pytest_collection_modifyitems"]


@pytest.fixture(autouse=True)
def fresh_logging() -> Iterator[None]:
    yield
    reset_logging()
