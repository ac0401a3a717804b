"""Unit tests of the test-guest adapter's pure-Python parts.

The NoCloud seed is parsed back with an independent ISO 9660 + Rock Ridge reader; the
guest's cloud-config key reader (awk) runs under the host's awk; the cpio writer, the
vmlinux extraction, the module planner and the builder's cache/lock logic are checked
without apt, dpkg or QEMU.
"""

from __future__ import annotations

import fcntl
import io
import lzma
import os
import shutil
import stat
import struct
import subprocess
from pathlib import Path

import msgspec
import pytest
import trio

from golem_actor.adapters.guest import (
    GuestBuildError,
    build_test_guest,
    builder_version,
    make_nocloud_seed,
    render_meta_data,
    render_user_data,
)
from golem_actor.adapters.guest._builder import (
    IMAGE_PREFIX,
    INITRD_FILE,
    KERNEL_FILE,
    LOCK_FILE,
    MANIFEST_FILE,
    Manifest,
)
from golem_actor.adapters.guest._cpio import CpioWriter
from golem_actor.adapters.guest._kernel import extract_vmlinux, modinfo, plan_modules
from golem_actor.adapters.guest._rootfs import guest_file

KEY1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ8c1TzX9 alice@laptop"
KEY2 = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 bob's key"

# ---------------------------------------------------------------- ISO 9660 reader


def _both32(raw: bytes, off: int) -> int:
    le = struct.unpack_from("<I", raw, off)[0]
    assert le == struct.unpack_from(">I", raw, off + 4)[0], "both-endian mismatch"
    return int(le)


def _susp(system_use: bytes) -> dict[str, bytes]:
    entries: dict[str, bytes] = {}
    i = 0
    while i + 4 <= len(system_use):
        sig, length = system_use[i : i + 2].decode(), system_use[i + 2]
        if length < 4:
            break
        entries[sig] = system_use[i + 4 : i + length]
        i += length
    return entries


def read_iso(image: bytes) -> tuple[str, dict[str, bytes]]:
    """(volume id, {Rock Ridge name: content}) of a single-directory ISO 9660 image."""
    pvd = image[16 * 2048 : 17 * 2048]
    assert pvd[0] == 1
    assert pvd[1:6] == b"CD001"
    assert image[17 * 2048] == 255  # set terminator
    assert _both32(pvd, 80) * 2048 == len(image)
    label = pvd[40:72].decode().rstrip()
    root = pvd[156 : 156 + 34]
    extent, size = _both32(root, 2), _both32(root, 10)
    directory = image[extent * 2048 : extent * 2048 + size]
    files: dict[str, bytes] = {}
    i = 0
    first = True
    while i < len(directory) and directory[i]:
        rec = directory[i : i + directory[i]]
        i += rec[0]
        name_len = rec[32]
        ident = rec[33 : 33 + name_len]
        system_use = _susp(rec[33 + name_len + (1 - name_len % 2) :])
        if first:
            assert "SP" in system_use
            assert system_use["SP"][:2] == b"\xbe\xef"
            assert b"RRIP_1991A" in system_use["ER"]
            first = False
        if ident in (b"\0", b"\1"):
            assert rec[25] & 2  # directory flag
            continue
        assert ident.endswith(b";1")
        name = system_use["NM"][1:].decode()
        mode = _both32(system_use["PX"], 0)
        assert stat.S_ISREG(mode)
        start, length = _both32(rec, 2), _both32(rec, 10)
        files[name] = image[start * 2048 : start * 2048 + length]
    return label, files


# ---------------------------------------------------------------- the seed


def test_seed_image_has_label_and_both_files(tmp_path: Path) -> None:
    dest = tmp_path / "vm" / "seed.iso"
    make_nocloud_seed(dest, authorized_keys=[KEY1, KEY2], hostname="vm-7", instance_id="iid-7")
    image = dest.read_bytes()
    label, files = read_iso(image)
    assert label == "cidata"
    assert set(files) == {"user-data", "meta-data"}
    assert files["meta-data"].decode() == "instance-id: iid-7\nlocal-hostname: vm-7\n"
    assert files["user-data"].decode() == render_user_data([KEY1, KEY2])
    assert os.listdir(dest.parent) == ["seed.iso"]  # no temp file left behind
    assert len(image) < 64 * 1024


def test_user_data_is_cloud_config_for_root_and_ubuntu() -> None:
    text = render_user_data([KEY1, KEY2 + "\n", "  "])
    lines = text.splitlines()
    assert lines[0] == "#cloud-config"
    assert "disable_root: false" in lines
    assert "ssh_authorized_keys:" in lines  # the top-level list
    assert "  - name: root" in lines
    assert "  - name: ubuntu" in lines
    assert lines.count(f"      - '{KEY1}'") == 2  # once per user
    assert lines.count("      - 'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 bob''s key'") == 2


def test_user_data_parses_as_yaml_like_cloud_init_does() -> None:
    import yaml  # noqa: PLC0415 - dev-only dependency, used by this test alone

    data = yaml.safe_load(render_user_data([KEY1, KEY2]))
    assert data["ssh_authorized_keys"] == [KEY1, KEY2]
    assert data["disable_root"] is False
    users = {u["name"]: u for u in data["users"]}
    assert set(users) == {"root", "ubuntu"}
    for user in users.values():
        assert user["ssh_authorized_keys"] == [KEY1, KEY2]
    assert users["ubuntu"]["sudo"] == "ALL=(ALL) NOPASSWD:ALL"


def test_meta_data() -> None:
    assert render_meta_data(hostname="a1", instance_id="i.1") == (
        "instance-id: i.1\nlocal-hostname: a1\n"
    )


@pytest.mark.parametrize(
    ("keys", "hostname", "instance_id", "message"),
    [
        ([], "vm", "iid", "at least one"),
        (["   "], "vm", "iid", "at least one"),
        (["ssh-ed25519 AAAA\nrm -rf /"], "vm", "iid", "single-line"),
        (["justonefield"], "vm", "iid", "single-line"),
        ([KEY1], "bad_host", "iid", "hostname"),
        ([KEY1], "-vm", "iid", "hostname"),
        ([KEY1], "vm.example.com", "iid", "hostname"),
        ([KEY1], "vm", "i d", "instance id"),
    ],
)
def test_seed_rejects_bad_input(
    tmp_path: Path, keys: list[str], hostname: str, instance_id: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        make_nocloud_seed(
            tmp_path / "s.iso", authorized_keys=keys, hostname=hostname, instance_id=instance_id
        )
    assert not (tmp_path / "s.iso").exists()


# ---------------------------------------------------------------- the guest's YAML reader


def _guest_reader(text: str) -> list[tuple[str, str]]:
    awk = shutil.which("awk")
    if awk is None:
        pytest.fail("no awk on this host")
    prog = guest_file("cloud-keys.awk").decode()
    out = subprocess.run([awk, prog], input=text, capture_output=True, text=True, check=True)
    return [tuple(line.split("\t", 1)) for line in out.stdout.splitlines()]  # type: ignore[misc]


def test_guest_reader_understands_our_user_data() -> None:
    got = _guest_reader(render_user_data([KEY1, KEY2]))
    want_keys = [KEY1, KEY2.replace("''", "'")]
    assert got == [(u, k) for u in ("*", "root", "ubuntu") for k in want_keys]


def test_guest_reader_yaml_variants() -> None:
    text = (
        "#cloud-config\r\n"
        "hostname: x\n"
        "users:\n"
        "- default\n"
        "- name: 'bob'\n"
        "  shell: /bin/sh\n"
        "  ssh_authorized_keys:\n"
        '  - "ssh-ed25519 AAAA b"\n'
        "  # a comment\n"
        "\n"
        "  - ssh-ed25519 BBBB c\n"
        "- ssh_authorized_keys:\n"
        "    - ssh-ed25519 CCCC d\n"
        "  name: carol\n"
        "-   name: dave\n"
        "    groups: [a, b]\n"
        "ssh_authorized_keys: [ssh-ed25519 FLOW]\n"
        "runcmd:\n"
        "  - echo hi\n"
        "ssh_authorized_keys:\n"
        "- ssh-ed25519 TOP e\n"
    )
    assert _guest_reader(text) == [
        ("bob", "ssh-ed25519 AAAA b"),
        ("bob", "ssh-ed25519 BBBB c"),
        ("carol", "ssh-ed25519 CCCC d"),
        ("dave", ""),
        ("*", "ssh-ed25519 TOP e"),
    ]


# ---------------------------------------------------------------- cpio writer


def read_cpio(raw: bytes) -> list[dict[str, object]]:
    members: list[dict[str, object]] = []
    i = 0
    while True:
        assert raw[i : i + 6] == b"070701"
        f = [int(raw[i + 6 + 8 * n : i + 14 + 8 * n], 16) for n in range(13)]
        namesize, filesize = f[11], f[6]
        name = raw[i + 110 : i + 110 + namesize - 1].decode()
        assert raw[i + 110 + namesize - 1] == 0
        i = (i + 110 + namesize + 3) & ~3
        data = raw[i : i + filesize]
        i = (i + filesize + 3) & ~3
        if name == "TRAILER!!!":
            assert i == len(raw)
            return members
        members.append(
            {"name": name, "mode": f[1], "uid": f[2], "nlink": f[4], "data": data, "rdev": f[9:11]}
        )


def test_cpio_roundtrip() -> None:
    buf = io.BytesIO()
    cpio = CpioWriter(buf)
    cpio.directory("etc")
    cpio.directory("/tmp/", mode=0o1777)
    cpio.file("etc/shadow", b"root:*:1::\n", mode=0o600)
    cpio.file("home/u/x", b"abcde", uid=1000, gid=1000)
    cpio.symlink("sbin/init", "/bin/busybox")
    cpio.char_device("dev/console", 5, 1)
    cpio.finish()
    members = {m["name"]: m for m in read_cpio(buf.getvalue())}
    assert list(members) == ["etc", "tmp", "etc/shadow", "home/u/x", "sbin/init", "dev/console"]
    assert members["tmp"]["mode"] == stat.S_IFDIR | 0o1777
    assert members["etc"]["nlink"] == 2
    assert members["etc/shadow"] == {
        "name": "etc/shadow",
        "mode": stat.S_IFREG | 0o600,
        "uid": 0,
        "nlink": 1,
        "data": b"root:*:1::\n",
        "rdev": [0, 0],
    }
    assert members["home/u/x"]["uid"] == 1000
    assert members["sbin/init"]["mode"] == stat.S_IFLNK | 0o777
    assert members["sbin/init"]["data"] == b"/bin/busybox"
    assert members["dev/console"]["mode"] == stat.S_IFCHR | 0o600
    assert members["dev/console"]["rdev"] == [5, 1]


def test_cpio_rejects_duplicates_and_use_after_finish() -> None:
    cpio = CpioWriter(io.BytesIO())
    cpio.file("a", b"")
    with pytest.raises(ValueError, match="duplicate"):
        cpio.file("/a", b"")
    cpio.finish()
    with pytest.raises(ValueError, match="finished"):
        cpio.file("b", b"")


# ---------------------------------------------------------------- kernel helpers


def _bzimage(payload: bytes, setup_sects: int = 2) -> bytes:
    head = bytearray((setup_sects + 1) * 512)
    head[0x1F1] = setup_sects
    head[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", head, 0x206, 0x20F)
    struct.pack_into("<II", head, 0x248, 0x10, len(payload))
    return bytes(head) + b"\0" * 0x10 + payload + b"trailing"


def test_extract_vmlinux_from_xz_bzimage() -> None:
    elf = b"\x7fELF" + os.urandom(3000)
    payload = lzma.compress(elf, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32)
    assert extract_vmlinux(_bzimage(payload + b"\x01\x02\x03\x04")) == elf


def test_extract_vmlinux_errors() -> None:
    with pytest.raises(GuestBuildError, match="not a bzImage"):
        extract_vmlinux(b"\0" * 4096)
    with pytest.raises(GuestBuildError, match="compression"):
        extract_vmlinux(_bzimage(b"\x28\xb5\x2f\xfd" + b"\0" * 64))
    with pytest.raises(GuestBuildError, match="not an ELF"):
        extract_vmlinux(_bzimage(lzma.compress(b"MZ" * 100, format=lzma.FORMAT_XZ)))


def _ko(**info: str) -> bytes:
    """A minimal ELF64 relocatable with a .modinfo section."""
    modinfo_data = b"".join(f"{k.replace('_', '=', 1)}\0".encode() for k in info.values())
    shstrtab = b"\0.shstrtab\0.modinfo\0"
    data_off = 64
    shoff = (data_off + len(modinfo_data) + len(shstrtab) + 7) & ~7
    ehdr = bytearray(64)
    ehdr[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", ehdr, 0x28, shoff)
    struct.pack_into("<HHH", ehdr, 0x3A, 64, 3, 1)
    body = bytes(ehdr) + modinfo_data + shstrtab
    body += b"\0" * (shoff - len(body))
    sections = [
        struct.pack("<IIQQQQIIQQ", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        struct.pack("<IIQQQQIIQQ", 1, 3, 0, 0, 64 + len(modinfo_data), len(shstrtab), 0, 0, 1, 0),
        struct.pack("<IIQQQQIIQQ", 11, 1, 0, 0, data_off, len(modinfo_data), 0, 0, 1, 0),
    ]
    return body + b"".join(sections)


def test_modinfo_reads_the_section() -> None:
    info = modinfo(_ko(a="depends_x,y", b="alias_fs-foo", c="alias_pci:v1*"))
    assert info == {"depends": ["x,y"], "alias": ["fs-foo", "pci:v1*"]}


def test_plan_modules_orders_dependencies(tmp_path: Path) -> None:
    mods = {
        "kernel/drivers/virtio/virtio_ring.ko": {"d": "depends_"},
        "kernel/drivers/virtio/virtio.ko": {"d": "depends_virtio_ring"},
        "kernel/drivers/net/virtio_net.ko": {"d": "depends_virtio,virtio_ring,net_failover"},
        "kernel/drivers/net/net_failover.ko": {"d": "depends_failover"},
        "kernel/net/core/failover.ko": {"d": "depends_"},
        "kernel/drivers/char/hw_random/virtio-rng.ko": {"d": "depends_virtio,virtio_ring"},
        "kernel/fs/fat/vfat.ko": {"d": "depends_fat", "a": "alias_fs-vfat"},
        "kernel/fs/fat/fat.ko": {"d": "depends_"},
        "kernel/unused/other.ko": {"d": "depends_"},
    }
    for rel, info in mods.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(_ko(**info))
    plan = plan_modules(
        tmp_path, boot=("virtio_net", "virtio-rng", "built_in"), on_demand=("vfat",)
    )
    names = [Path(p).stem for p in plan.boot_order]
    assert set(names) == {
        "virtio_ring",
        "virtio",
        "failover",
        "net_failover",
        "virtio_net",
        "virtio-rng",
    }
    order = [
        ("virtio_ring", "virtio"),
        ("virtio", "virtio_net"),
        ("failover", "net_failover"),
        ("net_failover", "virtio_net"),
    ]
    for before, after in order:
        assert names.index(before) < names.index(after)
    assert "kernel/unused/other.ko" not in plan.files
    assert "kernel/fs/fat/fat.ko" in plan.files
    deps = dict(line.split(":", 1) for line in plan.modules_dep.splitlines())
    assert deps["kernel/fs/fat/vfat.ko"].split() == ["kernel/fs/fat/fat.ko"]
    net_deps = deps["kernel/drivers/net/virtio_net.ko"].split()
    # modprobe loads from the end of the list: dependencies after their dependents
    assert net_deps.index("kernel/drivers/virtio/virtio.ko") < net_deps.index(
        "kernel/drivers/virtio/virtio_ring.ko"
    )
    assert "alias fs-vfat vfat" in plan.modules_alias.splitlines()


# ---------------------------------------------------------------- builder cache and lock


def _fake_image(cache: Path) -> Path:
    final = cache / f"{IMAGE_PREFIX}{builder_version()}"
    final.mkdir(parents=True)
    (final / KERNEL_FILE).write_bytes(b"k" * 10)
    (final / INITRD_FILE).write_bytes(b"i" * 20)
    manifest = Manifest(
        builder_version=builder_version(),
        version="v-test",
        kernel_release="6.1.0-0-amd64",
        append="console=ttyS0",
        packages={},
        sizes={KERNEL_FILE: 10, INITRD_FILE: 20},
        built_at="2026-01-01T00:00:00Z",
        build_seconds=1.0,
    )
    (final / MANIFEST_FILE).write_bytes(msgspec.json.encode(manifest))
    return final


async def test_cached_image_is_returned_without_building(tmp_path: Path) -> None:
    final = _fake_image(tmp_path)
    messages: list[str] = []
    image = await build_test_guest(tmp_path, on_progress=messages.append)
    assert image.kernel == final / KERNEL_FILE
    assert image.initrd == final / INITRD_FILE
    assert image.append == "console=ttyS0"
    assert image.version == "v-test"
    assert len(messages) == 1
    assert "cached" in messages[0]


async def test_waits_for_the_lock_and_uses_the_other_build(tmp_path: Path) -> None:
    fd = os.open(tmp_path / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    messages: list[str] = []
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: build_test_guest(tmp_path, on_progress=messages.append))
            await trio.sleep(0.5)
            assert messages == ["another build holds the cache lock; waiting"]
            _fake_image(tmp_path)  # the "other process" finishes
            os.close(fd)
            fd = -1
    finally:
        if fd >= 0:
            os.close(fd)
    assert "built by another process" in messages[-1]


def _fake_tools(bin_dir: Path, tools: dict[str, str]) -> None:
    bin_dir.mkdir()
    for name, script in tools.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{script}\n")
        (bin_dir / name).chmod(0o755)


@pytest.mark.parametrize(
    ("tools", "step", "message", "stderr"),
    [
        (
            {"dpkg": "echo 'dpkg: broken' >&2; exit 2"},
            "check architecture",
            "exited with status 2",
            "dpkg: broken",
        ),
        ({"dpkg": "echo arm64"}, "check architecture", "amd64-only", ""),
        (
            {"dpkg": "echo amd64", "apt-cache": "echo 'E: No packages found' >&2; exit 100"},
            "choose kernel",
            "status 100",
            "E: No packages found",
        ),
        (
            {"dpkg": "echo amd64", "apt-cache": "echo 'linux-image-amd64'"},
            "choose kernel",
            "apt-get update",
            "",
        ),
    ],
)
async def test_tool_failures_raise_typed_errors_and_leave_no_debris(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tools: dict[str, str],
    step: str,
    message: str,
    stderr: str,
) -> None:
    _fake_tools(tmp_path / "bin", tools)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    cache = tmp_path / "cache"
    with pytest.raises(GuestBuildError) as caught:
        await build_test_guest(cache)
    assert caught.value.step == step
    assert message in caught.value.message
    assert stderr in caught.value.stderr
    assert sorted(p.name for p in cache.iterdir()) == [LOCK_FILE]
