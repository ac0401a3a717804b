"""Pure QEMU command-line builder: a frozen spec in, an argv list out.

Why a pure function: every VM the node launches (the tiny test guest and real cloud
images alike) goes through this one place, so the flags that make TCG guests boot fast
are decided once and unit-tested without starting QEMU.  The choices, measured on a
KVM-less 2-core Debian 12 host (QEMU 7.2), are:

* ``-machine pc,hpet=off``: the ``pc`` machine boots ~0.2 s faster than ``q35`` under TCG
  and, unlike ``q35`` with ``pci=noacpi``, still delivers ``system_powerdown`` to the guest.
* ``-nodefaults -no-user-config -display none``: no VGA, no default NIC, no floppy/CD, no
  host config files; only the devices listed here exist.
* ``-no-reboot``: a guest reboot or poweroff ends the QEMU process, so "the process exited"
  means "the VM stopped".
* virtio-net with ``romfile=`` (no iPXE option ROM to load and scan) on user networking,
  with the SSH port forwarded from ``ssh_bind`` (127.0.0.1 unless the caller runs QEMU in
  a network namespace of its own, see ``_network``); ``restrict=on`` when the guest may
  open no connection of its own (forwarded ports still work).
* ``-sandbox on,...`` (QEMU's seccomp filter, with every optional deny set) for the VMs
  the node runs: a guest that escapes into QEMU cannot exec, fork, setuid or change
  resource limits. It kills ``-daemonize`` (a fork), so the two exclude each other.
* a second virtio-net, the VPN NIC (``vpn_mac`` given): ``-netdev dgram`` between two
  unix socket paths, QEMU's ``vpn_local`` and the vpn_router's ``vpn_remote``, one
  Ethernet frame per datagram (guest-vm.md §5); connectionless, so the router may bind
  its end late or again after a restart. ``host_mtu`` tells the guest the VPN MTU. It
  sits in PCI slot ``VPN_NIC_SLOT`` (after the user NIC, so it is ``eth1`` in the test
  guest), which images match to configure it apart (``pci-0000:00:09.0``).
* ``virtio-rng-pci``: without an entropy source the guest waits ~1 s for crng init before
  it can generate its SSH host key.
* disks on virtio-blk: the data disk first (it becomes ``/dev/vda``), then the read-only
  NoCloud seed (cloud-init and our test guest find it by its ``cidata`` label).
* chardevs are spelled with ``-chardev`` so that paths go through QEMU's option parser
  with commas escaped (``,`` -> ``,,``) instead of through legacy ``file:``/``unix:`` syntax.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import msgspec

Accel = Literal["tcg", "kvm"]
DiskFormat = Literal["qcow2", "raw"]
SANDBOX = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
VPN_NIC_SLOT = 9  # the VPN NIC's PCI slot: images find it there (udev ID_PATH)
VPN_NETDEV = "vpn0"  # the VPN NIC's netdev: QMP `set_link` names it


class QemuSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Everything that decides a VM's QEMU command line."""

    cpus: int
    memory_mib: int
    qmp_socket: Path
    kernel: Path | None = None
    initrd: Path | None = None
    append: str = ""
    seed: Path | None = None
    disk: Path | None = None
    disk_format: DiskFormat = "qcow2"
    ssh_port: int | None = None
    """Port on ``ssh_bind`` forwarded to the guest's port 22 (user networking)."""
    ssh_bind: str = "127.0.0.1"
    """Address the forward listens on; "" means every address (of QEMU's own netns)."""
    restrict: bool = False
    """No connection out of the guest through user networking (forwards still work)."""
    sandbox: bool = False
    pidfile: Path | None = None
    serial_log: Path | None = None
    accel: Accel = "tcg"
    daemonize: bool = False
    name: str | None = None
    binary: str = "qemu-system-x86_64"
    vpn_mac: str | None = None
    """The VPN NIC's MAC (``aa:bb:...``); None: no VPN NIC."""
    vpn_local: Path = Path("vpn.sock")
    vpn_remote: Path = Path("vpn-router.sock")
    vpn_mtu: int = 1220

    def __post_init__(self) -> None:
        if self.cpus < 1:
            raise ValueError(f"cpus must be >= 1, got {self.cpus}")
        if self.memory_mib < 16:
            raise ValueError(f"memory_mib must be >= 16, got {self.memory_mib}")
        if self.ssh_port is not None and not 1 <= self.ssh_port <= 65535:
            raise ValueError(f"ssh_port out of range: {self.ssh_port}")
        if self.kernel is None and (self.initrd is not None or self.append):
            raise ValueError("initrd/append need a kernel")
        if self.kernel is None and self.disk is None:
            raise ValueError("nothing to boot: give a kernel or a disk")
        if self.daemonize and self.pidfile is None:
            raise ValueError("daemonize needs a pidfile (the parent exits at once)")
        if self.daemonize and self.sandbox:
            raise ValueError("the sandbox (spawn=deny) kills -daemonize's fork")


def qemu_opt(value: str | Path) -> str:
    """Escape a value for QEMU's ``key=value,...`` option syntax (commas are doubled)."""
    return str(value).replace(",", ",,")


def qemu_argv(spec: QemuSpec) -> list[str]:
    """The full argv (binary first) for ``spec``."""
    argv: list[str] = [spec.binary]
    if spec.name is not None:
        argv += ["-name", qemu_opt(spec.name)]
    if spec.sandbox:
        argv += ["-sandbox", SANDBOX]
    argv += ["-accel", spec.accel]
    if spec.accel == "kvm":
        argv += ["-cpu", "host"]
    argv += [
        "-machine",
        "pc,hpet=off",
        "-smp",
        str(spec.cpus),
        "-m",
        str(spec.memory_mib),
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
    ]
    if spec.kernel is not None:
        argv += ["-kernel", str(spec.kernel)]
        if spec.initrd is not None:
            argv += ["-initrd", str(spec.initrd)]
        if spec.append:
            argv += ["-append", spec.append]
    if spec.serial_log is not None:
        argv += [
            "-chardev",
            f"file,id=serial0,path={qemu_opt(spec.serial_log)}",
            "-serial",
            "chardev:serial0",
        ]
    argv += [
        "-monitor",
        "none",
        "-chardev",
        f"socket,id=qmp0,path={qemu_opt(spec.qmp_socket)},server=on,wait=off",
        "-mon",
        "chardev=qmp0,mode=control",
    ]
    if spec.pidfile is not None:
        argv += ["-pidfile", str(spec.pidfile)]
    if spec.daemonize:
        argv.append("-daemonize")
    netdev = "user,id=net0"
    if spec.restrict:
        netdev += ",restrict=on"
    if spec.ssh_port is not None:
        netdev += f",hostfwd=tcp:{spec.ssh_bind}:{spec.ssh_port}-:22"
    argv += [
        "-netdev",
        netdev,
        "-device",
        "virtio-net-pci,netdev=net0,romfile=",
    ]
    if spec.vpn_mac is not None:
        argv += [
            "-netdev",
            f"dgram,id={VPN_NETDEV},local.type=unix,local.path={qemu_opt(spec.vpn_local)}"
            f",remote.type=unix,remote.path={qemu_opt(spec.vpn_remote)}",
            "-device",
            f"virtio-net-pci,netdev={VPN_NETDEV},mac={spec.vpn_mac},host_mtu={spec.vpn_mtu}"
            f",addr={VPN_NIC_SLOT:#x},romfile=",
        ]
    argv += ["-device", "virtio-rng-pci"]
    if spec.disk is not None:
        argv += [
            "-drive",
            f"file={qemu_opt(spec.disk)},if=none,id=disk0,format={spec.disk_format}",
            "-device",
            "virtio-blk-pci,drive=disk0",
        ]
    if spec.seed is not None:
        argv += [
            "-drive",
            f"file={qemu_opt(spec.seed)},if=none,id=seed0,format=raw,readonly=on",
            "-device",
            "virtio-blk-pci,drive=seed0",
        ]
    return argv
