"""`golem-provider status`: the status document as the seed's TTY layout or as JSON.

Why: the rules live in `golem_actor.domain.port_verdict`; this module only presents their
result, so the terminal text and `--json` can never disagree. The TTY layout is the seed
README's: a 16-column label, one block per subject separated by blank lines, and the SSH
range shown inclusive (`50800-50899` for the JSON range `[50800, 50900)`). A version
check, when given, adds a last `Version` line and the JSON `version` object. The price
state, when known to the report, adds a `Pricing` block and the JSON `pricing` object (each
rate with its `age_seconds`); the advert's state an `Advert` block and the JSON `advert`
object (where, phase, why, when last accepted and what); the VPN's summary a `VPN`
block and the JSON `vpn` object (networks, VM addresses, open NICs, frames routed and
dropped, each link to another node). Ages are counted from `now`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import msgspec

from golem_actor.adapters.pypi import UpdateCheck, UpdateStatus
from golem_actor.domain.advertising import AdvertState
from golem_actor.domain.port_verdict import StatusReport
from golem_actor.domain.pricing import PriceInfo, RateInfo
from golem_actor.domain.vpn.status import VpnStatus

__all__ = ["LABEL_WIDTH", "render_json", "render_tty", "status_document"]

LABEL_WIDTH = 16
OK_MARK = "✅"
FAIL_MARK = "❌"
WAIT_MARK = "⏳"

_OVERALL = {"healthy": "Healthy", "issues": "Issues detected", "error": "Error"}


def _line(label: str, value: str) -> str:
    return f"{label:<{LABEL_WIDTH}}{value}".rstrip()


def _endpoint(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _ssh_issues_text(report: StatusReport) -> str | None:
    ssh = report.ports.ssh
    unreachable, not_listening = ssh.issues.unreachable, ssh.issues.not_listening
    parts: list[str] = []
    if ssh.status == "blocked":
        parts.append(f"{unreachable} not reachable externally")
    elif unreachable:
        parts.append(f"{unreachable} unreachable")
    if not_listening:
        parts.append(f"{not_listening} not listening")
    return ", ".join(parts) or None


def _ssh_headline(report: StatusReport) -> str:
    ssh = report.ports.ssh
    start, end = ssh.port_range
    shown = f"{start}-{end - 1}" if end > start else f"{start}-{start} (empty)"
    if ssh.status == "ok":
        return f"{shown} — OK"
    if ssh.status == "limited":
        count = ssh.issues.unreachable + ssh.issues.not_listening
        return f"{shown} — limited — {count} issue(s)"
    return f"{shown} — blocked"


def _version_text(update: UpdateCheck) -> str:
    if update.status is UpdateStatus.NEWER:
        return f"{update.installed} — update available: {update.latest}"
    if update.status is UpdateStatus.UP_TO_DATE:
        return f"{update.installed} — up to date"
    return f"{update.installed} — update check unavailable"


def _ago(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def _when(timestamp: float | None, now: float) -> str:
    if timestamp is None:
        return "never"
    stamp = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{_ago(now - timestamp)} ({stamp})"


def _rate_text(rate: RateInfo, now: float) -> str:
    if rate.usd is None:
        return "unknown"
    text = f"{rate.usd} USD — {rate.state}"
    if rate.confirmed_at is not None:
        text += f", confirmed {_ago(now - rate.confirmed_at)}"
    return text


def _pricing_lines(info: PriceInfo, now: float) -> list[str]:
    usd = info.usd
    per_month = f"${usd.core:g}/core, ${usd.ram_gb:g}/GB RAM, ${usd.disk_gb:g}/GB disk"
    if info.glm is None:
        unpriced = "not advertised" + ("" if info.override else ", paid creates refused")
        lines = [
            _line("Pricing", f"{FAIL_MARK} {info.state} — {unpriced}"),
            _line("  Why", info.why),
        ]
    else:
        glm = info.glm
        lines = [
            _line("Pricing", f"{OK_MARK} known — {info.glm_usd.usd} USD/GLM"),
            _line("  In GLM", f"{glm.core}/core, {glm.ram_gb}/GB RAM, {glm.disk_gb}/GB disk"),
        ]
        if info.last_error:
            lines.append(_line("  Feed", info.last_error))
    lines.append(_line("  USD / month", per_month))
    lines.append(_line("  GLM rate", _rate_text(info.glm_usd, now)))
    lines.append(_line("  ETH rate", _rate_text(info.eth_usd, now)))
    if info.override:
        lines.append(_line("  Gating", "wei prices set (PRICE_WEI_PER_*)"))
    return lines


_PHASE_TEXT = {
    "advertised": (OK_MARK, "advertised"),
    "pending": (WAIT_MARK, "pending — first attempt under way"),
    "skipped": (FAIL_MARK, "not advertised"),
    "failed": (FAIL_MARK, "failed — retried on the next interval"),
    "withdrawn": (FAIL_MARK, "withdrawn"),
    "disabled": (FAIL_MARK, "not advertising"),
}


def _advert_lines(state: AdvertState, now: float) -> list[str]:
    mark, text = _PHASE_TEXT[state.phase]
    headline = f"{mark} {text}" + (f" — {state.target}" if state.target else "")
    lines = [_line("Advert", headline)]
    if state.why:
        lines.append(_line("  Why", state.why))
    if state.phase != "disabled":
        lines.append(_line("  Last accepted", _when(state.last_accepted_at, now)))
    if state.advert is not None and state.phase == "advertised":
        offer = state.advert.resources
        lines.append(
            _line(
                "  Offer",
                f"{offer.cpu} cores, {offer.memory} GB RAM, {offer.storage} GB disk"
                f" at {state.advert.ip_address}",
            )
        )
    return lines


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _vpn_lines(vpn: VpnStatus) -> list[str]:
    down = [link for link in vpn.links if not link.up]
    mark = FAIL_MARK if down else OK_MARK
    headline = ", ".join(
        (
            _count(vpn.networks, "network", "networks"),
            _count(vpn.vm_addresses, "VM address", "VM addresses"),
            _count(vpn.nics_open, "port open", "ports open"),
        )
    )
    lines = [_line("VPN", f"{mark} {headline}")]
    lines.append(_line("  Routed", _count(vpn.frames_routed, "frame", "frames")))
    if vpn.dropped:
        lines.append(
            _line("  Dropped", ", ".join(f"{reason} {n}" for reason, n in vpn.dropped.items()))
        )
    for link in vpn.links:
        state = f"{OK_MARK} up" if link.up else f"{FAIL_MARK} down"
        text = f"{state} — {link.location} (network {link.network_id})"
        if not link.up and link.last_error:
            text += f": {link.last_error}"
        lines.append(_line("  Link", text))
    return lines


def render_tty(
    report: StatusReport, *, update: UpdateCheck | None = None, now: float | None = None
) -> str:
    """The seed's terminal layout, ending with a newline."""
    now = time.time() if now is None else now
    lines = [_line("Overall", _OVERALL[report.overall.status]), ""]
    if report.multipass is not None:
        state = f"{OK_MARK} OK" if report.multipass.ok else f"{FAIL_MARK} Missing"
        lines += [_line("Multipass", state), ""]
    elif report.backend is not None:
        mark = OK_MARK if report.backend.ok else FAIL_MARK
        name = report.backend.kind.upper() if report.backend.kind == "qemu" else report.backend.kind
        detail = f" — {report.backend.detail}" if report.backend.detail else ""
        lines += [_line("VM Backend", f"{mark} {name}{detail}"), ""]

    provider = report.ports.provider
    local_mark = OK_MARK if provider.local_ok else FAIL_MARK
    if provider.status == "reachable":
        external = f"{OK_MARK} reachable"
    else:
        external = f"{FAIL_MARK} unreachable"
        if provider.external.error:
            external += f" — {provider.external.error}"
    lines += [
        _line("Provider Port", _endpoint(provider.host, provider.port)),
        _line("  Local", f"{local_mark} {provider.local_detail}"),
        _line("  External", external),
        "",
    ]

    ssh = report.ports.ssh
    lines += [
        _line("SSH Ports", _ssh_headline(report)),
        _line("  Usable free", str(ssh.usable_free)),
        _line("  In use", str(ssh.in_use)),
    ]
    issues = _ssh_issues_text(report)
    if issues is not None:
        lines.append(_line("  Issues", issues))

    if report.pricing is not None:
        lines += ["", *_pricing_lines(report.pricing, now)]
    if report.advert is not None:
        lines += ["", *_advert_lines(report.advert, now)]
    if report.vpn is not None:
        lines += ["", *_vpn_lines(report.vpn)]
    if update is not None:
        lines += ["", _line("Version", _version_text(update))]
    return "\n".join(lines) + "\n"


def _version_document(update: UpdateCheck) -> dict[str, Any]:
    return {
        "installed": update.installed,
        "latest": update.latest,
        "update_available": update.update_available,
    }


def _age(timestamp: float | None, now: float) -> float | None:
    return None if timestamp is None else round(max(now - timestamp, 0.0), 1)


def _pricing_document(info: PriceInfo, now: float) -> dict[str, Any]:
    document: dict[str, Any] = msgspec.to_builtins(info)
    for rate, name in ((info.glm_usd, "glm_usd"), (info.eth_usd, "eth_usd")):
        document[name]["age_seconds"] = _age(rate.confirmed_at, now)
    return document


def _advert_document(state: AdvertState, now: float) -> dict[str, Any]:
    advert = state.advert
    return {
        "target": state.target,
        "phase": state.phase,
        "why": state.why,
        "last_accepted_at": state.last_accepted_at,
        "last_accepted_age_seconds": _age(state.last_accepted_at, now),
        "last_attempt_at": state.last_attempt_at,
        "posts": state.posts,
        "ip_address": None if advert is None else advert.ip_address,
        "resources": None if advert is None else msgspec.to_builtins(advert.resources),
        "pricing": None if advert is None else advert.pricing,
    }


def status_document(
    report: StatusReport, *, update: UpdateCheck | None = None, now: float | None = None
) -> dict[str, Any]:
    """The `--json` document as plain data: `version`, `multipass`, `ports`, `overall`,
    then what the seed's layout does not have: `pricing`, `advert`, `vpn`."""
    now = time.time() if now is None else now
    document: dict[str, Any] = {}
    if update is not None:
        document["version"] = _version_document(update)
    if report.multipass is not None:
        document["multipass"] = msgspec.to_builtins(report.multipass)
    if report.backend is not None:
        document["backend"] = msgspec.to_builtins(report.backend)
    document["ports"] = msgspec.to_builtins(report.ports)
    document["overall"] = msgspec.to_builtins(report.overall)
    if report.pricing is not None:
        document["pricing"] = _pricing_document(report.pricing, now)
    if report.advert is not None:
        document["advert"] = _advert_document(report.advert, now)
    if report.vpn is not None:
        document["vpn"] = msgspec.to_builtins(report.vpn)
    return document


def render_json(
    report: StatusReport, *, update: UpdateCheck | None = None, now: float | None = None
) -> str:
    """`status --json`: the document, indented, ending with a newline."""
    encoded = msgspec.json.encode(status_document(report, update=update, now=now))
    return msgspec.json.format(encoded, indent=2).decode() + "\n"
