"""Is a newer release of the node on the package index?

Why: `status` says when an update is available, but a status command must never hang or
crash because the index is slow, offline, or answers nonsense. The whole check runs
under one deadline (`time_limit`), reads at most `MAX_BODY` bytes, and any failure turns
into an `unknown` answer carrying the reason. (The upstream's check was dead code.)

The index is the PyPI JSON API by default (`GET https://pypi.org/pypi/<package>/json`,
whose `info.version` is the latest release); any URL serving that shape works, e.g. a
local mirror. Versions compare by their release numbers, then pre-release, post-release
and dev parts (enough of PEP 440 for release tags); a version we cannot parse is unknown.
"""

from __future__ import annotations

import enum
import re

import httpx
import msgspec
import trio

__all__ = [
    "DEFAULT_INDEX",
    "UpdateCheck",
    "UpdateStatus",
    "check_for_update",
    "compare_versions",
    "index_url_for",
]

DEFAULT_INDEX = "https://pypi.org/pypi/{package}/json"
DEFAULT_TIMEOUT = 3.0
MAX_BODY = 8 * 1024 * 1024

_VERSION = re.compile(
    r"^v?(?P<release>\d+(?:\.\d+)*)"
    r"(?:[-_.]?(?P<pre>a|b|rc|alpha|beta|c)[-_.]?(?P<pre_n>\d*))?"
    r"(?:[-_.]?post[-_.]?(?P<post>\d*))?"
    r"(?:[-_.]?dev[-_.]?(?P<dev>\d*))?$",
    re.IGNORECASE,
)
_PRE_RANK = {"a": 0, "alpha": 0, "b": 1, "beta": 1, "c": 2, "rc": 2}


class UpdateStatus(enum.StrEnum):
    NEWER = "newer"  # the index has a newer release
    UP_TO_DATE = "up_to_date"
    UNKNOWN = "unknown"  # offline, timed out, or an answer we could not read


class UpdateCheck(msgspec.Struct, frozen=True, kw_only=True):
    status: UpdateStatus
    installed: str
    latest: str | None = None
    error: str | None = None

    @property
    def update_available(self) -> bool:
        return self.status is UpdateStatus.NEWER


class _Info(msgspec.Struct):
    version: str


class _Index(msgspec.Struct):
    info: _Info


_decoder = msgspec.json.Decoder(_Index)


def _key(version: str) -> tuple[tuple[int, ...], tuple[int, int], int, tuple[int, int]] | None:
    match = _VERSION.match(version.strip())
    if match is None:
        return None
    release = tuple(int(part) for part in match["release"].split("."))
    while len(release) > 1 and release[-1] == 0:
        release = release[:-1]  # 1.0 == 1.0.0
    if match["pre"]:
        pre = (_PRE_RANK[match["pre"].lower()], int(match["pre_n"] or 0))
    elif match["dev"] is not None and match["post"] is None:
        pre = (-1, 0)  # 1.0.dev1 comes before 1.0a1
    else:
        pre = (3, 0)  # a final release comes after its pre-releases
    post = -1 if match["post"] is None else int(match["post"] or 0)
    dev = (1, 0) if match["dev"] is None else (0, int(match["dev"] or 0))
    return release, pre, post, dev


def compare_versions(left: str, right: str) -> int | None:
    """-1, 0 or 1 as `left` is older, equal or newer than `right`; None if unparseable."""
    a, b = _key(left), _key(right)
    if a is None or b is None:
        return None
    return (a > b) - (a < b)


def index_url_for(package: str, index_url: str | None = None) -> str:
    template = DEFAULT_INDEX if index_url is None else index_url
    return template.replace("{package}", package)


async def _fetch(client: httpx.AsyncClient, url: str) -> bytes:
    async with client.stream("GET", url, headers={"Accept": "application/json"}) as reply:
        if reply.status_code != 200:
            raise ValueError(f"the index answered HTTP {reply.status_code}")
        body = bytearray()
        async for chunk in reply.aiter_bytes():
            body += chunk
            if len(body) > MAX_BODY:
                raise ValueError(f"the index's answer is larger than {MAX_BODY} bytes")
        return bytes(body)


async def check_for_update(
    installed: str,
    *,
    package: str = "golem-actor",
    index_url: str | None = None,
    time_limit: float = DEFAULT_TIMEOUT,
    transport: httpx.AsyncBaseTransport | None = None,
) -> UpdateCheck:
    """Ask the index for the latest release; never raises, never outlives `time_limit` seconds.

    `index_url` may contain `{package}`; without it the PyPI JSON API is asked.
    """
    url = index_url_for(package, index_url)
    body: bytes | None = None
    error = f"no answer from {url} within {time_limit:g} s"
    with trio.move_on_after(time_limit):
        try:
            async with httpx.AsyncClient(
                timeout=time_limit, transport=transport, follow_redirects=True
            ) as client:
                body = await _fetch(client, url)
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, ValueError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if body is None:
        return UpdateCheck(status=UpdateStatus.UNKNOWN, installed=installed, error=error)
    try:
        latest = _decoder.decode(body).info.version
    except msgspec.MsgspecError as exc:
        return UpdateCheck(
            status=UpdateStatus.UNKNOWN, installed=installed, error=f"unreadable answer: {exc}"
        )
    order = compare_versions(latest, installed)
    if order is None:
        return UpdateCheck(
            status=UpdateStatus.UNKNOWN,
            installed=installed,
            latest=latest,
            error=f"cannot compare versions {installed!r} and {latest!r}",
        )
    status = UpdateStatus.NEWER if order > 0 else UpdateStatus.UP_TO_DATE
    return UpdateCheck(status=status, installed=installed, latest=latest)
