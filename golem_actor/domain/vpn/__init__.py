"""Golem VPN: pure rules of the node's virtual networks (no IO, no trio)."""
