"""Turning one raw value (text from the environment, or a typed TOML/CLI value) into one field.

Why: conversion happens field by field, not on the whole object, so that a failure can be
pinned to the exact variable the operator set. Text is converted with msgspec's lax mode
(``strict=False``: ``"8080"`` becomes an int), typed values with its strict mode (a TOML
string where an int belongs is a mistake in the file). Booleans and lists get a friendlier
text syntax first (yes/no, comma-separated lists). Errors are described from the field's type
and its ``Meta`` constraints, so every message says what was expected.
"""

from __future__ import annotations

import os
import typing
from typing import Any, Literal, get_args, get_origin

import msgspec

from ._model import Settings

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})

FIELD_TYPES: dict[str, Any] = typing.get_type_hints(Settings, include_extras=True)


class ConversionError(ValueError):
    """A value that does not fit its field; the message says what was expected."""


def _unwrap(tp: Any) -> tuple[Any, list[msgspec.Meta]]:
    if get_origin(tp) is typing.Annotated:
        base, *extras = get_args(tp)
        return base, [m for m in extras if isinstance(m, msgspec.Meta)]
    return tp, []


def _bounds_text(noun: str, metas: list[msgspec.Meta]) -> str:
    ge = next((m.ge for m in metas if m.ge is not None), None)
    gt = next((m.gt for m in metas if m.gt is not None), None)
    le = next((m.le for m in metas if m.le is not None), None)
    if ge is not None and le is not None:
        return f"{noun} between {ge} and {le}"
    if gt is not None:
        return f"{noun} greater than {gt}"
    if ge is not None:
        return f"{noun} of at least {ge}"
    return noun


def describe(tp: Any) -> str:
    """A phrase naming what a value of type ``tp`` must look like."""
    base, metas = _unwrap(tp)
    for meta in metas:
        if meta.extra and "expected" in meta.extra:
            return str(meta.extra["expected"])
    if base is bool:
        return "a boolean (true/false, yes/no, 1/0)"
    if base is int:
        return _bounds_text("an integer", metas)
    if base is float:
        return _bounds_text("a number", metas)
    if get_origin(base) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(base))
    if get_origin(base) is list:
        return "a JSON array or a comma-separated list"
    if base is str:
        return "a non-empty string" if any(m.min_length for m in metas) else "a string"
    return f"a value of type {base!r}"


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _fail(tp: Any, value: object) -> ConversionError:
    return ConversionError(f"expected {describe(tp)}, got {_shown(value)}")


def from_text(text: str, tp: Any) -> Any:
    """Convert the text of an environment or ``.env`` variable; raise ConversionError."""
    base, _ = _unwrap(tp)
    if base is str or (get_origin(base) is Literal and isinstance(get_args(base)[0], str)):
        candidate: object = text
    elif base is bool:
        word = text.strip().lower()
        if word not in _TRUE | _FALSE:
            raise _fail(tp, text)
        candidate = word in _TRUE
    elif get_origin(base) is list:
        stripped = text.strip()
        if stripped.startswith("["):
            try:
                candidate = msgspec.json.decode(stripped)
            except msgspec.DecodeError:
                raise _fail(tp, text) from None
        else:
            candidate = [part.strip() for part in stripped.split(",") if part.strip()]
    else:
        candidate = text.strip()
    try:
        return msgspec.convert(candidate, tp, strict=False)
    except msgspec.ValidationError:
        raise _fail(tp, text) from None


def from_value(value: object, tp: Any, *, text_ok: bool) -> Any:
    """Convert a typed value (defaults file, CLI); raise ConversionError.

    With ``text_ok`` a string is converted as if it came from the environment (a CLI parser
    may hand over the raw text of a flag).
    """
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if text_ok and isinstance(value, str):
        return from_text(value, tp)
    if isinstance(value, tuple):
        value = list(value)
    try:
        return msgspec.convert(value, tp, strict=True)
    except msgspec.ValidationError:
        raise _fail(tp, value) from None
