"""Compile the shipped Solidity sources into the shipped JSON artifacts.

Usage (from a source checkout, after ``.ci/install-chain-deps.sh``)::

    python -m golem_actor.adapters.chain.compile            # rewrite contracts/*.json
    python -m golem_actor.adapters.chain.compile --check    # exit 1 if any artifact is stale

Theory of operation. All sources go to one ``solcjs --standard-json`` run with fixed
settings (optimizer on, 200 runs, EVM version ``cancun``, default metadata). Each source is
given to the compiler under its bare file name, so the CBOR metadata that solc appends to
the bytecode does not depend on where the checkout lives. With the same compiler version
the output is then byte-for-byte reproducible, which is what the drift test relies on:
it recompiles and compares ABI and bytecode with the shipped artifact.

An artifact is ``{"contractName", "solcVersion", "sourceSha256", "abi", "bytecode"}``,
written as indented JSON with a trailing newline (stable key order, stable bytes).
The compiler's version is read back from the contract metadata and must be the pinned
``SOLC_VERSION``; a different ``solcjs`` found on PATH fails loudly instead of producing
silently different bytecode.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from golem_actor.adapters.chain.tools import SOLC_VERSION, ToolNotFoundError, find_solcjs

CONTRACTS: Final = ("StreamPayment", "TestToken")
"""Contract names; each lives in ``contracts/<name>.sol`` and ships as ``<name>.json``."""

EVM_VERSION: Final = "cancun"
OPTIMIZER_RUNS: Final = 200
COMPILE_TIMEOUT_S: Final = 300.0


class CompileError(RuntimeError):
    """solcjs failed, reported errors, or is not the pinned version."""


def contracts_dir() -> Path:
    """The directory of the sources and artifacts inside the source tree."""
    return Path(__file__).resolve().parent / "contracts"


def source_sha256(source: bytes) -> str:
    return hashlib.sha256(source).hexdigest()


def standard_json_input(sources: Mapping[str, str]) -> dict[str, Any]:
    """The solc Standard JSON input for ``{file name: source text}``."""
    return {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sorted(sources.items())},
        "settings": {
            "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
            "evmVersion": EVM_VERSION,
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "metadata"]}},
        },
    }


def _parse_output(stdout: str) -> dict[str, Any]:
    # solcjs may print notes such as ">>> Cannot retry compilation with SMT ..." before the
    # JSON document; the document starts at the first line that begins with "{".
    start = 0 if stdout.startswith("{") else stdout.find("\n{") + 1
    if start == 0 and not stdout.startswith("{"):
        raise CompileError(f"solcjs printed no JSON output: {stdout[:500]!r}")
    try:
        parsed = json.loads(stdout[start:])
    except json.JSONDecodeError as exc:
        raise CompileError(f"solcjs printed invalid JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise CompileError("solcjs output is not a JSON object")
    return parsed


def run_solcjs(solcjs: Path, compiler_input: Mapping[str, Any]) -> dict[str, Any]:
    """Run ``solcjs --standard-json`` and return its output; raise on any error."""
    try:
        done = subprocess.run(
            [str(solcjs), "--standard-json"],
            input=json.dumps(compiler_input),
            capture_output=True,
            text=True,
            timeout=COMPILE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CompileError(f"could not run {solcjs}: {exc}") from exc
    if done.returncode != 0:
        raise CompileError(f"solcjs exited with {done.returncode}: {done.stderr.strip()}")
    output = _parse_output(done.stdout)
    problems: list[dict[str, Any]] = output.get("errors", [])
    errors = [p for p in problems if p.get("severity") == "error"]
    if errors:
        messages = "\n".join(str(p.get("formattedMessage", p.get("message"))) for p in errors)
        raise CompileError(f"solc reported errors:\n{messages}")
    for warning in problems:
        print(warning.get("formattedMessage", warning.get("message")), file=sys.stderr)
    return output


def compile_contracts(
    names: Sequence[str] = CONTRACTS,
    *,
    source_dir: Path | None = None,
    solcjs: Path | None = None,
) -> dict[str, dict[str, Any]]:
    """Compile ``<name>.sol`` for each name and return ``{name: artifact dict}``."""
    directory = source_dir or contracts_dir()
    raw = {name: (directory / f"{name}.sol").read_bytes() for name in names}
    sources = {f"{name}.sol": data.decode("utf-8") for name, data in raw.items()}
    try:
        compiler = solcjs or find_solcjs()
    except ToolNotFoundError as exc:
        raise CompileError(str(exc)) from exc
    output = run_solcjs(compiler, standard_json_input(sources))

    artifacts: dict[str, dict[str, Any]] = {}
    for name in names:
        try:
            contract = output["contracts"][f"{name}.sol"][name]
        except KeyError as exc:
            raise CompileError(f"{name}.sol does not define contract {name}") from exc
        version = str(json.loads(contract["metadata"])["compiler"]["version"])
        if not version.startswith(f"{SOLC_VERSION}+"):
            raise CompileError(
                f"solcjs {version} is not the pinned {SOLC_VERSION}; "
                "run .ci/install-chain-deps.sh or set GOLEM_SOLCJS_BIN"
            )
        artifacts[name] = {
            "contractName": name,
            "solcVersion": version,
            "sourceSha256": source_sha256(raw[name]),
            "abi": contract["abi"],
            "bytecode": "0x" + str(contract["evm"]["bytecode"]["object"]),
        }
    return artifacts


def render_artifact(artifact: Mapping[str, Any]) -> str:
    """The exact text of an artifact file."""
    return json.dumps(artifact, indent=2, ensure_ascii=True) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m golem_actor.adapters.chain.compile",
        description="Compile the shipped Solidity contracts into their JSON artifacts.",
    )
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 if an artifact is stale"
    )
    parser.add_argument("--solcjs", type=Path, default=None, help="the solcjs executable")
    args = parser.parse_args(argv)

    directory = contracts_dir()
    try:
        artifacts = compile_contracts(source_dir=directory, solcjs=args.solcjs)
    except (CompileError, OSError) as exc:
        print(f"compile: {exc}", file=sys.stderr)
        return 2

    stale: list[str] = []
    for name, artifact in artifacts.items():
        path = directory / f"{name}.json"
        text = render_artifact(artifact)
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(name)
        if not args.check:
            tmp = path.with_suffix(".json.tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)
            print(f"compile: wrote {path}")
    if args.check and stale:
        print(f"compile: stale artifacts: {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
