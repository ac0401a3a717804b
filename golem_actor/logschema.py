"""The log schema: every event the code logs, with its level and keys, read from the source.

Why generated: pipelines that consume the JSON lines need the list of events, and a
hand-kept list drifts the day someone adds a log line. This reads the source of
``golem_actor/``, ``actors/`` and ``supervisors/`` with `ast` (not a regex: calls span
lines, keys come from keywords) and finds every ``log.<level>("event", key=...)`` call.
``python -m golem_actor.logschema`` rewrites ``docs/log-schema.md``; ``--check`` exits 1
when the committed document differs from the source (a test runs it the same way).

An event name or ``**fields`` a helper receives from its callers is followed to those
calls in the same module (the VPN router's ``_changed("vpn network created", ...)``); what
is only known at run time (``"advert-" + method``) is shown as ``*``, and keys that vary as
``**fields``; ``exc_info`` becomes the ``exception`` key the renderer writes.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["LogCall", "render", "scan_source", "scan_tree"]

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("golem_actor", "actors", "supervisors")
DOCUMENT = ROOT / "docs" / "log-schema.md"
LEVELS = ("debug", "info", "warning", "error", "critical", "exception")
RECEIVERS = frozenset({"log", "_log", "logger"})
SEVERITY = {level: rank for rank, level in enumerate(LEVELS)}


@dataclass(frozen=True)
class LogCall:
    event: str
    level: str
    keys: tuple[str, ...]
    source: str  # path relative to the repository


@dataclass
class _Entry:
    levels: set[str] = field(default_factory=set)
    keys: set[str] = field(default_factory=set)
    sources: set[str] = field(default_factory=set)


def _receiver(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


_Function = ast.FunctionDef | ast.AsyncFunctionDef
_Chain = tuple[dict[str, str], tuple[str, ...]]  # parameter -> its text; keys of **kwargs
MAX_DEPTH = 4


class _Module:
    """One module's functions and the calls to them, to follow an event name passed in."""

    def __init__(self, tree: ast.Module) -> None:
        self.functions: dict[str, _Function] = {}
        self.enclosing: dict[int, _Function | None] = {}
        self._index(tree, None)
        self.sites: dict[str, list[tuple[ast.Call, _Function | None]]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = _receiver(node.func)
                if name in self.functions:
                    self.sites.setdefault(name, []).append((node, self.enclosing[id(node)]))

    def _index(self, node: ast.AST, function: _Function | None) -> None:
        for child in ast.iter_child_nodes(node):
            self.enclosing[id(child)] = function
            if isinstance(child, _Function):
                self.functions[child.name] = child
                self._index(child, child)
            else:
                self._index(child, function)

    def chains(self, function: _Function | None, depth: int = 0) -> list[_Chain]:
        """What each call of `function` in this module passes it (one unknown without)."""
        if function is None:
            return [({}, ())]
        kwarg = function.args.kwarg.arg if function.args.kwarg else None
        sites = self.sites.get(function.name, [])
        if not sites or depth >= MAX_DEPTH:
            return [({}, (f"**{kwarg}",) if kwarg else ())]
        found: list[_Chain] = []
        for call, caller in sites:
            for outer, outer_keys in self.chains(caller, depth + 1):
                env = {name: _text(arg, outer) for name, arg in _bind(function, call).items()}
                keys: list[str] = []
                declared = {a.arg for a in (*function.args.args, *function.args.kwonlyargs)}
                for keyword in call.keywords:
                    if keyword.arg is None:
                        keys.extend(outer_keys if _is_kwarg(keyword.value, caller) else ())
                    elif keyword.arg not in declared:
                        keys.append(keyword.arg)
                found.append((env, tuple(keys)))
        return found


def _is_kwarg(node: ast.expr, function: _Function | None) -> bool:
    kwarg = function.args.kwarg if function is not None else None
    return isinstance(node, ast.Name) and kwarg is not None and node.id == kwarg.arg


def _bind(function: _Function, call: ast.Call) -> dict[str, ast.expr]:
    params = [a.arg for a in (*function.args.posonlyargs, *function.args.args)]
    if params and params[0] in ("self", "cls") and isinstance(call.func, ast.Attribute):
        params = params[1:]
    bound = dict(zip(params, call.args, strict=False))
    bound.update({k.arg: k.value for k in call.keywords if k.arg is not None})
    return bound


def _text(node: ast.expr, env: dict[str, str]) -> str:
    """The text of a string expression, with `*` for every part only known at run time."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return env.get(node.id, "*")
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _text(node.left, env) + _text(node.right, env)
    if isinstance(node, ast.JoinedStr):
        return "".join(
            _text(part.value if isinstance(part, ast.FormattedValue) else part, env)
            for part in node.values
        )
    return "*"


def _dict_keys(name: str, function: _Function | None, module: _Module, depth: int = 0) -> list[str]:
    """The keys a local dict `name` is given in `function`: literal keys of its assignment
    and of ``name["key"] = ...``; a dict passed in is looked up at the calls in the module."""
    if function is None or depth >= MAX_DEPTH:
        return [f"**{name}"]
    params = [a.arg for a in (*function.args.posonlyargs, *function.args.args)]
    if name in params:
        keys: list[str] = []
        for call, caller in module.sites.get(function.name, []):
            arg = _bind(function, call).get(name)
            if isinstance(arg, ast.Name):
                keys.extend(_dict_keys(arg.id, caller, module, depth + 1))
            else:
                keys.append(f"**{name}")
        return keys or [f"**{name}"]
    keys, complete = [], True
    for node in ast.walk(function):
        value: ast.expr | None = None
        if isinstance(node, ast.Assign | ast.AnnAssign) and name in _targets(node):
            value = node.value
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Store)
            and _is_name(node.value, name)
        ):
            given = node.slice
            if isinstance(given, ast.Constant) and isinstance(given.value, str):
                keys.append(given.value)
            else:
                complete = False
        if isinstance(value, ast.Dict):
            for key in value.keys:
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    keys.append(key.value)
                else:
                    complete = False
        elif value is not None:
            complete = False
    return keys if complete and keys else [*keys, f"**{name}"]


def _targets(node: ast.Assign | ast.AnnAssign) -> set[str]:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return {t.id for t in targets if isinstance(t, ast.Name)}


def _is_name(node: ast.expr, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _levels(call: ast.Call, function: _Function | None, tree: ast.Module) -> list[str]:
    """The levels a call logs at: ``log.info(...)``, or ``level(...)`` after
    ``level = log.error if ... else log.info`` in the same function."""
    func = call.func
    if isinstance(func, ast.Attribute):
        return [func.attr] if func.attr in LEVELS and _receiver(func.value) in RECEIVERS else []
    if not isinstance(func, ast.Name):
        return []
    found: list[str] = []
    for node in ast.walk(function if function is not None else tree):
        if isinstance(node, ast.Assign) and any(_is_name(t, func.id) for t in node.targets):
            for part in ast.walk(node.value):
                if (
                    isinstance(part, ast.Attribute)
                    and part.attr in LEVELS
                    and _receiver(part.value) in RECEIVERS
                    and part.attr not in found
                ):
                    found.append(part.attr)
    return found


def _uses_parameters(call: ast.Call, function: _Function | None) -> bool:
    if function is None:
        return False
    names = {a.arg for a in (*function.args.posonlyargs, *function.args.args)}
    if function.args.kwarg:
        names.add(function.args.kwarg.arg)
    used = {n.id for n in ast.walk(call.args[0]) if isinstance(n, ast.Name)}
    used |= {k.value.id for k in call.keywords if k.arg is None and isinstance(k.value, ast.Name)}
    return bool(used & names)


def scan_source(text: str, source: str) -> Iterator[LogCall]:
    """Every ``log.<level>(event, ...)`` call in one module's text.

    An event name (or ``**kwargs``) handed in by the caller is followed to the calls of the
    enclosing function in the same module, through a few levels of such helpers."""
    tree = ast.parse(text, filename=source)
    module = _Module(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        function = module.enclosing[id(node)]
        levels = _levels(node, function, tree)
        if not levels:
            continue
        follow = _uses_parameters(node, function)
        for env, passed in module.chains(function) if follow else [({}, ())]:
            keys: list[str] = []
            for keyword in node.keywords:
                if keyword.arg is not None:
                    keys.append("exception" if keyword.arg == "exc_info" else keyword.arg)
                elif follow and _is_kwarg(keyword.value, function):
                    keys.extend(passed)
                elif isinstance(keyword.value, ast.Name):
                    keys.extend(_dict_keys(keyword.value.id, function, module))
                else:
                    keys.append("**" + ast.unparse(keyword.value))
            for level in levels:
                yield LogCall(_text(node.args[0], env), level, tuple(keys), source)


def scan_tree(root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> list[LogCall]:
    calls: list[LogCall] = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            calls.extend(scan_source(path.read_text(encoding="utf-8"), relative))
    return calls


HEADER = """\
# Log schema

<!-- Generated by `python -m golem_actor.logschema` from the source; do not edit by hand.
     A test fails when this document and the source disagree. -->

The node writes one JSON object per line (see README, "Logs"). Every line has:

| Key | Meaning |
|---|---|
| `timestamp` | UTC, ISO 8601, ending in `Z` |
| `level` | `debug`, `info`, `warning`, `error` or `critical` |
| `event` | the event name below |
| `actor` | the actor (or supervisor) that logged it, when inside the tree |

plus the ids bound to the context where it happened (`vm_id`, `stream_id`, `network_id`;
`request_method` and `request_path` on the API's lines), and the event's own keys below.
`exception` holds a formatted traceback. `*` in an event name stands for a part known only
at run time; `**name` stands for keys that vary with the call. Records of libraries the
node uses (hypercorn, httpx, ...) are forwarded with their own messages as `event`, and are
not listed. Events of `golem_actor/portcheck/` and `golem_actor/discovery/` are logged by
the `port-checker` and `discovery` servers, not by the node.

| Event | Level | Keys | Logged in |
|---|---|---|---|
"""


def render(calls: Iterable[LogCall]) -> str:
    entries: dict[str, _Entry] = {}
    for call in calls:
        entry = entries.setdefault(call.event, _Entry())
        entry.levels.add(call.level)
        entry.keys.update(call.keys)
        entry.sources.add(call.source)
    rows = []
    for event in sorted(entries, key=lambda name: (name.lower(), name)):
        entry = entries[event]
        levels = ", ".join(sorted(entry.levels, key=SEVERITY.__getitem__))
        keys = ", ".join(f"`{key}`" for key in sorted(entry.keys)) or "-"
        sources = ", ".join(f"`{source}`" for source in sorted(entry.sources))
        name = event.replace("|", "\\|")
        rows.append(f"| `{name}` | {levels} | {keys} | {sources} |")
    return HEADER + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m golem_actor.logschema", description="Write docs/log-schema.md."
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if the document is stale")
    args = parser.parse_args(argv)
    text = render(scan_tree())
    if args.check:
        current = DOCUMENT.read_text(encoding="utf-8") if DOCUMENT.exists() else ""
        if current != text:
            print(f"{DOCUMENT} is stale: run python -m golem_actor.logschema", file=sys.stderr)
            return 1
        return 0
    DOCUMENT.parent.mkdir(exist_ok=True)
    DOCUMENT.write_text(text, encoding="utf-8")
    print(f"wrote {DOCUMENT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
