"""golem-actor: a VM on Golem provider node built as supervised actors on Trio."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("golem-actor")
except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
    __version__ = "0.0.0"
