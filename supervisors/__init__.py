"""The supervision tree: which actors, in what order, with which restart policy."""

from .node import build_node, prepare_node
from .parts import NodeParts
from .tree import NodeTree, node_tree, verifier_settings

__all__ = ["NodeParts", "NodeTree", "build_node", "node_tree", "prepare_node", "verifier_settings"]
