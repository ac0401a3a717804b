"""Finding the multipass client binary.

Why a function of its own, taking the environment as a mapping: the node decides at start
whether the Multipass backend can be used at all, and that decision must be testable without
touching the real process environment or the host's /snap. An explicit path from the operator
wins and must be right (a typo is an error, not a silent fallback); otherwise PATH, then the
places the snap, Homebrew and distribution packages install to.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

BINARY_ENV = "GOLEM_PROVIDER_MULTIPASS_BINARY_PATH"
USUAL_DIRS: tuple[Path, ...] = (
    Path("/snap/bin"),
    Path("/usr/local/bin"),
    Path("/usr/bin"),
    Path("/opt/homebrew/bin"),
)


def _is_executable_file(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_multipass(
    env: Mapping[str, str], *, usual_dirs: Sequence[Path] = USUAL_DIRS
) -> Path | None:
    """The multipass binary to use, or None when there is none.

    ``GOLEM_PROVIDER_MULTIPASS_BINARY_PATH``, when set, must name an executable file
    (ValueError naming the variable otherwise). Else the first ``multipass`` on the PATH of
    ``env``, else in ``usual_dirs``.
    """
    explicit = env.get(BINARY_ENV, "").strip()
    if explicit:
        path = Path(explicit).expanduser()
        if not _is_executable_file(path):
            raise ValueError(f"{BINARY_ENV}={explicit!r} is not an executable file")
        return path.absolute()
    search_path = env.get("PATH")
    if search_path:
        found = shutil.which("multipass", path=search_path)
        if found is not None:
            return Path(found).absolute()
    for directory in usual_dirs:
        candidate = directory / "multipass"
        if _is_executable_file(candidate):
            return candidate
    return None
