"""Kernel-side steps of the guest build: the uncompressed vmlinux and the module set.

Why these exist:

* **vmlinux.** Debian ships a bzImage whose payload is XZ-compressed.  Under TCG the
  in-guest decompression of ~57 MB costs ~2.8 s, while QEMU boots an uncompressed ELF
  ``vmlinux`` directly through its PVH entry note (``CONFIG_PVH=y``).  The payload's place
  is in the boot-protocol setup header (``setup_sects`` at 0x1f1, ``payload_offset`` and
  ``payload_length`` at 0x248/0x24c, protocol >= 2.08), so no kernel tree is needed.
* **modules.** The Debian kernel builds every virtio driver, isofs, the ACPI button and
  evdev as modules, and its .deb has no ``modules.dep`` (depmod runs in postinst).  We read
  each module's ``.modinfo`` ELF section (``depends=``, ``alias=``) to copy the closure of
  what the guest needs, to order the boot-time ``insmod``s, and to write ``modules.dep`` and
  ``modules.alias`` so busybox ``modprobe`` (and kernel autoload, e.g. ``mount -t ext4``)
  work in the guest.  ``CONFIG_MODULE_COMPRESS_NONE=y``: the .ko files are plain ELF.
"""

from __future__ import annotations

import lzma
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from golem_actor.adapters.guest._model import GuestBuildError

# insmod'ed by /etc/rc at boot, in dependency order
BOOT_MODULES = ("virtio_pci", "virtio_net", "virtio_blk", "virtio_rng", "isofs", "button", "evdev")
# shipped for modprobe / autoload only (vfat seeds, ext4 data disks, other NICs, fw_cfg)
ON_DEMAND_MODULES = (
    "vfat", "nls_cp437", "nls_ascii", "nls_utf8", "nls_iso8859_1",
    "ext4", "crc32c_generic", "e1000", "qemu_fw_cfg",
)  # fmt: skip


def extract_vmlinux(bzimage: bytes) -> bytes:
    """The uncompressed ELF kernel inside a bzImage (XZ, LZMA or gzip payload)."""
    step = "extract vmlinux"
    if len(bzimage) < 0x250 or bzimage[0x202:0x206] != b"HdrS":
        raise GuestBuildError(step, "not a bzImage (no HdrS setup header)")
    (protocol,) = struct.unpack_from("<H", bzimage, 0x206)
    if protocol < 0x208:
        raise GuestBuildError(step, f"boot protocol {protocol:#x} has no payload fields")
    setup_sects = bzimage[0x1F1] or 4
    offset, length = struct.unpack_from("<II", bzimage, 0x248)
    start = (setup_sects + 1) * 512 + offset
    payload = bzimage[start : start + length]
    if payload.startswith(b"\xfd7zXZ\x00"):
        out = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(payload)
    elif payload.startswith(b"\x5d\x00\x00"):
        out = lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(payload)
    elif payload.startswith(b"\x1f\x8b"):
        out = zlib.decompressobj(wbits=31).decompress(payload)
    else:
        raise GuestBuildError(step, f"unsupported payload compression (magic {payload[:6]!r})")
    if not out.startswith(b"\x7fELF"):
        raise GuestBuildError(step, "decompressed payload is not an ELF image")
    return out


def modinfo(ko: bytes) -> dict[str, list[str]]:
    """The ``key=value`` strings of a module's ``.modinfo`` section (ELF64 little-endian)."""
    if ko[:4] != b"\x7fELF" or ko[4] != 2 or ko[5] != 1:
        raise ValueError("not an ELF64 little-endian object")
    (shoff,) = struct.unpack_from("<Q", ko, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", ko, 0x3A)

    def section(i: int) -> tuple[int, int, int]:
        name, _t, _f, _a, off, size = struct.unpack_from("<IIQQQQ", ko, shoff + i * shentsize)
        return name, off, size

    _n, str_off, _s = section(shstrndx)
    info: dict[str, list[str]] = {}
    for i in range(shnum):
        name, off, size = section(i)
        end = ko.index(b"\0", str_off + name)
        if ko[str_off + name : end] != b".modinfo":
            continue
        for item in ko[off : off + size].split(b"\0"):
            key, sep, value = item.decode(errors="replace").partition("=")
            if sep:
                info.setdefault(key, []).append(value)
    return info


def _norm(name: str) -> str:
    return name.replace("-", "_")


@dataclass
class ModulePlan:
    """The modules to ship: relative paths, boot order, and the depmod files' text."""

    files: dict[str, Path] = field(default_factory=dict)  # rel path -> source file
    boot_order: list[str] = field(default_factory=list)  # rel paths, deps first
    modules_dep: str = ""
    modules_alias: str = ""


def plan_modules(
    moddir: Path, boot: Iterable[str] = BOOT_MODULES, on_demand: Iterable[str] = ON_DEMAND_MODULES
) -> ModulePlan:
    """Resolve ``boot`` + ``on_demand`` (and their dependencies) in ``moddir``
    (``.../lib/modules/VERSION``); a name that is built in (no .ko) is skipped."""
    index = {_norm(p.name.removesuffix(".ko")): p for p in moddir.glob("kernel/**/*.ko")}
    if not index:
        raise GuestBuildError("kernel modules", f"no .ko files under {moddir}")
    infos: dict[str, dict[str, list[str]]] = {}
    order: list[str] = []  # module names, dependencies first

    def deps(name: str) -> list[str]:
        names = ",".join(infos[name].get("depends", [])).split(",")
        return [_norm(d) for d in names if d and _norm(d) in infos]

    def visit(name: str, stack: tuple[str, ...]) -> None:
        if name in infos or name not in index:
            return
        if name in stack:
            raise GuestBuildError("kernel modules", f"dependency cycle: {(*stack, name)}")
        try:
            info = modinfo(index[name].read_bytes())
        except (ValueError, IndexError, struct.error) as exc:
            raise GuestBuildError("kernel modules", f"unreadable {index[name]}: {exc}") from exc
        for dep in ",".join(info.get("depends", [])).split(","):
            if dep:
                visit(_norm(dep), (*stack, name))
        infos[name] = info
        order.append(name)

    def closure(name: str, into: list[str]) -> list[str]:
        """Transitive dependencies of ``name``, each after its own dependencies."""
        for dep in deps(name):
            if dep not in into:
                closure(dep, into)
                into.append(dep)
        return into

    for name in (*boot, *on_demand):
        visit(_norm(name), ())
    boot_set: set[str] = set()
    for name in boot:
        if _norm(name) in infos:
            boot_set.update({_norm(name), *closure(_norm(name), [])})

    def rel(name: str) -> str:
        return index[name].relative_to(moddir).as_posix()

    plan = ModulePlan()
    plan.boot_order = [rel(n) for n in order if n in boot_set]
    dep_lines, alias_lines = [], []
    for name in order:
        plan.files[rel(name)] = index[name]
        # modprobe loads a modules.dep line's dependencies from the last to the first
        needed = " ".join(rel(d) for d in reversed(closure(name, [])))
        dep_lines.append(f"{rel(name)}: {needed}".rstrip())
        alias_lines += [f"alias {a} {name}" for a in infos[name].get("alias", [])]
    plan.modules_dep = "\n".join(dep_lines) + "\n"
    plan.modules_alias = "\n".join(alias_lines) + "\n"
    return plan
