"""`status` rendering: the seed's JSON keys and its TTY layout."""

from __future__ import annotations

import json
from decimal import Decimal

import msgspec

from golem_actor.adapters.pypi import UpdateCheck, UpdateStatus
from golem_actor.discovery.schemas import AdvertBody, Resources as WireResources
from golem_actor.domain.advertising import AdvertState
from golem_actor.domain.port_verdict import (
    LocalState,
    MultipassCheck,
    ProviderCheck,
    SshCheck,
    StatusReport,
    Verdict,
    build_status,
)
from golem_actor.domain.pricing import RateReading, UsdPrices, price_info
from golem_actor.domain.vpn.status import vpn_status
from golem_actor.status_render import render_json, render_tty, status_document

R, U, K = Verdict.REACHABLE, Verdict.UNREACHABLE, Verdict.UNKNOWN
RANGE = range(50800, 50900)


def report(
    *,
    provider_external: Verdict = R,
    external_error: str | None = None,
    local: LocalState = LocalState.LISTENING,
    verdicts: dict[int, Verdict] | None = None,
    in_use: frozenset[int] = frozenset(),
    listening: frozenset[int] = frozenset(),
    multipass: MultipassCheck | None = None,
) -> StatusReport:
    return build_status(
        ProviderCheck(
            port=7466,
            host="0.0.0.0",
            local=local,
            external=provider_external,
            external_error=external_error,
        ),
        SshCheck(
            start=RANGE.start,
            end=RANGE.stop,
            verdicts=dict.fromkeys(RANGE, R) if verdicts is None else verdicts,
            in_use=in_use,
            listening=listening,
        ),
        multipass=multipass,
    )


def test_json_has_the_seeds_keys_one_by_one() -> None:
    document = json.loads(
        render_json(report(in_use=frozenset({50800}), listening=frozenset({50800})))
    )
    overall = document["overall"]
    assert overall["status"] in ("healthy", "issues", "error")
    assert isinstance(overall["issues"], list)
    assert all(isinstance(issue, str) for issue in overall["issues"])

    provider = document["ports"]["provider"]
    assert provider["port"] == 7466
    assert provider["host"] == "0.0.0.0"
    assert provider["status"] in ("reachable", "unreachable")

    ssh = document["ports"]["ssh"]
    assert ssh["range"] == [50800, 50900]  # [start, end)
    assert ssh["status"] in ("ok", "limited", "blocked")
    assert ssh["usable_free"] == 99
    assert ssh["in_use"] == 1
    assert ssh["issues"] == {"unreachable": 0, "not_listening": 0}
    assert len(ssh["ports"]) == 100
    first = ssh["ports"][0]
    assert set(first) == {"port", "status", "listening"}
    assert first == {"port": 50800, "status": "reachable", "listening": True}
    assert ssh["ports"][1]["listening"] is False
    # The seed replaced "free" by "usable_free".
    assert "free" not in ssh
    assert "version" not in document
    assert "multipass" not in document


def test_json_when_the_checker_is_unavailable() -> None:
    document = json.loads(render_json(report(provider_external=K, verdicts={})))
    ssh = document["ports"]["ssh"]
    assert ssh["status"] == "blocked"
    assert ssh["usable_free"] == 0
    assert {p["status"] for p in ssh["ports"]} == {"unknown"}
    provider = document["ports"]["provider"]
    assert provider["status"] == "unreachable"  # check failures count as unreachable
    assert provider["external"]["status"] == "check_failed"
    assert document["overall"] == {
        "status": "error",
        "issues": [
            "No externally reachable SSH ports",
            "Provider API port not reachable externally",
        ],
    }


def test_json_carries_version_and_multipass_in_the_upstreams_order() -> None:
    update = UpdateCheck(status=UpdateStatus.NEWER, installed="0.1.0", latest="0.2.0")
    document = status_document(
        report(multipass=MultipassCheck(ok=True, path="/usr/bin/multipass")), update=update
    )
    assert list(document) == ["version", "multipass", "ports", "overall"]
    assert document["version"] == {
        "installed": "0.1.0",
        "latest": "0.2.0",
        "update_available": True,
    }
    assert document["multipass"] == {"ok": True, "path": "/usr/bin/multipass"}
    unknown = status_document(
        report(), update=UpdateCheck(status=UpdateStatus.UNKNOWN, installed="0.1.0")
    )
    assert unknown["version"] == {"installed": "0.1.0", "latest": None, "update_available": False}


def test_tty_healthy_matches_the_seeds_example() -> None:
    # The seed's "Example status output" under Troubleshooting, with its placeholders filled.
    expected = (
        "Overall         Healthy\n"
        "\n"
        "Provider Port   0.0.0.0:7466\n"
        "  Local         ✅ service is listening\n"
        "  External      ✅ reachable\n"
        "\n"
        "SSH Ports       50800-50899 — OK\n"
        "  Usable free   98\n"
        "  In use        2\n"
    )
    both = frozenset({50810, 50811})
    assert render_tty(report(in_use=both, listening=both)) == expected


def test_tty_error_layout_with_every_failure() -> None:
    expected = (
        "Overall         Error\n"
        "\n"
        "Multipass       ❌ Missing\n"
        "\n"
        "Provider Port   0.0.0.0:7466\n"
        "  Local         ❌ port unavailable\n"
        "  External      ❌ unreachable — Connection refused\n"
        "\n"
        "SSH Ports       50800-50899 — blocked\n"
        "  Usable free   0\n"
        "  In use        0\n"
        "  Issues        100 not reachable externally\n"
    )
    rendered = render_tty(
        report(
            provider_external=U,
            external_error="Connection refused",
            local=LocalState.UNAVAILABLE,
            verdicts=dict.fromkeys(RANGE, U),
            multipass=MultipassCheck(ok=False),
        )
    )
    assert rendered == expected


def test_tty_limited_names_its_issues() -> None:
    verdicts = {**dict.fromkeys(RANGE, R), 50801: U, 50802: U, 50803: U}
    in_use = frozenset({50801, 50802, 50803, 50804})
    rendered = render_tty(
        report(
            verdicts=verdicts,
            in_use=in_use,
            listening=in_use - {50804},
            multipass=MultipassCheck(ok=True),
        )
    )
    assert rendered == (
        "Overall         Issues detected\n"
        "\n"
        "Multipass       ✅ OK\n"
        "\n"
        "Provider Port   0.0.0.0:7466\n"
        "  Local         ✅ service is listening\n"
        "  External      ✅ reachable\n"
        "\n"
        "SSH Ports       50800-50899 — limited — 4 issue(s)\n"
        "  Usable free   96\n"
        "  In use        4\n"
        "  Issues        3 unreachable, 1 not listening\n"
    )


def test_tty_version_line() -> None:
    base = report()
    newer = UpdateCheck(status=UpdateStatus.NEWER, installed="0.1.0", latest="0.2.0")
    same = UpdateCheck(status=UpdateStatus.UP_TO_DATE, installed="0.1.0", latest="0.1.0")
    unknown = UpdateCheck(status=UpdateStatus.UNKNOWN, installed="0.1.0", error="offline")
    assert render_tty(base, update=newer).endswith(
        "\n\nVersion         0.1.0 — update available: 0.2.0\n"
    )
    assert render_tty(base, update=same).endswith("\n\nVersion         0.1.0 — up to date\n")
    assert render_tty(base, update=unknown).endswith(
        "\n\nVersion         0.1.0 — update check unavailable\n"
    )
    assert render_tty(base, update=newer).startswith(render_tty(base).rstrip("\n"))


def test_ipv6_hosts_are_bracketed() -> None:
    document = build_status(
        ProviderCheck(port=7466, host="::", local=LocalState.BINDABLE, external=R),
        SshCheck(start=50800, end=50801, verdicts={50800: R}),
    )
    assert "Provider Port   [::]:7466\n" in render_tty(document)


def priced(glm_usd: str | None, *, age: float = 0.0, error: str | None = None) -> StatusReport:
    usd = UsdPrices(core=5.0, ram_gb=2.0, disk_gb=0.1)
    reading = None if glm_usd is None else RateReading(usd=Decimal(glm_usd), confirmed_at=1000.0)
    info = price_info(
        usd,
        glm=reading,
        eth=None,
        now=1000.0 + age,
        max_age=3600,
        last_error=error,
        source="http://127.0.0.1:9/api/v3",
    )
    return msgspec.structs.replace(report(), pricing=info)


def test_pricing_known_stale_and_unknown() -> None:
    known = render_tty(priced("0.2512"))
    assert "Pricing         ✅ known — 0.2512 USD/GLM\n" in known
    assert "  In GLM        19.90445860/core, 7.96178344/GB RAM, 0.39808917/GB disk\n" in known
    assert "  USD / month   $5/core, $2/GB RAM, $0.1/GB disk\n" in known
    stale = render_tty(priced("0.2512", age=7200, error="http://127.0.0.1:9/api/v3: HTTP 500"))
    assert "Pricing         ❌ stale — not advertised, paid creates refused\n" in stale
    assert (
        "  Why           the GLM/USD rate is stale: last confirmed 2.0 h ago, 60 min allowed:"
        " http://127.0.0.1:9/api/v3: HTTP 500\n"
    ) in stale
    unknown = render_tty(priced(None))
    assert "Pricing         ❌ unknown — not advertised, paid creates refused\n" in unknown
    assert "  Why           no GLM/USD rate known yet (not fetched yet)\n" in unknown


def test_json_keeps_the_seeds_keys_and_adds_pricing() -> None:
    document = json.loads(render_json(priced("0.25")))
    assert list(document) == ["ports", "overall", "pricing"]
    pricing = document["pricing"]
    assert (pricing["state"], pricing["why"], pricing["glm_usd"]["usd"]) == ("known", "", "0.25")
    assert pricing["glm"] == {
        "core": "20.00000000",
        "ram_gb": "8.00000000",
        "disk_gb": "0.40000000",
    }
    assert pricing["usd"] == {"core": 5.0, "ram_gb": 2.0, "disk_gb": 0.1}
    unknown = json.loads(render_json(priced(None)))["pricing"]
    assert (unknown["state"], unknown["glm"]) == ("unknown", None)
    assert "pricing" not in json.loads(render_json(report()))  # no price state: no key


def advertised(phase: str = "advertised", why: str = "") -> StatusReport:
    body = AdvertBody(
        ip_address="203.0.113.7",
        country="SE",
        resources=WireResources(cpu=2, memory=11, storage=160),
        pricing={"usd_per_core_month": 5.0, "glm_per_core_month": 20.0},
        platform="x86_64",
        provider_name="node-a",
        timestamp=1000.0,
    )
    state = AdvertState(
        target="http://127.0.0.1:9001",
        phase=phase,  # type: ignore[arg-type]
        why=why,
        last_accepted_at=1000.0,
        last_attempt_at=1030.0,
        advert=body,
        posts=3,
    )
    return msgspec.structs.replace(priced("0.25", age=300), advert=state)


def test_tty_shows_where_the_advert_is_when_it_was_last_accepted_and_the_rates_age() -> None:
    text = render_tty(advertised(), now=1300.0)
    assert "Advert          ✅ advertised — http://127.0.0.1:9001\n" in text
    assert "  Last accepted 5 min ago (1970-01-01 00:16:40 UTC)\n" in text
    assert "  Offer         2 cores, 11 GB RAM, 160 GB disk at 203.0.113.7\n" in text
    assert "  GLM rate      0.25 USD — known, confirmed 5 min ago\n" in text
    assert "  ETH rate      unknown\n" in text
    assert text.index("Pricing") < text.index("Advert")


def test_tty_says_why_the_advert_is_not_up() -> None:
    why = "capacity below the minimums: memory GB 0 < 1"
    text = render_tty(advertised("skipped", why), now=1030.0)
    assert "Advert          ❌ not advertised — http://127.0.0.1:9001\n" in text
    assert f"  Why           {why}\n" in text
    assert "  Last accepted 30 s ago" in text
    assert "  Offer" not in text  # the last offer is not up any more
    off = AdvertState(
        target="",
        phase="disabled",
        why="the node is not running",
        last_accepted_at=None,
        last_attempt_at=None,
        advert=None,
        posts=0,
    )
    text = render_tty(msgspec.structs.replace(report(), advert=off))
    assert "Advert          ❌ not advertising\n  Why           the node is not running\n" in text


def test_json_adds_the_advert_and_the_rates_ages_after_the_seeds_keys() -> None:
    document = json.loads(render_json(advertised(), now=1300.0))
    assert list(document) == ["ports", "overall", "pricing", "advert"]
    assert document["pricing"]["glm_usd"]["age_seconds"] == 300.0
    assert document["pricing"]["eth_usd"]["age_seconds"] is None
    assert document["advert"] == {
        "target": "http://127.0.0.1:9001",
        "phase": "advertised",
        "why": "",
        "last_accepted_at": 1000.0,
        "last_accepted_age_seconds": 300.0,
        "last_attempt_at": 1030.0,
        "posts": 3,
        "ip_address": "203.0.113.7",
        "resources": {"cpu": 2, "memory": 11, "storage": 160},
        "pricing": {"usd_per_core_month": 5.0, "glm_per_core_month": 20.0},
    }


def vpn_report() -> StatusReport:
    vpn = vpn_status(
        networks=2,
        vm_addresses=3,
        endpoints=("vm-a", "vm-b", "gate", "link-1", "link-2"),
        totals={"frames_out": 1234, "frames_in": 1300},
        drops={"spoofed": 3, "too_big": 0, "no_route": 2},
        links={
            "link-1": {"network_id": "n1", "location": "ws://b:7466/x", "up": 1,
                       "failures": 1, "last_error": "refused"},
            "link-2": {"network_id": "n2", "location": "ws://c:7466/y", "up": 0,
                       "failures": 4, "last_error": "HTTP 403: bad secret"},
        },
    )  # fmt: skip
    return msgspec.structs.replace(report(), vpn=vpn)


def test_tty_sums_up_the_vpn_and_says_which_link_is_down_and_why() -> None:
    text = render_tty(vpn_report())
    assert "VPN             ❌ 2 networks, 3 VM addresses, 3 ports open\n" in text
    assert "  Routed        1234 frames\n" in text
    assert "  Dropped       no_route 2, spoofed 3\n" in text  # only reasons that happened
    assert "  Link          ✅ up — ws://b:7466/x (network n1)\n" in text  # an old error hidden
    assert "  Link          ❌ down — ws://c:7466/y (network n2): HTTP 403: bad secret\n" in text
    quiet = vpn_status(networks=0, vm_addresses=0, endpoints=(), totals={}, drops={}, links={})
    text = render_tty(msgspec.structs.replace(report(), vpn=quiet))
    assert "VPN             ✅ 0 networks, 0 VM addresses, 0 ports open\n" in text
    assert "  Dropped" not in text
    assert "  Link" not in text


def test_json_adds_the_vpn_last() -> None:
    document = json.loads(render_json(vpn_report()))
    assert list(document) == ["ports", "overall", "vpn"]
    assert document["vpn"]["nics_open"] == 3
    assert document["vpn"]["dropped"] == {"no_route": 2, "spoofed": 3}
    assert [link["up"] for link in document["vpn"]["links"]] == [True, False]
