"""`python -m bench cycles`: 1000 create/delete cycles on the Multipass fake, nothing grows.

What is run: our node as a process of its own (`bench._api_server`: the node's tree with
the multipass backend driving the fake `multipass` executable, tests/fakes/fake_multipass.py,
one process per multipass call, as the real client would be), with room for `workers`
VMs. `workers` client threads each repeat one cycle until `cycles` are done: a
synchronous `POST /api/v1/vms` (the answer comes once the VM runs: launched, its SSH relay
listening, a banner read through it) then `DELETE /api/v1/vms/{id}` (the answer comes once
the instance, its relay and its port are gone). Every answer other than 200 is an error.

What is measured, from outside (`bench._usage`): the node process's RSS, open fds,
threads, listening inet sockets (its ports: the API, and one relay per live VM) and all
inet sockets, sampled every `every` cycles with no cycle in flight (once its fds and
sockets stopped changing, `bench._usage.settled`). Baseline: the first
sample, taken after `warmup` cycles (the first creates import and cache what every later
one reuses). The verdict is "flat" when the last sample exceeds the baseline by no more than
`bench._usage.Tolerance` and no cycle failed (a leak grows with the cycles, so it shows
at the end; a sample in between may catch a worker thread that is about to exit).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from pathlib import Path

import httpx
import trio

from golem_actor.keys import generate_ssh_keypair

from . import _upstream, _usage
from ._load import RESOURCES
from ._node import MEMORY_TOKEN
from ._upstream import Server
from ._usage import Tolerance, Usage, settled


class Cycler:
    """Client threads sharing one count of cycles to run; errors are kept, not raised."""

    def __init__(self, server: Server, key: str) -> None:
        self.server = server
        self.key = key
        self.errors: list[str] = []
        self.done = 0
        self._next = 0
        self._lock = threading.Lock()

    def run(self, cycles: int, workers: int) -> None:
        """Run `cycles` more cycles on `workers` threads, each on its own connection."""
        goal = self._next + cycles
        threads = [threading.Thread(target=self._worker, args=(goal,)) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _take(self, goal: int) -> int | None:
        with self._lock:
            if self._next >= goal:
                return None
            self._next += 1
            return self._next

    def _worker(self, goal: int) -> None:
        headers = {"Authorization": f"Bearer {MEMORY_TOKEN}"}
        with httpx.Client(timeout=60.0, headers=headers) as client:
            while (number := self._take(goal)) is not None:
                error = self._cycle(client, number)
                with self._lock:
                    self.done += 1
                    if error is not None:
                        self.errors.append(error)

    def _cycle(self, client: httpx.Client, number: int) -> str | None:
        url = self.server.url
        body = {"name": f"cycle-{number}", "resources": RESOURCES, "ssh_key": self.key}
        try:
            created = client.post(f"{url}/vms", json=body)
            if created.status_code != 200:
                return f"create #{number}: HTTP {created.status_code} {created.text[:200]}"
            vm_id = created.json()["id"]
            deleted = client.delete(f"{url}/vms/{vm_id}")
            if deleted.status_code != 200:
                return f"delete #{number}: HTTP {deleted.status_code} {deleted.text[:200]}"
        except httpx.HTTPError as exc:
            return f"cycle #{number}: {type(exc).__name__}: {exc}"
        return None


def _drive(
    server: Server, cycles: int, every: int, workers: int, warmup: int
) -> tuple[list[tuple[int, Usage]], list[str], float]:
    """Run the cycles, sampling between batches: (samples, errors, cycles per second)."""
    _, key = generate_ssh_keypair("bench-cycles")
    cycler = Cycler(server, key)
    cycler.run(warmup, workers)
    samples = [(0, settled(server.pid))]
    began = time.monotonic()
    while cycler.done - warmup < cycles:
        cycler.run(min(every, cycles - (cycler.done - warmup)), workers)
        samples.append((cycler.done - warmup, settled(server.pid)))
    rate = cycles / (time.monotonic() - began)
    return samples, cycler.errors, rate


async def run(
    cycles: int = 1000,
    every: int = 100,
    workers: int = 4,
    warmup: int = 20,
    tolerance: Tolerance | None = None,
) -> dict[str, float]:
    tolerance = tolerance or Tolerance()
    with tempfile.TemporaryDirectory(prefix="bench-cycles-") as tmp:
        multipass = _upstream.multipass_wrapper(Path(tmp))
        server = _upstream.ours(Path(tmp), multipass, workers, None)
        await trio.to_thread.run_sync(server.start)
        try:
            samples, errors, rate = await trio.to_thread.run_sync(
                _drive, server, cycles, every, workers, warmup
            )
        finally:
            await trio.to_thread.run_sync(server.stop)
        if errors:  # keep the node's log, to see why
            kept = Path(tempfile.gettempdir()) / f"bench-cycles-node-{server.pid}.log"
            shutil.copyfile(server.log, kept)
            print(f"cycles: {len(errors)} failed; the node's log is kept in {kept}")
    return _report(samples, errors, rate, cycles, workers, warmup, tolerance)


def _report(
    samples: list[tuple[int, Usage]],
    errors: list[str],
    rate: float,
    cycles: int,
    workers: int,
    warmup: int,
    tolerance: Tolerance,
) -> dict[str, float]:
    print(
        f"cycles: {cycles} create/delete cycles on the Multipass fake, {workers} clients,"
        f" {rate:.1f} cycles/s; node process sampled every {samples[1][0] - samples[0][0]}"
        f" cycles, baseline the first sample (after {warmup} warm-up cycles)"
    )
    print(_usage.header("cycle"))
    baseline, final = samples[0][1], samples[-1][1]
    for done, usage in samples:
        print(_usage.row(str(done), usage))
    worst = tolerance.growth(baseline, final)
    verdict = "flat" if not worst and not errors else "GROWTH" if worst else "ERRORS"
    print(f"  errors: {len(errors)}")
    for error in errors[:5]:
        print(f"    {error}")
    grown = "; ".join(worst) if worst else "nothing past tolerance"
    print(f"  verdict: {verdict} ({grown}; tolerance: {tolerance})")
    out = {"cycles": float(cycles), "cycles_per_s": rate, "errors": float(len(errors))}
    out |= _usage.as_metrics("start", baseline) | _usage.as_metrics("end", final)
    out["grown"] = float(len(worst))
    return out
