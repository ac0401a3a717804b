"""A minimal writer of "newc" cpio archives, the format the Linux kernel unpacks as initramfs.

Why our own: the build must not need host tools beyond apt, dpkg and Python, and the
format is tiny.  Each member is a 110-byte ASCII header (magic ``070701`` then 13 fields
of 8 hex digits: ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor,
rdevmajor, rdevminor, namesize incl. the NUL, check), then the NUL-terminated name padded
to a 4-byte boundary, then the data padded to a 4-byte boundary.  A member named
``TRAILER!!!`` ends the archive.  Symlinks store their target as data; device nodes carry
their numbers in rdevmajor/rdevminor.  Owners and modes come from the caller, never from
the build host, so the archive is the same whoever builds it (mtime is fixed too).
"""

from __future__ import annotations

import stat
from typing import BinaryIO

NEWC_MAGIC = b"070701"
TRAILER = "TRAILER!!!"


def _pad4(n: int) -> bytes:
    return b"\0" * (-n % 4)


class CpioWriter:
    """Streams newc members to ``out``; call :meth:`finish` once at the end."""

    def __init__(self, out: BinaryIO, *, mtime: int = 0) -> None:
        self._out = out
        self._mtime = mtime
        self._ino = 0
        self._names: set[str] = set()
        self._finished = False

    def _member(
        self,
        name: str,
        mode: int,
        data: bytes,
        *,
        uid: int = 0,
        gid: int = 0,
        nlink: int = 1,
        rdev: tuple[int, int] = (0, 0),
    ) -> None:
        if self._finished:
            raise ValueError("archive already finished")
        if name != TRAILER:
            name = name.strip("/")
            if not name or name in self._names:
                raise ValueError(f"empty or duplicate cpio member name: {name!r}")
            self._names.add(name)
            self._ino += 1
        encoded = name.encode() + b"\0"
        fields = (
            self._ino if name != TRAILER else 0,
            mode,
            uid,
            gid,
            nlink,
            self._mtime,
            len(data),
            0,
            0,
            rdev[0],
            rdev[1],
            len(encoded),
            0,
        )
        header = NEWC_MAGIC + b"".join(b"%08X" % f for f in fields)
        self._out.write(header + encoded + _pad4(len(header) + len(encoded)))
        self._out.write(data + _pad4(len(data)))

    def directory(self, name: str, *, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
        self._member(name, stat.S_IFDIR | mode, b"", uid=uid, gid=gid, nlink=2)

    def file(
        self, name: str, data: bytes, *, mode: int = 0o644, uid: int = 0, gid: int = 0
    ) -> None:
        self._member(name, stat.S_IFREG | mode, data, uid=uid, gid=gid)

    def symlink(self, name: str, target: str) -> None:
        self._member(name, stat.S_IFLNK | 0o777, target.encode())

    def char_device(self, name: str, major: int, minor: int, *, mode: int = 0o600) -> None:
        self._member(name, stat.S_IFCHR | mode, b"", rdev=(major, minor))

    def finish(self) -> None:
        self._member(TRAILER, 0, b"")
        self._finished = True
