"""Catalog images the node builds itself from Debian packages (``debian-12``).

``build_debian_image`` builds (once, cached and locked) a Debian root filesystem with
mmdebstrap (cloud kernel, systemd, openssh-server, sudo, apt and the real cloud-init)
as a qcow2 base plus the kernel and initrd for direct kernel boot. ``default_plan`` says
what goes in; ``mmdebstrap_argv`` is the command line it becomes.
"""

from __future__ import annotations

from golem_actor.adapters.images._debian import build_debian_image, fs_size_for, image_dir
from golem_actor.adapters.images._model import DebianImage, ImageBuildError
from golem_actor.adapters.images._plan import (
    DebianPlan,
    default_plan,
    mmdebstrap_argv,
    plan_version,
)

__all__ = [
    "DebianImage",
    "DebianPlan",
    "ImageBuildError",
    "build_debian_image",
    "default_plan",
    "fs_size_for",
    "image_dir",
    "mmdebstrap_argv",
    "plan_version",
]
