"""pytest's root conftest: the test tiers (fast, tools, slow, e2e) of tests/tiers.py."""

from tests.tiers import pytest_collection_modifyitems

__all__ = ["pytest_collection_modifyitems"]
