"""What travels through an inbox.

User messages are frozen `msgspec.Struct`s. A request that wants an answer subclasses
`Call[R]`, which is how `Address.call` knows its reply type. The envelope and the two
outcomes are the kernel's own: they carry the per-call reply channel, which never leaves
the kernel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec
import trio

from ._errors import ActorError

__all__ = ["Call"]

R = TypeVar("R")


class Call(msgspec.Struct, Generic[R], frozen=True):
    """Base of every request that expects an answer of type `R`."""


@dataclass(frozen=True, slots=True)
class Answer:
    value: Any


@dataclass(frozen=True, slots=True)
class Refusal:
    error: ActorError


Outcome = Answer | Refusal


@dataclass(frozen=True, slots=True)
class CallEnvelope:
    """A `Call` in flight: the request and the size-1 channel its answer goes to."""

    request: Call[Any]
    reply: trio.MemorySendChannel[Outcome]

    def abandon(self) -> None:
        """Close the reply path unanswered: the caller fails at once with `CallFailed`."""
        self.reply.close()
