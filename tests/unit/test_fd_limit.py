"""The node raises its soft open-file limit to the hard one at start."""

from __future__ import annotations

import resource

from golem_actor.adapters.fd_limit import raise_open_file_limit


def test_the_soft_limit_is_raised_to_the_hard_one() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(soft, 256)
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    try:
        assert raise_open_file_limit() == (low, hard)
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
        assert raise_open_file_limit() == (hard, hard)  # nothing more to raise
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
