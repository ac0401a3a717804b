"""Assemble the guest's initramfs (newc cpio) from the unpacked packages.

Why straight to cpio: no root filesystem is ever materialised on the build host, so
owners, modes and device nodes are exactly what we declare (uid 0, /tmp 1777, /root 0700,
``/dev/console``) whoever runs the build, and no host ``cpio``/``find`` is needed.

What goes in (~11 MB uncompressed; the kernel unpacks an uncompressed archive faster
under TCG than a gzip one):

* ``/bin/busybox`` (static) and a symlink per applet from ``busybox --list-full``;
* dropbear + dropbearkey and the shared libraries they load (glibc and friends);
* ``/usr/bin/nc.openbsd`` (netcat-openbsd) and the libraries it loads besides glibc's:
  busybox's ``nc`` stays ``nc`` (TCP), but Debian builds it without ``-u``, so UDP in a
  test guest goes through ``nc.openbsd -u``;
* the kernel modules of the :class:`ModulePlan` with ``modules.dep``/``modules.alias``;
* our scripts (package data in ``files/``): ``/init``, ``/etc/inittab``, ``/etc/rc``, the
  acpid power-button handler, the udhcpc hooks (user networking, the VPN NIC), the VPN
  NIC's carrier watcher and the cloud-config key reader;
* ``/etc/passwd``, ``group``, ``shadow`` with root only (``/etc/rc`` adds ``ubuntu`` and
  seed-named users at boot), ``/etc/shells`` (dropbear refuses shells not listed there).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path, PurePosixPath

from golem_actor.adapters.guest._cpio import CpioWriter
from golem_actor.adapters.guest._kernel import ModulePlan
from golem_actor.adapters.guest._model import GuestBuildError

GUEST_FILES = (
    "init",
    "inittab",
    "rc",
    "power-button",
    "udhcpc.script",
    "vpn-dhcp.script",
    "vpn-carrier",
    "cloud-keys.awk",
)
LIBDIR = "lib/x86_64-linux-gnu"
DROPBEAR_LIBS = (
    "ld-linux-x86-64.so.2",
    "libc.so.6",
    "libcrypt.so.1",
    "libtomcrypt.so.1",
    "libtommath.so.1",
    "libz.so.1",
    "libgmp.so.10",
)
# nc.openbsd's libraries beyond DROPBEAR_LIBS (libresolv comes with libc6).
NETCAT_LIBS = ("libbsd.so.0", "libmd.so.0", "libresolv.so.2")
_BASE_DIRS = {
    "bin": 0o755, "sbin": 0o755, "usr": 0o755, "usr/bin": 0o755, "usr/sbin": 0o755,
    "etc": 0o755, "etc/dropbear": 0o700, "etc/acpi": 0o755, "etc/acpi/PWRF": 0o755,
    "etc/udhcpc": 0o755, "etc/golem": 0o755, "lib": 0o755, LIBDIR: 0o755, "lib64": 0o755,
    "proc": 0o555, "sys": 0o555, "dev": 0o755, "run": 0o755, "tmp": 0o1777,
    "root": 0o700, "root/.ssh": 0o700, "home": 0o755, "mnt": 0o755, "mnt/seed": 0o755,
    "var": 0o755, "var/log": 0o755,
}  # fmt: skip
_ETC_TEXT = {
    "etc/passwd": ("root:x:0:0:root:/root:/bin/sh\n", 0o644),
    "etc/group": ("root:x:0:\ntty:x:5:\n", 0o644),
    "etc/shadow": ("root:*:19000:0:99999:7:::\n", 0o600),
    "etc/shells": ("/bin/sh\n/bin/ash\n", 0o644),
    "etc/nsswitch.conf": ("passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n", 0o644),
    "etc/hosts": ("127.0.0.1\tlocalhost\n", 0o644),
    "etc/os-release": ('ID=golem-guest\nNAME="golem-actor test guest"\n', 0o644),
}


def guest_file(name: str) -> bytes:
    """A guest script shipped as package data in ``files/``."""
    return (resources.files(__package__) / "files" / name).read_bytes()


def _resolve(root: Path, path: Path) -> Path:
    """Follow symlinks of the unpacked tree inside ``root`` (absolute targets included)."""
    for _ in range(20):
        if not path.is_symlink():
            return path
        target = Path(os.readlink(path))
        path = root / target.relative_to("/") if target.is_absolute() else path.parent / target
    raise GuestBuildError("initramfs", f"symlink loop at {path}")


def _find_lib(root: Path, name: str) -> Path:
    for base in (root / LIBDIR, root / "usr" / LIBDIR):
        if (base / name).exists() or (base / name).is_symlink():
            found = _resolve(root, base / name)
            if found.is_file():
                return found
    raise GuestBuildError("initramfs", f"shared library {name} not found in the packages")


def write_initramfs(
    root: Path, kernel_release: str, applets: list[str], modules: ModulePlan, out: Path
) -> None:
    """Write the initramfs for the tree unpacked at ``root`` to ``out`` (blocking)."""
    dirs = dict(_BASE_DIRS)
    moddir = f"lib/modules/{kernel_release}"
    wanted = [moddir, *(str(PurePosixPath(moddir, r).parent) for r in modules.files)]
    links = {}
    for applet in applets:
        rel = applet.strip().lstrip("/")
        if rel and rel != "bin/busybox" and "/" in rel:
            links[rel] = "/bin/busybox"
            wanted.append(str(PurePosixPath(rel).parent))
    for d in wanted:
        parts = PurePosixPath(d).parts
        for i in range(1, len(parts) + 1):
            dirs.setdefault(str(PurePosixPath(*parts[:i])), 0o755)

    with out.open("wb") as f:
        cpio = CpioWriter(f)
        for d in sorted(dirs):
            cpio.directory(d, mode=dirs[d])
        cpio.char_device("dev/console", 5, 1)
        cpio.char_device("dev/null", 1, 3, mode=0o666)
        cpio.symlink("var/run", "/run")
        cpio.file("bin/busybox", (root / "bin/busybox").read_bytes(), mode=0o755)
        for rel, target in sorted(links.items()):
            cpio.symlink(rel, target)
        cpio.file("usr/sbin/dropbear", (root / "usr/sbin/dropbear").read_bytes(), mode=0o755)
        cpio.file("usr/bin/dropbearkey", (root / "usr/bin/dropbearkey").read_bytes(), mode=0o755)
        cpio.file("usr/bin/nc.openbsd", (root / "bin/nc.openbsd").read_bytes(), mode=0o755)
        for lib in (*DROPBEAR_LIBS, *NETCAT_LIBS):
            cpio.file(f"{LIBDIR}/{lib}", _find_lib(root, lib).read_bytes(), mode=0o755)
        cpio.symlink("lib64/ld-linux-x86-64.so.2", f"/{LIBDIR}/ld-linux-x86-64.so.2")

        for rel, src in sorted(modules.files.items()):
            cpio.file(f"{moddir}/{rel}", src.read_bytes())
        cpio.file(f"{moddir}/modules.dep", modules.modules_dep.encode())
        cpio.file(f"{moddir}/modules.alias", modules.modules_alias.encode())
        builtin = root / moddir / "modules.builtin"
        if builtin.is_file():
            cpio.file(f"{moddir}/modules.builtin", builtin.read_bytes())
        cpio.file("etc/modules", "".join(f"{m}\n" for m in modules.boot_order).encode())

        cpio.file("init", guest_file("init"), mode=0o755)
        cpio.file("etc/inittab", guest_file("inittab"))
        cpio.file("etc/rc", guest_file("rc"), mode=0o755)
        cpio.file("etc/acpi/PWRF/00000080", guest_file("power-button"), mode=0o755)
        cpio.file("etc/udhcpc/default.script", guest_file("udhcpc.script"), mode=0o755)
        cpio.file("etc/udhcpc/vpn.script", guest_file("vpn-dhcp.script"), mode=0o755)
        cpio.file("etc/golem/vpn-carrier", guest_file("vpn-carrier"), mode=0o755)
        cpio.file("etc/golem/cloud-keys.awk", guest_file("cloud-keys.awk"))
        for name, (text, mode) in _ETC_TEXT.items():
            cpio.file(name, text.encode(), mode=mode)
        cpio.finish()
