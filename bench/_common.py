"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import os
import platform
import statistics

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def summary(values_ms: list[float]) -> str:
    return (f"p50 {percentile(values_ms, 50):.1f} ms, p95 {percentile(values_ms, 95):.1f} ms, "
            f"mean {statistics.mean(values_ms):.1f} ms")
