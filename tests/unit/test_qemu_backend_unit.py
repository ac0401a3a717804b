"""``QemuBackend`` and its parts without booting a guest.

Fakes instead of QEMU where a boot would be needed: a fake QMP server on a unix socket,
fake ``qemu-system`` shell scripts (for the KVM probe and for start failures), stand-in
processes for the pid-reuse guard, and a tiny HTTP server on 127.0.0.1 for downloads.
``qemu-img`` is the real one (it is fast and boots nothing).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import msgspec
import psutil
import pytest
import trio
import trio.testing

from golem_actor.adapters.backend import (
    BackendError,
    BackendState,
    ImageNotAvailable,
    LaunchSpec,
    VmMissing,
)
from golem_actor.adapters.guest import GuestImage
from golem_actor.adapters.qemu import (
    QemuBackend,
    QmpError,
    QmpReplyError,
    _boot,
    _images,
    _network,
    _process,
    _vmdir,
    download_image,
    probe_accel,
    qmp_session,
    verify_local_image,
)
from golem_actor.adapters.qemu._accel import CACHE_FILE
from golem_actor.adapters.qemu._backend import why_off
from golem_actor.adapters.qemu._boot import BootConfig
from golem_actor.adapters.qemu._disk import GIB, create_data_disk, create_overlay, disk_info
from golem_actor.domain.resources import Resources
from golem_actor.images import CloudImage, ImageCatalog, ImageEntry, TestGuestImage

pytestmark = pytest.mark.tools  # the real qemu-img, and stand-in qemu-system processes

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHxQ1BvNkXbA4Io+8W3yTsqpXb0H0Ek8cL2uXnS0Jd6y test"
BASE = b"not really a disk image, but raw bytes are a valid raw image\n" * 1024
BASE_SHA = hashlib.sha256(BASE).hexdigest()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A temp dir with a short path (unix socket paths must fit in 108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="gqu-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def spec(vm_id: str = "vm1", image: str = "cloud", storage_gib: int = 1) -> LaunchSpec:
    return LaunchSpec(
        vm_id=vm_id,
        hostname="host-1",
        resources=Resources(cpus=1, memory_mib=256, storage_gib=storage_gib),
        image=image,
        authorized_keys=(KEY,),
    )


def catalog(base: Path | None = None) -> ImageCatalog:
    entries = {
        "test-guest": ImageEntry(qemu=TestGuestImage()),
        "mp-only": ImageEntry(multipass="24.04"),
    }
    if base is not None:
        entries["cloud"] = ImageEntry(qemu=CloudImage(sha256=BASE_SHA, path=str(base)))
    return ImageCatalog(entries, {"qemu": "test-guest"})


def backend(root: Path, **options: object) -> QemuBackend:
    """A backend that never switches users (no system user is created by unit tests)."""
    return QemuBackend(
        vms_dir=root / "vms",
        guest_cache=root / "cache",
        catalog=catalog(root / "base.img"),
        accel="tcg",
        run_as=None,
        **options,  # type: ignore[arg-type]
    )


def make_record(root: Path, vm_id: str = "vm1") -> _vmdir.VmPaths:
    paths = _vmdir.check_vm_id((root / "vms").absolute(), vm_id)
    _vmdir.create_vm_dir(paths, _vmdir.MachineRecord(spec=spec(vm_id), ssh_port=2222, accel="tcg"))
    return paths


# -- QMP client against a fake server ----------------------------------------------------

Handler = Callable[[trio.SocketStream], Awaitable[None]]


async def read_command(stream: trio.SocketStream, buffer: bytearray) -> dict[str, object]:
    while b"\n" not in buffer:
        data = await stream.receive_some(4096)
        if not data:
            raise EOFError
        buffer += data
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    command: dict[str, object] = json.loads(line)
    return command


async def send(stream: trio.SocketStream, message: object) -> None:
    await stream.send_all(json.dumps(message).encode() + b"\n")


GREETING = {"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 22}}, "capabilities": []}}


def serve_qmp(replies: dict[str, Callable[[dict[str, object]], list[object]]]) -> Handler:
    """A QMP server: greets, then answers each command with what ``replies`` says
    (a list of messages; events may precede the reply). Unknown commands get no answer."""

    async def handler(stream: trio.SocketStream) -> None:
        buffer = bytearray()
        await send(stream, GREETING)
        while True:
            try:
                command = await read_command(stream, buffer)
            except (EOFError, trio.BrokenResourceError):
                return
            name = str(command["execute"])
            if name == "qmp_capabilities":
                await send(stream, {"return": {}, "id": command.get("id")})
            elif name in replies:
                for message in replies[name](command):
                    await send(stream, message)

    return handler


@pytest.fixture
async def qmp_server(short_dir: Path) -> AsyncIterator[Callable[[Handler], Awaitable[Path]]]:
    async with trio.open_nursery() as nursery:

        async def start(handler: Handler) -> Path:
            path = short_dir / "qmp.sock"
            sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
            await sock.bind(str(path))
            sock.listen()
            listener = trio.SocketListener(sock)

            async def serve() -> None:
                async with listener:
                    while True:
                        stream = await listener.accept()
                        nursery.start_soon(_serve_one, handler, stream)

            nursery.start_soon(serve)
            return path

        yield start
        nursery.cancel_scope.cancel()


async def _serve_one(handler: Handler, stream: trio.SocketStream) -> None:
    async with stream:
        await handler(stream)


async def test_qmp_greeting_capabilities_and_execute(
    qmp_server: Callable[[Handler], Awaitable[Path]],
) -> None:
    seen: list[dict[str, object]] = []

    def status(command: dict[str, object]) -> list[object]:
        seen.append(command)
        return [
            {"event": "RESUME", "data": {}, "timestamp": {"seconds": 1, "microseconds": 0}},
            {"return": {"status": "stale"}, "id": "someone-else"},
            {"return": {"status": "running", "running": True}, "id": command["id"]},
        ]

    path = await qmp_server(serve_qmp({"query-status": status}))
    async with qmp_session(path) as qmp:
        assert qmp.greeting["version"] == {"qemu": {"major": 7, "minor": 2, "micro": 22}}
        assert await qmp.execute("query-status") == {"status": "running", "running": True}
        assert await qmp.execute("query-status", {"x": 1}) == {"status": "running", "running": True}
    assert "arguments" not in seen[0]
    assert seen[1]["arguments"] == {"x": 1}


async def test_qmp_error_reply(qmp_server: Callable[[Handler], Awaitable[Path]]) -> None:
    def fail(command: dict[str, object]) -> list[object]:
        error = {"class": "CommandNotFound", "desc": "The command nope has not been found"}
        return [{"error": error, "id": command["id"]}]

    path = await qmp_server(serve_qmp({"nope": fail}))
    async with qmp_session(path) as qmp:
        with pytest.raises(QmpReplyError, match="CommandNotFound") as caught:
            await qmp.execute("nope")
    assert caught.value.error_class == "CommandNotFound"
    assert isinstance(caught.value, BackendError)


async def test_qmp_command_timeout(
    qmp_server: Callable[[Handler], Awaitable[Path]], autojump_clock: trio.testing.MockClock
) -> None:
    path = await qmp_server(serve_qmp({}))  # never answers anything but capabilities
    async with qmp_session(path, op_timeout=2.0) as qmp:
        started = trio.current_time()
        with pytest.raises(QmpError, match="timed out after 2s"):
            await qmp.execute("query-status")
        assert trio.current_time() - started == pytest.approx(2.0)


async def test_qmp_no_greeting_times_out(
    qmp_server: Callable[[Handler], Awaitable[Path]], autojump_clock: trio.testing.MockClock
) -> None:
    async def silent(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()  # like a QMP socket busy with another client

    path = await qmp_server(silent)
    with pytest.raises(QmpError, match="no greeting within 3s"):
        async with qmp_session(path, op_timeout=3.0):
            pass


async def test_qmp_connection_closed_and_missing_socket(
    qmp_server: Callable[[Handler], Awaitable[Path]], short_dir: Path
) -> None:
    async def hang_up_after_capabilities(stream: trio.SocketStream) -> None:
        buffer = bytearray()
        await send(stream, GREETING)
        command = await read_command(stream, buffer)
        await send(stream, {"return": {}, "id": command["id"]})
        await read_command(stream, buffer)  # then close without a reply

    path = await qmp_server(hang_up_after_capabilities)
    async with qmp_session(path) as qmp:
        with pytest.raises(QmpError, match="closed by QEMU"):
            await qmp.execute("quit")
    with pytest.raises(QmpError, match="cannot connect"):
        async with qmp_session(short_dir / "absent.sock"):
            pass


# -- VM directories: half-made, foreign, corrupt ------------------------------------------


async def test_missing_vm(short_dir: Path) -> None:
    qemu = backend(short_dir)
    assert (await qemu.inspect("vm1")).state is BackendState.MISSING
    assert await qemu.list_owned() == []
    with pytest.raises(VmMissing):
        await qemu.stop("vm1")
    with pytest.raises(VmMissing):
        await qemu.start("vm1")
    await qemu.delete("vm1")  # nothing there: fine


async def test_record_without_disk_is_stopped_and_deletable(short_dir: Path) -> None:
    paths = make_record(short_dir)  # a crash right after the record was written
    qemu = backend(short_dir)
    observed = await qemu.inspect("vm1")
    assert observed.state is BackendState.STOPPED
    assert observed.resources == spec().resources
    assert observed.ssh is None
    assert await qemu.list_owned() == [observed]
    await qemu.stop("vm1")  # nothing runs: a no-op
    await qemu.delete("vm1")
    assert not paths.dir.exists()
    assert (await qemu.inspect("vm1")).state is BackendState.MISSING
    assert os.listdir(short_dir / "vms") == []


async def test_leftovers_of_crashed_launch_and_delete_are_swept(short_dir: Path) -> None:
    vms = short_dir / "vms"
    staging = vms / ".vm1.staging-0123456789ab"
    deleting = vms / ".vm1.deleting-ba9876543210"
    other = vms / ".vm10.staging-0123456789ab"  # another VM's: left alone
    for directory in (staging, deleting, other):
        directory.mkdir(parents=True)
        (directory / "vm.json").write_text("{}")
    qemu = backend(short_dir)
    assert (await qemu.inspect("vm1")).state is BackendState.MISSING
    assert await qemu.list_owned() == []
    await qemu.delete("vm1")
    assert sorted(os.listdir(vms)) == [other.name]


async def test_husk_without_record(short_dir: Path) -> None:
    husk = short_dir / "vms" / "vm1"
    husk.mkdir(parents=True)
    (husk / "serial.log").write_text("boot\n")
    (husk / ".vm.json.tmp-abcdef012345").write_text("{")
    qemu = backend(short_dir)
    assert (await qemu.inspect("vm1")).state is BackendState.MISSING
    assert await qemu.list_owned() == []
    await qemu.delete("vm1")
    assert not husk.exists()


async def test_foreign_directory_is_left_alone(short_dir: Path) -> None:
    foreign = short_dir / "vms" / "vm1"
    foreign.mkdir(parents=True)
    (foreign / "precious.txt").write_text("not ours")
    qemu = backend(short_dir)
    assert await qemu.list_owned() == []
    with pytest.raises(BackendError, match="leaving it alone"):
        await qemu.delete("vm1")
    assert (foreign / "precious.txt").read_text() == "not ours"


async def test_corrupt_record_is_unknown_and_deletable(short_dir: Path) -> None:
    paths = make_record(short_dir)
    paths.record.write_text("{not json")
    qemu = backend(short_dir)
    assert (await qemu.inspect("vm1")).state is BackendState.UNKNOWN
    await qemu.delete("vm1")
    assert not paths.dir.exists()


@pytest.mark.parametrize("vm_id", ["", "../x", "a/b", ".hidden", "x" * 65])
async def test_unsafe_vm_ids_are_refused(short_dir: Path, vm_id: str) -> None:
    with pytest.raises(BackendError, match="invalid vm id"):
        await backend(short_dir).inspect(vm_id)


def test_qemu_gets_only_names_relative_to_its_vm_directory(short_dir: Path) -> None:
    """QEMU runs in the VM directory as a user that may not reach its absolute path
    (nor fit a deep one in a unix socket address): no argument names the directory."""
    paths = _vmdir.check_vm_id(short_dir / ("d" * 90), "vm1")
    record = _vmdir.MachineRecord(spec=spec(image="test-guest"), ssh_port=2222, accel="tcg")
    guest = GuestImage(
        kernel=short_dir / "cache" / "vmlinux",
        initrd=short_dir / "cache" / "initrd.cpio",
        append="console=ttyS0",
        version="1",
    )
    config = BootConfig(
        qemu_binary="qemu-system-x86_64",
        qemu_img="qemu-img",
        pasta_binary="pasta",
        start_timeout=1,
        port_attempts=1,
        outbound="nat",
    )
    argv = _boot._argv(paths, record, guest, config)
    assert argv[:5] == ["unshare", "--user", "--map-root-user", "--net", "--"]
    assert not [arg for arg in argv if str(short_dir) in arg]
    assert "-pidfile" not in argv  # the node writes it (QEMU would resolve the path)
    assert argv[argv.index("-kernel") + 1] == "vmlinux"
    assert "socket,id=qmp0,path=qmp.sock,server=on,wait=off" in argv
    assert "user,id=net0,hostfwd=tcp::2222-:22" in argv
    assert argv[argv.index("-sandbox") + 1].startswith("on,")


async def test_qmp_session_reaches_a_socket_whose_path_is_too_long(short_dir: Path) -> None:
    deep = short_dir / ("d" * 100)
    deep.mkdir()
    path = deep / "qmp.sock"
    assert len(str(path)) > 107
    directory = os.open(deep, os.O_PATH | os.O_DIRECTORY)
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    await sock.bind(f"/proc/self/fd/{directory}/qmp.sock")  # as QEMU does, relatively
    os.close(directory)
    sock.listen()
    async with trio.open_nursery() as nursery:
        listener = trio.SocketListener(sock)

        async def serve() -> None:
            async with listener:
                stream = await listener.accept()
                await _serve_one(serve_qmp({}), stream)

        nursery.start_soon(serve)
        async with qmp_session(path) as qmp:
            assert qmp.greeting["version"]["qemu"]["major"] == 7


# -- pid reuse guard ----------------------------------------------------------------------


async def test_pid_of_an_unrelated_process_is_not_ours(short_dir: Path) -> None:
    paths = make_record(short_dir)
    stranger = await trio.lowlevel.open_process(["sleep", "60"])
    try:
        paths.pidfile.write_text(f"{stranger.pid}\n")  # QEMU died, its pid was reused
        assert _process.live_pid(paths.pidfile) is None
        qemu = backend(short_dir)
        assert (await qemu.inspect("vm1")).state is BackendState.STOPPED
        await qemu.delete("vm1")
        assert not paths.dir.exists()
        await trio.sleep(0.2)
        assert stranger.returncode is None  # never signalled
    finally:
        stranger.kill()
        await stranger.wait()


async def test_our_process_is_found_observed_and_killed(short_dir: Path) -> None:
    paths = make_record(short_dir)
    # a stand-in for QEMU: it carries "-pidfile <this VM's pidfile>" in its command line
    argv = [sys.executable, "-c", "import time; time.sleep(60)", "-pidfile", str(paths.pidfile)]
    fake = await trio.lowlevel.open_process(argv)
    try:
        paths.pidfile.write_text(f"{fake.pid}\n")
        assert _process.live_pid(paths.pidfile) == fake.pid
        assert _process.scan_for_owner(paths.pidfile) == [fake.pid]
        qemu = backend(short_dir, qmp_timeout=0.5)
        observed = await qemu.inspect("vm1")  # alive, but no QMP answers
        assert observed.state is BackendState.UNKNOWN
        assert observed.ssh is not None
        assert observed.ssh.port == 2222
        await qemu.delete("vm1")  # kills it; as our child it stays a zombie until reaped
        with trio.fail_after(5):
            await fake.wait()
        assert fake.returncode == -9
        assert not paths.dir.exists()
    finally:
        if fake.returncode is None:
            fake.kill()
            await fake.wait()


# -- images -------------------------------------------------------------------------------


async def test_unknown_image_creates_nothing(short_dir: Path) -> None:
    qemu = backend(short_dir)
    with pytest.raises(ImageNotAvailable, match="unknown image 'nope'"):
        await qemu.launch(spec(image="nope"))
    with pytest.raises(ImageNotAvailable, match="not available"):
        await qemu.launch(spec(image="mp-only"))
    assert not (short_dir / "vms").exists()


async def test_local_cloud_image_is_verified_once(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = short_dir / "base.img"
    base.write_bytes(BASE)
    hashed: list[Path] = []
    real_sha = _images.sha256_of

    def counting(path: Path) -> str:
        hashed.append(path)
        return real_sha(path)

    monkeypatch.setattr(_images, "sha256_of", counting)
    markers = short_dir / "verified"
    assert await verify_local_image(base, BASE_SHA, markers) == base
    assert await verify_local_image(base, BASE_SHA, markers) == base
    assert hashed == [base]
    base.write_bytes(BASE + b"tampered")  # size and mtime change: hashed again, refused
    with pytest.raises(ImageNotAvailable, match="the catalog expects"):
        await verify_local_image(base, BASE_SHA, markers)
    with pytest.raises(ImageNotAvailable, match="not readable"):
        await verify_local_image(short_dir / "absent.img", BASE_SHA, markers)
    with pytest.raises(ImageNotAvailable, match="absolute"):
        await verify_local_image(Path("relative.img"), BASE_SHA, markers)


@pytest.fixture
async def http_server() -> AsyncIterator[tuple[str, list[str]]]:
    """Serves ``/image.img`` (BASE) and 404 for anything else, on 127.0.0.1."""
    requests: list[str] = []

    async def handle(stream: trio.SocketStream) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(4096)
            if not chunk:
                return
            data += chunk
        path = data.split(b" ", 2)[1].decode()
        requests.append(path)
        status, body = ("200 OK", BASE) if path == "/image.img" else ("404 Not Found", b"no")
        head = f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        await stream.send_all(head.encode() + body)
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, host="127.0.0.1"), handle, 0
        )
        port = listeners[0].socket.getsockname()[1]
        yield f"http://127.0.0.1:{port}", requests
        nursery.cancel_scope.cancel()


async def test_download_verifies_and_caches(
    http_server: tuple[str, list[str]], short_dir: Path
) -> None:
    url, requests = http_server
    images = short_dir / "images"
    path = await download_image(f"{url}/image.img", BASE_SHA, images)
    assert path == images / f"{BASE_SHA}.img"
    assert path.read_bytes() == BASE
    assert await download_image(f"{url}/image.img", BASE_SHA, images) == path
    assert requests == ["/image.img"]  # the second call used the verified file
    assert os.listdir(images) == [path.name]


async def test_download_with_a_bad_checksum_leaves_nothing(
    http_server: tuple[str, list[str]], short_dir: Path
) -> None:
    url, _ = http_server
    images = short_dir / "images"
    wrong = "0" * 64
    with pytest.raises(ImageNotAvailable, match=f"has SHA-256 {BASE_SHA}, the catalog expects"):
        await download_image(f"{url}/image.img", wrong, images)
    with pytest.raises(ImageNotAvailable, match="HTTP 404"):
        await download_image(f"{url}/missing.img", BASE_SHA, images)
    with pytest.raises(ImageNotAvailable, match="must be http"):
        await download_image("file:///etc/passwd", BASE_SHA, images)
    assert os.listdir(images) == []


async def test_download_network_failure(short_dir: Path) -> None:
    with trio.socket.socket() as sock:  # a port nobody listens on
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ImageNotAvailable, match="ConnectError"):
        await download_image(f"http://127.0.0.1:{port}/x.img", BASE_SHA, short_dir / "images")


async def test_url_image_through_the_catalog(
    http_server: tuple[str, list[str]], short_dir: Path
) -> None:
    url, _ = http_server
    store = _images.ImageStore(
        catalog=ImageCatalog(
            {"web": ImageEntry(qemu=CloudImage(sha256=BASE_SHA, url=f"{url}/image.img"))}, {}
        ),
        cache_dir=short_dir,
    )
    disk = await store.materialize("web")
    assert disk == _images.CloudDisk(path=short_dir / "images" / f"{BASE_SHA}.img", sha256=BASE_SHA)


async def test_data_disk_and_overlay(short_dir: Path) -> None:
    disk = short_dir / "disk.qcow2"
    await create_data_disk(disk, 3)
    info = await disk_info(disk)
    assert (info["format"], info["virtual-size"]) == ("qcow2", 3 * GIB)

    base = short_dir / "base.img"
    base.write_bytes(BASE)
    overlay = short_dir / "overlay.qcow2"
    await create_overlay(overlay, base, 2)
    info = await disk_info(overlay)
    assert (info["format"], info["virtual-size"]) == ("qcow2", 2 * GIB)
    assert info["backing-filename"] == str(base)
    assert info["backing-filename-format"] == "raw"

    big = short_dir / "big.qcow2"
    await create_data_disk(big, 4)
    with pytest.raises(BackendError, match="needs 4 GiB"):
        await create_overlay(short_dir / "small.qcow2", big, 2)
    assert sorted(os.listdir(short_dir)) == ["base.img", "big.qcow2", "disk.qcow2", "overlay.qcow2"]


# -- the KVM probe ------------------------------------------------------------------------


def fake_qemu(directory: Path, *, version: str, behaviour: str) -> tuple[Path, Path]:
    """A ``qemu-system`` stand-in; returns (binary, file counting its boots)."""
    calls = directory / "calls"
    script = f"""#!/bin/sh
if [ "$1" = "--version" ]; then echo "QEMU emulator version {version}"; exit 0; fi
echo boot >> {calls}
echo $$ >> {directory / "pids"}
for arg in "$@"; do
  case "$arg" in file,id=serial0,path=*) serial="${{arg#file,id=serial0,path=}}";; esac
done
{behaviour}
"""
    return executable(directory / "qemu-system-x86_64", script), calls


KVM_WORKS = 'printf "Linux version 6.1 (fake)\\n" > "$serial"; exec sleep 60'
KVM_HANGS = "exec sleep 60"
KVM_FAILS = 'echo "Could not access KVM kernel module" >&2; exit 1'


def boots(calls: Path) -> int:
    return len(calls.read_text().splitlines()) if calls.exists() else 0


async def test_probe_picks_kvm_when_a_guest_runs_and_caches_it(short_dir: Path) -> None:
    device = executable(short_dir / "kvm", "")  # stands in for a usable /dev/kvm
    kernel = executable(short_dir / "vmlinux", "")
    cache = short_dir / "cache"
    binary, calls = fake_qemu(short_dir, version="9.9.9", behaviour=KVM_WORKS)
    probe = functools.partial(
        probe_accel, cache_dir=cache, kernel=kernel, kvm_device=device, binary=str(binary)
    )
    assert await probe() == "kvm"
    assert boots(calls) == 1
    entries = msgspec.json.decode((cache / CACHE_FILE).read_bytes(), type=dict[str, str])
    assert entries == {f"{os.uname().release}|QEMU emulator version 9.9.9": "kvm"}

    fake_qemu(short_dir, version="9.9.9", behaviour=KVM_FAILS)
    assert await probe() == "kvm"
    assert boots(calls) == 1  # cached: no second boot

    fake_qemu(short_dir, version="10.0.0", behaviour=KVM_FAILS)  # QEMU upgraded: probe again
    assert await probe() == "tcg"
    assert boots(calls) == 2
    entries = msgspec.json.decode((cache / CACHE_FILE).read_bytes(), type=dict[str, str])
    assert sorted(entries.values()) == ["kvm", "tcg"]


async def test_probe_falls_back_to_tcg_when_kvm_hangs(short_dir: Path) -> None:
    device = executable(short_dir / "kvm", "")
    binary, calls = fake_qemu(short_dir, version="9.9.9", behaviour=KVM_HANGS)
    started = trio.current_time()
    verdict = await probe_accel(
        cache_dir=short_dir / "cache",
        kernel=short_dir / "vmlinux",
        kvm_device=device,
        binary=str(binary),
        probe_timeout=0.5,
    )
    assert verdict == "tcg"
    assert boots(calls) == 1
    assert trio.current_time() - started < 5
    (pid,) = map(int, (short_dir / "pids").read_text().split())
    assert not psutil.pid_exists(pid)  # the hung probe was killed (and reaped)


async def test_probe_without_a_kvm_device_boots_nothing(short_dir: Path) -> None:
    binary, calls = fake_qemu(short_dir, version="9.9.9", behaviour=KVM_WORKS)
    verdict = await probe_accel(
        cache_dir=short_dir / "cache",
        kernel=short_dir / "vmlinux",
        kvm_device=short_dir / "no-such-device",
        binary=str(binary),
    )
    assert verdict == "tcg"
    assert boots(calls) == 0
    assert not (short_dir / "cache" / CACHE_FILE).exists()


# -- launch up to QEMU, with a QEMU that cannot start ----------------------------------------


# A QEMU stand-in that starts like QEMU (its QMP socket appears) and keeps running.
QEMU_STARTS = """#!/bin/sh
echo "$@" >> {calls}
: > qmp.sock
while :; do sleep 1; done
"""
# A pasta stand-in whose port is always taken, logging like pasta does.
PASTA_PORT_TAKEN = """#!/bin/sh
echo "$@" >> {calls}
echo "ERROR:   Failed to bind any port for '$*', exiting" > pasta.log
exit 1
"""


async def test_launch_retries_taken_ports_then_fails(short_dir: Path) -> None:
    (short_dir / "base.img").write_bytes(BASE)
    qemu_calls, pasta_calls = short_dir / "qemu-calls", short_dir / "pasta-calls"
    binary = executable(short_dir / "qemu-system-x86_64", QEMU_STARTS.format(calls=qemu_calls))
    pasta = executable(short_dir / "pasta", PASTA_PORT_TAKEN.format(calls=pasta_calls))
    qemu = backend(short_dir, qemu_binary=str(binary), pasta_binary=str(pasta), port_attempts=3)
    with pytest.raises(BackendError, match="no free SSH port for vm1 after 3 tries"):
        await qemu.launch(spec())
    attempts = pasta_calls.read_text().splitlines()
    ports = {arg.split("127.0.0.1/")[1].split(":")[0] for arg in attempts}
    assert len(attempts) == 3
    assert len(ports) == 3
    assert len(qemu_calls.read_text().splitlines()) == 1  # QEMU waited for the ports
    assert " --netns /proc/" in attempts[0]
    # the failed start left no QEMU running: a provisioned but stopped VM, as after a
    # crash mid-launch
    vm_dir = short_dir / "vms" / "vm1"
    assert _process.scan_for_owner(vm_dir / "qemu.pid") == []
    observed = await qemu.inspect("vm1")
    assert observed.state is BackendState.STOPPED
    assert stat.S_IMODE(vm_dir.stat().st_mode) == 0o700
    # the overlay names its base in the VM directory: the same file as the image's
    info = await disk_info(vm_dir / "disk.qcow2")
    assert info["backing-filename"] == "base"
    assert (vm_dir / "base").stat().st_ino == (short_dir / "base.img").stat().st_ino
    assert (vm_dir / "seed.iso").exists()
    # the same id with another spec is a conflict, not a silent reuse
    with pytest.raises(BackendError, match="different spec"):
        await qemu.launch(spec(storage_gib=2))
    await qemu.delete("vm1")
    assert not vm_dir.exists()


async def test_a_started_qemu_is_found_and_its_pasta_ends_with_it(short_dir: Path) -> None:
    """QEMU as the node starts it (relative names, run in its directory) is ours; pasta
    is known by its record, started again when lost, and killed on delete."""
    (short_dir / "base.img").write_bytes(BASE)
    binary = executable(
        short_dir / "qemu-system-x86_64", QEMU_STARTS.format(calls=short_dir / "calls")
    )
    pasta = executable(
        short_dir / "pasta",
        "#!/bin/sh\necho $$ > pasta.pid\nwhile :; do sleep 1; done\n",
    )
    qemu = backend(short_dir, qemu_binary=str(binary), pasta_binary=str(pasta), qmp_timeout=0.2)
    paths = _vmdir.check_vm_id((short_dir / "vms").absolute(), "vm1")
    with trio.move_on_after(1.5):  # the fake QMP socket never answers: launch waits
        await qemu.launch(spec())
    qemu_pid = _process.live_pid(paths.pidfile)
    assert qemu_pid is not None
    assert _process.scan_for_owner(paths.pidfile) == [qemu_pid]
    assert psutil.Process(qemu_pid).cwd() == str(paths.dir)
    first = _network.live_pasta(paths.pasta)
    assert first is not None
    psutil.Process(first).kill()
    with trio.fail_after(5):
        while True:
            if _network.live_pasta(paths.pasta) is None:
                break
            await trio.sleep(0.05)
    with trio.move_on_after(1.5):  # start of a running VM: pasta comes back
        await qemu.start("vm1")
    second = _network.live_pasta(paths.pasta)
    assert second is not None
    assert second != first
    await qemu.delete("vm1")
    assert not psutil.pid_exists(second) or psutil.Process(second).status() == "zombie"
    assert _process.scan_for_owner(paths.pidfile) == []


async def test_launch_reports_qemu_stderr(short_dir: Path) -> None:
    (short_dir / "base.img").write_bytes(BASE)
    binary = executable(
        short_dir / "qemu-system-x86_64",
        '#!/bin/sh\necho "qemu-system-x86_64: -m 256: cannot set up guest memory" >&2\nexit 1\n',
    )
    qemu = backend(short_dir, qemu_binary=str(binary))
    with pytest.raises(BackendError, match=r"exit 1.*cannot set up guest memory"):
        await qemu.launch(spec())


async def test_launch_refuses_bad_keys_before_creating_anything(short_dir: Path) -> None:
    bad = msgspec.structs.replace(spec(), authorized_keys=("not a key\nat all",))
    with pytest.raises(BackendError, match="cannot provision vm1"):
        await backend(short_dir).launch(bad)
    assert not (short_dir / "vms").exists()


def test_why_a_qemu_is_off_is_read_from_the_end_of_the_serial_console(tmp_path: Path) -> None:
    serial = tmp_path / "serial.log"
    serial.write_text("x" * 5000 + "Requesting system poweroff\n[    9.89] reboot: Power down\n")
    assert why_off(serial) == "the guest powered itself off"
    serial.write_text("[    2.1] dropbear started\nWelcome\n" + "reboot: Power down\n" + "y" * 600)
    assert why_off(serial).startswith("QEMU ended while the guest ran")  # an old boot's end
    assert why_off(tmp_path / "none.log").startswith("QEMU ended while the guest ran")
