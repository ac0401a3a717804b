"""What travels through an inbox.

User messages are frozen `msgspec.Struct`s. A request that wants an answer subclasses
`Call[R]`, which is how `Address.call` knows its reply type. The envelope, the two
outcomes and the report of background work are the kernel's own: they carry the per-call
reply channel or the work's identity, which never leave the kernel.

How mypy checks that an actor accepts a request (there is no intersection type in Python):
`Call` has two phantom methods, `_message() -> Self` and `_reply() -> R`, and
`Address[M].call` takes any object that structurally has `_message() -> M` and
`_reply() -> R` (the `Request` protocol). A request type outside the actor's union `M`
fails the first, so the call does not type-check; the second gives the reply type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, Self, TypeVar

import msgspec
import trio

from ._errors import ActorError

if TYPE_CHECKING:
    from ._work import Source

__all__ = ["Call", "Request"]

R = TypeVar("R")
M_co = TypeVar("M_co", covariant=True)
R_co = TypeVar("R_co", covariant=True)


class Call(msgspec.Struct, Generic[R], frozen=True):
    """Base of every request that expects an answer of type `R`."""

    def _message(self) -> Self:
        """Phantom for the type checker: a request is a message of its own type."""
        return self

    def _reply(self) -> R:
        """Phantom for the type checker: the type of the answer."""
        raise NotImplementedError("phantom method: only the type checker reads it")


class Request(Protocol[M_co, R_co]):
    """A request that an actor accepting `M_co` answers with an `R_co` (see above)."""

    def _message(self) -> M_co: ...

    def _reply(self) -> R_co: ...


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


@dataclass(frozen=True, slots=True)
class Report:
    """A message from the actor's own background work or timer, to its own inbox.

    `owner` is the incarnation that started the source: a report left in the inbox by a
    crashed incarnation never reaches the next one, and a cancelled source never reports.
    """

    owner: object
    source: Source
    message: object
