"""Multipass adapter: VMs as multipass instances, driven through the multipass CLI."""

from __future__ import annotations

from golem_actor.adapters.multipass._backend import MultipassBackend
from golem_actor.adapters.multipass._cli import CommandFailed, CommandTimedOut
from golem_actor.adapters.multipass._discover import BINARY_ENV, USUAL_DIRS, find_multipass
from golem_actor.adapters.multipass._info import STATES, backend_state

__all__ = [
    "BINARY_ENV",
    "STATES",
    "USUAL_DIRS",
    "CommandFailed",
    "CommandTimedOut",
    "MultipassBackend",
    "backend_state",
    "find_multipass",
]
