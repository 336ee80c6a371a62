"""Shared plumbing for the benchmark scripts: arguments, timing, tables and JSON output.

Every script under ``tests/benchmarks`` prints a table, writes JSON with ``--json PATH`` and has a
``--quick`` mode (small sizes, few repeats) that CI runs. Figures quoted in issues and docs come from the
full mode.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def parse_args(description: str, extend: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """The common command line: ``--quick`` and ``--json PATH`` (``extend`` may add a script's own options)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small sizes and few repeats (CI smoke run)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    if extend is not None:
        extend(parser)
    return parser.parse_args()


def best_time(function: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    """Best wall time of ``repeats`` calls in seconds (after ``warmup`` untimed calls)."""
    for _ in range(warmup):
        function()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def print_table(title: str, rows: list[dict[str, Any]]) -> None:
    """Print rows (dicts with the same keys) as an aligned text table."""
    if not rows:
        return
    keys = list(rows[0])
    cells = [[_format(row[k]) for k in keys] for row in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    print(f"\n{title}")
    print("  ".join(k.ljust(w) for k, w in zip(keys, widths)))
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths)))


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_json(path: str | None, name: str, results: dict[str, Any], quick: bool) -> None:
    """Write results with the machine description to ``path`` (if given)."""
    if not path:
        return
    document = {
        "benchmark": name,
        "quick": quick,
        "machine": {"python": platform.python_version(), "numpy": np.__version__, "processor": platform.machine()},
        "results": results,
    }
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2, default=float)
