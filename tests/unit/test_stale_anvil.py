"""Ending the anvil an earlier (killed) node left on this data directory's chain state."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from golem_actor.adapters.chain.stale_anvil import end_stale_anvils

pytestmark = pytest.mark.tools

# A stand-in that ignores nothing: SIGTERM ends it, as it ends anvil (after its dump).
SCRIPT = "import sys, time\nopen(sys.argv[-1] + '.seen', 'w').close()\ntime.sleep(120)\n"


def stand_in(tmp_path: Path, state: Path) -> subprocess.Popen[bytes]:
    state.parent.mkdir(parents=True)
    anvil = tmp_path / "bin" / "anvil"
    anvil.parent.mkdir(exist_ok=True)
    anvil.write_text(SCRIPT)
    return subprocess.Popen([sys.executable, str(anvil), "--port", "1", "--state", str(state)])


def test_only_the_anvil_on_this_state_is_ended(tmp_path: Path) -> None:
    ours, other = tmp_path / "a" / "anvil-state.json", tmp_path / "b" / "anvil-state.json"
    left, unrelated = stand_in(tmp_path, ours), stand_in(tmp_path, other)
    try:
        for state in (ours, other):  # both run with their command line in place
            seen = state.with_name(state.name + ".seen")
            for _ in range(500):
                if seen.exists():
                    break
                time.sleep(0.01)
            assert seen.exists()
        assert end_stale_anvils(ours, grace=5) == [left.pid]
        assert left.wait(5) is not None
        assert unrelated.poll() is None  # another data directory's chain is left alone
        assert end_stale_anvils(ours) == []  # nothing left: the usual case
    finally:
        for process in (left, unrelated):
            process.kill()
            process.wait()
