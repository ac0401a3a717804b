"""What the ``debian-12`` image is made of, as data: packages, files, hooks, argv, cmdline.

Why pure data: the build is slow (a minute of downloads and dpkg) and needs root and the
Debian mirror, so everything that decides the image is computed here without IO and
unit-tested; the builder only runs it. The version of an image is a hash of this plan,
so editing any of it makes the next use rebuild.

Choices (measured on a KVM-less 2-core host, QEMU TCG):

* **mmdebstrap, variant ``apt``** (essential packages + apt) plus the packages a rented
  machine needs. Debian's *cloud* kernel: smaller than the generic one (no drivers for
  real hardware) and its bzImage is LZ4-compressed, so decompressing it is cheap.
* **Direct kernel boot** (``-kernel``/``-initrd`` taken from the image's ``/boot``,
  ``root=/dev/vda``): no bootloader, no partition table. The root filesystem is ext4 on
  the whole disk, so cloud-init's ``resizefs`` grows it online to the disk's size at
  first boot (``growpart`` has no partition to grow and skips). The bzImage is booted as is:
  its LZ4 payload decompresses fast, and booting the uncompressed ``vmlinux`` through PVH
  (as the test guest does) saved only ~0.8 s of kernel time out of a ~40 s boot to SSH,
  nearly all of which is systemd and cloud-init's Python under TCG.
* **initramfs with a fixed module list** (``MODULES=list``: virtio PCI + block): the
  default ``most`` would pack every storage driver into a much larger initrd that the
  guest must decompress under TCG. Written before the kernel is installed (setup hook),
  so the kernel's postinst builds the small one once.
* **The real cloud-init**, restricted to the NoCloud datasource (no probing of cloud
  metadata services), with only the modules a NoCloud VM uses (no locale generation,
  no grub, no snap) and only ed25519/ecdsa host keys (RSA generation is slow under TCG).
  Its network rendering is off: a systemd-networkd unit does DHCP on every Ethernet link,
  which works on whatever network the node gives the VM; systemd-resolved does DNS. The
  Golem VPN NIC (PCI slot 9, see ``qemu._argv``) has a unit of its own: DHCP for its
  address and MTU only (no default route, no DNS), never required for "online" (a VM in
  no network would otherwise hold cloud-init back until networkd's wait times out).
* **No secrets baked in**: the SSH host keys the package generated and the machine-id are
  removed, so every VM gets its own at first boot.
"""

from __future__ import annotations

import hashlib
import shlex
from pathlib import Path

import msgspec

__all__ = [
    "APPEND",
    "DEBIAN_PACKAGES",
    "REVISION",
    "DebianPlan",
    "default_plan",
    "mmdebstrap_argv",
    "plan_version",
]

# Bump when the builder's Python logic changes the image in a way the plan does not show.
REVISION = 1
DEBIAN_PACKAGES = (
    "linux-image-cloud-amd64",
    "initramfs-tools",
    "systemd",
    "systemd-sysv",
    "systemd-resolved",
    "udev",
    "dbus",
    "openssh-server",
    "sudo",
    "cloud-init",
    "e2fsprogs",
    "iproute2",
    "iputils-ping",
    "netbase",
    "ca-certificates",
    "less",
)
# root on the whole first virtio disk; cryptomgr.notests and pci=noacpi each save
# ~0.2-0.3 s under TCG (the latter keeps ACPI power-button delivery on the pc machine).
APPEND = "console=ttyS0 root=/dev/vda rw quiet cryptomgr.notests pci=noacpi"

_INITRAMFS_CONF = "MODULES=list\nCOMPRESS=gzip\n"
_INITRAMFS_MODULES = "virtio_pci\nvirtio_blk\n"
_CLOUD_CFG = """\
# Written by golem-actor's image builder: the node hands every VM a NoCloud seed.
datasource_list: [ NoCloud, None ]
network: {config: disabled}
ssh_genkeytypes: [ed25519, ecdsa]
cloud_init_modules:
  - migrator
  - seed_random
  - bootcmd
  - write-files
  - growpart
  - resizefs
  - disk_setup
  - mounts
  - set_hostname
  - update_hostname
  - update_etc_hosts
  - users-groups
  - ssh
cloud_config_modules:
  - set-passwords
  - apt-configure
  - timezone
  - runcmd
cloud_final_modules:
  - package-update-upgrade-install
  - scripts-vendor
  - scripts-per-once
  - scripts-per-boot
  - scripts-per-instance
  - scripts-user
  - ssh-authkey-fingerprints
  - final-message
"""
_NETWORK_UNIT = """\
# Written by golem-actor's image builder: DHCP on every Ethernet link.
[Match]
Type=ether

[Network]
DHCP=ipv4
"""
_VPN_NETWORK_UNIT = """\
# Written by golem-actor's image builder: the Golem VPN NIC (PCI slot 9). The node's
# router answers DHCP once the VM joins a network; it gives no route out and no DNS.
[Match]
Path=pci-0000:00:09.0

[Link]
RequiredForOnline=no

[Network]
DHCP=ipv4
LinkLocalAddressing=no
IPv6AcceptRA=no
# The node bounces this link when the address it offers the VM changes (a join, a move,
# the last network left): drop the lease then, so the carrier's return starts DHCP over
# (systemd 252 keeps the lease across a carrier loss otherwise, until its renewal).
IgnoreCarrierLoss=no

[DHCPv4]
UseGateway=no
UseRoutes=no
UseDNS=no
UseNTP=no
UseHostname=no
UseDomains=no
UseMTU=yes
"""
_FSTAB = "/dev/vda / ext4 rw,errors=remount-ro 0 0\n"


class DebianPlan(msgspec.Struct, frozen=True, kw_only=True):
    """Everything that decides a Debian image's content."""

    suite: str
    packages: tuple[str, ...]
    append: str
    setup_files: dict[str, str]
    """Files in place before any package is installed (initramfs-tools reads them)."""
    files: dict[str, str]
    """Files written after all packages are installed (they win over packaged ones)."""
    enable_units: tuple[str, ...]
    mask_units: tuple[str, ...]
    """Units that only cost boot time in a VM (they compete for its one vCPU under TCG)."""
    remove_globs: tuple[str, ...]
    """Paths (globs, relative to the root) emptied of host- or build-specific secrets."""
    empty_files: tuple[str, ...]


def default_plan(suite: str = "bookworm") -> DebianPlan:
    return DebianPlan(
        suite=suite,
        packages=DEBIAN_PACKAGES,
        append=APPEND,
        setup_files={
            "etc/initramfs-tools/conf.d/golem": _INITRAMFS_CONF,
            "usr/share/initramfs-tools/modules.d/golem": _INITRAMFS_MODULES,
        },
        files={
            "etc/cloud/cloud.cfg.d/90-golem.cfg": _CLOUD_CFG,
            "etc/systemd/network/05-golem-vpn.network": _VPN_NETWORK_UNIT,
            "etc/systemd/network/10-golem.network": _NETWORK_UNIT,
            "etc/fstab": _FSTAB,
            "etc/hostname": "localhost\n",
        },
        enable_units=("systemd-networkd.service", "systemd-resolved.service"),
        # e2scrub_reap: ~12 s of CPU at every boot, for LVM snapshots a VM does not have
        mask_units=("e2scrub_reap.service", "e2scrub_all.timer"),
        remove_globs=("etc/ssh/ssh_host_*", "var/lib/dbus/machine-id"),
        empty_files=("etc/machine-id",),
    )


def plan_version(plan: DebianPlan) -> str:
    """``<REVISION>-<hash of the plan>``: names the cache directory of the image."""
    digest = hashlib.sha256(msgspec.json.encode(plan)).hexdigest()[:12]
    return f"{REVISION}-{digest}"


def _write_file_cmd(relative: str, content: str) -> str:
    if relative.startswith("/") or ".." in Path(relative).parts:
        raise ValueError(f"image file path must be relative and inside the root: {relative!r}")
    target = f'"$1"/{shlex.quote(relative)}'
    parent = f'"$1"/{shlex.quote(str(Path(relative).parent))}'
    return f"mkdir -p {parent} && printf %s {shlex.quote(content)} > {target}"


def _hook(commands: list[str]) -> str:
    return " && ".join(commands)


def mmdebstrap_argv(plan: DebianPlan, target: Path, *, binary: str = "mmdebstrap") -> list[str]:
    """The mmdebstrap command line that builds ``plan``'s root filesystem into ``target``.

    ``target`` must be an absent or empty directory. Runs as root (``--mode=root``); the
    mirror and suites are mmdebstrap's defaults for ``plan.suite`` (Debian's mirror with
    the updates and security suites).
    """
    setup = _hook([_write_file_cmd(p, c) for p, c in sorted(plan.setup_files.items())])
    customize = [_write_file_cmd(p, c) for p, c in sorted(plan.files.items())]
    customize += [f'chroot "$1" systemctl enable {shlex.quote(u)}' for u in plan.enable_units]
    customize += [f'chroot "$1" systemctl mask {shlex.quote(u)}' for u in plan.mask_units]
    customize += [f'rm -f "$1"/{g}' for g in plan.remove_globs]  # globs: unquoted on purpose
    customize += [f': > "$1"/{shlex.quote(p)}' for p in plan.empty_files]
    return [
        binary,
        "--mode=root",
        "--format=directory",
        "--variant=apt",
        f"--include={','.join(plan.packages)}",
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        f"--setup-hook={setup}",
        f"--customize-hook={_hook(customize)}",
        plan.suite,
        str(target),
    ]
