"""Logs: JSON lines with the required keys, per-task context, file output, robustness."""

from __future__ import annotations

import io
import json
import logging
import re
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
import trio
from structlog.contextvars import bind_contextvars, bound_contextvars, clear_contextvars

from golem_actor.logs import (
    choose_format,
    configure_logging,
    get_logger,
    info_line,
    reset_logging,
)

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


class TTYStream(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    reset_logging()
    clear_contextvars()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_have_the_required_keys_first() -> None:
    stream = io.StringIO()
    configure_logging(fmt="json", level="info", stream=stream)
    get_logger(actor="wallet").info("nonce reserved", vm_id="vm-1", nonce=3)
    [record] = lines(stream)
    assert list(record)[:3] == ["timestamp", "level", "event"]
    assert record["level"] == "info"
    assert record["event"] == "nonce reserved"
    assert (record["actor"], record["vm_id"], record["nonce"]) == ("wallet", "vm-1", 3)


def test_timestamp_is_utc_iso8601_with_z() -> None:
    stream = io.StringIO()
    configure_logging(fmt="json", level="info", stream=stream)
    before = datetime.now(UTC)
    get_logger().info("tick")
    after = datetime.now(UTC)
    stamp = lines(stream)[0]["timestamp"]
    assert TIMESTAMP.match(stamp)
    parsed = datetime.fromisoformat(stamp)
    assert parsed.utcoffset() is not None
    assert before <= parsed <= after


def test_level_filtering_and_names() -> None:
    stream = io.StringIO()
    configure_logging(fmt="json", level="WARNING", stream=stream)
    log = get_logger()
    log.debug("hidden")
    log.info("hidden too")
    log.warning("shown")
    log.error("also shown")
    assert [(r["level"], r["event"]) for r in lines(stream)] == [
        ("warning", "shown"),
        ("error", "also shown"),
    ]


def test_exception_is_rendered_into_the_line() -> None:
    stream = io.StringIO()
    configure_logging(fmt="json", level="info", stream=stream)
    try:
        raise ZeroDivisionError("boom")
    except ZeroDivisionError:
        get_logger().exception("handler crashed")
    [record] = lines(stream)
    assert record["level"] == "error"
    assert "Traceback" in record["exception"]
    assert "ZeroDivisionError: boom" in record["exception"]


async def test_bound_context_follows_trio_tasks_without_leaking() -> None:
    stream = io.StringIO()
    configure_logging(fmt="json", level="info", stream=stream)
    log = get_logger()
    bind_contextvars(actor="vm_lifecycle")
    first_bound = trio.Event()
    second_logged = trio.Event()

    async def first() -> None:
        bind_contextvars(vm_id="vm-a")
        first_bound.set()
        await second_logged.wait()
        log.info("first")

    async def second() -> None:
        await first_bound.wait()
        bind_contextvars(vm_id="vm-b", stream_id=7)
        log.info("second")
        second_logged.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(first)
        nursery.start_soon(second)
    log.info("parent")

    by_event = {r["event"]: r for r in lines(stream)}
    assert by_event["second"]["vm_id"] == "vm-b"
    assert by_event["second"]["stream_id"] == 7
    assert by_event["first"]["vm_id"] == "vm-a"
    assert "stream_id" not in by_event["first"]
    assert "vm_id" not in by_event["parent"]
    assert all(r["actor"] == "vm_lifecycle" for r in by_event.values())


def test_bound_contextvars_unbinds_on_exit() -> None:
    stream = io.StringIO()
    configure_logging(fmt="json", level="info", stream=stream)
    with bound_contextvars(vm_id="vm-1"):
        get_logger().info("inside")
    get_logger().info("outside")
    inside, outside = lines(stream)
    assert inside["vm_id"] == "vm-1"
    assert "vm_id" not in outside


def test_file_output_is_appended_flushed_and_json(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "provider.log"
    stream = io.StringIO()
    configure_logging(fmt="console", level="info", stream=stream, file=log_file)
    get_logger(actor="api").info("first", vm_id="vm-1")
    # Flushed per line: readable before anything is closed.
    [record] = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert (record["event"], record["actor"], record["vm_id"]) == ("first", "api", "vm-1")
    assert "first" in stream.getvalue()
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600

    configure_logging(fmt="json", level="info", stream=stream, file=log_file)
    get_logger().info("second")
    events = [json.loads(line)["event"] for line in log_file.read_text().splitlines()]
    assert events == ["first", "second"]


def test_console_format_is_readable_not_json() -> None:
    stream = io.StringIO()
    configure_logging(fmt="console", level="info", stream=stream)
    get_logger(actor="api").info("listening", port=7466)
    text = stream.getvalue()
    assert "listening" in text
    assert "port=7466" in text
    assert "actor=api" in text
    assert "\x1b[" not in text  # no colours: the stream is not a TTY
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_console_format_has_colours_on_a_tty() -> None:
    stream = TTYStream()
    configure_logging(fmt="console", level="info", stream=stream)
    get_logger().info("listening")
    assert "\x1b[" in stream.getvalue()


def test_choose_format() -> None:
    assert choose_format("auto", io.StringIO()) == "json"
    assert choose_format("auto", TTYStream()) == "console"
    assert choose_format("json", TTYStream()) == "json"
    assert choose_format("console", io.StringIO()) == "console"
    closed = io.StringIO()
    closed.close()
    assert choose_format("auto", closed) == "json"
    with pytest.raises(ValueError, match="log format"):
        choose_format("xml", io.StringIO())


def test_unserialisable_values_do_not_crash_the_logger() -> None:
    class Opaque:
        def __str__(self) -> str:
            return "opaque!"

    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("no str for you")

    recursive: list[object] = []
    recursive.append(recursive)
    stream = io.StringIO()
    configure_logging(fmt="json", level="info", stream=stream)
    log = get_logger()
    log.info("opaque", value=Opaque(), path=Path("/x"), data=b"\x00\xff")
    log.info("broken", value=Broken())
    log.info("odd keys", mapping={(1, 2): "tuple key"})
    log.info("recursive", value=recursive)
    records = lines(stream)
    assert [r["event"] for r in records] == ["opaque", "broken", "odd keys", "recursive"]
    assert records[0]["value"] == "opaque!"
    assert records[0]["path"] == "/x"
    assert records[1]["value"] == "<unprintable Broken>"
    assert all(TIMESTAMP.match(r["timestamp"]) for r in records)


def test_reconfiguring_redirects_existing_loggers() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging(fmt="json", level="info", stream=first)
    log = get_logger(actor="advertiser")
    log.info("one")
    configure_logging(fmt="json", level="debug", stream=second)
    log.debug("two")
    assert [r["event"] for r in lines(first)] == ["one"]
    assert [(r["event"], r["actor"]) for r in lines(second)] == [("two", "advertiser")]


def test_stdlib_logging_is_forwarded_once() -> None:
    stream = io.StringIO()
    configure_logging(fmt="json", level="info", stream=stream)
    configure_logging(fmt="json", level="info", stream=stream)
    logging.getLogger("hypercorn.error").warning("port %d busy", 7466)
    logging.getLogger("httpx").debug("filtered out")
    [record] = lines(stream)
    assert (record["event"], record["logger"], record["level"]) == (
        "port 7466 busy",
        "hypercorn.error",
        "warning",
    )


def test_reset_unhooks_stdlib_logging() -> None:
    stream = io.StringIO()
    configure_logging(fmt="json", level="info", stream=stream)
    reset_logging()
    logging.getLogger("x").warning("after reset")
    assert stream.getvalue() == ""
    assert isinstance(structlog.get_config()["logger_factory"], structlog.PrintLoggerFactory)


async def test_logging_from_worker_threads() -> None:
    stream = io.StringIO()
    configure_logging(fmt="json", level="info", stream=stream)
    log = get_logger()

    def work(n: int) -> None:
        for i in range(50):
            log.info("from thread", worker=n, i=i)

    async with trio.open_nursery() as nursery:
        for n in range(4):
            nursery.start_soon(trio.to_thread.run_sync, work, n)
    assert len(lines(stream)) == 200


@pytest.mark.parametrize(("fmt", "level"), [("json", "verbose"), ("yaml", "info")])
def test_invalid_arguments(fmt: Any, level: str) -> None:
    with pytest.raises(ValueError, match="unknown log"):
        configure_logging(fmt=fmt, level=level, stream=io.StringIO())


def test_unopenable_file_keeps_the_previous_configuration(tmp_path: Path) -> None:
    stream = io.StringIO()
    configure_logging(fmt="json", level="info", stream=stream)
    (tmp_path / "taken").mkdir()
    with pytest.raises(IsADirectoryError):
        configure_logging(fmt="json", level="info", file=tmp_path / "taken")
    get_logger().info("still here")
    assert [r["event"] for r in lines(stream)] == ["still here"]


def test_info_line_writes_what_a_logger_writes(tmp_path: Path) -> None:
    stream = io.StringIO()
    configure_logging(fmt="json", level="info", stream=stream, file=tmp_path / "node.log")
    with bound_contextvars(actor="api"):
        get_logger().info("request", status=200, path="/x")
        info_line("request", status=200, path="/x")
    by_logger, by_line = lines(stream)
    assert TIMESTAMP.match(by_line["timestamp"])
    assert by_line["timestamp"] >= by_logger["timestamp"]
    del by_logger["timestamp"], by_line["timestamp"]
    assert list(by_line.items()) == list(by_logger.items())
    in_file = [json.loads(line) for line in (tmp_path / "node.log").read_text().splitlines()]
    assert [r["event"] for r in in_file] == ["request", "request"]
    reset_logging()
    quiet = io.StringIO()
    configure_logging(fmt="json", level="warning", stream=quiet)
    info_line("request", status=200)
    assert quiet.getvalue() == ""  # below the level: nothing


def test_info_line_reaches_captured_logs() -> None:
    configure_logging(fmt="json", level="info", stream=io.StringIO())
    with structlog.testing.capture_logs() as captured:
        info_line("request", status=404)
    assert captured == [{"event": "request", "status": 404, "log_level": "info"}]
