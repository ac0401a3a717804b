"""Structured logging: one JSON object per line, or a readable console format on a terminal.

Why: the node is a daemon whose logs are read by machines (one JSON object per line with
``timestamp``, ``level``, ``event`` first, then bound context such as ``actor`` and ``vm_id``)
and, when run in the foreground, by people. Context is bound with structlog's contextvars,
which follow trio tasks: a task sees what its spawner had bound when it was started, and what
it binds itself stays in that task.

Theory of operation: a shared processor chain (context merge, level, UTC ISO-8601 timestamp
ending in ``Z``, stack info) produces an event dict that is handed to a small tee logger; the
tee renders it once per sink: the stream in the chosen format and, if a file is given, the file
always as JSON lines (machine-readable, no colour codes), flushed after every line so a killed
daemon loses nothing. Rendering never raises: values msgspec cannot encode are stringified,
and if even that fails a minimal line saying so is written instead. Records of the standard
``logging`` module (hypercorn, httpx, ...) are forwarded into the same pipeline.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TextIO, cast

import msgspec
import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor

LogFormat = Literal["json", "console"]

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
_FIRST_KEYS = ("timestamp", "level", "event")


def choose_format(setting: str, stream: TextIO) -> LogFormat:
    """Resolve the ``log_format`` setting: ``"auto"`` is console on a TTY, JSON otherwise."""
    if setting == "json":
        return "json"
    if setting == "console":
        return "console"
    if setting != "auto":
        raise ValueError(f"unknown log format {setting!r}")
    try:
        return "console" if stream.isatty() else "json"
    except (AttributeError, ValueError, OSError):  # a closed or exotic stream
        return "json"


def get_logger(**bound: Any) -> FilteringBoundLogger:
    """A logger with ``bound`` key/values attached (e.g. ``actor="wallet"``)."""
    return cast("FilteringBoundLogger", structlog.get_logger(**bound))


def _stringify(value: Any) -> str:
    try:
        return str(value)
    except Exception:  # a broken __str__ must not take the logger down
        return f"<unprintable {type(value).__name__}>"


_ENCODER = msgspec.json.Encoder(enc_hook=_stringify)
_PLAIN = (str, int, float, bool, type(None))


def render_json(event_dict: EventDict) -> str:
    """One JSON object, ``timestamp``/``level``/``event`` first; never raises."""
    ordered = {key: event_dict.pop(key) for key in _FIRST_KEYS if key in event_dict}
    ordered.update(event_dict)
    try:
        return _ENCODER.encode(ordered).decode()
    except Exception:  # non-string keys, recursion, ...: fall back to flat strings
        pass
    flat = {str(k): v if isinstance(v, _PLAIN) else _stringify(v) for k, v in ordered.items()}
    try:
        return _ENCODER.encode(flat).decode()
    except Exception as exc:  # last resort: say that a line was lost, and why
        fallback = {key: _stringify(ordered.get(key)) for key in _FIRST_KEYS}
        return _ENCODER.encode({**fallback, "log_error": repr(exc)}).decode()


def _json_sink(event_dict: EventDict) -> str:
    if "exc_info" in event_dict:
        event_dict = structlog.processors.format_exc_info(None, "", event_dict)
    return render_json(event_dict)


class _Sink:
    def __init__(self, stream: TextIO, render: Callable[[EventDict], str]) -> None:
        self.stream = stream
        self.render = render


class _TeeLogger:
    """Receives the processed event dict as keywords and writes it to every sink."""

    def __init__(self, sinks: list[_Sink]) -> None:
        self._sinks = sinks
        self._lock = threading.Lock()  # lines from worker threads must not interleave

    def msg(self, **event: Any) -> None:
        last = len(self._sinks) - 1
        with self._lock:
            for index, sink in enumerate(self._sinks):
                # Renderers may consume the dict: each sink but the last gets a copy.
                line = sink.render(event if index == last else dict(event))
                try:
                    sink.stream.write(line + "\n")
                    sink.stream.flush()
                except (OSError, ValueError):  # a closed or full stream must not crash a caller
                    pass

    log = debug = info = warn = warning = error = err = critical = exception = fatal = msg


class _StdlibBridge(logging.Handler):
    """Forwards records of the ``logging`` module into structlog."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad %-format in a library's call
            self.handleError(record)
            return
        extra: dict[str, Any] = {"logger": record.name}
        if record.exc_info:
            extra["exc_info"] = record.exc_info
        structlog.get_logger().log(record.levelno, message, **extra)


class _Stamp:
    """``timestamp``: UTC ISO-8601 with microseconds and ``Z``, as structlog's
    ``TimeStamper(fmt="iso", utc=True)`` writes it, at a fraction of the cost: the
    date and time of day are formatted once per second (one tuple, swapped whole, so
    threads never see a second's text with another second's number)."""

    def __init__(self) -> None:
        self._second: tuple[int, str] = (-1, "")

    def __call__(self, _logger: Any, _method: str, event_dict: EventDict) -> EventDict:
        now = time.time()
        second = int(now)
        micros = round((now - second) * 1_000_000)
        if micros == 1_000_000:
            second, micros = second + 1, 0
        cached = self._second
        if cached[0] != second:
            cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
            self._second = cached
        event_dict["timestamp"] = f"{cached[1]}.{micros:06d}Z"
        return event_dict


_utc_timestamp = _Stamp()


class _Installed:
    """What ``configure_logging`` set up, for ``info_line``."""

    def __init__(
        self, processors: list[Processor], shape: tuple[Processor, ...], tee: _TeeLogger, level: int
    ) -> None:
        self.processors = processors  # the list structlog was given (and uses)
        self.shape = shape  # its elements then: ``capture_logs`` swaps them in place
        self.tee = tee
        self.level = level


_installed: _Installed | None = None


def info_line(event: str, **fields: Any) -> None:
    """Write what ``structlog.get_logger().info(event, **fields)`` writes, for hot paths.

    Why: structlog builds a bound logger on every call of a module-level logger (loggers
    are not cached, so they follow reconfiguration); that is most of a line's cost. This
    runs the same processors into the same sinks directly. When logging was configured
    some other way (or a test captures logs), it is the ordinary structlog call.
    """
    installed = _installed
    processors = structlog.get_config()["processors"]
    if installed is None or processors is not installed.processors:
        structlog.get_logger().info(event, **fields)
        return
    if tuple(processors) != installed.shape:
        structlog.get_logger().info(event, **fields)
        return
    if installed.level > logging.INFO:
        return
    event_dict: EventDict = {**fields, "event": event}
    for processor in processors:
        event_dict = processor(installed.tee, "info", event_dict)  # type: ignore[assignment]
    installed.tee.msg(**event_dict)


_current_file: TextIO | None = None
_current_bridge: _StdlibBridge | None = None


def _open_log_file(path: Path) -> TextIO:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    return open(fd, "a", buffering=1, encoding="utf-8")


def configure_logging(
    *,
    fmt: LogFormat,
    level: str,
    stream: TextIO | None = None,
    file: Path | None = None,
) -> None:
    """Configure structlog (and forward stdlib logging) for the whole process.

    Lines go to ``stream`` (default ``sys.stderr``) in ``fmt``, and, when ``file`` is given,
    are also appended to it as JSON. Calling it again replaces the previous configuration.
    """
    if level.lower() not in _LEVELS:
        raise ValueError(f"unknown log level {level!r}")
    if fmt not in ("json", "console"):
        raise ValueError(f"unknown log format {fmt!r}")
    new_file = None if file is None else _open_log_file(file)  # may fail: nothing changed yet
    reset_logging()
    global _current_file, _current_bridge  # noqa: PLW0603 - logging is process-wide

    out = sys.stderr if stream is None else stream
    if fmt == "json":
        sinks = [_Sink(out, _json_sink)]
    else:
        colors = choose_format("auto", out) == "console"
        console = structlog.dev.ConsoleRenderer(
            colors=colors, exception_formatter=structlog.dev.plain_traceback
        )
        sinks = [_Sink(out, lambda event_dict: str(console(None, "", event_dict)))]
    if new_file is not None:
        _current_file = new_file
        sinks.append(_Sink(new_file, _json_sink))

    tee = _TeeLogger(sinks)
    numeric_level = _LEVELS[level.lower()]
    processors: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _utc_timestamp,
        structlog.processors.StackInfoRenderer(),
    ]
    global _installed  # noqa: PLW0603 - logging is process-wide
    _installed = _Installed(processors, tuple(processors), tee, numeric_level)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=lambda *_args: tee,
        # No caching: loggers created at import time must follow a later reconfiguration.
        cache_logger_on_first_use=False,
    )
    _current_bridge = _StdlibBridge()
    root = logging.getLogger()
    root.addHandler(_current_bridge)
    root.setLevel(numeric_level)


def reset_logging() -> None:
    """Undo ``configure_logging``: close the log file, unhook stdlib logging, reset structlog."""
    global _current_file, _current_bridge, _installed  # noqa: PLW0603 - logging is process-wide
    _installed = None
    if _current_bridge is not None:
        logging.getLogger().removeHandler(_current_bridge)
        _current_bridge = None
    if _current_file is not None:
        _current_file.close()
        _current_file = None
    structlog.reset_defaults()
