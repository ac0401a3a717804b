"""QEMU adapter: command lines (and, later, the process and QMP side) of local VMs."""

from __future__ import annotations

from golem_actor.adapters.qemu._argv import QemuSpec, qemu_argv, qemu_opt

__all__ = ["QemuSpec", "qemu_argv", "qemu_opt"]
