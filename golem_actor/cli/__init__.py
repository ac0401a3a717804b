"""`golem-provider`: the node's command line."""

from ._main import main

__all__ = ["main"]
