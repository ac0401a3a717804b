"""Rules for what a client may ask for: names, SSH keys, sizes.

The create body comes in two shapes (the seed README's flat `cpu_cores/memory_gb/
storage_gb`, and the existing requestor's `resources{cpu,memory,storage}` or `size`
preset); both normalise to one `Resources`. Every rule here answers with a message a
client can act on.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct

from .resources import Resources

__all__ = [
    "SIZE_PRESETS",
    "InvalidRequest",
    "check_name",
    "check_ssh_key",
    "normalise_resources",
]

NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{1,62})[a-z0-9]$")
MAX_CPUS = 256
MAX_MEMORY_GB = 4096
MAX_STORAGE_GB = 65536
MAX_KEY_LENGTH = 16 * 1024

# The existing requestor's presets: cpu / GB RAM / GB disk.
SIZE_PRESETS: dict[str, tuple[int, int, int]] = {
    "small": (1, 1, 10),
    "medium": (2, 4, 20),
    "large": (4, 8, 40),
    "xlarge": (8, 16, 80),
}

KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)
_COMMENT = re.compile(r"^[\x20-\x7e]*$")


class InvalidRequest(ValueError):
    """A request a client must correct; the message says how."""


def check_name(name: str) -> str:
    if not NAME.match(name) or "--" in name:
        raise InvalidRequest(
            f"invalid name {name!r}: 3 to 64 characters, lowercase letters, digits and"
            " single hyphens, starting and ending with a letter or digit"
        )
    return name


def check_ssh_key(key: str) -> str:
    """One OpenSSH public key line: `type base64 [comment]`, nothing else."""
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidRequest("ssh_key is too long")
    if "\n" in key.strip() or "\r" in key or "\x00" in key:
        raise InvalidRequest("ssh_key must be a single line")
    parts = key.strip().split(maxsplit=2)
    if len(parts) < 2:
        raise InvalidRequest("ssh_key must look like '<type> <base64 key> [comment]'")
    kind, body = parts[0], parts[1]
    if kind not in KEY_TYPES:
        raise InvalidRequest(
            f"unsupported ssh_key type {kind!r}; use one of {', '.join(sorted(KEY_TYPES))}"
        )
    try:
        blob = base64.b64decode(body, validate=True)
        (length,) = struct.unpack(">I", blob[:4])
        embedded = blob[4 : 4 + length].decode("ascii")
    except (binascii.Error, struct.error, UnicodeDecodeError):
        raise InvalidRequest("ssh_key is not valid base64 key data") from None
    if embedded != kind or len(blob) < 4 + length + 16:
        raise InvalidRequest(f"ssh_key data does not hold a {kind} key")
    if len(parts) == 3 and not _COMMENT.match(parts[2]):
        raise InvalidRequest("ssh_key comment has characters that are not printable ASCII")
    return " ".join(parts)


def _bounded(what: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise InvalidRequest(f"{what} must be between {low} and {high}, got {value}")
    return value


def normalise_resources(
    *,
    resources: tuple[int, int, int] | None,
    size: str | None,
    flat: tuple[int | None, int | None, int | None],
    minimum: tuple[int, int, int],
) -> Resources:
    """One `Resources` from whichever of the three shapes the client used.

    `resources` and `flat` are (cpu, memory GB, storage GB); `minimum` is the node's
    floor for each, from its settings.
    """
    given_flat = any(v is not None for v in flat)
    shapes = [
        name
        for name, given in (
            ("resources", resources is not None),
            ("size", size is not None),
            ("cpu_cores/memory_gb/storage_gb", given_flat),
        )
        if given
    ]
    if len(shapes) > 1:
        raise InvalidRequest(f"give the VM's size one way only, not {' and '.join(shapes)}")
    if resources is not None:
        cpu, memory, storage = resources
    elif size is not None:
        if size not in SIZE_PRESETS:
            raise InvalidRequest(f"unknown size {size!r}; use one of {', '.join(SIZE_PRESETS)}")
        cpu, memory, storage = SIZE_PRESETS[size]
    elif given_flat:
        missing = [
            n
            for n, v in zip(("cpu_cores", "memory_gb", "storage_gb"), flat, strict=True)
            if v is None
        ]
        if missing:
            raise InvalidRequest(f"missing {', '.join(missing)}")
        cpu, memory, storage = (v or 0 for v in flat)
    else:
        raise InvalidRequest(
            "say how big the VM is: resources{cpu,memory,storage}, size, or"
            " cpu_cores/memory_gb/storage_gb"
        )
    min_cpu, min_memory, min_storage = minimum
    return Resources.from_gb(
        cpus=_bounded("cpu", cpu, min_cpu, MAX_CPUS),
        memory_gb=_bounded("memory (GB)", memory, min_memory, MAX_MEMORY_GB),
        storage_gb=_bounded("storage (GB)", storage, min_storage, MAX_STORAGE_GB),
    )
