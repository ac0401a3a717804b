"""Interleaved repetitions and medians: machines here are noisy, ratios are what we report."""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable

import trio
import trio.lowlevel

Measure = Callable[[int], Awaitable[float]]


async def timed(fn: Callable[[], Awaitable[None]]) -> float:
    began = time.perf_counter()
    await fn()
    return time.perf_counter() - began


async def compare(cases: dict[str, Measure], n: int, rounds: int) -> dict[str, float]:
    """Median seconds per operation for each case, rounds interleaved case by case."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, measure in cases.items():
            samples[name].append(await measure(n) / n)
            await trio.lowlevel.checkpoint()
    return {name: statistics.median(values) for name, values in samples.items()}
