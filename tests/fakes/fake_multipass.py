#!/usr/bin/env python3
"""A fake ``multipass`` client for the Multipass adapter's contract tests (stdlib only).

Why: multipass cannot run here (it needs its daemon, snapd, a hypervisor), and mocks of
``run_process`` would only test our own assumptions. This script behaves like the real client
for the commands the adapter uses, with the real JSON shapes and error texts, and keeps the
daemon's state between calls in a JSON file, so each test drives it through the adapter like
the real thing. It is not scripted per test: a test chooses a world (instances in the state
file, a failure mode), and the fake behaves in it.

Environment:
  FAKE_MULTIPASS_STATE  path of the state file (required); created on first use.
  FAKE_MULTIPASS_FAIL   comma-separated failure modes (also read from the state's "fail"):
    launch-after-create   the instance is made but fails to boot: state Unknown, exit 1
    launch-timeout        the instance is made (Starting), then the client hangs for good
    launch-hang-after-boot  the instance runs with an address, the client never returns
    launch-slow-init      runs with an address, then "timed out waiting for initialization
                          to complete" after --timeout seconds (exit 1), instance left running
    launch-no-ip          the instance runs but never gets an address
    info-garbage          `info` prints something that is not JSON
    list-garbage          `list` prints something that is not JSON
    stop-hang             a graceful `stop` never returns (`stop --force` works)
    delete-fail           `delete` fails (exit 1)
  FAKE_MULTIPASS_STYLE  "legacy" (default): sizes are strings and "" while not running;
                        "current": memory sizes are integers and unknown sizes are absent.

Every invocation is appended, one JSON array per line, to "<state file>.calls" (like the
daemon's log), so a test can tell whether the client was run at all and with what.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from typing import Any, NoReturn

STATE_ENV = "FAKE_MULTIPASS_STATE"
FAIL_ENV = "FAKE_MULTIPASS_FAIL"
STYLE_ENV = "FAKE_MULTIPASS_STYLE"
VERSION = "1.14.1+fake"

# alias -> release, as `multipass find` would resolve them
IMAGES = {
    "lts": "24.04 LTS",
    "24.04": "24.04 LTS",
    "noble": "24.04 LTS",
    "ubuntu:24.04": "24.04 LTS",
    "22.04": "22.04 LTS",
    "jammy": "22.04 LTS",
    "ubuntu:22.04": "22.04 LTS",
    "20.04": "20.04 LTS",
    "focal": "20.04 LTS",
}
NAME = re.compile(r"[A-Za-z](?:[A-Za-z0-9-]*[A-Za-z0-9])?")
SIZE = re.compile(r"(\d+(?:\.\d+)?)([KMG]?)(?:i?B)?", re.IGNORECASE)
UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
MIN_MEMORY = 128 << 20
MIN_DISK = 512 << 20
HANG_SECONDS = 3600.0
IMAGE_HASH = "b0a5d8e6c1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c"

Instance = dict[str, Any]
State = dict[str, Any]


def die(message: str, code: int = 2) -> NoReturn:
    sys.stderr.write(message.rstrip("\n") + "\n")
    sys.stderr.flush()
    raise SystemExit(code)


def hang(seconds: float = HANG_SECONDS) -> NoReturn:
    sys.stdout.flush()
    time.sleep(seconds)
    die("fake multipass: woke up from a hang nobody ended", 1)


# -- state -----------------------------------------------------------------------------


def _state_path() -> str:
    path = os.environ.get(STATE_ENV)
    if not path:
        die(f"fake multipass: {STATE_ENV} is not set", 1)
    return path


@contextlib.contextmanager
def daemon() -> Iterator[State]:
    """The daemon's state, locked for this invocation and saved when the block ends.

    Saved only when changed, and only if the block did not fail (a command that dies half
    way changes nothing). Whoever else edits the file takes the same lock ("<state>.lock").
    """
    path = _state_path()
    with open(path + ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(path) as file:
                before = file.read()
        except FileNotFoundError:
            before = "{}"
        state: State = json.loads(before)
        state.setdefault("counter", 0)
        state.setdefault("instances", {})
        state.setdefault("fail", [])
        yield state
        if json.loads(before) == state:
            return
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w") as file:
            json.dump(state, file, indent=1, sort_keys=True)
        os.replace(tmp, path)


def failing(state: State, mode: str) -> bool:
    from_env = [m.strip() for m in os.environ.get(FAIL_ENV, "").split(",") if m.strip()]
    return mode in from_env or mode in state["fail"]


def legacy_style() -> bool:
    return os.environ.get(STYLE_ENV, "legacy") != "current"


# -- argument parsing ------------------------------------------------------------------


def parse(
    args: list[str], valued: dict[str, str], flags: dict[str, str]
) -> tuple[list[str], dict[str, str]]:
    """Positional arguments and options (canonical name -> value, "" for flags)."""
    positional: list[str] = []
    options: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            positional.extend(args[i:])
            break
        if not arg.startswith("-") or arg == "-":
            positional.append(arg)
            continue
        key, eq, inline = arg.partition("=")
        if key in flags and not eq:
            options[flags[key]] = ""
        elif key in valued:
            if eq:
                options[valued[key]] = inline
            elif i < len(args):
                options[valued[key]] = args[i]
                i += 1
            else:
                die(f"Missing value for option '{key.lstrip('-')}'.", 1)
        else:
            die(f"Unknown option '{key.lstrip('-')}'.", 1)
    return positional, options


def json_format(options: dict[str, str]) -> None:
    fmt = options.get("format", "table")
    if fmt != "json":
        die(f"fake multipass: only --format json is implemented (got {fmt!r})", 1)


def size(text: str, what: str, minimum: int) -> int:
    match = SIZE.fullmatch(text.strip())
    if match is None:
        die(f"error: Invalid {what} size value supplied: {text}.", 1)
    value = int(float(match.group(1)) * UNITS[match.group(2).upper()])
    if value < minimum:
        die(f"launch failed: Requested {what} size less than minimum of {minimum >> 20}M", 2)
    return value


def existing(state: State, name: str, command: str) -> Instance:
    instance: Instance | None = state["instances"].get(name)
    if instance is None:
        die(f'{command} failed: The following errors occurred:\ninstance "{name}" does not exist')
    return instance


def not_deleted(instance: Instance, name: str, command: str) -> None:
    if instance["state"] == "Deleted":
        die(f'{command} failed: The following errors occurred:\ninstance "{name}" is deleted')


# -- commands --------------------------------------------------------------------------


def cmd_version(args: list[str]) -> None:
    _, options = parse(args, {"--format": "format"}, {})
    if options.get("format") == "json":
        print(json.dumps({"multipass": VERSION, "multipassd": VERSION}, indent=4))
    else:
        print(f"multipass   {VERSION}\nmultipassd  {VERSION}")


def cmd_launch(args: list[str]) -> None:
    positional, options = parse(
        args,
        {
            "--name": "name",
            "-n": "name",
            "--cpus": "cpus",
            "-c": "cpus",
            "--memory": "memory",
            "--mem": "memory",
            "-m": "memory",
            "--disk": "disk",
            "-d": "disk",
            "--cloud-init": "cloud-init",
            "--timeout": "timeout",
            "--network": "network",
        },
        {"--bridged": "bridged"},
    )
    if len(positional) > 1:
        die("Too many arguments supplied", 1)
    image = positional[0] if positional else "lts"
    cpus_text = options.get("cpus", "1")
    if not cpus_text.isdigit() or int(cpus_text) < 1:
        die(f"error: Invalid CPU count '{cpus_text}', need a positive integer value.", 1)
    memory = size(options.get("memory", "1G"), "memory", MIN_MEMORY)
    disk = size(options.get("disk", "5G"), "disk", MIN_DISK)
    timeout_text = options.get("timeout", "300")
    if not timeout_text.isdigit() or int(timeout_text) < 1:
        die("error: --timeout value has to be a positive integer", 1)
    cloud_init = ""
    cloud_init_mode = 0
    if "cloud-init" in options:
        try:
            with open(options["cloud-init"]) as file:
                cloud_init = file.read()
            cloud_init_mode = os.stat(options["cloud-init"]).st_mode & 0o777
        except OSError as exc:
            die(f"error loading cloud-init config: bad file ({exc.strerror})", 1)
    with daemon() as state:
        state["counter"] += 1
        counter: int = state["counter"]
        name = options.get("name", f"fake-instance-{counter}")
        if NAME.fullmatch(name) is None:
            die("launch failed: Invalid instance name supplied", 2)
        if name in state["instances"]:
            die(f'launch failed: instance "{name}" already exists', 2)
        if image not in IMAGES:
            die(f'launch failed: Unable to find an image matching "{image}"', 2)
        address = f"10.196.{counter // 250}.{counter % 250 + 2}"
        instance: Instance = {
            "state": "Running",
            "image": image,
            "image_release": IMAGES[image],
            "cpus": int(cpus_text),
            "memory": memory,
            "disk": disk,
            "address": address,
            "ipv4": [address],
            "cloud_init": cloud_init,
            "cloud_init_mode": oct(cloud_init_mode),
        }
        state["instances"][name] = instance
        mode = next(
            (
                m
                for m in (
                    "launch-after-create",
                    "launch-timeout",
                    "launch-hang-after-boot",
                    "launch-slow-init",
                    "launch-no-ip",
                )
                if failing(state, m)
            ),
            None,
        )
        if mode == "launch-after-create":
            instance.update(state="Unknown", ipv4=[])
        elif mode == "launch-timeout":
            instance.update(state="Starting", ipv4=[])
        elif mode == "launch-no-ip":
            instance.update(ipv4=[])
    # The state is saved and unlocked: other invocations go on while this client waits.
    if mode == "launch-after-create":
        die(
            "launch failed: The following errors occurred:\n"
            f"{name}: failed to start: qemu-system-x86_64: failed to initialize kvm: "
            "Permission denied",
            1,
        )
    if mode in ("launch-timeout", "launch-hang-after-boot"):
        hang()
    if mode == "launch-slow-init":
        time.sleep(int(timeout_text))
        die("launch failed: timed out waiting for initialization to complete", 1)
    print(f"Launched: {name}")


def _sizes(instance: Instance, running: bool) -> dict[str, Any]:
    legacy = legacy_style()
    if running:
        memory_total = instance["memory"] * 95 // 100  # what the guest's kernel sees
        memory_used = memory_total // 6
        disk_total = instance["disk"] * 96 // 100  # the root file system, not the image
        disk_used = min(disk_total, 1_900_000_000)
        memory: dict[str, Any] = {
            "total": str(memory_total) if legacy else memory_total,
            "used": str(memory_used) if legacy else memory_used,
        }
        disk: dict[str, Any] = {"total": str(disk_total), "used": str(disk_used)}
    elif legacy:
        memory = {"total": "", "used": ""}
        disk = {"total": "", "used": ""}
    else:
        memory, disk = {}, {}
    return {"memory": memory, "disks": {"sda1": disk}}


def _info_entry(instance: Instance) -> dict[str, Any]:
    running = instance["state"] == "Running"
    release = f"Ubuntu {instance['image_release']}" if running else ""
    return {
        "cpu_count": str(instance["cpus"]),
        "image_hash": IMAGE_HASH,
        "image_release": instance["image_release"],
        "ipv4": list(instance["ipv4"]) if running else [],
        "load": [0.08, 0.03, 0.01] if running else [],
        "mounts": {},
        "release": release,
        "snapshot_count": "0",
        "state": instance["state"],
        **_sizes(instance, running),
    }


def cmd_info(args: list[str]) -> None:
    names, options = parse(args, {"--format": "format"}, {"--all": "all"})
    json_format(options)
    with daemon() as state:
        if "all" in options:
            names = sorted(state["instances"])
        elif not names:
            die("Name argument or --all is required", 1)
        missing = [n for n in names if n not in state["instances"]]
        if missing:
            die("info failed: " + "\n".join(f'instance "{n}" does not exist' for n in missing))
        if failing(state, "info-garbage"):
            print('{\n    "errors": [\n    ],\n    "info": {\n        "' + names[0] + '": {')
            return
        info = {n: _info_entry(state["instances"][n]) for n in names}
    print(json.dumps({"errors": [], "info": info}, indent=4, sort_keys=True))


def cmd_list(args: list[str]) -> None:
    _, options = parse(args, {"--format": "format"}, {"--snapshots": "snapshots"})
    json_format(options)
    with daemon() as state:
        if failing(state, "list-garbage"):
            print("list failed: cannot connect to the multipass socket")
            return
        entries = []
        for name in sorted(state["instances"]):
            instance = state["instances"][name]
            running = instance["state"] == "Running"
            entries.append(
                {
                    "ipv4": list(instance["ipv4"]) if running else [],
                    "name": name,
                    "release": f"Ubuntu {instance['image_release']}"
                    if running
                    else "Not Available",
                    "state": instance["state"],
                }
            )
    print(json.dumps({"list": entries}, indent=4, sort_keys=True))


def cmd_stop(args: list[str]) -> None:
    names, options = parse(args, {"--time": "time", "-t": "time"}, {"--force": "force"})
    if not names:
        die("Name argument or --all is required", 1)
    graceful = "force" not in options
    with daemon() as state:
        for name in names:
            not_deleted(existing(state, name, "stop"), name, "stop")
        hanging = graceful and failing(state, "stop-hang")
        if not hanging:
            for name in names:
                instance = state["instances"][name]
                if instance["state"] == "Suspended" and graceful:
                    die(f'stop failed: cannot stop suspended instance "{name}"', 2)
                instance.update(state="Stopped", ipv4=[])
    if hanging:
        hang()


def cmd_start(args: list[str]) -> None:
    names, _ = parse(args, {"--timeout": "timeout"}, {})
    if not names:
        die("Name argument or --all is required", 1)
    with daemon() as state:
        for name in names:
            not_deleted(existing(state, name, "start"), name, "start")
        for name in names:
            instance = state["instances"][name]
            instance.update(state="Running", ipv4=[instance["address"]])


def cmd_suspend(args: list[str]) -> None:
    names, _ = parse(args, {}, {})
    with daemon() as state:
        for name in names:
            instance = existing(state, name, "suspend")
            if instance["state"] != "Running":
                die(f'suspend failed: instance "{name}" is not running', 2)
            instance.update(state="Suspended", ipv4=[])


def cmd_delete(args: list[str]) -> None:
    names, options = parse(args, {}, {"--purge": "purge", "-p": "purge"})
    if not names:
        die("Name argument or --all is required", 1)
    with daemon() as state:
        for name in names:
            existing(state, name, "delete")
        if failing(state, "delete-fail"):
            die(
                "delete failed: The following errors occurred:\n"
                f"{names[0]}: failed to remove instance directory: Device or resource busy",
                1,
            )
        for name in names:
            if "purge" in options:
                del state["instances"][name]
            else:
                state["instances"][name].update(state="Deleted", ipv4=[])


def cmd_recover(args: list[str]) -> None:
    names, _ = parse(args, {}, {})
    with daemon() as state:
        for name in names:
            instance = existing(state, name, "recover")
            if instance["state"] == "Deleted":
                instance["state"] = "Stopped"


COMMANDS = {
    "version": cmd_version,
    "launch": cmd_launch,
    "info": cmd_info,
    "list": cmd_list,
    "ls": cmd_list,
    "stop": cmd_stop,
    "start": cmd_start,
    "suspend": cmd_suspend,
    "delete": cmd_delete,
    "recover": cmd_recover,
}


def log_call(argv: list[str]) -> None:
    with open(_state_path() + ".calls", "a") as log:
        log.write(json.dumps(argv) + "\n")


def main(argv: list[str]) -> None:
    log_call(argv)
    if not argv:
        die("Usage: multipass [options] <command>", 1)
    command = COMMANDS.get(argv[0])
    if command is None:
        die(f"Error: unknown command '{argv[0]}'", 1)
    command(argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
