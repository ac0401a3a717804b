"""`golem-provider pricing set|show`: the operator's USD prices and what they are in GLM.

`set` writes the three `GOLEM_PROVIDER_PRICE_USD_*` lines into `<data dir>/.env`, where
`start` and `show` read them (after the settings loader accepted the values: a bad one is
refused, naming the variable, and nothing is written). `show` prints the USD unit prices,
the USD/GLM rate, GLM per unit and example monthly costs, from a fresh fetch of the price
feeds, falling back on the node's cached rate within the staleness bound; exit 1 when no
GLM price is known. `current_prices` is shared with `status` (the node not running).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime

import msgspec
import trio

from actors.pricing import load_cache
from golem_actor.adapters.price_feed import FeedError
from golem_actor.domain.pricing import (
    EXAMPLES,
    PriceInfo,
    apply_rate,
    price_info,
    usd_per_month,
)
from golem_actor.domain.resources import Resources
from golem_actor.settings import Settings, SettingsError, env_var_name, resolve_settings
from golem_actor.state_store import StateStore
from supervisors.pricing import rate_source, usd_prices, wei_override

from ._dotenv import restore_dotenv, set_dotenv_values

__all__ = ["add_pricing_parser", "current_prices", "pricing_command"]

EXIT_USAGE = 2
# option dest -> settings field, in display order
PRICE_FIELDS = (
    ("usd_per_core", "price_usd_per_core_month"),
    ("usd_per_mem", "price_usd_per_gb_ram_month"),
    ("usd_per_disk", "price_usd_per_gb_storage_month"),
)


def add_pricing_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pricing = commands.add_parser("pricing", help="USD prices per unit and month, in GLM")
    actions = pricing.add_subparsers(dest="pricing_command", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="prices in USD and GLM, with example monthly costs")
    put = actions.add_parser("set", help="persist USD prices in <data dir>/.env")
    for parser in (show, put):
        parser.add_argument("--data-dir", help="the node's data directory")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")
    put.add_argument("--usd-per-core", "--core-usd", required=True, metavar="X")
    put.add_argument("--usd-per-mem", "--ram-usd", required=True, metavar="Y")
    put.add_argument(
        "--usd-per-disk", "--usd-per-storage", "--storage-usd", required=True, metavar="Z"
    )


async def current_prices(settings: Settings) -> PriceInfo:
    """The prices as of now: the cached rates, updated by one fetch of the feeds (by the
    node's rules: applied past the threshold, else confirmed). Nothing is written."""
    cache = await load_cache(StateStore(settings.state_dir))
    source = rate_source(settings)
    now = time.time()
    glm, eth = cache.glm_usd, cache.eth_usd
    try:
        quote = await source.fetch()
    except FeedError as failure:
        error: str | None = str(failure)
    else:
        threshold = settings.pricing_update_min_delta_percent
        glm = apply_rate(glm, quote.glm_usd, now=now, threshold_percent=threshold)
        eth = apply_rate(eth, quote.eth_usd, now=now, threshold_percent=threshold)
        error = "; ".join(quote.problems) or None
    return price_info(
        usd_prices(settings),
        glm=glm,
        eth=eth,
        now=now,
        max_age=settings.pricing_max_age_seconds,
        last_error=error,
        source=source.describe(),
        override=wei_override(settings).active,
    )


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "never"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render_show(info: PriceInfo) -> str:
    usd = info.usd
    lines = [
        "Prices (USD per month)",
        f"  Core:          ${usd.core:.2f}",
        f"  RAM per GB:    ${usd.ram_gb:.2f}",
        f"  Disk per GB:   ${usd.disk_gb:.2f}",
        "",
    ]
    if info.glm is None:
        lines.append(f"USD/GLM rate:    unavailable ({info.state}) — {info.why}")
        return "\n".join(lines) + "\n"
    rate = info.glm_usd
    lines += [
        f"USD/GLM rate:    ${rate.usd} per GLM (confirmed {_when(rate.confirmed_at)},"
        f" source: {info.source})",
        "",
        "GLM per unit (per month)",
        f"  Core:          {info.glm.core} GLM",
        f"  RAM per GB:    {info.glm.ram_gb} GLM",
        f"  Disk per GB:   {info.glm.disk_gb} GLM",
        "",
        "Example monthly costs",
    ]
    width = max(len(label) for label, *_ in EXAMPLES) + 1
    for label, cpus, memory, storage in EXAMPLES:
        size = Resources.from_gb(cpus=cpus, memory_gb=memory, storage_gb=storage)
        dollars = usd_per_month(usd, size)
        glm = cpus * info.glm.core + memory * info.glm.ram_gb + storage * info.glm.disk_gb
        lines.append(f"  {label + ':':<{width}} ~${dollars:.2f} per month (~{glm:.4f} GLM)")
    if info.override:
        lines += ["", "Streams are gated by the wei prices set (GOLEM_PROVIDER_PRICE_WEI_PER_*)."]
    return "\n".join(lines) + "\n"


def _show(settings: Settings, as_json: bool) -> int:
    info = trio.run(current_prices, settings)
    if as_json:
        encoded = msgspec.json.encode(info)
        sys.stdout.write(msgspec.json.format(encoded, indent=2).decode() + "\n")
    else:
        sys.stdout.write(render_show(info))
    if info.glm is None:
        print(f"golem-provider pricing: no GLM price: {info.why}", file=sys.stderr)
        return 1
    return 0


def _set(settings: Settings, args: argparse.Namespace) -> int:
    requested = {env_var_name(field): str(getattr(args, dest)) for dest, field in PRICE_FIELDS}
    env = dict(os.environ)
    cli = {"data_dir": str(settings.data_path)}
    try:  # as if the new values were set: the loader names a bad variable
        candidate = resolve_settings(env={**env, **requested}, cli=cli).settings
    except SettingsError as error:
        print(f"golem-provider pricing: {error.variable}: {error.problem}", file=sys.stderr)
        return EXIT_USAGE
    values = {env_var_name(f): repr(float(getattr(candidate, f))) for _, f in PRICE_FIELDS}
    path = settings.env_file
    old = set_dotenv_values(path, values)
    try:
        effective = resolve_settings(env=env, cli=cli).settings
    except SettingsError as error:
        restore_dotenv(path, old)
        print(f"golem-provider pricing: {error} (nothing changed)", file=sys.stderr)
        return EXIT_USAGE
    shown = {field: getattr(effective, field) for _, field in PRICE_FIELDS}
    if args.json:
        print(json.dumps({"env_file": str(path), "written": values, "settings": shown}, indent=2))
    else:
        print(f"wrote {path}")
        for name, value in values.items():
            print(f"  {name}={value}")
    for name in (name for name in values if name in env):
        print(f"note: {name} is set in the environment, which wins over {path}", file=sys.stderr)
    return 0


def pricing_command(settings: Settings, args: argparse.Namespace) -> int:
    if args.pricing_command == "set":
        return _set(settings, args)
    return _show(settings, args.json)
