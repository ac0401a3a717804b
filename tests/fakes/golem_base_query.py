"""Golem Base's query language, enough of it for the test double (the requestor's and the
provider's queries and a little more).

Grammar: `expr := and ("||" and)*`, `and := term ("&&" term)*`, `term := "(" expr ")" |
name op value`; `op` is one of `= != < <= > >=`; a value is a double-quoted string (string
annotations) or an integer (numeric annotations); `$owner` compares with an address.
A comparison with an annotation the entity lacks, or of the other type, is false. `$all`
(or `*`) matches everything.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Entity", "QueryError", "parse_query"]

_TOKEN = re.compile(
    r"\s*(?:(?P<punct>\(|\)|&&|\|\||!=|>=|<=|=|>|<)"
    r'|(?P<string>"(?:[^"\\]|\\.)*")'
    r"|(?P<hex>0x[0-9a-fA-F]+)"
    r"|(?P<number>[0-9]+)"
    r"|(?P<name>\$?[A-Za-z_][A-Za-z0-9_.\-]*|\*))"
)
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class QueryError(ValueError):
    pass


@dataclass
class Entity:
    key: str
    owner: str
    expires_at_block: int
    payload: bytes
    strings: dict[str, str] = field(default_factory=dict)
    numbers: dict[str, int] = field(default_factory=dict)


Predicate = Callable[[Entity], bool]


def _tokens(text: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    at = 0
    text = text.rstrip()
    while at < len(text):
        match = _TOKEN.match(text, at)
        if match is None or match.end() == at:
            raise QueryError(f"unexpected input at {at}: {text[at : at + 20]!r}")
        kind = match.lastgroup
        assert kind is not None
        found.append((kind, match.group(kind)))
        at = match.end()
    return found


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.at = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise QueryError("unexpected end of query")
        self.at += 1
        return token

    def expression(self) -> Predicate:
        terms = [self.conjunction()]
        while self.peek() == ("punct", "||"):
            self.take()
            terms.append(self.conjunction())
        return lambda entity: any(term(entity) for term in terms)

    def conjunction(self) -> Predicate:
        terms = [self.term()]
        while self.peek() == ("punct", "&&"):
            self.take()
            terms.append(self.term())
        return lambda entity: all(term(entity) for term in terms)

    def term(self) -> Predicate:
        kind, text = self.take()
        if (kind, text) == ("punct", "("):
            inner = self.expression()
            if self.take() != ("punct", ")"):
                raise QueryError("missing )")
            return inner
        if kind != "name":
            raise QueryError(f"expected an annotation name, found {text!r}")
        op_kind, op = self.take()
        if op_kind != "punct" or op not in _OPS:
            raise QueryError(f"expected a comparison after {text}, found {op!r}")
        value_kind, value = self.take()
        compare = _OPS[op]
        if text == "$owner":
            if value_kind != "hex":
                raise QueryError("$owner compares with an address")
            return lambda entity: compare(entity.owner.lower(), value.lower())
        if value_kind == "string":
            literal = re.sub(r"\\(.)", r"\1", value[1:-1])
            return lambda e: text in e.strings and compare(e.strings[text], literal)
        if value_kind == "number":
            number = int(value)
            return lambda e: text in e.numbers and compare(e.numbers[text], number)
        raise QueryError(f"expected a string or a number, found {value!r}")


def parse_query(text: str) -> Predicate:
    """The predicate of `text`; raises QueryError."""
    if text.strip() in ("$all", "*"):
        return lambda entity: True
    parser = _Parser(text)
    predicate = parser.expression()
    if parser.peek() is not None:
        raise QueryError(f"unexpected {parser.peek()!r}")
    return predicate
