"""The port-check server shipped with the node, and the client that asks such servers.

Why a package of our own: providers need an outside view of their ports, and the public
checkers were open relays for port scans. This server probes only its caller, with caps on
ports, rate and concurrency; the client asks several servers so that a quorum decides.
"""

from __future__ import annotations

from .app import create_app
from .cli import main
from .client import PortAnswer, ServerAnswer, check_ports
from .config import ServerConfig, parse_networks
from .probe import ProbeResult, tcp_probe
from .server import run_server, serve_app

__all__ = [
    "PortAnswer",
    "ProbeResult",
    "ServerAnswer",
    "ServerConfig",
    "check_ports",
    "create_app",
    "main",
    "parse_networks",
    "run_server",
    "serve_app",
    "tcp_probe",
]
