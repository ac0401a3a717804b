"""Inboxes and addresses: the only way actors touch each other.

An `Inbox` is a bounded memory channel owned by a supervisor. It outlives the actor
incarnations that read it, so an `Address` handed out at build time stays valid across
restarts and what is queued during a restart reaches the next incarnation. Closing an
inbox is final: queued calls are failed at once and senders get `ActorGone`.

`Address.call` opens a channel of size 1 for the answer. The actor answers with
`send_nowait` and ignores a closed receiver, so a caller that gave up (its deadline
passed) never blocks or crashes the actor: the late answer is dropped (OTP's aliases).
When the handler crashes or the actor stops, the reply channel is closed unanswered and
the caller fails at once instead of waiting for its deadline (OTP's monitor).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

import trio

from ._errors import ActorGone, CallFailed, CallTimeout
from ._messages import Answer, Call, CallEnvelope, Outcome, Request

__all__ = ["Address", "Inbox", "InboxStatistics"]

M = TypeVar("M")
M_contra = TypeVar("M_contra", contravariant=True)
R = TypeVar("R")

DEFAULT_CALL_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class InboxStatistics:
    name: str
    current_buffer_used: int
    max_buffer_size: float
    peak_buffer_used: int
    tasks_waiting_send: int
    closed: bool


class Inbox(Generic[M]):
    """A bounded queue of messages for one actor, owned by its supervisor."""

    def __init__(
        self, name: str, size: int = 16, *, call_timeout: float = DEFAULT_CALL_TIMEOUT
    ) -> None:
        if size < 1:
            raise ValueError("an inbox needs room for at least one message")
        self.name = name
        self.call_timeout = call_timeout
        self.send_channel, self.receive_channel = trio.open_memory_channel[object](size)
        self.closed = False

    def address(self) -> Address[M]:
        return Address(self, self.call_timeout)

    def close(self) -> int:
        """Close for good; fail every queued call. Returns how many messages were dropped.

        Synchronous on purpose: no checkpoint between draining and closing, so nothing
        can slip in between.
        """
        dropped = 0
        while True:
            try:
                item = self.receive_channel.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
            dropped += 1
            if isinstance(item, CallEnvelope):
                item.abandon()
        self.closed = True
        self.receive_channel.close()
        self.send_channel.close()
        return dropped

    def statistics(self) -> InboxStatistics:
        stats = self.receive_channel.statistics()
        return InboxStatistics(
            name=self.name,
            current_buffer_used=stats.current_buffer_used,
            max_buffer_size=stats.max_buffer_size,
            peak_buffer_used=stats.peak_buffer_used,
            tasks_waiting_send=stats.tasks_waiting_send,
            closed=self.closed,
        )


class Address(Generic[M_contra]):
    """A handle on an actor's inbox: `cast`, `try_cast` and `call`.

    `M_contra` is the union of messages the actor accepts; the address is contravariant
    in it, so an `Address[A | B]` is also an `Address[A]` (hand out the narrower type to
    code that only sends `A`). The call deadline belongs to the address (default 5 s, as
    OTP); `with_call_timeout` gives a view with another one, and callers may still nest a
    tighter `fail_after`.
    """

    __slots__ = ("_call_timeout", "_inbox")

    def __init__(self, inbox: Inbox[Any], call_timeout: float) -> None:
        self._inbox = inbox
        self._call_timeout = call_timeout

    @property
    def name(self) -> str:
        return self._inbox.name

    @property
    def call_timeout(self) -> float:
        return self._call_timeout

    def with_call_timeout(self, seconds: float) -> Address[M_contra]:
        return Address(self._inbox, seconds)

    def __repr__(self) -> str:
        return f"<Address {self.name}>"

    async def cast(self, message: M_contra) -> None:
        """Queue `message`; waits while the inbox is full (backpressure)."""
        try:
            await self._inbox.send_channel.send(message)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise ActorGone(self.name) from None

    def try_cast(self, message: M_contra) -> bool:
        """Queue `message` if there is room now; `False` when the inbox is full."""
        try:
            self._inbox.send_channel.send_nowait(message)
        except trio.WouldBlock:
            return False
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise ActorGone(self.name) from None
        return True

    async def call(self, request: Request[M_contra, R]) -> R:
        """Send `request` and wait for its answer.

        Raises the handler's `ActorError`, `CallFailed` at once when the handler crashed
        or the actor stopped, `CallTimeout` past the deadline (which also covers waiting
        for room in a full inbox), or `ActorGone`.
        """
        reply_send, reply_receive = trio.open_memory_channel[Outcome](1)
        envelope = CallEnvelope(cast("Call[Any]", request), reply_send)
        deadline = self._call_timeout
        with reply_receive:
            try:
                with trio.fail_after(deadline if deadline > 0 else math.inf):
                    try:
                        await self._inbox.send_channel.send(envelope)
                    except BaseException:
                        reply_send.close()  # never delivered: nobody else will close it
                        raise
                    outcome = await reply_receive.receive()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                raise ActorGone(self.name) from None
            except trio.EndOfChannel:
                raise CallFailed(self.name, request) from None
            except trio.TooSlowError:
                raise CallTimeout(self.name, request, deadline) from None
        if isinstance(outcome, Answer):
            return cast("R", outcome.value)
        raise outcome.error


def inbox_of(address: Address[Any]) -> Inbox[Any]:
    """The inbox behind an address (for the kernel's own bookkeeping)."""
    return address._inbox
