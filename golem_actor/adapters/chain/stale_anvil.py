"""Ending an anvil that an earlier node left running on this data directory's chain state.

Why: the local chain's anvil is a child of the node process, and a node killed without
cleanup (SIGKILL, the OOM killer, a power cut of its cgroup but not of the machine) leaves
it running, still holding the chain's port: the next node's anvil then fails to bind,
and the node gave up after a burst of local_chain restarts. So before it starts anvil,
the local_chain actor ends any anvil whose command line names this data directory's
state file (``--state <path>``, which no unrelated process carries): SIGTERM first, on
which anvil dumps its state (so nothing mined since its last periodic dump is lost),
then SIGKILL past a bound. Blocking (it reads ``/proc``): run it in a worker thread.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import psutil

__all__ = ["end_stale_anvils"]


def _is_ours(process: psutil.Process, state: Path) -> bool:
    try:
        argv = process.cmdline()
    except psutil.Error:
        return False
    named_anvil = any(Path(arg).name == "anvil" for arg in argv[:2])
    return named_anvil and ("--state", str(state)) in set(itertools.pairwise(argv))


def end_stale_anvils(state: Path, *, grace: float = 10.0) -> list[int]:
    """End every anvil running on `state`; their pids (none: the usual case)."""
    stale = [p for p in psutil.process_iter() if _is_ours(p, state)]
    for process in stale:
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(stale, timeout=grace)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(alive, timeout=grace)
    return [p.pid for p in stale]
