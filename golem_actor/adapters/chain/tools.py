"""Find the chain tools: ``anvil`` (a local EVM chain) and ``solcjs`` (the Solidity compiler).

Both come from npm (``@foundry-rs/anvil`` and ``solc``); ``.ci/install-chain-deps.sh``
installs the pinned versions below into ``<repo>/.tools/node``. The lookup order for each
tool is:

1. an environment variable (``GOLEM_ANVIL_BIN`` / ``GOLEM_SOLCJS_BIN``); when it is set, it
   must name an executable file, otherwise the lookup fails naming the variable (a typo
   should not silently fall back to some other binary);
2. ``<repo>/.tools/node/node_modules/.bin/<tool>`` in a source checkout. For anvil that
   is a Node.js wrapper which spawns the native binary from the platform package
   (``@foundry-rs/anvil-<platform>/bin/anvil``); when that binary is there it is returned
   instead, so signals (and a SIGKILL) reach anvil itself and no ``node`` runs alongside;
3. ``PATH``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Literal

ANVIL_VERSION: Final = "1.7.1"
"""The pinned npm ``@foundry-rs/anvil`` version (keep in sync with the install script)."""
SOLC_VERSION: Final = "0.8.37"
"""The pinned npm ``solc`` version; the shipped artifacts are built with it."""

Tool = Literal["anvil", "solcjs"]

ENV_VARS: Final[Mapping[Tool, str]] = {
    "anvil": "GOLEM_ANVIL_BIN",
    "solcjs": "GOLEM_SOLCJS_BIN",
}


class ToolNotFoundError(FileNotFoundError):
    """A chain tool is not installed (or its environment override is wrong)."""


def repo_root() -> Path:
    """The source checkout this module lives in (``golem_actor/adapters/chain/`` → repo)."""
    return Path(__file__).resolve().parents[3]


def node_bin_dir(root: Path | None = None) -> Path:
    """Where ``.ci/install-chain-deps.sh`` puts the npm executables."""
    return (root or repo_root()) / ".tools" / "node" / "node_modules" / ".bin"


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _native_anvil(bin_dir: Path) -> Path | None:
    """The platform binary behind the npm ``anvil`` wrapper, if it is installed."""
    scope = bin_dir.parent / "@foundry-rs"
    for candidate in sorted(scope.glob("anvil-*/bin/anvil")):
        if _is_executable(candidate):
            return candidate
    return None


def find_tool(
    tool: Tool,
    *,
    env: Mapping[str, str] | None = None,
    root: Path | None = None,
) -> Path:
    """Return the path of ``tool`` or raise :class:`ToolNotFoundError`."""
    environ = os.environ if env is None else env
    var = ENV_VARS[tool]
    override = environ.get(var, "")
    if override:
        path = Path(override)
        if _is_executable(path):
            return path
        raise ToolNotFoundError(f"{var}={override!r} is not an executable file")

    bin_dir = node_bin_dir(root)
    local = bin_dir / tool
    if _is_executable(local):
        native = _native_anvil(bin_dir) if tool == "anvil" else None
        return native or local

    on_path = shutil.which(tool, path=environ.get("PATH"))
    if on_path is not None:
        return Path(on_path)

    raise ToolNotFoundError(
        f"{tool} not found: set {var}, run .ci/install-chain-deps.sh, or put {tool} on PATH"
    )


def find_anvil(*, env: Mapping[str, str] | None = None) -> Path:
    """The ``anvil`` executable."""
    return find_tool("anvil", env=env)


def find_solcjs(*, env: Mapping[str, str] | None = None) -> Path:
    """The ``solcjs`` executable (npm ``solc``)."""
    return find_tool("solcjs", env=env)
