"""The trio side of ya_net_driver.py: one driver process, one request at a time."""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import trio

REPO = Path(__file__).resolve().parents[2]
CLIENT_PYTHON = REPO / ".tools" / "ya-client" / "bin" / "python"
DRIVER = Path(__file__).with_name("ya_net_driver.py")


@dataclass(frozen=True)
class Failed:
    """An HTTP error as ya_net's ApiException saw it."""

    status: int
    body: Any  # the decoded JSON body, or the text


class YaNet:
    def __init__(self, process: trio.Process) -> None:
        self._process = process
        self._pending = b""

    async def _line(self) -> bytes:
        assert self._process.stdout is not None
        while b"\n" not in self._pending:
            chunk = await self._process.stdout.receive_some(65536)
            if not chunk:
                raise RuntimeError("the ya_net driver exited")
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line

    async def call(self, base: str, token: str | None, op: str, **args: Any) -> Any:
        """The reply of `op` (a model as a dict), or a `Failed`."""
        assert self._process.stdin is not None
        ask = {"base": base, "token": token, "op": op, "args": args}
        await self._process.stdin.send_all(json.dumps(ask).encode() + b"\n")
        with trio.fail_after(20):
            answer = json.loads(await self._line())
        if "exception" in answer:
            raise AssertionError(f"ya_net raised {answer['exception']}")
        if "status" in answer:
            try:
                body = json.loads(answer["body"])
            except (TypeError, ValueError):
                body = answer["body"]
            return Failed(answer["status"], body)
        return answer["ok"]


@asynccontextmanager
async def ya_net() -> AsyncIterator[YaNet]:
    if not CLIENT_PYTHON.exists():
        raise RuntimeError(f"{CLIENT_PYTHON} is missing: run bash .ci/install-net-client.sh")
    async with trio.open_nursery() as nursery:
        command = [str(CLIENT_PYTHON), str(DRIVER)]
        run = partial(
            trio.run_process, command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, check=False
        )
        process: trio.Process = await nursery.start(run)
        try:
            yield YaNet(process)
        finally:
            assert process.stdin is not None
            await process.stdin.aclose()
            with trio.move_on_after(5):
                await process.wait()
            process.kill()
