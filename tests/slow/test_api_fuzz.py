"""schemathesis over the OpenAPI document: no request gets a 5xx, no answer breaks its schema.

Runs against one in-process node (the node's tree over a MemoryBackend), alternately
without a token (a stranger) and with the operator's, each run the examples, coverage
and fuzzing phases within `RUN_SECONDS` (fuzzing repeats until the time is spent), until
`GOLEM_API_FUZZ_CASES` cases were generated in all (default 3000, about 90 s here; at
least one run of each identity). `GOLEM_API_FUZZ_CASES=10000` is the run at scale.
schemathesis keeps the ids it sees in answers and uses them in later requests, so stops,
starts and deletes reach real VMs. The number of cases of each run is printed (`-s`).

The client's timeout is above every bound the node itself puts on an answer (a
synchronous create waits up to `launch_timeout + 30` s for SSH, a stop or delete up to
120 s), so a slow answer under load is judged by what it says, not cut by the client.
When a run fails, the node's own warnings and errors and its slowest requests (from its
JSON log) are shown with schemathesis's report.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import trio

from golem_actor.domain.resources import Resources
from golem_actor.logs import configure_logging

sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))  # the shared in-process harness
from lifecycle_harness import OPERATOR_TOKEN, running_api

# Room for anything the schema allows, so that refusals are the client's fault (4xx);
# a full node's 503 is by design and tested elsewhere.
ROOMY = Resources.from_gb(cpus=100_000, memory_gb=10_000_000, storage_gb=100_000_000)

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
CASES = int(os.environ.get("GOLEM_API_FUZZ_CASES", "3000"))
RUN_SECONDS = 40
REQUEST_TIMEOUT = 150  # s: above the node's longest bound on an answer (120 s)
_GENERATED = re.compile(r"Test cases:\s+(\d+) generated")


class _Discard(io.StringIO):
    def write(self, text: str) -> int:
        return len(text)


def _node_notes(log: Path) -> str:
    """The node's warnings and errors, and its ten slowest requests, from its JSON log."""
    notable, requests = [], []
    for line in log.read_text(errors="replace").splitlines():
        try:
            event: dict[str, Any] = json.loads(line)
        except ValueError:
            continue
        if event.get("level") in ("warning", "error", "critical"):
            notable.append(line)
        if event.get("event") == "request":
            requests.append((event.get("ms", 0.0), line))
    slowest = [line for _, line in sorted(requests)[-10:]]
    return "\n".join(["node warnings/errors:", *notable[-30:], "slowest requests:", *slowest])


async def test_no_generated_request_gets_a_server_error_or_breaks_its_schema(
    tmp_path: Path,
) -> None:
    log = tmp_path / "node.log"
    configure_logging(fmt="json", level="info", stream=_Discard(), file=log)  # to the file only
    generated = await _fuzz(tmp_path, log)
    print(f"api fuzz: {sum(generated)} cases in {len(generated)} runs, none failed")
    assert sum(generated) >= CASES


async def _fuzz(tmp_path: Path, log: Path) -> list[int]:
    """Runs, alternating identities, until `CASES` cases; the cases of each run."""
    # Rate limits high enough that the fuzzer reaches the routes (they are tested elsewhere).
    unlimited: dict[str, Any] = {
        "api_rate_read_burst": 1_000_000,
        "api_rate_write_burst": 1_000_000,
    }
    ports = max(400, CASES // 10)  # every VM the fuzzer makes keeps its port
    generated: list[int] = []
    identities = itertools.cycle(
        [
            ("stranger", []),
            ("operator", ["--header", f"Authorization: Bearer {OPERATOR_TOKEN}"]),
        ]
    )
    async with running_api(
        tmp_path / "data", host=ROOMY, max_vms=10 * ports, ports=ports, **unlimited
    ) as node:
        while sum(generated) < CASES or len(generated) < 2:
            who, headers = next(identities)
            result = await trio.run_process(
                [
                    SCHEMATHESIS,
                    "run",
                    f"{node.url}/openapi.json",
                    "--checks",
                    "not_a_server_error,response_schema_conformance",
                    "--phases",
                    "examples,coverage,fuzzing",
                    "--workers",
                    "1",
                    "--max-time",
                    str(RUN_SECONDS),
                    "--generation-database",
                    "none",  # nothing kept between runs (nor written into the checkout)
                    "--request-timeout",
                    str(REQUEST_TIMEOUT),
                    "--exclude-path",
                    "/api/v1/admin/shutdown",
                    "--suppress-health-check",
                    "all",
                    *headers,
                ],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
            output = result.stdout.decode(errors="replace")
            assert result.returncode == 0, "\n".join(
                [output[-6000:], result.stderr.decode()[-2000:], _node_notes(log)]
            )
            counted = _GENERATED.search(output)
            assert counted is not None, output[-2000:]
            generated.append(int(counted.group(1)))
            print(f"api fuzz ({who}): {counted.group(1)} cases, no failure")
    return generated
