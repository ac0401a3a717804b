"""An async QMP (QEMU Machine Protocol) client on trio, one connection per operation.

Why a module of its own: QMP is the only way the node talks to a running QEMU (status,
ACPI power-off, quit), and its quirks belong in one place:

* The wire format is one JSON object per line. The server speaks first with a greeting
  ``{"QMP": {...}}``; the client must send ``qmp_capabilities`` before anything else.
* Asynchronous events (``POWERDOWN``, ``SHUTDOWN``, ...) arrive between replies at any
  time; we skip them. Each command carries an ``id`` that QEMU echoes, so a reply is
  matched to its command and nothing stale is ever taken for an answer.
* A QMP socket serves **one client at a time**: a second connection is accepted by the
  kernel but gets no greeting until the first disconnects. So we never keep a connection
  open across operations (the backend serializes its own sessions per VM), and every step
  (connect, greeting, each command) is time-bounded: a busy or hung monitor is an error,
  never a hang of the node.

Every failure leaves as :class:`QmpError` (a ``BackendError``); an error reply of QEMU
carries its ``class`` and ``desc``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import trio

from golem_actor.adapters.backend import BackendError
from golem_actor.adapters.qemu._vmdir import SUN_PATH_MAX

__all__ = ["QmpClient", "QmpError", "QmpReplyError", "qmp_session"]

DEFAULT_TIMEOUT = 5.0
MAX_LINE = 1 << 20  # no reply we use is near this; a longer line means a broken peer


class QmpError(BackendError):
    """QMP failed: no socket, no greeting, a timeout, a broken connection."""


class QmpReplyError(QmpError):
    """QEMU answered a command with an error reply."""

    def __init__(self, command: str, error_class: str, desc: str) -> None:
        self.command = command
        self.error_class = error_class
        self.desc = desc
        super().__init__(f"QMP {command!r} failed: {error_class}: {desc}")


_decoder = msgspec.json.Decoder(dict[str, Any])
_encoder = msgspec.json.Encoder()


class QmpClient:
    """A negotiated QMP connection; build it with :func:`qmp_session`."""

    def __init__(self, stream: trio.abc.Stream, *, timeout: float, where: str) -> None:
        self._stream = stream
        self._timeout = timeout
        self._where = where
        self._buffer = bytearray()
        self._ids = itertools.count(1)
        self.greeting: dict[str, Any] = {}

    async def _read_message(self) -> dict[str, Any]:
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                if not line.strip():
                    continue
                try:
                    return _decoder.decode(line)
                except msgspec.DecodeError as exc:
                    raise QmpError(f"QMP at {self._where}: undecodable message: {exc}") from None
            if len(self._buffer) > MAX_LINE:
                raise QmpError(f"QMP at {self._where}: message longer than {MAX_LINE} bytes")
            try:
                data = await self._stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                raise QmpError(f"QMP at {self._where}: connection broken: {exc}") from None
            if not data:
                raise QmpError(f"QMP at {self._where}: connection closed by QEMU")
            self._buffer += data

    async def _handshake(self) -> None:
        with trio.move_on_after(self._timeout) as scope:
            message = await self._read_message()
        if scope.cancelled_caught:
            raise QmpError(
                f"QMP at {self._where}: no greeting within {self._timeout:g}s"
                " (is another client connected?)"
            )
        greeting = message.get("QMP")
        if not isinstance(greeting, dict):
            raise QmpError(f"QMP at {self._where}: unexpected greeting {message!r:.200}")
        self.greeting = greeting
        await self.execute("qmp_capabilities")

    async def execute(
        self, command: str, arguments: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Run one command and return its ``return`` object; events are skipped."""
        request_id = f"golem-{next(self._ids)}"
        request: dict[str, Any] = {"execute": command, "id": request_id}
        if arguments:
            request["arguments"] = dict(arguments)
        with trio.move_on_after(self._timeout) as scope:
            try:
                await self._stream.send_all(_encoder.encode(request) + b"\n")
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                raise QmpError(f"QMP at {self._where}: cannot send {command!r}: {exc}") from None
            while True:
                reply = await self._read_message()
                if "event" in reply or reply.get("id") != request_id:
                    continue
                if "error" in reply:
                    error = reply["error"]
                    if not isinstance(error, dict):
                        error = {"desc": str(error)}
                    raise QmpReplyError(
                        command, str(error.get("class", "?")), str(error.get("desc", ""))
                    )
                if "return" not in reply:
                    raise QmpError(f"QMP at {self._where}: malformed reply {reply!r:.200}")
                result = reply["return"]
                return result if isinstance(result, dict) else {"value": result}
        assert scope.cancelled_caught
        raise QmpError(f"QMP at {self._where}: {command!r} timed out after {self._timeout:g}s")


async def _connect(path: Path) -> trio.SocketStream:
    """Connect to a unix socket, even one whose path is too long for `sun_path`.

    A long path is reached through `/proc/self/fd/<fd of its directory>/<name>`, which
    the kernel resolves like the directory itself (Linux).
    """
    if len(os.fsencode(path)) <= SUN_PATH_MAX:
        return await trio.open_unix_socket(str(path))
    directory = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return await trio.open_unix_socket(f"/proc/self/fd/{directory}/{path.name}")
    finally:
        os.close(directory)


@asynccontextmanager
async def qmp_session(
    path: Path, *, op_timeout: float = DEFAULT_TIMEOUT
) -> AsyncIterator[QmpClient]:
    """Connect to the QMP socket at ``path``, negotiate, yield the client, disconnect.
    ``op_timeout`` bounds each step: the connect, the greeting, every command."""
    where = str(path)
    with trio.move_on_after(op_timeout) as scope:
        try:
            stream = await _connect(path)
        except OSError as exc:
            raise QmpError(f"QMP at {where}: cannot connect: {exc}") from None
    if scope.cancelled_caught:
        raise QmpError(f"QMP at {where}: connect timed out after {op_timeout:g}s")
    async with stream:
        client = QmpClient(stream, timeout=op_timeout, where=where)
        await client._handshake()
        yield client
