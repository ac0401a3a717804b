"""Unit tests of the reader of `multipass info/list --format json` (no processes)."""

from __future__ import annotations

import pytest

from golem_actor.adapters.backend import BackendError, BackendState, Endpoint, Observed
from golem_actor.adapters.multipass import STATES, backend_state
from golem_actor.adapters.multipass._info import (
    first_ipv4,
    observe_info,
    observed,
    parse_info,
    parse_list,
)
from golem_actor.domain.resources import Resources

NAME = "golem-3fa9c1-a1b2c3"

# multipass 1.8-style: every size a string, "" while the instance does not run
LEGACY_RUNNING = b"""{
    "errors": [
    ],
    "info": {
        "golem-3fa9c1-a1b2c3": {
            "cpu_count": "2",
            "disks": {
                "sda1": {
                    "total": "10331889664",
                    "used": "1881870336"
                }
            },
            "image_hash": "a0d5ac4e2a9a0bde0b6b08fcb1a0dd0ec45e4fa8e9f0f3ae2a6d1b18df1c3e8f",
            "image_release": "24.04 LTS",
            "ipv4": [
                "10.196.32.42"
            ],
            "load": [0.31, 0.1, 0.03],
            "memory": {
                "total": "2036727808",
                "used": "282742784"
            },
            "mounts": {
            },
            "release": "Ubuntu 24.04.1 LTS",
            "state": "Running"
        }
    }
}
"""

LEGACY_STOPPED = b"""{
    "errors": [],
    "info": {
        "golem-3fa9c1-a1b2c3": {
            "cpu_count": "",
            "disks": {"sda1": {"total": "", "used": ""}},
            "image_hash": "a0d5ac4e2a9a0bde0b6b08fcb1a0dd0ec45e4fa8e9f0f3ae2a6d1b18df1c3e8f",
            "image_release": "24.04 LTS",
            "ipv4": [],
            "load": [],
            "memory": {"total": "", "used": ""},
            "mounts": {},
            "release": "",
            "state": "Stopped"
        }
    }
}
"""

# multipass 1.13+: memory sizes are numbers, unknown sizes are left out
CURRENT_RUNNING = b"""{
    "errors": [],
    "info": {
        "golem-3fa9c1-a1b2c3": {
            "cpu_count": "4",
            "disks": {"sda1": {"total": "20629221376", "used": "2034012160"}},
            "image_hash": "f2b3c4d5",
            "image_release": "22.04 LTS",
            "ipv4": ["10.196.32.43", "172.17.0.1"],
            "load": [0.02, 0.05, 0.01],
            "memory": {"total": 4105379840, "used": 312774656},
            "mounts": {},
            "release": "Ubuntu 22.04.5 LTS",
            "snapshot_count": "0",
            "state": "Running"
        }
    }
}
"""

CURRENT_STOPPED = b"""{
    "errors": [],
    "info": {
        "golem-3fa9c1-a1b2c3": {
            "cpu_count": "4",
            "disks": {"sda1": {}},
            "image_hash": "f2b3c4d5",
            "image_release": "22.04 LTS",
            "ipv4": [],
            "load": [],
            "memory": {},
            "mounts": {},
            "release": "",
            "snapshot_count": "0",
            "state": "Stopped"
        }
    }
}
"""

LIST = b"""{
    "list": [
        {"ipv4": ["10.196.32.42"], "name": "golem-3fa9c1-a1b2c3", "release": "Ubuntu 24.04 LTS",
         "state": "Running"},
        {"ipv4": [], "name": "my-dev-box", "release": "Not Available", "state": "Stopped"},
        {"ipv4": [], "name": "golem-3fa9c1-d4e5f6", "release": "Not Available",
         "state": "Delayed Shutdown"}
    ]
}
"""


def test_running_instance_legacy_shape() -> None:
    got = observe_info("a1b2c3", parse_info(LEGACY_RUNNING, NAME))
    assert got == Observed(
        vm_id="a1b2c3",
        state=BackendState.RUNNING,
        ssh=Endpoint("10.196.32.42", 22),
        ip_address="10.196.32.42",
        # 2036727808 B = 1942.4 MiB; 10331889664 B = 9.62 GiB
        resources=Resources(cpus=2, memory_mib=1942, storage_gib=10),
    )


def test_stopped_instance_legacy_shape_has_no_sizes_and_no_address() -> None:
    got = observe_info("a1b2c3", parse_info(LEGACY_STOPPED, NAME))
    assert got == Observed(vm_id="a1b2c3", state=BackendState.STOPPED)


def test_running_instance_current_shape() -> None:
    got = observe_info("a1b2c3", parse_info(CURRENT_RUNNING, NAME))
    assert got.state is BackendState.RUNNING
    assert got.ssh == Endpoint("10.196.32.43", 22)  # the first address is the VM's own
    assert got.resources == Resources(cpus=4, memory_mib=3915, storage_gib=19)


def test_stopped_instance_current_shape() -> None:
    info = parse_info(CURRENT_STOPPED, NAME)
    assert info.cpu_count == "4"
    assert observe_info("a1b2c3", info) == Observed(vm_id="a1b2c3", state=BackendState.STOPPED)


def test_disks_are_summed_and_unreadable_sizes_are_unknown() -> None:
    raw = b"""{"info": {"x": {"state": "Running", "cpu_count": 1, "ipv4": ["10.0.0.9"],
        "memory": {"total": 1073741824.0},
        "disks": {"sda1": {"total": "5368709120"}, "sdb": {"total": 5368709120}}}}}"""
    assert observe_info("x", parse_info(raw, "x")).resources == Resources(
        cpus=1, memory_mib=1024, storage_gib=10
    )
    for broken in (
        b'"cpu_count": "n/a", "memory": {"total": "1"}, "disks": {"a": {"total": "1"}}',
        b'"cpu_count": "1", "memory": {"total": "-5"}, "disks": {"a": {"total": "1"}}',
        b'"cpu_count": "1", "memory": {"total": "1"}, "disks": {}',
        b'"cpu_count": "1", "memory": {"total": "1"}, "disks": {"a": {"total": "1"}, "b": {}}',
        b'"cpu_count": "1", "memory": {"total": "NaN"}, "disks": {"a": {"total": "1"}}',
    ):
        raw = b'{"info": {"x": {"state": "Running", ' + broken + b"}}}"
        assert observe_info("x", parse_info(raw, "x")).resources is None, broken


def test_running_without_an_address_has_no_endpoint() -> None:
    raw = b'{"errors": [], "info": {"x": {"state": "Running", "ipv4": []}}}'
    got = observe_info("x", parse_info(raw, "x"))
    assert got.state is BackendState.RUNNING
    assert got.ssh is None
    assert got.ip_address is None


def test_addresses_are_checked() -> None:
    assert first_ipv4(["fe80::1", "N/A", " 10.1.2.3 ", "10.1.2.4"]) == "10.1.2.3"
    assert first_ipv4(["999.1.1.1", "10.1.2"]) is None
    assert first_ipv4([]) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Running", BackendState.RUNNING),
        ("Stopped", BackendState.STOPPED),
        ("Starting", BackendState.STARTING),
        ("Restarting", BackendState.STARTING),
        ("Delayed Shutdown", BackendState.STOPPING),
        ("Suspending", BackendState.STOPPING),
        ("Suspended", BackendState.SUSPENDED),
        ("Deleted", BackendState.MISSING),
        ("Unknown", BackendState.UNKNOWN),
        ("running", BackendState.RUNNING),
        (" Delayed  shutdown ", BackendState.STOPPING),
        ("Hibernating", BackendState.UNKNOWN),
        ("", BackendState.UNKNOWN),
    ],
)
def test_state_mapping(text: str, expected: BackendState) -> None:
    assert backend_state(text) is expected


def test_the_state_table_covers_every_multipass_state() -> None:
    multipass_states = {
        "Running", "Stopped", "Starting", "Restarting", "Delayed Shutdown",
        "Suspending", "Suspended", "Deleted", "Unknown",
    }  # fmt: skip
    assert {s.lower() for s in multipass_states} == set(STATES)


def test_a_deleted_instance_is_missing_whatever_it_reports() -> None:
    got = observed("x", "Deleted", ["10.0.0.1"])
    assert got == Observed(vm_id="x", state=BackendState.MISSING)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"info failed: cannot connect to the multipass socket",
        b'{"errors": [], "info": {"golem-3fa9c1-a1b2c3": {',
        b'{"errors": []}',
        b'{"info": {"golem-3fa9c1-a1b2c3": {"ipv4": []}}}',
        b'{"info": {"golem-3fa9c1-a1b2c3": {"state": "Running", "ipv4": "10.0.0.1"}}}',
        b'{"info": {"another": {"state": "Running"}}}',
    ],
)
def test_unreadable_info_is_a_backend_error(raw: bytes) -> None:
    with pytest.raises(BackendError, match=NAME):
        parse_info(raw, NAME)


def test_list() -> None:
    entries = parse_list(LIST)
    assert [e.name for e in entries] == ["golem-3fa9c1-a1b2c3", "my-dev-box", "golem-3fa9c1-d4e5f6"]
    first, _, third = (observed(e.name, e.state, e.ipv4) for e in entries)
    assert first.ssh == Endpoint("10.196.32.42", 22)
    assert third.state is BackendState.STOPPING
    with pytest.raises(BackendError, match="multipass list"):
        parse_list(b'{"list": {}}')
