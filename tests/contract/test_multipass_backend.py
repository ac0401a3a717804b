"""Contract tests of MultipassBackend against the fake multipass client (tests/fakes).

The fake keeps the "daemon" state in a JSON file; a test sets up a world (instances, failure
modes) through the fake itself or by editing that file, drives the backend, and checks what
the backend returns and what the daemon holds afterwards.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from golem_actor.adapters.backend import (
    BackendError,
    BackendState,
    Endpoint,
    ImageNotAvailable,
    LaunchSpec,
    Observed,
    VmBackend,
    VmMissing,
)
from golem_actor.adapters.multipass import (
    BINARY_ENV,
    CommandTimedOut,
    MultipassBackend,
    find_multipass,
)
from golem_actor.domain.resources import Resources

FAKE = Path(__file__).resolve().parents[1] / "fakes" / "fake_multipass.py"
PREFIX = "golem-3fa9c1-"
IMAGES = {"ubuntu-24.04": "24.04", "ubuntu-22.04": "ubuntu:22.04", "ubuntu-26.04": "26.04"}
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBx0 alice@example"
ODD_KEY = 'ssh-rsa AAAAB3Nza "quoted" key: with # hash and \\ backslash'


class World:
    """The fake multipass daemon of one test, and backends that talk to it."""

    def __init__(self, tmp_path: Path) -> None:
        self.state_path = tmp_path / "multipass-state.json"
        self.cloud_init_dir = tmp_path / "cloud-init"
        # The fake runs under this interpreter (a pyenv shim behind its shebang costs ~70 ms
        # per call); `-S` skips site initialisation, the fake uses the stdlib only.
        self.binary = tmp_path / "multipass"
        self.binary.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "{FAKE}" "$@"\n')
        self.binary.chmod(0o755)

    def env(self, *fail: str, style: str = "legacy") -> dict[str, str]:
        return {
            **os.environ,
            "FAKE_MULTIPASS_STATE": str(self.state_path),
            "FAKE_MULTIPASS_FAIL": ",".join(fail),
            "FAKE_MULTIPASS_STYLE": style,
        }

    def backend(
        self,
        *fail: str,
        style: str = "legacy",
        prefix: str = PREFIX,
        launch_timeout: float = 30,
        command_timeout: float = 10,
    ) -> MultipassBackend:
        return MultipassBackend(
            binary=self.binary,
            instance_prefix=prefix,
            images=IMAGES,
            cloud_init_dir=self.cloud_init_dir,
            launch_timeout=launch_timeout,
            command_timeout=command_timeout,
            poll_interval=0.02,
            env=self.env(*fail, style=style),
        )

    async def multipass(self, *args: str) -> None:
        """Run the fake directly (as the operator or another node would)."""
        await trio.run_process([str(self.binary), *args], env=self.env(), capture_stdout=True)

    def instances(self) -> dict[str, Any]:
        if not self.state_path.exists():
            return {}
        state: dict[str, Any] = json.loads(self.state_path.read_text())
        instances: dict[str, Any] = state["instances"]
        return instances

    def set_state(self, name: str, state: str) -> None:
        """What the daemon would do on its own (finish a boot, hang, half-delete)."""
        with open(f"{self.state_path}.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # the fake's lock: no lost update
            data = json.loads(self.state_path.read_text())
            data["instances"][name]["state"] = state
            self.state_path.write_text(json.dumps(data))

    def calls(self) -> list[list[str]]:
        log = self.state_path.with_name(self.state_path.name + ".calls")
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    def commands(self) -> list[str]:
        return [call[0] for call in self.calls()]


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def spec(vm_id: str = "a1b2c3", **changes: Any) -> LaunchSpec:
    fields: dict[str, Any] = {
        "vm_id": vm_id,
        "hostname": "my-webserver",
        "resources": Resources(cpus=2, memory_mib=2048, storage_gib=10),
        "image": "ubuntu-24.04",
        "authorized_keys": (KEY,),
    }
    fields.update(changes)
    return LaunchSpec(**fields)


# -- the whole life of a VM ------------------------------------------------------------


@pytest.mark.parametrize("style", ["legacy", "current"])
async def test_launch_inspect_stop_start_delete(world: World, style: str) -> None:
    backend = world.backend(style=style)
    checked: VmBackend = backend  # the adapter fulfils the protocol (checked by mypy)
    assert checked.kind == "multipass"

    launched = await backend.launch(spec())
    name = PREFIX + "a1b2c3"
    address = world.instances()[name]["address"]
    assert re.fullmatch(r"10\.196\.\d+\.\d+", address)
    assert launched.vm_id == "a1b2c3"
    assert launched.state is BackendState.RUNNING
    assert launched.ssh == Endpoint(address, 22)
    assert launched.ip_address == address
    assert launched.resources is not None
    assert launched.resources.cpus == 2
    assert launched.resources.storage_gib == 10
    # the guest sees a little less memory than it was given
    assert 0.9 * 2048 <= launched.resources.memory_mib <= 2048
    assert await backend.inspect("a1b2c3") == launched

    launch_call = next(call for call in world.calls() if call[0] == "launch")
    cloud_init = str(world.cloud_init_dir.absolute() / f"{name}.cloud-init.yaml")
    assert launch_call == [
        "launch", "24.04", "--name", name, "--cloud-init", cloud_init,
        "--cpus", "2", "--memory", "2048M", "--disk", "10G", "--timeout", "30",
    ]  # fmt: skip

    await backend.stop("a1b2c3")
    stopped = await backend.inspect("a1b2c3")
    assert stopped == Observed(vm_id="a1b2c3", state=BackendState.STOPPED)
    await backend.stop("a1b2c3")  # already stopped: nothing to do

    started = await backend.start("a1b2c3")
    assert started.state is BackendState.RUNNING
    assert started.ssh == Endpoint(address, 22)

    await backend.delete("a1b2c3")
    assert await backend.inspect("a1b2c3") == Observed(vm_id="a1b2c3", state=BackendState.MISSING)
    await backend.delete("a1b2c3")  # already gone: fine
    assert world.instances() == {}


async def test_start_and_stop_of_a_missing_vm(world: World) -> None:
    backend = world.backend()
    with pytest.raises(VmMissing):
        await backend.start("nope")
    with pytest.raises(VmMissing):
        await backend.stop("nope")
    assert (await backend.inspect("nope")).state is BackendState.MISSING


async def test_stop_falls_back_to_force_when_the_guest_ignores_shutdown(world: World) -> None:
    await world.backend().launch(spec())
    backend = world.backend("stop-hang", command_timeout=1)
    await backend.stop("a1b2c3")
    assert (await backend.inspect("a1b2c3")).state is BackendState.STOPPED
    assert ["stop", PREFIX + "a1b2c3", "--force"] in world.calls()


# -- idempotent launch -----------------------------------------------------------------


async def test_launch_again_after_a_crash_observes_the_existing_vm(world: World) -> None:
    first = await world.backend().launch(spec())
    again = await world.backend().launch(spec())  # a new node process, same data directory
    assert again == first
    assert world.commands().count("launch") == 1


async def test_launch_again_starts_a_stopped_vm(world: World) -> None:
    backend = world.backend()
    await backend.launch(spec())
    await backend.stop("a1b2c3")
    again = await backend.launch(spec())
    assert again.state is BackendState.RUNNING
    assert again.ssh is not None
    assert world.commands().count("launch") == 1
    assert world.commands()[-2:] == ["start", "info"]


async def test_launch_again_waits_for_a_vm_the_daemon_is_still_booting(world: World) -> None:
    backend = world.backend()
    await backend.launch(spec())
    world.set_state(PREFIX + "a1b2c3", "Starting")
    async with trio.open_nursery() as nursery:

        async def daemon_finishes() -> None:
            await trio.sleep(0.3)
            world.set_state(PREFIX + "a1b2c3", "Running")

        nursery.start_soon(daemon_finishes)
        again = await backend.launch(spec())
    assert again.state is BackendState.RUNNING
    assert "start" not in world.commands()


async def test_launch_purges_a_deleted_but_not_purged_instance(world: World) -> None:
    backend = world.backend()
    await backend.launch(spec())
    await world.multipass("delete", PREFIX + "a1b2c3")  # by hand, without --purge
    assert (await backend.inspect("a1b2c3")).state is BackendState.MISSING
    relaunched = await backend.launch(spec())
    assert relaunched.state is BackendState.RUNNING
    assert world.commands().count("launch") == 2
    assert ["delete", PREFIX + "a1b2c3", "--purge"] in world.calls()


async def test_concurrent_launches_of_one_vm_launch_once(world: World) -> None:
    backend = world.backend()
    results: list[Observed] = []

    async def launch() -> None:
        results.append(await backend.launch(spec()))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(launch)
        nursery.start_soon(launch)
    assert results[0] == results[1]
    assert world.commands().count("launch") == 1


# -- failures mid-launch leave nothing behind ------------------------------------------


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("launch-after-create", "failed to initialize kvm"),
        ("launch-slow-init", "timed out waiting for initialization"),
        ("launch-no-ip", "was not running with an address"),
    ],
)
async def test_failed_launch_leaves_nothing_behind(world: World, mode: str, message: str) -> None:
    backend = world.backend(mode, launch_timeout=1, command_timeout=1)
    with pytest.raises(BackendError, match=message):
        await backend.launch(spec())
    assert world.instances() == {}
    assert ["delete", PREFIX + "a1b2c3", "--purge"] in world.calls()
    assert list(world.cloud_init_dir.iterdir()) == []


async def test_launch_timeout_kills_the_client_and_cleans_up(world: World) -> None:
    backend = world.backend("launch-timeout", launch_timeout=0.25, command_timeout=1)
    started = trio.current_time()
    with pytest.raises(CommandTimedOut, match=r"did not finish within 1\.25 s"):
        await backend.launch(spec())
    assert trio.current_time() - started < 5
    assert world.instances() == {}  # it was left Starting by the killed client: deleted
    assert list(world.cloud_init_dir.iterdir()) == []


async def test_client_timeout_after_the_vm_runs_counts_as_launched(world: World) -> None:
    backend = world.backend("launch-hang-after-boot", launch_timeout=0.25, command_timeout=1)
    launched = await backend.launch(spec())
    assert launched.state is BackendState.RUNNING
    assert launched.ssh is not None
    assert "delete" not in world.commands()


async def test_a_half_made_vm_that_cannot_be_deleted_is_reported(world: World) -> None:
    backend = world.backend("launch-after-create", "delete-fail")
    with pytest.raises(BackendError, match="could not be deleted") as raised:
        await backend.launch(spec())
    assert "failed to initialize kvm" in str(raised.value)
    # still there under our prefix, so the lifecycle's reconciliation finds it
    assert [o.vm_id for o in await backend.list_owned()] == ["a1b2c3"]


# -- images and input hardening --------------------------------------------------------


async def test_unknown_image_is_refused_without_running_multipass(world: World) -> None:
    with pytest.raises(ImageNotAvailable, match=r"ubuntu-24\.04"):
        await world.backend().launch(spec(image="debian-13"))
    assert world.calls() == []


async def test_image_multipass_cannot_find_is_not_available(world: World) -> None:
    with pytest.raises(ImageNotAvailable, match="Unable to find an image matching"):
        await world.backend().launch(spec(image="ubuntu-26.04"))
    assert world.instances() == {}


@pytest.mark.parametrize(
    "ref",
    ["-x", "--disk=1G", "--help", "http://evil.example/img", "file:///etc/passwd",
     "Ubuntu", "24.04 --cpus", "24.04\n", "", ".", "a/b"],
)  # fmt: skip
def test_option_like_or_remote_image_refs_are_refused(world: World, ref: str) -> None:
    with pytest.raises(ValueError, match="image"):
        MultipassBackend(
            binary=world.binary,
            instance_prefix=PREFIX,
            images={"evil": ref},
            cloud_init_dir=world.cloud_init_dir,
        )


@pytest.mark.parametrize(
    "changes",
    [
        {"authorized_keys": (KEY + "\nruncmd: [reboot]",)},
        {"authorized_keys": (KEY + "\rssh-rsa AAAA bob",)},
        {"authorized_keys": (KEY, "ssh-ed25519 AAAA\u2028x")},
        {"authorized_keys": ("  ",)},
        {"hostname": "web\nruncmd: [reboot]"},
        {"hostname": "-web"},
        {"resources": Resources(cpus=0, memory_mib=1024, storage_gib=10)},
        {"vm_id": "--purge"},
        {"vm_id": "../etc"},
        {"vm_id": "UPPER"},
        {"vm_id": ""},
        {"vm_id": "x" * 60},
    ],
)
async def test_unsafe_launch_values_are_refused_before_multipass(
    world: World, changes: dict[str, Any]
) -> None:
    with pytest.raises(BackendError):
        await world.backend().launch(spec(**changes))
    assert world.calls() == []
    assert not world.cloud_init_dir.exists() or list(world.cloud_init_dir.iterdir()) == []


@pytest.mark.parametrize("prefix", ["", "Golem-", "-golem-", "golem_1-", "9golem-", "g" * 50])
def test_bad_instance_prefixes_are_refused(world: World, prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        world.backend(prefix=prefix)


# -- cloud-init ------------------------------------------------------------------------


def read_cloud_config(text: str) -> dict[str, Any]:
    """A reader for block YAML whose scalars are JSON literals (what the emitter promises)."""
    header, *body = text.splitlines()
    assert header == "#cloud-config"
    lines = [(len(line) - len(line.lstrip(" ")), line.strip()) for line in body if line.strip()]
    value, end = _read_block(lines, 0)
    assert end == len(lines)
    assert isinstance(value, dict)
    return value


def _read_block(lines: list[tuple[int, str]], i: int) -> tuple[Any, int]:
    indent, text = lines[i]
    if text.startswith("- "):
        return _read_sequence(lines, i, indent)
    return _read_mapping(lines, i, indent)


def _read_mapping(lines: list[tuple[int, str]], i: int, indent: int) -> tuple[Any, int]:
    mapping: dict[str, Any] = {}
    while i < len(lines) and lines[i][0] == indent and not lines[i][1].startswith("- "):
        key, colon, rest = lines[i][1].partition(":")
        assert colon
        assert re.fullmatch(r"[a-z_]+", key), key
        assert key not in mapping
        i += 1
        if rest.strip():
            mapping[key] = json.loads(rest)
        else:
            assert lines[i][0] > indent
            mapping[key], i = _read_block(lines, i)
    return mapping, i


def _read_sequence(lines: list[tuple[int, str]], i: int, indent: int) -> tuple[Any, int]:
    items: list[Any] = []
    while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
        rest = lines[i][1][2:]
        if re.match(r"[a-z_]+:", rest):  # a mapping hung on the dash
            lines[i] = (indent + 2, rest)
            item, i = _read_mapping(lines, i, indent + 2)
        else:
            item, i = json.loads(rest), i + 1
        items.append(item)
    return items, i


async def test_cloud_init_gives_keys_to_ubuntu_and_root(world: World) -> None:
    await world.backend().launch(spec(authorized_keys=(KEY, " " + ODD_KEY + " ")))
    seen = world.instances()[PREFIX + "a1b2c3"]  # what the daemon read
    assert seen["cloud_init_mode"] == "0o644"
    document = read_cloud_config(seen["cloud_init"])
    keys = [KEY, ODD_KEY]
    assert document["hostname"] == "my-webserver"
    assert document["preserve_hostname"] is False
    assert document["ssh_authorized_keys"] == keys  # the default user (ubuntu)
    assert document["users"] == ["default", {"name": "root", "ssh_authorized_keys": keys}]
    assert document["disable_root"] is False
    [drop_in] = document["write_files"]
    assert drop_in["path"].startswith("/etc/ssh/sshd_config.d/")
    assert "PermitRootLogin prohibit-password\n" in drop_in["content"]
    assert "package_upgrade" not in document
    assert "package_update" not in document
    assert list(world.cloud_init_dir.iterdir()) == []  # removed after the launch


async def test_an_unwritable_cloud_init_dir_is_a_backend_error(world: World) -> None:
    world.cloud_init_dir.write_text("a file where the directory should be")
    with pytest.raises(BackendError, match="cannot write the cloud-init file"):
        await world.backend().launch(spec())
    assert "launch" not in world.commands()


# -- states, observation and ownership -------------------------------------------------


STATE_MAP = [
    ("Running", BackendState.RUNNING),
    ("Stopped", BackendState.STOPPED),
    ("Starting", BackendState.STARTING),
    ("Restarting", BackendState.STARTING),
    ("Delayed Shutdown", BackendState.STOPPING),
    ("Suspending", BackendState.STOPPING),
    ("Suspended", BackendState.SUSPENDED),
    ("Deleted", BackendState.MISSING),
    ("Unknown", BackendState.UNKNOWN),
    ("Hibernating", BackendState.UNKNOWN),  # a state of some future multipass
]


async def test_every_multipass_state_maps(world: World) -> None:
    backend = world.backend()
    await backend.launch(spec())
    for multipass_state, expected in STATE_MAP:
        world.set_state(PREFIX + "a1b2c3", multipass_state)
        observed = await backend.inspect("a1b2c3")
        assert observed.state is expected, multipass_state
        assert (observed.ssh is not None) == (expected is BackendState.RUNNING)
        [listed] = await backend.list_owned()
        assert listed.state is expected, multipass_state


async def test_suspended_vm_is_started_again_by_launch(world: World) -> None:
    backend = world.backend()
    await backend.launch(spec())
    await world.multipass("suspend", PREFIX + "a1b2c3")
    assert (await backend.inspect("a1b2c3")).state is BackendState.SUSPENDED
    assert (await backend.launch(spec())).state is BackendState.RUNNING


async def test_list_owned_ignores_instances_of_others(world: World) -> None:
    await world.multipass("launch", "24.04", "--name", "golem-77aa01-a1b2c3")  # another node
    await world.multipass("launch", "22.04", "--name", "my-dev-box")  # the operator's own
    await world.multipass("launch", "22.04", "--name", "golem-3fa9c1")  # prefix, no vm id
    await world.multipass("launch", "22.04", "--name", "golem-3fa9c1-Mine")  # not our naming
    backend = world.backend()
    await backend.launch(spec("a1b2c3"))
    await backend.launch(spec("d4e5f6", image="ubuntu-22.04"))
    await backend.stop("d4e5f6")

    owned = {o.vm_id: o for o in await backend.list_owned()}
    assert set(owned) == {"a1b2c3", "d4e5f6"}
    assert owned["a1b2c3"].state is BackendState.RUNNING
    assert owned["a1b2c3"].ssh is not None
    assert owned["d4e5f6"].state is BackendState.STOPPED
    assert all(o.resources is None for o in owned.values())

    other = world.backend(prefix="golem-77aa01-")
    assert [o.vm_id for o in await other.list_owned()] == ["a1b2c3"]
    await backend.delete("a1b2c3")
    assert (await other.inspect("a1b2c3")).state is BackendState.RUNNING
    assert {"golem-77aa01-a1b2c3", "my-dev-box", "golem-3fa9c1"} <= set(world.instances())


async def test_garbage_from_multipass_is_a_backend_error(world: World) -> None:
    await world.backend().launch(spec())
    with pytest.raises(BackendError, match="unreadable output"):
        await world.backend("info-garbage").inspect("a1b2c3")
    with pytest.raises(BackendError, match="unreadable output"):
        await world.backend("list-garbage").list_owned()


async def test_a_binary_that_cannot_run_is_a_backend_error(world: World) -> None:
    world.binary.chmod(0o644)
    with pytest.raises(BackendError, match="cannot run"):
        await world.backend().inspect("a1b2c3")


async def test_the_fake_runs_standalone_through_its_shebang(world: World) -> None:
    assert FAKE.stat().st_mode & stat.S_IXUSR
    result = await trio.run_process(
        [str(FAKE), "version", "--format", "json"], env=world.env(), capture_stdout=True
    )
    assert set(json.loads(result.stdout)) == {"multipass", "multipassd"}


# -- finding the binary ----------------------------------------------------------------


def make_executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_find_multipass_honours_the_explicit_path(tmp_path: Path) -> None:
    binary = make_executable(tmp_path / "opt" / "mp")
    make_executable(tmp_path / "bin" / "multipass")
    env = {BINARY_ENV: str(binary), "PATH": str(tmp_path / "bin")}
    assert find_multipass(env) == binary


@pytest.mark.parametrize("problem", ["missing", "directory", "not-executable"])
def test_find_multipass_refuses_a_bad_explicit_path(tmp_path: Path, problem: str) -> None:
    target = tmp_path / "multipass"
    if problem == "directory":
        target.mkdir()
    elif problem == "not-executable":
        target.write_text("#!/bin/sh\n")
        target.chmod(0o644)
    with pytest.raises(ValueError, match=BINARY_ENV):
        find_multipass({BINARY_ENV: str(target)}, usual_dirs=())


def test_find_multipass_searches_path_then_the_usual_places(tmp_path: Path) -> None:
    on_path = make_executable(tmp_path / "path-bin" / "multipass")
    usual = make_executable(tmp_path / "snap-bin" / "multipass")
    (tmp_path / "empty").mkdir()
    dirs = (tmp_path / "nowhere", tmp_path / "snap-bin")
    assert find_multipass({"PATH": str(on_path.parent)}, usual_dirs=dirs) == on_path
    assert find_multipass({"PATH": str(tmp_path / "empty")}, usual_dirs=dirs) == usual
    assert find_multipass({}, usual_dirs=dirs) == usual
    assert find_multipass({BINARY_ENV: ""}, usual_dirs=()) is None
