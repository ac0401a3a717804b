"""The Golem VPN network rules (golem_actor/domain/vpn/networks.py), pure."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import msgspec
import pytest

from golem_actor.domain.tenancy import Caller
from golem_actor.domain.vpn.networks import (
    MAX_MEMBERS,
    MAX_NETWORKS_PER_OWNER,
    OPERATOR_OWNER,
    AddressTaken,
    Attachment,
    InvalidRequest,
    LimitReached,
    NetNode,
    VpnNetwork,
    add_address,
    add_node,
    desired_membership,
    first_host,
    may_use,
    new_network,
    next_free_host,
    offered_addresses,
    owner_key,
    parse_network,
    remove_node,
    vms_seen_by,
    with_mtu,
)

ALICE, BOB = Caller(tenant="a" * 64), Caller(tenant="b" * 64)


def network(ip: str = "192.168.0.0/24", gateway: str | None = None) -> VpnNetwork:
    return new_network("n" * 32, "a" * 64, ip, gateway=gateway)


@pytest.mark.parametrize(
    ("ip", "mask", "gateway", "net", "gate"),
    [
        ("192.168.8.0", None, None, "192.168.8.0/24", "192.168.8.1"),  # yagna's default /24
        ("192.168.8.0", "255.255.0.0", None, "192.168.0.0/16", "192.168.0.1"),  # yapapi's form
        ("192.168.0.1/24", None, None, "192.168.0.0/24", "192.168.0.1"),  # golem-core's form
        ("10.3.0.77/24", "255.255.255.0", "10.3.0.254", "10.3.0.0/24", "10.3.0.254"),
        ("10.1.2.3/255.255.0.0", None, None, "10.1.0.0/16", "10.1.0.1"),
        ("10.0.0.0/8", "", "", "10.0.0.0/8", "10.0.0.1"),  # empty optionals are absent
        ("172.16.0.0/30", None, None, "172.16.0.0/30", "172.16.0.1"),
    ],
)
def test_the_forms_a_network_is_written_in(
    ip: str, mask: str | None, gateway: str | None, net: str, gate: str
) -> None:
    assert parse_network(ip, mask, gateway) == (IPv4Network(net), IPv4Address(gate))


@pytest.mark.parametrize(
    ("ip", "mask", "gateway", "why"),
    [
        ("10.0.0.0", "255.0.255.0", None, "not contiguous"),
        ("10.0.0.0", "0.0.0.255", None, "not contiguous"),  # a host mask, not a netmask
        ("10.0.0.0/24", "255.255.0.0", None, "disagree"),
        ("10.0.0.0/24", None, "10.0.1.1", "outside the network"),
        ("10.0.0.0/24", None, "10.0.0.0", "network address"),
        ("10.0.0.0/24", None, "10.0.0.255", "broadcast address"),
        ("10.0.0.0/31", None, None, "/8 to /30"),
        ("10.0.0.0/32", None, None, "/8 to /30"),
        ("10.0.0.0/7", None, None, "/8 to /30"),
        ("10.0.0.0/33", None, None, "/8 to /30"),
        ("10.0.0.0/2x", None, None, "not a number"),
        ("fd00:1::/64", None, None, "only IPv4"),
        ("127.0.0.0/24", None, None, "cannot route"),
        ("169.254.0.0/16", None, None, "cannot route"),
        ("224.0.0.0/24", None, None, "cannot route"),
        ("0.0.0.0/8", None, None, "cannot route"),
        ("010.0.0.0/24", None, None, "not an IPv4 address"),
        ("", None, None, "not an IPv4 address"),
    ],
)
def test_networks_that_would_not_work_are_refused(
    ip: str, mask: str | None, gateway: str | None, why: str
) -> None:
    with pytest.raises(InvalidRequest, match=why):
        parse_network(ip, mask, gateway)


def test_a_new_network_gives_the_requestor_its_first_host() -> None:
    made = network("10.9.0.0/16")
    assert (made.network, made.gateway, made.addresses, made.nodes) == (
        "10.9.0.0/16",
        "10.9.0.1",
        ("10.9.0.1",),
        (),
    )
    assert first_host(IPv4Network("10.9.0.0/16")) == IPv4Address("10.9.0.1")


def test_an_owner_has_a_bounded_number_of_networks() -> None:
    new_network("x" * 32, "a" * 64, "10.0.0.0/24", owned=MAX_NETWORKS_PER_OWNER - 1)
    with pytest.raises(LimitReached):
        new_network("x" * 32, "a" * 64, "10.0.0.0/24", owned=MAX_NETWORKS_PER_OWNER)


def test_requestor_addresses() -> None:
    net = network()
    assert add_address(net, "192.168.0.1") is net  # the SDKs add the first host again
    more = add_address(net, "192.168.0.50")
    assert more.addresses == ("192.168.0.1", "192.168.0.50")
    for bad, why in [
        ("192.168.1.5", "outside"),
        ("192.168.0.0", "network address"),
        ("192.168.0.255", "broadcast"),
        ("192.168.0.5/24", "not an IPv4 address"),
    ]:
        with pytest.raises(InvalidRequest, match=why):
            add_address(net, bad)
    with_vm = add_node(net, "vm-one", "192.168.0.7", vm=True)
    with pytest.raises(AddressTaken, match="held by VM vm-one"):
        add_address(with_vm, "192.168.0.7")
    with_other = add_node(net, "0xabc", "192.168.0.8", vm=False)
    assert add_address(with_other, "192.168.0.8").addresses[-1] == "192.168.0.8"


def test_one_address_one_node_and_idempotent_re_adds() -> None:
    net = add_node(network(), "vm-one", "192.168.0.2", vm=True)
    assert add_node(net, "vm-one", "192.168.0.2", vm=True) is net
    with pytest.raises(AddressTaken, match="held by node vm-one"):
        add_node(net, "0xother", "192.168.0.2", vm=False)
    with pytest.raises(AddressTaken, match="remove it first"):
        add_node(net, "vm-one", "192.168.0.3", vm=True)
    # Other ids may hold several addresses, as in yagna.
    twice = add_node(add_node(net, "0xg", "192.168.0.3", vm=False), "0xg", "192.168.0.4", vm=False)
    assert [n.ip for n in twice.nodes if n.node_id == "0xg"] == ["192.168.0.3", "192.168.0.4"]
    assert remove_node(twice, "0xg").nodes == (NetNode("vm-one", "192.168.0.2", True),)
    assert remove_node(twice, "0xnobody") is twice


def test_the_requestor_side_is_no_place_for_a_vm() -> None:
    net = add_address(network(gateway="192.168.0.254"), "192.168.0.9")
    for ip in ("192.168.0.1", "192.168.0.9", "192.168.0.254"):
        with pytest.raises(AddressTaken, match="requestor's side"):
            add_node(net, "vm-one", ip, vm=True)
        # golem-js registers the requestor itself as a node on its own address.
        assert add_node(net, "0xrequestor", ip, vm=False).nodes[-1].ip == ip


@pytest.mark.parametrize(
    "node_id", ["", "x" * 129, "a b", "a/b", "tab\there", "q?x", "new\nline", "pc%20"]
)
def test_node_ids_a_path_cannot_carry_are_refused(node_id: str) -> None:
    with pytest.raises(InvalidRequest):
        add_node(network(), node_id, "192.168.0.2", vm=False)


def test_a_network_has_a_bounded_number_of_members() -> None:
    net = network("10.0.0.0/16")
    for i in range(MAX_MEMBERS - 1):  # the first host is a member already
        net = add_node(net, f"0x{i}", str(IPv4Address("10.0.1.0") + i), vm=False)
    with pytest.raises(LimitReached):
        add_node(net, "0xlast", "10.0.200.1", vm=False)
    with pytest.raises(LimitReached):
        add_address(net, "10.0.200.2")


def test_next_free_host_skips_every_holder() -> None:
    net = add_node(add_address(network("10.0.0.0/29"), "10.0.0.2"), "0xa", "10.0.0.3", vm=False)
    assert next_free_host(net) == IPv4Address("10.0.0.4")
    for ip in ("10.0.0.4", "10.0.0.5", "10.0.0.6"):
        net = add_node(net, f"0x{ip}", ip, vm=False)
    with pytest.raises(LimitReached, match="no free address"):
        next_free_host(net)


def test_tenancy() -> None:
    net = network()
    assert owner_key(ALICE) == "a" * 64
    assert owner_key(Caller(operator=True)) == OPERATOR_OWNER
    assert owner_key(Caller()) is None
    assert may_use(ALICE, net)
    assert not may_use(BOB, net)
    assert not may_use(Caller(), net)
    assert may_use(Caller(operator=True), net)
    assert vms_seen_by(net) == ALICE
    operators = new_network("o" * 32, OPERATOR_OWNER, "10.0.0.0/24")
    assert vms_seen_by(operators) == Caller(operator=True)


def test_desired_membership_lists_this_nodes_vms_only() -> None:
    one = add_node(
        add_node(network(), "vm-b", "192.168.0.3", vm=True), "0xg", "192.168.0.4", vm=False
    )
    two = add_node(
        new_network("m" * 32, "a" * 64, "10.5.0.0/16", gateway="10.5.0.9"),
        "vm-a",
        "10.5.1.1",
        vm=True,
    )
    assert desired_membership([one, two]) == (
        Attachment("vm-a", "m" * 32, "10.5.1.1", 16, "10.5.0.9"),
        Attachment("vm-b", "n" * 32, "192.168.0.3", 24, "192.168.0.1"),
    )


def test_a_network_has_golems_mtu_unless_its_creator_asks_for_another() -> None:
    made = network()
    assert made.mtu == 1220
    assert with_mtu(made, 9000).mtu == 9000
    assert with_mtu(made, 576).mtu == 576
    for wrong in (575, 9001, 65535, 0):
        with pytest.raises(InvalidRequest, match="576 to 9000"):
            with_mtu(made, wrong)
    # a registry saved before the field existed decodes with Golem's MTU
    old = msgspec.json.encode(made).replace(b',"mtu":1220', b"")
    assert b"mtu" not in old
    assert msgspec.json.decode(old, type=VpnNetwork).mtu == 1220


def test_a_vm_is_offered_its_address_in_the_network_of_lowest_id() -> None:
    rows = [
        Attachment("vm-a", "n2", "10.2.0.5", 24, "10.2.0.1"),
        Attachment("vm-a", "n1", "10.1.0.5", 24, "10.1.0.1"),
        Attachment("vm-b", "n2", "10.2.0.6", 24, "10.2.0.1"),
    ]
    assert offered_addresses(rows) == {"vm-a": "10.1.0.5", "vm-b": "10.2.0.6"}
    assert offered_addresses([]) == {}
