"""The port_verifier actor: which of the node's ports the world can reach."""

from .actor import PortVerifier
from .checks import Verification, VerifierConfig, verify
from .messages import (
    GetUsablePorts,
    GetVerification,
    PortsInUse,
    PortVerifierMsg,
    Recheck,
    UsablePorts,
)

__all__ = [
    "GetUsablePorts",
    "GetVerification",
    "PortVerifier",
    "PortVerifierMsg",
    "PortsInUse",
    "Recheck",
    "UsablePorts",
    "Verification",
    "VerifierConfig",
    "verify",
]
