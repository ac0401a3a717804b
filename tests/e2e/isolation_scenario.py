"""Run by ``test_isolation.py`` inside a network namespace of its own: what can a guest reach?

Why a separate program: the node, its QEMUs and their pastas must all live in the test's
network namespace (so no packet can leave the machine and the "host loopback" is one the
test owns), and Python 3.11 cannot move a running process into a new namespace; the test
starts this file under ``unshare --net`` instead.

It sets up the namespace like a small host (loopback, an uplink with an address and a
default route that leads nowhere), opens listeners on 127.0.0.1, 127.0.0.2 and the
uplink's address, boots the test guest through ``QemuBackend`` once per outbound mode,
makes the guest connect to every address that could lead to them, and prints one JSON
object: for each mode and each ``address:port``, what the guest read (a listener
answers with its name).

Usage: isolation_scenario.py GUEST_CACHE WORK_DIR PUBLIC_KEY_FILE PRIVATE_KEY_FILE
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import trio

from golem_actor.adapters.backend import Endpoint, LaunchSpec
from golem_actor.adapters.qemu import QemuBackend
from golem_actor.domain.resources import Resources
from golem_actor.images import load_catalog

UPLINK = "198.51.100.2"  # TEST-NET-2: never routed anywhere, and only inside this netns
UPLINK_GATEWAY = "198.51.100.1"
LISTENERS = {
    ("127.0.0.1", 7466): "api-on-loopback",
    ("127.0.0.1", 8545): "anvil-on-loopback",
    ("127.0.0.2", 7467): "service-on-127.0.0.2",
    ("::1", 7468): "service-on-ipv6-loopback",
    (UPLINK, 9003): "service-on-uplink",
}
# every address that could lead from the guest to the host: slirp's gateway and DNS,
# pasta's gateway and the namespace's own address, the uplink and its gateway
GUEST_TARGETS = (
    *("10.0.2.2", "10.0.2.3", "198.18.0.1", "198.18.0.2", UPLINK, UPLINK_GATEWAY),
    *("fec0::2", "fec0::3"),  # slirp's IPv6 gateway and DNS
)
LOOPBACK = ("127.0.0.1", "127.0.0.2", "::1")
PORTS = sorted({port for _, port in LISTENERS})
UPLINK_SERVICE = (UPLINK, 9003)


def run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


def set_up_namespace() -> str:
    """Loopback up; an uplink (dummy, or a veth pair kept inside this namespace where the
    kernel has no dummy driver) with an address and a default route. Returns its kind."""
    run("ip", "link", "set", "lo", "up")
    try:
        run("ip", "link", "add", "up0", "type", "dummy")
        kind = "dummy"
    except subprocess.CalledProcessError:
        run("ip", "link", "add", "up0", "type", "veth", "peer", "name", "up0peer")
        run("ip", "link", "set", "up0peer", "up")
        kind = "veth"
    run("ip", "addr", "add", f"{UPLINK}/24", "dev", "up0")
    run("ip", "link", "set", "up0", "up")
    run("ip", "route", "add", "default", "via", UPLINK_GATEWAY)
    return kind


def serve(host: str, port: int, name: str) -> None:
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(64)

    def loop() -> None:
        while True:
            connection, _ = listener.accept()
            with connection:
                connection.sendall(f"HELLO-{name}\n".encode())

    threading.Thread(target=loop, daemon=True).start()


def self_check() -> dict[str, str]:
    """What each listener answers from inside this namespace (proves they work)."""
    seen = {}
    for (host, port), _name in LISTENERS.items():
        with socket.create_connection((host, port), timeout=5) as connection:
            seen[target(host, port)] = connection.recv(100).decode().strip()
    return seen


async def ssh(key: Path, endpoint: Endpoint, command: str) -> str:
    argv = [
        "ssh", "-F", "/dev/null", "-i", str(key), "-p", str(endpoint.port),
        "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10",
        f"root@{endpoint.host}", command,
    ]  # fmt: skip
    with trio.fail_after(60):
        result = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ssh failed: {result.stderr.decode(errors='replace')}")
    return result.stdout.decode()


async def wait_for_ssh(key: Path, endpoint: Endpoint) -> None:
    with trio.fail_after(120):
        while True:
            try:
                await ssh(key, endpoint, "true")
            except (RuntimeError, trio.TooSlowError):
                await trio.sleep(0.5)
            else:
                return


def target(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def probe_script(targets: list[tuple[str, int]], seconds: int = 5) -> str:
    """Shell for the guest: connect to each target at once (each bounded: some
    addresses lead nowhere and never answer), print ``target|answer``."""
    jobs = " ".join(
        f'( a=$(timeout {seconds} nc {h} {p} </dev/null 2>&1 | head -c 200 | tr "\\n" " ");'
        f' echo "{target(h, p)}|$a" ) &'
        for h, p in targets
    )
    return f"{jobs} wait"


def parse(output: str) -> dict[str, str]:
    return {
        target: answer.strip()
        for target, _, answer in (line.partition("|") for line in output.splitlines())
        if target
    }


async def one_mode(
    outbound: str, cache: Path, work: Path, public_key: str, key: Path
) -> dict[str, object]:
    backend = QemuBackend(
        vms_dir=work / f"vms-{outbound}",
        guest_cache=cache,
        catalog=load_catalog(),
        outbound=outbound,  # type: ignore[arg-type]
    )
    spec = LaunchSpec(
        vm_id=f"iso-{outbound}",
        hostname=f"iso-{outbound}",
        resources=Resources(cpus=1, memory_mib=256, storage_gib=1),
        image="test-guest",
        authorized_keys=(public_key,),
    )
    observed = await backend.launch(spec)
    try:
        assert observed.ssh is not None
        await wait_for_ssh(key, observed.ssh)
        ports = [*PORTS, observed.ssh.port]  # the VM's own port stands for other VMs'
        targets = [(a, p) for a in GUEST_TARGETS for p in ports if (a, p) != UPLINK_SERVICE]
        targets += [(h, p) for (h, p) in LISTENERS if h in LOOPBACK]  # its own
        probes = parse(await ssh(key, observed.ssh, probe_script(targets)))
        # the one target that may answer, alone, with room for a slow TCG guest on a
        # busy host (52 processes at once in the guest take their time)
        uplink = parse(await ssh(key, observed.ssh, probe_script([UPLINK_SERVICE], 20)))
        # a root guest routes 127.0.0.0/8 out of its NIC: slirp connects to loopback
        # addresses of the namespace QEMU runs in
        crafted = (
            "echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet;"
            " echo 1 > /proc/sys/net/ipv4/conf/eth0/route_localnet;"
            " ip route del 127.0.0.0/8 table local;"
            " ip route add 127.0.0.0/8 via 10.0.2.2 dev eth0;"
            " ip route get 127.0.0.2 | head -1; "
        ) + probe_script([(h, p) for (h, p) in LISTENERS if h.startswith("127.")])
        crafted_out = await ssh(key, observed.ssh, crafted)
        route, _, rest = crafted_out.partition("\n")
        return {
            "ssh_port": observed.ssh.port,
            "probes": probes,
            "outbound": uplink,
            "crafted_route": route.strip(),
            "crafted": parse(rest),
        }
    finally:
        await backend.delete(spec.vm_id)


async def main(cache: Path, work: Path, public_key: str, key: Path) -> None:
    kind = set_up_namespace()
    for (host, port), name in LISTENERS.items():
        serve(host, port, name)
    result: dict[str, object] = {"uplink": kind, "self_check": self_check()}
    for outbound in ("nat", "none"):
        result[outbound] = await one_mode(outbound, cache, work, public_key, key)
    print(json.dumps(result))


if __name__ == "__main__":
    cache_arg, work_arg, public_arg, private_arg = sys.argv[1:5]
    trio.run(
        main,
        Path(cache_arg),
        Path(work_arg),
        Path(public_arg).read_text().strip(),
        Path(private_arg),
    )
