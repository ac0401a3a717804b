"""The ``debian-12`` image builder without the Debian mirror: the plan as data, its hooks
run by ``sh`` on a scratch tree, and the builder driven by a fake ``mmdebstrap`` script
(the real ``mke2fs`` and ``qemu-img`` make the image; they are fast and boot nothing)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import msgspec
import psutil
import pytest
import trio
import yaml

from golem_actor.adapters.backend import ImageNotAvailable
from golem_actor.adapters.images import (
    DebianImage,
    ImageBuildError,
    build_debian_image,
    default_plan,
    fs_size_for,
    image_dir,
    mmdebstrap_argv,
    plan_version,
)
from golem_actor.adapters.images._plan import _write_file_cmd
from golem_actor.adapters.qemu import _boot, _images
from golem_actor.adapters.qemu._vmdir import MachineRecord, VmPaths
from golem_actor.cli._main import main as cli_main
from golem_actor.images import DebianBuild, ImageCatalog, ImageEntry, load_catalog

MIB = 1 << 20


def _hook(argv: list[str], flag: str) -> str:
    (value,) = [a.removeprefix(flag) for a in argv if a.startswith(flag)]
    return value


# -- the plan -----------------------------------------------------------------------------


def test_argv_builds_a_directory_as_root_with_the_rented_machine_packages() -> None:
    plan = default_plan()
    argv = mmdebstrap_argv(plan, Path("/scratch/root"))
    assert argv[0] == "mmdebstrap"
    assert argv[-2:] == ["bookworm", "/scratch/root"]
    assert {"--mode=root", "--format=directory", "--variant=apt"} <= set(argv)
    included = set(_hook(argv, "--include=").split(","))
    assert {
        "linux-image-cloud-amd64",
        "systemd",
        "openssh-server",
        "sudo",
        "cloud-init",
        "initramfs-tools",
    } <= included
    assert plan.append.split()[:3] == ["console=ttyS0", "root=/dev/vda", "rw"]


def test_setup_hook_writes_the_initramfs_config_before_any_package(tmp_path: Path) -> None:
    argv = mmdebstrap_argv(default_plan(), tmp_path / "unused")
    subprocess.run(["sh", "-c", _hook(argv, "--setup-hook="), "sh", str(tmp_path)], check=True)
    conf = (tmp_path / "etc/initramfs-tools/conf.d/golem").read_text()
    assert "MODULES=list" in conf.splitlines()
    modules = (tmp_path / "usr/share/initramfs-tools/modules.d/golem").read_text().split()
    assert modules == ["virtio_pci", "virtio_blk"]


def test_customize_hook_writes_files_and_removes_baked_secrets(tmp_path: Path) -> None:
    plan = msgspec.structs.replace(default_plan(), enable_units=(), mask_units=())  # no chroot
    for key in ("ssh_host_ed25519_key", "ssh_host_ed25519_key.pub", "ssh_host_rsa_key"):
        (tmp_path / "etc/ssh").mkdir(parents=True, exist_ok=True)
        (tmp_path / "etc/ssh" / key).write_text("secret")
    (tmp_path / "etc/ssh/sshd_config").write_text("keep")
    (tmp_path / "etc/machine-id").write_text("0123456789abcdef\n")
    argv = mmdebstrap_argv(plan, tmp_path / "unused")
    hook = _hook(argv, "--customize-hook=")
    subprocess.run(["sh", "-c", hook, "sh", str(tmp_path)], check=True)
    assert sorted(p.name for p in (tmp_path / "etc/ssh").iterdir()) == ["sshd_config"]
    assert (tmp_path / "etc/machine-id").read_bytes() == b""
    cfg = yaml.safe_load((tmp_path / "etc/cloud/cloud.cfg.d/90-golem.cfg").read_text())
    assert cfg["datasource_list"] == ["NoCloud", "None"]
    assert {"resizefs", "growpart", "users-groups", "ssh", "set_hostname"} <= set(
        cfg["cloud_init_modules"]
    )
    assert "locale" not in cfg["cloud_config_modules"]  # fails without the locales package
    assert "DHCP=ipv4" in (tmp_path / "etc/systemd/network/10-golem.network").read_text()
    assert (tmp_path / "etc/fstab").read_text().split()[:3] == ["/dev/vda", "/", "ext4"]


def test_default_plan_enables_networking_in_the_chroot() -> None:
    hook = _hook(mmdebstrap_argv(default_plan(), Path("/r")), "--customize-hook=")
    assert 'chroot "$1" systemctl enable systemd-networkd.service' in hook
    assert 'chroot "$1" systemctl mask e2scrub_reap.service' in hook


@pytest.mark.parametrize("content", ["it's", 'a "b" $HOME `x` \\n', "line\n\nend\n", "%s%%"])
def test_file_contents_survive_the_shell_verbatim(tmp_path: Path, content: str) -> None:
    cmd = _write_file_cmd("etc/x/y.conf", content)
    subprocess.run(["sh", "-c", cmd, "sh", str(tmp_path)], check=True)
    assert (tmp_path / "etc/x/y.conf").read_text() == content


@pytest.mark.parametrize("path", ["/etc/passwd", "etc/../../x", "../x"])
def test_file_paths_stay_inside_the_root(path: str) -> None:
    with pytest.raises(ValueError, match="inside the root"):
        _write_file_cmd(path, "x")


def test_version_follows_the_plan() -> None:
    plan = default_plan()
    assert plan_version(plan) == plan_version(default_plan())
    more = msgspec.structs.replace(plan, packages=(*plan.packages, "vim"))
    other_file = msgspec.structs.replace(plan, files={**plan.files, "etc/motd": "hi\n"})
    versions = {plan_version(p) for p in (plan, more, other_file, default_plan("trixie"))}
    assert len(versions) == 4


@pytest.mark.parametrize("used_mib", [0, 1, 400, 1000])
def test_fs_size_leaves_room_in_64_mib_steps(used_mib: int) -> None:
    size = fs_size_for(used_mib * MIB)
    assert size % (64 * MIB) == 0
    assert size >= used_mib * MIB * 13 // 10 + 256 * MIB
    assert size < used_mib * MIB * 13 // 10 + 256 * MIB + 64 * MIB


# -- the builder, with a fake mmdebstrap ----------------------------------------------------

FAKE_OK = """#!/bin/sh
# fake mmdebstrap: the last argument is the target; make a tiny root with /boot files
echo call >> "{calls}"
for t; do target="$t"; done
mkdir -p "$target/boot" "$target/etc" "$target/usr/bin"
printf 'kernel' > "$target/boot/vmlinuz-6.1.0-99-cloud-amd64"
printf 'initrd' > "$target/boot/initrd.img-6.1.0-99-cloud-amd64"
head -c 300000 /dev/urandom > "$target/usr/bin/big"
echo "I: running apt-get update..."
echo "I: installing remaining packages inside the chroot..." >&2
"""
FAKE_FAIL = """#!/bin/sh
echo "I: running apt-get update..."
echo "E: apt-get update --error-on=any failed" >&2
exit 1
"""
FAKE_HANG = """#!/bin/sh
echo "I: running apt-get update..."
sleep 300 &
echo $! > "{calls}"
wait
"""


@pytest.fixture
def fake_bin(tmp_path: Path) -> tuple[Path, Path]:
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    return bin_dir, calls


async def _out(argv: list[str]) -> str:
    result = await trio.run_process(argv, capture_stdout=True, capture_stderr=True)
    return str(result.stdout.decode())


def _fake(bin_dir: Path, calls: Path, script: str) -> Path:
    path = bin_dir / "mmdebstrap"
    path.write_text(script.format(calls=calls))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


async def test_build_makes_a_bootable_set_and_caches_it(
    tmp_path: Path, fake_bin: tuple[Path, Path]
) -> None:
    fake = _fake(*fake_bin, FAKE_OK)
    lines: list[str] = []
    plan = default_plan()
    image = await build_debian_image(
        tmp_path / "cache", plan, mmdebstrap=str(fake), on_progress=lines.append
    )
    assert image.base.parent == image_dir((tmp_path / "cache").absolute(), "debian-12", plan)
    assert image.kernel.read_bytes() == b"kernel"
    assert image.initrd.read_bytes() == b"initrd"
    assert image.append == plan.append
    assert "I: installing remaining packages inside the chroot..." in lines  # stderr too
    info = json.loads(await _out(["qemu-img", "info", "--output=json", str(image.base)]))
    assert info["format"] == "qcow2"
    assert info["virtual-size"] % (64 * MIB) == 0
    raw = tmp_path / "r"
    await _out(["qemu-img", "convert", "-O", "raw", str(image.base), str(raw)])
    dumpe2fs = await _out(["/sbin/dumpe2fs", "-h", str(raw)])
    assert "Filesystem volume name:   golem-root" in dumpe2fs
    assert "has_journal" in dumpe2fs
    assert not list((tmp_path / "cache").glob(".image-build-*"))
    # warm: no second mmdebstrap run
    again = await build_debian_image(tmp_path / "cache", plan, mmdebstrap=str(fake))
    assert again == image
    assert len(fake_bin[1].read_text().splitlines()) == 1


async def test_a_damaged_cache_is_rebuilt(tmp_path: Path, fake_bin: tuple[Path, Path]) -> None:
    fake = _fake(*fake_bin, FAKE_OK)
    image = await build_debian_image(tmp_path / "c", default_plan(), mmdebstrap=str(fake))
    image.kernel.write_bytes(b"truncated")
    await build_debian_image(tmp_path / "c", default_plan(), mmdebstrap=str(fake))
    assert image.kernel.read_bytes() == b"kernel"
    assert len(fake_bin[1].read_text().splitlines()) == 2


async def test_concurrent_builds_run_mmdebstrap_once(
    tmp_path: Path, fake_bin: tuple[Path, Path]
) -> None:
    fake = _fake(*fake_bin, FAKE_OK)
    results: list[DebianImage] = []

    async def one() -> None:
        results.append(
            await build_debian_image(tmp_path / "c", default_plan(), mmdebstrap=str(fake))
        )

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(one)
    assert len(set(results)) == 1
    assert len(fake_bin[1].read_text().splitlines()) == 1


async def test_failed_mmdebstrap_is_reported_with_its_output(
    tmp_path: Path, fake_bin: tuple[Path, Path]
) -> None:
    fake = _fake(*fake_bin, FAKE_FAIL)
    with pytest.raises(ImageBuildError) as caught:
        await build_debian_image(tmp_path / "c", default_plan(), mmdebstrap=str(fake))
    assert caught.value.step == "mmdebstrap"
    assert "apt-get update --error-on=any failed" in str(caught.value)
    assert [p.name for p in (tmp_path / "c").iterdir()] == ["debian-12.lock"]


async def test_a_hanging_build_is_stopped_within_its_time_limit(
    tmp_path: Path, fake_bin: tuple[Path, Path]
) -> None:
    fake = _fake(*fake_bin, FAKE_HANG)
    started = time.monotonic()
    with pytest.raises(ImageBuildError, match="not built within 1s"):
        await build_debian_image(
            tmp_path / "c", default_plan(), mmdebstrap=str(fake), time_limit=1.0
        )
    assert time.monotonic() - started < 10
    child = int(fake_bin[1].read_text())  # the fake's own child: the process group died
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE
    assert not list((tmp_path / "c").glob(".image-build-*"))


async def test_a_root_with_proc_contents_is_not_copied(
    tmp_path: Path, fake_bin: tuple[Path, Path]
) -> None:
    fake = _fake(
        *fake_bin, FAKE_OK + 'mkdir -p "$target/proc/self" && : > "$target/proc/self/auxv"\n'
    )
    with pytest.raises(ImageBuildError, match="still mounted in the new root"):
        await build_debian_image(tmp_path / "c", default_plan(), mmdebstrap=str(fake))
    assert not list((tmp_path / "c").glob("debian-12-*"))


async def test_missing_mmdebstrap_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(ImageBuildError, match="install the Debian package `mmdebstrap`"):
        await build_debian_image(tmp_path / "c", default_plan(), mmdebstrap="/nonexistent/mmdeb")


# -- catalog, image store, boot argv, CLI -------------------------------------------------


def test_shipped_catalog_has_debian_12_built_from_bookworm() -> None:
    catalog = load_catalog(None)
    for name in ("debian-12", "debian", "bookworm"):
        assert catalog.resolve(name, "qemu") == "debian-12"
    assert catalog.entries["debian-12"].qemu == DebianBuild(suite="bookworm")


def test_catalog_refuses_a_bad_suite(tmp_path: Path) -> None:
    (tmp_path / "images.toml").write_text(
        '[images.x]\nqemu = { kind = "debian", suite = "../etc" }\n'
    )
    with pytest.raises(ValueError, match="suite"):
        load_catalog(tmp_path)


async def test_store_turns_a_build_failure_into_image_not_available(
    tmp_path: Path, fake_bin: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake(*fake_bin, FAKE_FAIL)
    monkeypatch.setenv("PATH", f"{fake_bin[0]}{os.pathsep}{os.environ['PATH']}")
    catalog = ImageCatalog({"deb": ImageEntry(qemu=DebianBuild())}, {"qemu": "deb"})
    store = _images.ImageStore(catalog=catalog, cache_dir=tmp_path / "cache")
    with pytest.raises(ImageNotAvailable, match=r"(?s)'deb' cannot be built.*apt-get update"):
        await store.materialize("deb")


async def test_store_builds_under_the_canonical_name(
    tmp_path: Path, fake_bin: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake(*fake_bin, FAKE_OK)
    monkeypatch.setenv("PATH", f"{fake_bin[0]}{os.pathsep}{os.environ['PATH']}")
    catalog = ImageCatalog({"deb": ImageEntry(aliases=["d"], qemu=DebianBuild())}, {})
    store = _images.ImageStore(catalog=catalog, cache_dir=tmp_path / "cache")
    image = await store.materialize("d")
    assert isinstance(image, DebianImage)
    assert image.name == "deb"
    assert image.base.parent.name.startswith("deb-")


def _record(tmp_path: Path) -> tuple[VmPaths, MachineRecord]:
    from golem_actor.adapters.backend import LaunchSpec  # noqa: PLC0415
    from golem_actor.domain.resources import Resources  # noqa: PLC0415

    spec = LaunchSpec(
        vm_id="vm1",
        image="debian-12",
        hostname="vm1",
        resources=Resources(cpus=1, memory_mib=1024, storage_gib=3),
        authorized_keys=("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB2sFh test",),
    )
    return VmPaths(tmp_path, "vm1"), MachineRecord(spec=spec, ssh_port=2222, accel="tcg")


def test_a_built_image_boots_its_kernel_with_root_on_the_disk(tmp_path: Path) -> None:
    paths, record = _record(tmp_path)
    image = DebianImage(
        name="debian-12",
        base=Path("/c/base.qcow2"),
        kernel=Path("/c/vmlinuz"),
        initrd=Path("/c/initrd.img"),
        append=default_plan().append,
        version="1-x",
    )
    config = _boot.BootConfig(
        qemu_binary="qemu-system-x86_64",
        qemu_img="qemu-img",
        pasta_binary="pasta",
        start_timeout=1,
        port_attempts=1,
        outbound="nat",
    )
    argv = _boot._argv(paths, record, image, config)
    # Boot files are linked into the VM directory and named relatively (the sandbox).
    assert argv[argv.index("-kernel") + 1] == VmPaths.KERNEL
    assert argv[argv.index("-initrd") + 1] == VmPaths.INITRD
    assert "root=/dev/vda" in argv[argv.index("-append") + 1].split()
    drives = [argv[i + 1] for i, a in enumerate(argv) if a == "-drive"]
    assert drives[0].startswith(f"file={VmPaths.DISK},")  # the overlay is the first disk


def test_a_built_images_boot_files_are_linked_into_the_vm_directory(tmp_path: Path) -> None:
    paths, _ = _record(tmp_path)
    paths.dir.mkdir()
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "vmlinuz").write_bytes(b"kernel")
    (cache / "initrd.img").write_bytes(b"initrd")
    image = DebianImage(
        name="debian-12",
        base=cache / "base.qcow2",
        kernel=cache / "vmlinuz",
        initrd=cache / "initrd.img",
        append="",
        version="1-x",
    )
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(paths.disk), "1G"], check=True)
    _boot._prepare(paths, image, None, "qemu-img")
    assert (paths.dir / VmPaths.KERNEL).read_bytes() == b"kernel"
    assert (paths.dir / VmPaths.INITRD).read_bytes() == b"initrd"


async def test_provision_makes_an_overlay_of_the_base_of_the_requested_size(
    tmp_path: Path,
) -> None:
    paths, record = _record(tmp_path)
    paths.dir.mkdir()
    base = tmp_path / "base.qcow2"
    await _out(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "1G"])
    image = DebianImage(
        name="debian-12", base=base, kernel=base, initrd=base, append="", version="1-x"
    )
    await _boot.provision(paths, record.spec, image, qemu_img="qemu-img")
    info = json.loads(await _out(["qemu-img", "info", "--output=json", str(paths.disk)]))
    assert info["virtual-size"] == 3 << 30
    assert info["backing-filename"] == str(base)
    assert paths.seed.exists()


def test_cli_refuses_images_it_does_not_build(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["image", "build", "test-guest", "--data-dir", str(tmp_path)]) == 2
    assert "not built by the node" in capsys.readouterr().err
    assert cli_main(["image", "build", "nope", "--data-dir", str(tmp_path)]) == 2
    assert "unknown image 'nope'" in capsys.readouterr().err
