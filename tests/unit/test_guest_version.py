"""The test guest's cache key follows its scripts; its data-disk label matches the node's.

A node that kept booting an image cached before a guest-script change would silently run
the old behaviour (e.g. a guest that never mounts its data disk), so the version hashed
into the cache directory's name must change with any script's bytes.
"""

from __future__ import annotations

import pytest

from golem_actor.adapters.guest import _builder, _rootfs, builder_version
from golem_actor.adapters.qemu._disk import DATA_LABEL


@pytest.mark.parametrize("name", _rootfs.GUEST_FILES)
def test_any_changed_guest_script_changes_the_version(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = builder_version()
    original = _rootfs.guest_file

    def edited(which: str) -> bytes:
        return original(which) + (b"\n# edited\n" if which == name else b"")

    monkeypatch.setattr(_rootfs, "guest_file", edited)
    after = builder_version()
    assert after != before
    assert after.startswith(f"{_builder.BUILDER_REVISION}-")


def test_the_guest_looks_for_the_label_the_node_writes() -> None:
    assert f'"$(peek "$d" 1144 16)" = {DATA_LABEL} ]' in _rootfs.guest_file("rc").decode()
