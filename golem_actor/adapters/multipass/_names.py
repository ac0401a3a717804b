"""Validation of every value the adapter hands to multipass or writes into cloud-init.

Why here and again: the lifecycle validates requests, but this is the last place before a
value becomes an argv element or a line of a config file. An argv element that starts with
``-`` is read as an option, an image "reference" with ``://`` makes multipass download from
an arbitrary URL, and a newline in an SSH key or hostname would add lines to cloud-init. So
each value is checked against a narrow allow-list right before use, whatever the caller did.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from golem_actor.adapters.backend import BackendError, ImageNotAvailable
from golem_actor.domain.resources import Resources

# What `multipass launch` accepts as an image: "24.04", "noble", "ubuntu:24.04", "daily:25.04".
_IMAGE_REF = re.compile(r"[a-z0-9][a-z0-9.:-]*")
# Multipass instance names must be valid host names: a letter first, letters, digits and
# hyphens, no hyphen last, one DNS label (at most 63 characters). We stay lower case.
_INSTANCE_NAME = re.compile(r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")
_VM_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
_PREFIX = re.compile(r"[a-z][a-z0-9-]{0,40}")
_HOST_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", re.IGNORECASE)
_MAX_HOSTNAME = 253
_MAX_KEY = 16 * 1024


def check_image_ref(ref: str) -> str:
    """``ref`` if it is a plain multipass image reference; BackendError otherwise."""
    if ref.startswith("-") or "://" in ref or _IMAGE_REF.fullmatch(ref) is None:
        raise BackendError(f"refusing multipass image reference {ref!r}: not a plain image name")
    return ref


def image_ref_for(images: Mapping[str, str], image: str) -> str:
    """The multipass reference of catalog image ``image``; ImageNotAvailable if it has none."""
    ref = images.get(image)
    if ref is None:
        choices = ", ".join(sorted(images)) or "none"
        raise ImageNotAvailable(
            f"image {image!r} is not available on the multipass backend (choices: {choices})"
        )
    return check_image_ref(ref)


def check_prefix(prefix: str) -> str:
    if _PREFIX.fullmatch(prefix) is None:
        raise ValueError(
            f"multipass instance prefix {prefix!r} must be a lower-case letter followed by "
            "at most 40 letters, digits or hyphens"
        )
    return prefix


def instance_name(prefix: str, vm_id: str) -> str:
    """The multipass instance name of ``vm_id``; BackendError if it cannot be a valid one."""
    name = prefix + vm_id
    if _VM_ID.fullmatch(vm_id) is None or _INSTANCE_NAME.fullmatch(name) is None:
        raise BackendError(
            f"vm id {vm_id!r} cannot name a multipass instance (need lower-case letters, "
            "digits and inner hyphens, at most 63 characters with the prefix)"
        )
    return name


def is_vm_id(vm_id: str) -> bool:
    """Whether ``vm_id`` is one this adapter could have named an instance after."""
    return _VM_ID.fullmatch(vm_id) is not None


def check_hostname(hostname: str) -> str:
    labels = hostname.split(".")
    if len(hostname) > _MAX_HOSTNAME or not all(_HOST_LABEL.fullmatch(x) for x in labels):
        raise BackendError(f"refusing hostname {hostname!r}: not a valid host name")
    return hostname


def check_authorized_keys(keys: Iterable[str]) -> tuple[str, ...]:
    """The keys, each stripped; BackendError for an empty, multi-line or oversized one."""
    checked: list[str] = []
    for key in keys:
        stripped = key.strip()
        if not stripped or len(stripped) > _MAX_KEY:
            raise BackendError("refusing an empty or oversized SSH authorized key")
        if any(ch in stripped for ch in "\r\n\x00\x0b\x0c\x85\u2028\u2029"):
            raise BackendError("refusing an SSH authorized key that spans more than one line")
        checked.append(stripped)
    return tuple(checked)


def check_resources(resources: Resources) -> Resources:
    if resources.cpus < 1 or resources.memory_mib < 1 or resources.storage_gib < 1:
        raise BackendError(f"refusing non-positive resources {resources!r}")
    return resources
