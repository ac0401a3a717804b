"""QEMU adapter: command lines, the QMP client, and the ``QemuBackend`` of local VMs.

``QemuBackend`` implements ``golem_actor.adapters.backend.VmBackend`` with one detached
QEMU per VM directory; ``probe_accel`` decides whether KVM really runs guests here;
``qmp_session`` is the async QMP client.
"""

from __future__ import annotations

from golem_actor.adapters.qemu._accel import probe_accel
from golem_actor.adapters.qemu._argv import QemuSpec, qemu_argv, qemu_opt
from golem_actor.adapters.qemu._backend import GUEST_IP, QemuBackend
from golem_actor.adapters.qemu._images import download_image, verify_local_image
from golem_actor.adapters.qemu._qmp import QmpClient, QmpError, QmpReplyError, qmp_session
from golem_actor.adapters.qemu._sandbox import VM_USER, vm_user
from golem_actor.adapters.qemu._vmdir import VmPaths

__all__ = [
    "GUEST_IP",
    "VM_USER",
    "QemuBackend",
    "QemuSpec",
    "QmpClient",
    "QmpError",
    "QmpReplyError",
    "VmPaths",
    "download_image",
    "probe_accel",
    "qemu_argv",
    "qemu_opt",
    "qmp_session",
    "verify_local_image",
    "vm_user",
]
