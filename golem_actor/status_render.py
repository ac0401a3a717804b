"""`golem-provider status`: the status document as the seed's TTY layout or as JSON.

Why: the rules live in `golem_actor.domain.port_verdict`; this module only presents their
result, so the terminal text and `--json` can never disagree. The TTY layout is the seed
README's: a 16-column label, one block per subject separated by blank lines, and the SSH
range shown inclusive (`50800-50899` for the JSON range `[50800, 50900)`). A version
check, when given, adds a last `Version` line and the JSON `version` object. The price
state, when known to the report, adds a `Pricing` block and the JSON `pricing` object.
"""

from __future__ import annotations

from typing import Any

import msgspec

from golem_actor.adapters.pypi import UpdateCheck, UpdateStatus
from golem_actor.domain.port_verdict import StatusReport
from golem_actor.domain.pricing import PriceInfo

__all__ = ["LABEL_WIDTH", "render_json", "render_tty", "status_document"]

LABEL_WIDTH = 16
OK_MARK = "✅"
FAIL_MARK = "❌"

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


def _pricing_lines(info: PriceInfo) -> list[str]:
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
    if info.override:
        lines.append(_line("  Gating", "wei prices set (PRICE_WEI_PER_*)"))
    return lines


def render_tty(report: StatusReport, *, update: UpdateCheck | None = None) -> str:
    """The seed's terminal layout, ending with a newline."""
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
        lines += ["", *_pricing_lines(report.pricing)]
    if update is not None:
        lines += ["", _line("Version", _version_text(update))]
    return "\n".join(lines) + "\n"


def _version_document(update: UpdateCheck) -> dict[str, Any]:
    return {
        "installed": update.installed,
        "latest": update.latest,
        "update_available": update.update_available,
    }


def status_document(report: StatusReport, *, update: UpdateCheck | None = None) -> dict[str, Any]:
    """The `--json` document as plain data: `version`, `multipass`, `ports`, `overall`."""
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
        document["pricing"] = msgspec.to_builtins(report.pricing)
    return document


def render_json(report: StatusReport, *, update: UpdateCheck | None = None) -> str:
    """`status --json`: the document, indented, ending with a newline."""
    encoded = msgspec.json.encode(status_document(report, update=update))
    return msgspec.json.format(encoded, indent=2).decode() + "\n"
