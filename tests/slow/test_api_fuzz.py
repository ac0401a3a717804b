"""A bounded schemathesis run against the OpenAPI document: no request may cause a 5xx."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import trio

from golem_actor.domain.resources import Resources

sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))  # the shared in-process harness
from lifecycle_harness import OPERATOR_TOKEN, running_api

# Room for anything the schema allows, so that refusals are the client's fault (4xx);
# a full node's 503 is by design and tested elsewhere.
ROOMY = Resources.from_gb(cpus=100_000, memory_gb=10_000_000, storage_gb=100_000_000)

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))


async def test_no_generated_request_gets_a_server_error(tmp_path: Path) -> None:
    # Rate limits high enough that the fuzzer reaches the routes (they are tested elsewhere).
    unlimited: dict[str, Any] = {
        "api_rate_read_burst": 1_000_000,
        "api_rate_write_burst": 1_000_000,
    }
    async with running_api(tmp_path, host=ROOMY, max_vms=1000, ports=400, **unlimited) as node:
        for headers in ([], ["--header", f"Authorization: Bearer {OPERATOR_TOKEN}"]):
            result = await trio.run_process(
                [
                    SCHEMATHESIS,
                    "run",
                    f"{node.url}/openapi.json",
                    "--checks",
                    "not_a_server_error",
                    "--phases",
                    "examples,coverage,fuzzing",
                    "--max-examples",
                    "40",
                    "--workers",
                    "1",
                    "--max-time",
                    "45",
                    "--request-timeout",
                    "30",
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
            assert result.returncode == 0, output[-4000:] + result.stderr.decode()[-2000:]
