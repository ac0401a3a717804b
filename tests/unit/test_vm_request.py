from __future__ import annotations

import base64
import struct

import pytest

from golem_actor.domain.resources import Resources
from golem_actor.domain.vm_request import (
    InvalidRequest,
    check_name,
    check_ssh_key,
    normalise_resources,
)


def key(kind: str = "ssh-ed25519", payload: bytes = b"k" * 32) -> str:
    blob = struct.pack(">I", len(kind)) + kind.encode() + struct.pack(">I", len(payload)) + payload
    return f"{kind} {base64.b64encode(blob).decode()}"


MIN = (1, 1, 10)


@pytest.mark.parametrize("name", ["web", "my-webserver", "a1-b2-c3", "x" * 64])
def test_good_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "ab", "-web", "web-", "We", "a--b", "a_b", "x" * 65, "a b"])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidRequest, match="invalid name"):
        check_name(name)


def test_good_keys_are_normalised() -> None:
    assert check_ssh_key(key() + "  me@host  ") == key() + " me@host"
    check_ssh_key(key("ssh-rsa", b"r" * 256))
    check_ssh_key(key("ecdsa-sha2-nistp256", b"e" * 64))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (key() + "\n" + key(), "single line"),
        ("ssh-ed25519", "look like"),
        ("ssh-dss AAAA", "unsupported"),
        ('command="rm -rf /" ' + key(), "unsupported"),
        ("ssh-ed25519 not*base64", "base64"),
        (key("ssh-rsa").replace("ssh-rsa", "ssh-ed25519", 1), "does not hold"),
        (key() + " caf\u00e9", "printable"),
        ("ssh-ed25519 " + "A" * 20000, "too long"),
    ],
)
def test_bad_keys_are_refused(value: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        check_ssh_key(value)


def test_all_three_shapes_give_the_same_resources() -> None:
    expected = Resources(cpus=2, memory_mib=4096, storage_gib=20)
    none = (None, None, None)
    assert normalise_resources(resources=(2, 4, 20), size=None, flat=none, minimum=MIN) == expected
    assert normalise_resources(resources=None, size="medium", flat=none, minimum=MIN) == expected
    assert normalise_resources(resources=None, size=None, flat=(2, 4, 20), minimum=MIN) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"resources": (1, 1, 10), "size": "small"}, "one way only"),
        ({"size": "huge"}, "unknown size"),
        ({"flat": (2, None, 20)}, "missing memory_gb"),
        ({}, "say how big"),
        ({"resources": (0, 1, 10)}, "cpu must be between 1 and 256"),
        ({"resources": (1, 1, 5)}, r"storage \(GB\) must be between 10"),
        ({"resources": (1, 99999, 10)}, r"memory \(GB\) must be between"),
    ],
)
def test_bad_sizes_are_refused(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"resources": None, "size": None, "flat": (None, None, None)}
    args.update(kwargs)
    with pytest.raises(InvalidRequest, match=message):
        normalise_resources(minimum=MIN, **args)  # type: ignore[arg-type]
