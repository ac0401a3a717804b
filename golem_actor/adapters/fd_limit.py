"""The process's open-file limit, raised to what the host allows before the node starts.

Why: every relayed SSH connection holds six file descriptors (two sockets, and a pipe per
direction for splice), so a node with ten VMs at their default 32 connections needs about
two thousand, while a service starts with a soft limit of 1024 (systemd's default, and most
shells'). The hard limit is the host's decision (systemd: 524288); the soft one is ours
to raise up to it, as servers commonly do at start.
"""

from __future__ import annotations

import resource

__all__ = ["raise_open_file_limit"]


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard one: (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft in (hard, resource.RLIM_INFINITY):
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):  # a hard limit the kernel refuses (above fs.nr_open)
        return soft, soft
    return soft, hard
