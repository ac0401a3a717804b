"""docs/log-schema.md is the source's log calls, and the scanner reads them right."""

from __future__ import annotations

import textwrap

from golem_actor.logschema import DOCUMENT, LogCall, main, render, scan_source, scan_tree


def scan(code: str) -> list[LogCall]:
    return sorted(scan_source(textwrap.dedent(code), "m.py"), key=lambda c: (c.event, c.level))


def test_the_committed_document_is_the_source() -> None:
    assert DOCUMENT.read_text(encoding="utf-8") == render(scan_tree()), (
        "docs/log-schema.md is stale: run python -m golem_actor.logschema"
    )
    assert main(["--check"]) == 0


def test_the_node_lifecycle_events_are_listed() -> None:
    rows = {line.split(" | ")[0] for line in DOCUMENT.read_text().splitlines()}
    for event in ("node ready", "node stopping", "child stopped", "vm status", "ssh ready"):
        assert f"| `{event}`" in rows


def test_literal_events_levels_and_keys() -> None:
    calls = scan(
        """
        log.info("vm status", vm_id=v, status=s)
        self._log.warning(
            "slow",
            seconds=3,
        )
        log.error("boom", exc_info=e)
        print.info("not a logger")
        log.bind(x=1)
        """
    )
    assert calls == [
        LogCall("boom", "error", ("exception",), "m.py"),
        LogCall("slow", "warning", ("seconds",), "m.py"),
        LogCall("vm status", "info", ("vm_id", "status"), "m.py"),
    ]


def test_names_and_keys_passed_through_helpers_are_followed() -> None:
    calls = scan(
        """
        class A:
            async def created(self):
                await self._update(n, "node added", node_id=1, ip=2)

            async def _update(self, network, event, **fields):
                await self._changed(f"vpn {event}", network.id, **fields)

            async def _changed(self, event, network_id, **fields):
                log.info(event, network_id=network_id, **fields)
        """
    )
    assert calls == [LogCall("vpn node added", "info", ("network_id", "node_id", "ip"), "m.py")]


def test_level_aliases_local_dicts_and_runtime_parts() -> None:
    calls = scan(
        """
        def exited(error):
            fields = {"child": c, "reason": r}
            fields["extra"] = 1
            level = log.error if error else log.info
            level("child exited", **fields)
            log.info("advert-" + method.lower(), **other())
        """
    )
    assert calls == [
        LogCall("advert-*", "info", ("**other()",), "m.py"),
        LogCall("child exited", "error", ("child", "reason", "extra"), "m.py"),
        LogCall("child exited", "info", ("child", "reason", "extra"), "m.py"),
    ]


def test_a_new_log_call_makes_the_document_stale() -> None:
    calls = [*scan_tree(), LogCall("brand new event", "info", ("k",), "actors/x.py")]
    text = render(calls)
    assert "| `brand new event` | info | `k` | `actors/x.py` |" in text
    assert text != DOCUMENT.read_text(encoding="utf-8")
