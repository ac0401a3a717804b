"""Which VM backend the node runs: Multipass where it is installed, QEMU otherwise."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from golem_actor.adapters.backend import VmBackend
from golem_actor.adapters.backend_check import check_multipass, check_qemu
from golem_actor.adapters.multipass import MultipassBackend, find_multipass
from golem_actor.adapters.qemu import QemuBackend
from golem_actor.domain.port_verdict import BackendCheck, MultipassCheck
from golem_actor.images import ImageCatalog
from golem_actor.settings import Settings


def instance_prefix(settings: Settings) -> str:
    """Multipass instance names of this node: unique per data directory."""
    tag = hashlib.sha256(str(settings.data_path).encode()).hexdigest()[:6]
    return f"golem-{tag}-"


def _multipass_env(settings: Settings) -> dict[str, str]:
    """Where `find_multipass` looks: the environment, with the setting's path if any."""
    env = dict(os.environ)
    if settings.multipass_binary_path:
        env["GOLEM_PROVIDER_MULTIPASS_BINARY_PATH"] = settings.multipass_binary_path
    return env


SNAP_CLOUD_INIT = Path("/var/snap/multipass/common/cloud-init")


def cloud_init_dir(binary: Path, settings: Settings) -> Path:
    """Where cloud-init files go: a snap-confined multipass reads only its common dir."""
    if "/snap/" in str(binary.resolve()):
        return SNAP_CLOUD_INIT
    return settings.data_path / "cloud-init"


def choose_backend(settings: Settings, catalog: ImageCatalog) -> VmBackend:
    binary = (
        find_multipass(_multipass_env(settings))
        if settings.vm_backend in ("auto", "multipass")
        else None
    )
    if settings.vm_backend == "multipass" and binary is None:
        raise ValueError("GOLEM_PROVIDER_VM_BACKEND=multipass, but multipass is not installed")
    if binary is not None:
        images = {
            name: entry.multipass
            for name, entry in catalog.entries.items()
            if entry.multipass is not None
        }
        return MultipassBackend(
            binary=binary,
            instance_prefix=instance_prefix(settings),
            images=images,
            cloud_init_dir=cloud_init_dir(binary, settings),
            launch_timeout=settings.launch_timeout_seconds,
        )
    return QemuBackend(
        vms_dir=settings.data_path / "vms",
        guest_cache=settings.data_path / "guest",
        catalog=catalog,
        accel=settings.qemu_accel,
        boot_timeout=settings.launch_timeout_seconds,
        outbound=settings.vm_outbound,
    )


async def probe_backend(
    settings: Settings, kind: str
) -> tuple[MultipassCheck | None, BackendCheck | None]:
    """The status line of the VM backend: Multipass's, or QEMU's in its place."""
    if kind == "multipass":
        return await check_multipass(find_multipass(_multipass_env(settings))), None
    accel = None if settings.qemu_accel == "auto" else settings.qemu_accel
    return None, await check_qemu(accel=accel)
