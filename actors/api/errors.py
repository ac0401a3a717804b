"""Translation of refusals and bad input into HTTP answers (the IO boundary of the API).

Every refusal leaves as `{"detail": ...}` with an honest status: the client's mistakes
are 4xx, a node that cannot serve right now is 503, and only a real failure of the node
is a 500, whose detail never carries a traceback.
"""

from __future__ import annotations

import msgspec

from actors.resource_tracker import InsufficientResources
from actors.vm_lifecycle import (
    Conflict,
    JobNotFound,
    NameTaken,
    NoFreePort,
    StateNotSaved,
    StreamInUse,
    VmNotFound,
)
from golem_actor.domain.vm_request import InvalidRequest
from golem_actor.images import UnknownImage
from golem_actor.kernel import ActorError, CallTimeout

from .payments import PriceUnknown, StreamRefused, StreamsUnreadable

STATUS_OF: tuple[tuple[type[Exception], int], ...] = (
    (VmNotFound, 404),
    (JobNotFound, 404),
    (NameTaken, 409),
    (StreamInUse, 400),
    (StreamRefused, 400),
    (StreamsUnreadable, 503),
    (PriceUnknown, 503),
    (Conflict, 409),
    (InsufficientResources, 409),
    (NoFreePort, 503),
    (StateNotSaved, 503),
    (InvalidRequest, 422),
    (UnknownImage, 422),
    (msgspec.ValidationError, 422),
    (msgspec.DecodeError, 400),
    (CallTimeout, 503),
)


class ApiError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def translate(error: Exception) -> ApiError | None:
    """The HTTP answer for an expected failure; None for a bug."""
    if isinstance(error, ApiError):
        return error
    for kind, status in STATUS_OF:
        if isinstance(error, kind):
            detail = str(error)
            if isinstance(error, CallTimeout):
                detail = "the node is busy; try again"
            return ApiError(status, detail)
    if isinstance(error, ActorError):
        return ApiError(409, str(error))
    return None
