"""Running the multipass client: one argv, one time bound, errors translated here.

Why: every call to multipass has the same failure modes, and they must all reach the node as
``BackendError``s with the command and multipass's own words (upstream let stdout/stderr go to
the console and reported "No stderr captured"). The client is run from an argv list (never a
shell), with its output captured (never the node's stdio), in a session of its own (a Ctrl-C
at the node's terminal is for the node, not for a half-done ``multipass launch``), and killed
outright when its bound passes. Killing the client does not stop the multipass daemon, which
may still be working on the request: callers that care (launch) look at ``info`` afterwards.

Translation: "does not exist" in stderr is ``VmMissing``; "Unable to find an image" is
``ImageNotAvailable``; any other non-zero exit is ``CommandFailed``; the bound passing is
``CommandTimedOut``; a binary that cannot be executed is a plain ``BackendError``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import structlog
import trio

from golem_actor.adapters.backend import BackendError, ImageNotAvailable, VmMissing

log = structlog.get_logger("golem_actor.adapters.multipass")

_MAX_DETAIL = 2000


class CommandFailed(BackendError):
    """multipass exited non-zero."""

    def __init__(self, message: str, *, returncode: int, stderr: str) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr


class CommandTimedOut(BackendError):
    """multipass did not finish within its bound; the client was killed."""


async def _kill(process: trio.Process) -> None:
    process.kill()


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL] + "..."


class MultipassCli:
    """The multipass client binary, run with an optional fixed environment."""

    def __init__(self, binary: Path, env: Mapping[str, str] | None = None) -> None:
        self.binary = binary
        self._env = dict(env) if env is not None else None

    async def run(self, args: Sequence[str], *, seconds: float) -> bytes:
        """Run ``multipass *args``; its stdout on success, a ``BackendError`` otherwise."""
        command = "multipass " + " ".join(args)
        started = time.monotonic()
        try:
            with trio.fail_after(seconds):
                result = await trio.run_process(
                    [os.fspath(self.binary), *args],
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                    env=self._env,
                    start_new_session=True,
                    deliver_cancel=_kill,
                )
        except trio.TooSlowError:
            log.warning("multipass_timeout", command=command, seconds=seconds)
            raise CommandTimedOut(
                f"`{command}` did not finish within {seconds:g} s; the client was killed "
                "(the multipass daemon may still be working on it)"
            ) from None
        except OSError as exc:
            raise BackendError(f"cannot run {self.binary} for `{command}`: {exc}") from None
        log.debug(
            "multipass_command",
            command=command,
            returncode=result.returncode,
            seconds=round(time.monotonic() - started, 3),
        )
        if result.returncode == 0:
            return result.stdout
        stderr = _clip(result.stderr.decode(errors="replace"))
        detail = stderr or _clip(result.stdout.decode(errors="replace")) or "no output"
        message = f"`{command}` failed (exit {result.returncode}): {detail}"
        if "does not exist" in stderr:
            raise VmMissing(message)
        if "Unable to find an image" in stderr:
            raise ImageNotAvailable(message)
        raise CommandFailed(message, returncode=result.returncode, stderr=stderr)
