"""A guest reaches nothing on the host's loopback, and goes out only when allowed.

The scenario (``isolation_scenario.py``) runs under ``unshare --net`` in a namespace this
test creates: loopback plus an uplink with an address and a default route that leads
nowhere, so no packet leaves the machine. It boots the real test guest through
``QemuBackend`` with ``VM_OUTBOUND=nat`` and then ``none`` and has it connect, over SSH
through the backend's forwarded port, to every address that could lead to listeners
on the namespace's 127.0.0.1, 127.0.0.2 and ::1: slirp's gateway and DNS address (IPv4
and IPv6), pasta's gateway, the namespace's own addresses, the uplink, and 127.x itself
through a route the guest's root sets up. Two boots of the test guest (TCG). Needs root
(``unshare``), as the QEMU e2e tests do in CI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from golem_actor.adapters.guest import GuestImage

pytestmark = pytest.mark.e2e

SCENARIO = Path(__file__).with_name("isolation_scenario.py")
UPLINK_SERVICE = "198.51.100.2:9003"


@pytest.fixture
def work_dir() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="giso-", dir="/tmp"))  # short: QMP socket paths
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_scenario(guest: GuestImage, work: Path, keypair: tuple[Path, str]) -> dict[str, Any]:
    key, public_key = keypair
    public = work / "key.pub"
    public.write_text(public_key + "\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    argv = [
        "unshare", "--net", "--", sys.executable, str(SCENARIO),
        str(guest.kernel.parent.parent), str(work), str(public), str(key),
    ]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env, check=False)
    print(result.stderr[-4000:])
    assert result.returncode == 0, result.stderr[-4000:]
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def answered(answers: dict[str, str]) -> dict[str, str]:
    return {target: text for target, text in answers.items() if "HELLO-" in text}


def test_guests_reach_no_host_loopback_and_go_out_only_with_nat(
    test_guest: GuestImage, ssh_keypair: tuple[Path, str], work_dir: Path
) -> None:
    result = run_scenario(test_guest, work_dir, ssh_keypair)
    print(json.dumps(result, indent=1))

    # the listeners work: from inside the namespace each answers with its name
    assert all(text.startswith("HELLO-") for text in result["self_check"].values())
    assert len(result["self_check"]) == 5

    nat, none = result["nat"], result["none"]
    # every address x every port was probed (the answers are the guest's), the uplink's
    # service on its own
    assert len(nat["probes"]) == 8 * 6 + 4 - 1
    # with NAT: the uplink's service and nothing else
    assert answered(nat["probes"]) == {}
    assert answered(nat["outbound"]) == {UPLINK_SERVICE: "HELLO-service-on-uplink"}
    # a guest routing 127.0.0.0/8 out of its NIC finds only QEMU's empty namespace
    assert "via 10.0.2.2 dev eth0" in nat["crafted_route"]
    assert len(nat["crafted"]) == 3
    assert answered(nat["crafted"]) == {}

    # VM_OUTBOUND=none: nothing at all, SSH in still worked
    assert len(none["probes"]) == 8 * 6 + 4 - 1
    assert answered(none["probes"]) == {}
    assert list(none["outbound"]) == [UPLINK_SERVICE]
    assert answered(none["outbound"]) == {}
    assert answered(none["crafted"]) == {}
