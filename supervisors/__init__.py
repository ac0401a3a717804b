"""The supervision tree: which actors, in what order, with which restart policy."""

from .node import build_node, verifier_settings

__all__ = ["build_node", "verifier_settings"]
