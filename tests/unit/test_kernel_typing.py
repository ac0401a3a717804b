"""The kernel's typing promises, checked by running mypy on a small snippet.

Each line of the snippet that mypy must reject ends with `# rejected`; the revealed reply
type of a call is checked too. Rejections are compared line by line, so a promise that
silently stops holding (or a line that starts failing for another reason) fails the test.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from mypy import api

REPO = Path(__file__).resolve().parents[2]

SNIPPET = textwrap.dedent(
    """
    from __future__ import annotations

    import msgspec
    from typing import reveal_type

    from golem_actor.kernel import Actor, Address, Call


    class GetX(Call[int], frozen=True):
        pass


    class SetX(msgspec.Struct, frozen=True):
        x: int


    class GetName(Call[str], frozen=True):
        pass


    class Foreign(msgspec.Struct, frozen=True):
        pass


    XMsg = GetX | SetX


    class XActor(Actor[XMsg]):
        pass


    async def only_gets(address: Address[GetX]) -> int:
        return await address.call(GetX())


    async def gets_and_names(address: Address[GetX | GetName]) -> None:
        await address.call(GetName())


    async def promises(address: Address[XMsg], narrow: Address[GetX], x: XActor) -> None:
        reveal_type(await address.call(GetX()))
        reveal_type(x.address)
        await address.cast(SetX(1))
        await only_gets(address)
        await only_gets(x.address)
        await address.call(GetName())  # rejected
        await address.cast(Foreign())  # rejected
        await address.call(SetX(1))  # rejected
        await gets_and_names(address)  # rejected
        await gets_and_names(narrow)  # rejected
        wrong: str = await address.call(GetX())  # rejected
    """
)

LINE = re.compile(r"snippet\.py:(\d+): (error|note): (.*)$")


def test_mypy_enforces_message_unions_and_reply_types(tmp_path: Path) -> None:
    snippet = tmp_path / "snippet.py"
    snippet.write_text(SNIPPET)
    config = tmp_path / "mypy.ini"
    config.write_text(f"[mypy]\nstrict = True\nmypy_path = {REPO}\n")
    stdout, stderr, _ = api.run(
        [
            "--config-file",
            str(config),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-error-summary",
            "--hide-error-context",
            str(snippet),
        ]
    )
    assert stderr == ""
    found: dict[int, list[tuple[str, str]]] = {}
    for line in stdout.splitlines():
        match = LINE.search(line)
        assert match is not None, f"unexpected mypy output: {line}"
        found.setdefault(int(match[1]), []).append((match[2], match[3]))

    source = SNIPPET.splitlines()
    rejected = {n for n, text in enumerate(source, 1) if text.endswith("# rejected")}
    errors = {n for n, items in found.items() if any(kind == "error" for kind, _ in items)}
    assert errors == rejected, stdout
    kinds = {
        text.rsplit("  ", 1)[-1]
        for items in found.values()
        for kind, text in items
        if kind == "error"
    }
    assert kinds == {"[arg-type]"}, stdout

    def revealed(needle: str) -> str:
        (number,) = [n for n, text in enumerate(source, 1) if needle in text]
        (note,) = [text for kind, text in found[number] if kind == "note"]
        return note

    assert revealed("reveal_type(await address.call(GetX()))") == ('Revealed type is "int"')
    assert revealed("reveal_type(x.address)") == (
        'Revealed type is "golem_actor.kernel._inbox.Address[snippet.GetX | snippet.SetX]"'
    )
