"""A minimal ISO 9660 image writer with Rock Ridge names, for NoCloud seeds.

Why our own: a ``cidata`` seed holds two or three small files, and writing one takes
~150 lines of Python instead of a dependency on genisoimage/xorriso on every host.

Layout (2048-byte sectors): 0-15 system area (zeros); 16 primary volume descriptor
(volume id = the label, which cloud-init and our guest look for); 17 set terminator;
18 little-endian and 19 big-endian path table (root only); 20 the root directory; then
each file's data, sector aligned.  Numbers in directory records and the PVD are stored
"both-endian" (little-endian then big-endian copy), as ECMA-119 requires.

Plain ISO 9660 level 1 only allows 8.3 upper-case names (``user-data`` would read back
as ``user_dat``), so every directory record also carries Rock Ridge (RRIP 1.10) System
Use entries: ``SP`` + ``ER`` in the root's "." record announce the extension, ``PX``
gives POSIX modes and ``NM`` the real file name.  Linux's isofs, libblkid and cloud-init
read these; the result mounts like a ``genisoimage -rock`` image.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from datetime import UTC, datetime

SECTOR = 2048
_PVD_SECTOR = 16
_ROOT_SECTOR = 20
_FIRST_FILE_SECTOR = 21
_RR_ID = b"RRIP_1991A"
_RR_DES = b"THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS"
_RR_SRC = b"PLEASE CONTACT THE DISC PUBLISHER FOR THE SPECIFICATION SOURCE"
_FLAG_DIR = 0x02


def _both16(n: int) -> bytes:
    return struct.pack("<H", n) + struct.pack(">H", n)


def _both32(n: int) -> bytes:
    return struct.pack("<I", n) + struct.pack(">I", n)


def _text(value: str, size: int) -> bytes:
    raw = value.encode("ascii")
    if len(raw) > size:
        raise ValueError(f"{value!r} is longer than {size} bytes")
    return raw.ljust(size, b" ")


def _record_date(when: datetime) -> bytes:
    return bytes([when.year - 1900, when.month, when.day, when.hour, when.minute, when.second, 0])


def _volume_date(when: datetime | None) -> bytes:
    if when is None:
        return b"0" * 16 + b"\0"
    return when.strftime("%Y%m%d%H%M%S").encode() + b"00\0"


def _susp_px(mode: int, nlink: int) -> bytes:
    return b"PX" + bytes([36, 1]) + _both32(mode) + _both32(nlink) + _both32(0) + _both32(0)


def _susp_nm(name: bytes) -> bytes:
    return b"NM" + bytes([5 + len(name), 1, 0]) + name


def _dir_record(
    extent: int, size: int, flags: int, ident: bytes, system_use: bytes, when: datetime
) -> bytes:
    pad = b"\0" if len(ident) % 2 == 0 else b""
    body = (
        _both32(extent)
        + _both32(size)
        + _record_date(when)
        + bytes([flags, 0, 0])
        + _both16(1)
        + bytes([len(ident)])
        + ident
        + pad
        + system_use
    )
    if (len(body) + 2) % 2:
        body += b"\0"
    if len(body) + 2 > 255:
        raise ValueError("directory record too long")
    return bytes([len(body) + 2, 0]) + body


def iso_name(name: str) -> bytes:
    """The ISO 9660 level-1 identifier for ``name`` (``user-data`` -> ``USER_DAT.;1``)."""
    stem, _, ext = name.upper().partition(".")
    stem = re.sub(r"[^A-Z0-9_]", "_", stem)[:8] or "_"
    ext = re.sub(r"[^A-Z0-9_]", "_", ext)[:3]
    return f"{stem}.{ext};1".encode("ascii")


def build_iso(files: Mapping[str, bytes], *, volume_id: str, when: datetime | None = None) -> bytes:
    """An ISO 9660 + Rock Ridge image holding ``files`` (flat, name -> content)."""
    when = (when or datetime.now(UTC)).replace(microsecond=0)
    if not re.fullmatch(r"[A-Za-z0-9_]{1,32}", volume_id):
        raise ValueError(f"invalid volume id: {volume_id!r}")
    entries: list[tuple[bytes, bytes, bytes]] = []  # (iso name, real name, data)
    for name, data in files.items():
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,200}", name) or name in (".", ".."):
            raise ValueError(f"invalid file name for the seed: {name!r}")
        ident = iso_name(name)
        if any(ident == e[0] for e in entries):
            raise ValueError(f"two files map to the same ISO 9660 name {ident!r}")
        entries.append((ident, name.encode(), data))
    entries.sort(key=lambda e: e[0])

    dot_su = (
        b"SP" + bytes([7, 1, 0xBE, 0xEF, 0])
        + b"RR" + bytes([5, 1, 0x01])
        + _susp_px(0o40555, 2)
        + b"ER" + bytes([8 + len(_RR_ID) + len(_RR_DES) + len(_RR_SRC), 1])
        + bytes([len(_RR_ID), len(_RR_DES), len(_RR_SRC), 1])
        + _RR_ID + _RR_DES + _RR_SRC
    )  # fmt: skip
    dotdot_su = b"RR" + bytes([5, 1, 0x01]) + _susp_px(0o40555, 2)
    records = [
        _dir_record(_ROOT_SECTOR, SECTOR, _FLAG_DIR, b"\0", dot_su, when),
        _dir_record(_ROOT_SECTOR, SECTOR, _FLAG_DIR, b"\1", dotdot_su, when),
    ]
    sector = _FIRST_FILE_SECTOR
    body = bytearray()
    for ident, real, data in entries:
        su = b"RR" + bytes([5, 1, 0x09]) + _susp_px(0o100444, 1) + _susp_nm(real)
        records.append(_dir_record(sector, len(data), 0, ident, su, when))
        body += data + b"\0" * (-len(data) % SECTOR)
        sector += max(1, -(-len(data) // SECTOR))
        if not data:
            body += b"\0" * SECTOR
    root = b"".join(records)
    if len(root) > SECTOR:
        raise ValueError("too many files for a one-sector root directory")
    total_sectors = sector

    root_record = _dir_record(_ROOT_SECTOR, SECTOR, _FLAG_DIR, b"\0", b"", when)
    # path table record: id length 1, no extended attributes, extent, parent #1, id "\0", pad
    l_path = bytes([1, 0]) + struct.pack("<IH", _ROOT_SECTOR, 1) + b"\0\0"
    m_path = bytes([1, 0]) + struct.pack(">IH", _ROOT_SECTOR, 1) + b"\0\0"

    pvd = (
        b"\x01CD001\x01\0"
        + _text("LINUX", 32)
        + _text(volume_id, 32)
        + b"\0" * 8
        + _both32(total_sectors)
        + b"\0" * 32
        + _both16(1)
        + _both16(1)
        + _both16(SECTOR)
        + _both32(len(l_path))
        + struct.pack("<I", 18)
        + b"\0" * 4
        + struct.pack(">I", 19)
        + b"\0" * 4
        + root_record
        + _text("", 128)
        + _text("GOLEM-ACTOR", 128)
        + _text("", 128)
        + _text("GOLEM-ACTOR NOCLOUD SEED", 128)
        + _text("", 37 * 3)
        + _volume_date(when)
        + _volume_date(when)
        + _volume_date(None)
        + _volume_date(None)
        + b"\x01\0"
    )
    assert len(pvd) == 883, len(pvd)
    terminator = b"\xffCD001\x01"

    def sect(raw: bytes) -> bytes:
        return raw + b"\0" * (-len(raw) % SECTOR)

    image = (
        b"\0" * (SECTOR * _PVD_SECTOR)
        + sect(pvd)
        + sect(terminator)
        + sect(l_path)
        + sect(m_path)
        + sect(root)
        + bytes(body)
    )
    assert len(image) == total_sectors * SECTOR
    return image
