"""The VM user, the VM directory's ownership, and pasta's command line, without a guest."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from golem_actor.adapters.backend_check import guest_network_problem
from golem_actor.adapters.qemu import _network, _sandbox


def test_link_into_shares_the_file_and_replaces_an_old_link(tmp_path: Path) -> None:
    cache, vm = tmp_path / "cache", tmp_path / "vm"
    cache.mkdir()
    vm.mkdir()
    (cache / "vmlinux").write_bytes(b"kernel v1")
    assert _sandbox.link_into(vm, "vmlinux", cache / "vmlinux") == "vmlinux"
    assert (vm / "vmlinux").stat().st_ino == (cache / "vmlinux").stat().st_ino
    (cache / "vmlinux2").write_bytes(b"kernel v2")
    _sandbox.link_into(vm, "vmlinux", cache / "vmlinux2")
    assert (vm / "vmlinux").read_bytes() == b"kernel v2"


def test_own_vm_dir_hands_over_its_files_but_not_the_cache(tmp_path: Path) -> None:
    vm = tmp_path / "vm"
    vm.mkdir(mode=0o755)
    (vm / "disk.qcow2").write_bytes(b"disk")
    (tmp_path / "vmlinux").write_bytes(b"kernel")
    os.link(tmp_path / "vmlinux", vm / "vmlinux")
    root = os.geteuid() == 0
    target = 65534 if root else os.getuid()  # nobody, or ourselves without root
    runas = _sandbox.RunAs(name="nobody", uid=target, gid=target, groups=())
    _sandbox.own_vm_dir(vm, runas)
    assert stat.S_IMODE(vm.stat().st_mode) == 0o700
    assert vm.stat().st_uid == target
    assert (vm / "disk.qcow2").stat().st_uid == target
    assert (vm / "vmlinux").stat().st_uid == os.getuid()  # the cache's copy is untouched
    _sandbox.own_vm_dir(vm, None)  # no user switch: only the mode
    assert stat.S_IMODE(vm.stat().st_mode) == 0o700


def test_the_vm_user_is_created_with_useradd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = tmp_path / "calls"
    useradd = tmp_path / "useradd"
    useradd.write_text(f'#!/bin/sh\necho "$@" > {calls}\necho "useradd: no" >&2\nexit 9\n')
    useradd.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    with pytest.raises(Exception, match="useradd exit 9: useradd: no"):
        _sandbox._create_user("golem-vm-test-nobody-has-this")
    args = calls.read_text().split()
    assert args[-1] == "golem-vm-test-nobody-has-this"
    assert "--system" in args
    assert args[args.index("--shell") + 1] == "/usr/sbin/nologin"


def test_pasta_forwards_only_loopback_and_never_maps_the_host() -> None:
    argv = _network.pasta_argv(qemu_pid=1234, host_port=50000, outbound="nat")
    pairs = dict(zip(argv, [*argv[1:], ""], strict=True))
    assert pairs["--tcp-ports"] == f"127.0.0.1/50000:{_network.NS_SSH_PORT}"
    assert pairs["--udp-ports"] == "none"
    assert pairs["--tcp-ns"] == "none"  # the namespace's loopback never reaches the host's
    assert pairs["--udp-ns"] == "none"
    assert pairs["--netns"] == "/proc/1234/ns/net"
    assert pairs["--userns"] == "/proc/1234/ns/user"
    assert "--no-map-gw" in argv
    assert "--ipv4-only" in argv
    assert "--no-udp" not in argv
    closed = _network.pasta_argv(qemu_pid=1234, host_port=50000, outbound="none")
    assert {"--no-udp", "--no-icmp"} <= set(closed)


def test_a_pasta_record_matches_only_its_process(tmp_path: Path) -> None:
    record = tmp_path / "pasta.json"
    _network.record_pasta(record, os.getpid(), 1)
    assert _network.live_pasta(record) == os.getpid()
    record.write_text(json.dumps({"pid": os.getpid(), "started": 1.0, "qemu_pid": 1}))
    assert _network.live_pasta(record) is None  # same pid, another start time
    assert _network.live_pasta(tmp_path / "missing.json") is None


def test_without_root_guests_run_as_the_node_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert _sandbox.vm_user("golem-vm") is None


def test_the_status_check_names_what_guest_networking_lacks(tmp_path: Path) -> None:
    tun = tmp_path / "tun"
    tun.write_bytes(b"")
    pasta = tmp_path / "pasta"
    pasta.write_text("#!/bin/sh\n")
    pasta.chmod(0o755)
    assert "passt" in str(guest_network_problem(str(tmp_path / "no-pasta"), tun))
    assert "missing" in str(guest_network_problem(str(pasta), tmp_path / "no-tun"))
    tun.chmod(0o666)
    assert guest_network_problem(str(pasta), tun) is None
    tun.chmod(0o600)
    if os.geteuid() == 0:  # the VM user is another user: 0600 of root is not enough
        assert "chmod 0666" in str(guest_network_problem(str(pasta), tun))
