"""The tiny test guest (Debian kernel + busybox + dropbear) and NoCloud seeds.

``build_test_guest`` builds (once, cached) a kernel + initramfs that boots under QEMU
in ~3 s and honours a NoCloud ``cidata`` seed the way cloud-init does on a cloud image;
``make_nocloud_seed`` writes such a seed.  ``python -m golem_actor.adapters.guest build
--cache-dir DIR`` builds from the command line.
"""

from __future__ import annotations

from golem_actor.adapters.guest._builder import build_test_guest, builder_version
from golem_actor.adapters.guest._model import GuestBuildError, GuestImage
from golem_actor.adapters.guest._seed import (
    SEED_LABEL,
    make_nocloud_seed,
    render_meta_data,
    render_user_data,
)

__all__ = [
    "SEED_LABEL",
    "GuestBuildError",
    "GuestImage",
    "build_test_guest",
    "builder_version",
    "make_nocloud_seed",
    "render_meta_data",
    "render_user_data",
]
