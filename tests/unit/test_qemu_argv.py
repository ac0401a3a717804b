from __future__ import annotations

from pathlib import Path

import pytest

from golem_actor.adapters.qemu import QemuSpec, qemu_argv, qemu_opt


def _spec(**overrides: object) -> QemuSpec:
    fields: dict[str, object] = {
        "cpus": 2,
        "memory_mib": 384,
        "kernel": Path("/img/vmlinux"),
        "initrd": Path("/img/initrd.cpio"),
        "append": "console=ttyS0 quiet",
        "seed": Path("/vm/seed.iso"),
        "ssh_port": 2222,
        "qmp_socket": Path("/vm/qmp.sock"),
        "pidfile": Path("/vm/qemu.pid"),
        "serial_log": Path("/vm/serial.log"),
    }
    fields.update(overrides)
    return QemuSpec(**fields)  # type: ignore[arg-type]


def _value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def _values(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_fast_tcg_defaults() -> None:
    argv = qemu_argv(_spec())
    assert argv[0] == "qemu-system-x86_64"
    assert _value(argv, "-accel") == "tcg"
    assert "-cpu" not in argv
    assert _value(argv, "-machine") == "pc,hpet=off"
    assert _value(argv, "-smp") == "2"
    assert _value(argv, "-m") == "384"
    for flag in ("-nodefaults", "-no-user-config", "-no-reboot"):
        assert flag in argv
    assert _value(argv, "-display") == "none"
    assert _value(argv, "-monitor") == "none"
    assert "-daemonize" not in argv


def test_direct_kernel_boot() -> None:
    argv = qemu_argv(_spec())
    assert _value(argv, "-kernel") == "/img/vmlinux"
    assert _value(argv, "-initrd") == "/img/initrd.cpio"
    assert _value(argv, "-append") == "console=ttyS0 quiet"


def test_user_network_forwards_ssh_on_loopback_only() -> None:
    argv = qemu_argv(_spec())
    assert _value(argv, "-netdev") == "user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22"
    devices = _values(argv, "-device")
    assert "virtio-net-pci,netdev=net0,romfile=" in devices
    assert "virtio-rng-pci" in devices


def test_no_port_forward_without_ssh_port() -> None:
    argv = qemu_argv(_spec(ssh_port=None))
    assert _value(argv, "-netdev") == "user,id=net0"


def test_seed_is_read_only_virtio_blk() -> None:
    argv = qemu_argv(_spec())
    assert _values(argv, "-drive") == ["file=/vm/seed.iso,if=none,id=seed0,format=raw,readonly=on"]
    assert "virtio-blk-pci,drive=seed0" in _values(argv, "-device")


def test_disk_comes_before_seed_so_it_is_vda() -> None:
    argv = qemu_argv(_spec(disk=Path("/vm/disk.qcow2")))
    drives = _values(argv, "-drive")
    assert drives[0] == "file=/vm/disk.qcow2,if=none,id=disk0,format=qcow2"
    assert drives[1].startswith("file=/vm/seed.iso,")
    blk = [d for d in _values(argv, "-device") if d.startswith("virtio-blk-pci")]
    assert blk == ["virtio-blk-pci,drive=disk0", "virtio-blk-pci,drive=seed0"]


def test_raw_disk_format() -> None:
    argv = qemu_argv(_spec(disk=Path("/vm/disk.img"), disk_format="raw"))
    assert _values(argv, "-drive")[0].endswith(",format=raw")


def test_qmp_serial_and_pidfile() -> None:
    argv = qemu_argv(_spec())
    chardevs = _values(argv, "-chardev")
    assert "file,id=serial0,path=/vm/serial.log" in chardevs
    assert "socket,id=qmp0,path=/vm/qmp.sock,server=on,wait=off" in chardevs
    assert _value(argv, "-serial") == "chardev:serial0"
    assert _value(argv, "-mon") == "chardev=qmp0,mode=control"
    assert _value(argv, "-pidfile") == "/vm/qemu.pid"


def test_without_serial_log_there_is_no_serial_port() -> None:
    argv = qemu_argv(_spec(serial_log=None))
    assert "-serial" not in argv
    assert all(not c.startswith("file,") for c in _values(argv, "-chardev"))


def test_daemonize() -> None:
    assert "-daemonize" in qemu_argv(_spec(daemonize=True))


def test_sandbox_denies_everything_optional() -> None:
    assert "-sandbox" not in qemu_argv(_spec())
    argv = qemu_argv(_spec(sandbox=True))
    assert _value(argv, "-sandbox") == (
        "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
    )


def test_forward_address_and_restricted_user_networking() -> None:
    assert _value(qemu_argv(_spec()), "-netdev") == "user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22"
    argv = qemu_argv(_spec(ssh_bind="", restrict=True))
    assert _value(argv, "-netdev") == "user,id=net0,restrict=on,hostfwd=tcp::2222-:22"


def test_kvm_uses_host_cpu() -> None:
    argv = qemu_argv(_spec(accel="kvm"))
    assert _value(argv, "-accel") == "kvm"
    assert _value(argv, "-cpu") == "host"


def test_name_and_binary() -> None:
    argv = qemu_argv(_spec(name="vm-1", binary="/opt/qemu/bin/qemu-system-x86_64"))
    assert argv[0] == "/opt/qemu/bin/qemu-system-x86_64"
    assert _value(argv, "-name") == "vm-1"


def test_commas_in_paths_are_escaped() -> None:
    assert qemu_opt("/a,b/c") == "/a,,b/c"
    argv = qemu_argv(_spec(seed=Path("/v,m/seed.iso"), qmp_socket=Path("/v,m/q.sock")))
    assert _values(argv, "-drive")[0].startswith("file=/v,,m/seed.iso,if=none")
    assert "socket,id=qmp0,path=/v,,m/q.sock,server=on,wait=off" in _values(argv, "-chardev")


def test_disk_only_boot() -> None:
    argv = qemu_argv(_spec(kernel=None, initrd=None, append="", disk=Path("/vm/d.qcow2")))
    assert "-kernel" not in argv
    assert "-initrd" not in argv
    assert "-append" not in argv


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"cpus": 0}, "cpus"),
        ({"memory_mib": 8}, "memory_mib"),
        ({"ssh_port": 70000}, "ssh_port"),
        ({"kernel": None}, "kernel"),
        ({"kernel": None, "initrd": None, "append": ""}, "nothing to boot"),
        ({"daemonize": True, "pidfile": None}, "pidfile"),
        ({"daemonize": True, "sandbox": True}, "daemonize"),
    ],
)
def test_invalid_specs_are_rejected(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _spec(**overrides)


def test_spec_is_frozen() -> None:
    spec = _spec()
    with pytest.raises(AttributeError):
        spec.cpus = 4  # type: ignore[misc]


def test_vpn_nic_is_a_second_virtio_net_over_datagram_socket_paths() -> None:
    argv = qemu_argv(_spec(vpn_mac="92:13:01:02:03:04", vpn_remote=Path("a,b.sock")))
    netdevs = [argv[i + 1] for i, a in enumerate(argv) if a == "-netdev"]
    assert netdevs[1] == (
        "dgram,id=vpn0,local.type=unix,local.path=vpn.sock,remote.type=unix,remote.path=a,,b.sock"
    )
    devices = [argv[i + 1] for i, a in enumerate(argv) if a == "-device"]
    nics = [d for d in devices if d.startswith("virtio-net-pci")]
    assert nics[0].startswith("virtio-net-pci,netdev=net0")  # eth0 stays user networking
    assert nics[1] == (
        "virtio-net-pci,netdev=vpn0,mac=92:13:01:02:03:04,host_mtu=1220,addr=0x9,romfile="
    )
    assert "vpn0" not in " ".join(qemu_argv(_spec()))
