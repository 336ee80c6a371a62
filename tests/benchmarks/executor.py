"""The executor's end-to-end MAC rate: the hxtorch paper's Figure 8 (Section 4.1) on this machine.

Usage::

    python tests/benchmarks/executor.py [--quick] [--json PATH] [--plots DIR]

Every figure is the wall time of :meth:`bss2.exec.JITExecutor.run` for ``y = x @ W`` (a graph from
:func:`bss2.graph.matmul_graph`, built outside the timing), counting ``N * N * batch`` multiply-accumulates
(MACs). Two partners: the zero-mock (``ZeroMockConnection``: answers every read with zeros, i.e. pure
software overhead, the paper's "fast mock-up partner") and the in-process emulator (``EmulatorConnection``,
default configuration, which also computes the physics).

* ``cold``: new weights every run (two weight matrices alternate, so each run rewrites every synapse
  weight; the static configuration is part of the measurement, as in the paper) - the main figure.
* ``warm``: the same graph again; the chip already holds the weights and nothing but inputs is sent.

Sections: (1) rate versus square matrix size at batch 2000 (the paper's left panel); (2) time per stage of
:class:`~bss2.exec.ExecutionInfo` per size (centre panel; stages of concurrent programs overlap, so they
are shown as fractions of their sum); (3) rate versus batch size at 256 x 256 and the batch where half the
saturated rate is reached (right panel), measured in five passes over the batch sizes: the figure is the
median of the passes' figures (each pass's figure and the one from the median runs are reported too, to
show how far the noise moves it); (4) the emulator's estimated hardware time against the chip's design
bound, 1 / (5 us) x 256 x 512 synapses = 26.2 G synapse operations per second per chip (a signed weight
takes two synapse rows, so this is 13.1 G signed MACs per second), and the speed-up of 2 and 4 emulated
chips over one. Rates are the
best of the repeats (medians are in the JSON; in (3), the median over the passes of each pass's best).
PNG plots go to ``--plots`` (default ``bench-results/``). ``--quick`` uses small sizes and two passes (a
few seconds, for CI).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from _common import parse_args, print_table, write_json

from bss2.comm import Connection, EmulatorConnection, ZeroMockConnection
from bss2.exec import ExecutionInfo, JITExecutor
from bss2.exec.info import STAGES
from bss2.graph import matmul_graph

#: 1 / (5 us) x 256 x 512 synapses (CHIP.md): synapse operations per second of one chip.
DESIGN_BOUND = 256 * 512 / 5e-6
#: The paper's full-stack rate with its fast mock-up partner.
PAPER_RATE = 14.7e9
#: Square matrix size that one chip holds (two 128 x 256 signed tiles).
CHIP_SIZE = 256

PARTNERS: dict[str, Callable[[int], Connection]] = {
    "zeromock": lambda seed: ZeroMockConnection(),
    "emulator": lambda seed: EmulatorConnection(seed=seed),
}


def _weights(rng: np.random.Generator, n: int) -> np.ndarray:
    w = rng.integers(-63, 64, (n, n), dtype=np.int8)
    w.flags.writeable = False  # used by matmul_graph without a copy
    return w


class Case:
    """One matmul (N x N, batch) on one executor: two graphs with different weights for cold runs."""

    def __init__(self, executor: JITExecutor, n: int, batch: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.executor = executor
        self.n, self.batch = n, batch
        self.x = rng.integers(0, 32, (batch, n), dtype=np.uint8)
        self.graphs = [matmul_graph(_weights(rng, n)) for _ in range(2)]
        self.turn = 0
        self.run(cold=True)  # untimed: the first program of a chip resets it and settles CapMem

    def run(self, cold: bool) -> tuple[float, ExecutionInfo]:
        if cold:
            self.turn ^= 1
        graph, x_in, _ = self.graphs[self.turn]
        cpu = time.process_time()
        start = time.perf_counter()
        _, info = self.executor.run(graph, {x_in: self.x})
        elapsed = time.perf_counter() - start
        self.cpu_s = time.process_time() - cpu
        return elapsed, info

    def _run_with_cpu(self, cold: bool) -> tuple[float, ExecutionInfo, float]:
        elapsed, info = self.run(cold)
        return elapsed, info, self.cpu_s

    def measure(self, cold: bool, repeats: int) -> dict[str, Any]:
        """Best and median rate of ``repeats`` runs, and the stages of the best one."""
        runs = [self._run_with_cpu(cold) for _ in range(repeats)]
        best_time, best_info, cpu_s = min(runs, key=lambda r: r[0])
        macs = self.n * self.n * self.batch
        return {
            "rate": macs / best_time,
            "median_rate": macs / statistics.median(t for t, _, _ in runs),
            "wall_s": best_time,
            "cpu_s": cpu_s,  # CPU time of the process (all threads) during the best run
            "stages": {s: best_info.stages.get(s, 0.0) for s in STAGES},
            "hardware_time": best_info.hardware_time,
            "hardware_time_critical": best_info.hardware_time_critical,
            "words_sent": best_info.words_sent,
            "config_words": best_info.config_words,
        }


def _repeats(macs: float, quick: bool, budget_macs: float) -> int:
    """Few repeats for big workloads, more for small ones (each point costs about the same time)."""
    if quick:
        return 2
    return int(min(10, max(1, budget_macs // max(macs, 1))))


def size_sweep(partner: str, sizes: list[int], batch: int, quick: bool, budget: float) -> list[dict[str, Any]]:
    rows = []
    with JITExecutor(PARTNERS[partner](0)) as executor:
        for n in sizes:
            case = Case(executor, n, batch)
            repeats = _repeats(n * n * batch, quick, budget)
            cold = case.measure(cold=True, repeats=repeats)
            warm = case.measure(cold=False, repeats=repeats)
            rows.append({"partner": partner, "size": n, "batch": batch, "repeats": repeats, "cold": cold, "warm": warm})
            del case
    return rows


def half_point(batches: list[int], rates: list[float]) -> float:
    """Smallest batch reaching half the saturated (largest) rate, interpolated in log-log."""
    target = 0.5 * max(rates)
    for k, (b, r) in enumerate(zip(batches, rates)):
        if r >= target:
            if k == 0:
                return float(b)
            b0, r0 = batches[k - 1], rates[k - 1]
            f = (math.log(target) - math.log(r0)) / (math.log(r) - math.log(r0))
            return float(math.exp(math.log(b0) + f * (math.log(b) - math.log(b0))))
    return float("nan")


def pass_halves(rows: list[dict[str, Any]], mode: str, key: str = "pass_rates") -> list[float]:
    """The half-rate batch of each pass of :func:`batch_sweep`'s ``rows`` (one partner), from its best rates
    (``key="pass_median_rates"``: from its median rates)."""
    batches = [r["batch"] for r in rows]
    return [half_point(batches, list(rates)) for rates in zip(*(r[mode][key] for r in rows))]


def batch_sweep(partner: str, n: int, batches: list[int], quick: bool, budget: float, passes: int) -> list[dict[str, Any]]:
    """Rate versus batch size, measured ``passes`` times over the whole list (each pass with a fresh executor
    and fresh cases). One row per batch: per mode the pass-median of the best rates (``rate``) and of the
    median rates, every pass's best and median rate (``pass_rates``, ``pass_median_rates``), and the other
    figures of the first pass."""
    passes_rows: list[list[dict[str, Any]]] = []
    for _ in range(passes):
        rows = []
        with JITExecutor(PARTNERS[partner](0)) as executor:
            for batch in batches:
                case = Case(executor, n, batch)
                repeats = 3 if quick else int(min(25, max(5, budget // (n * n * batch))))
                rows.append({"partner": partner, "size": n, "batch": batch, "repeats": repeats,
                             "cold": case.measure(cold=True, repeats=repeats), "warm": case.measure(cold=False, repeats=repeats)})
        passes_rows.append(rows)
    merged = passes_rows[0]
    for k, row in enumerate(merged):
        for mode in ("cold", "warm"):
            runs = [rows[k][mode] for rows in passes_rows]
            row[mode]["pass_rates"] = [r["rate"] for r in runs]
            row[mode]["pass_median_rates"] = [r["median_rate"] for r in runs]
            row[mode]["rate"] = statistics.median(row[mode]["pass_rates"])
            row[mode]["median_rate"] = statistics.median(row[mode]["pass_median_rates"])
        row["passes"] = passes
    return merged


def multichip(n: int, batch: int, chips: list[int], repeats: int) -> list[dict[str, Any]]:
    rows = []
    for count in chips:
        with JITExecutor([EmulatorConnection(seed=i) for i in range(count)]) as executor:
            case = Case(executor, n, batch)
            cold = case.measure(cold=True, repeats=repeats)
        rows.append({"chips": count, "size": n, "batch": batch, "cold": cold})
    return rows


# ------------------------------------------------------------------------------------------- output


def _g(value: float) -> float:
    return value / 1e9


def report(sizes: list[dict[str, Any]], batches: list[dict[str, Any]], chips: list[dict[str, Any]]) -> dict[str, Any]:
    """Print the tables and return the summary figures."""
    by_size: dict[int, dict[str, Any]] = {}
    for row in sizes:
        by_size.setdefault(row["size"], {})[row["partner"]] = row
    table = []
    for n in sorted(by_size):
        z, e = by_size[n].get("zeromock"), by_size[n].get("emulator")
        table.append({
            "N": n,
            "zeromock cold G/s": _g(z["cold"]["rate"]) if z else "-",
            "zeromock warm G/s": _g(z["warm"]["rate"]) if z else "-",
            "zeromock cold G/cpu-s": _g(n * n * z["batch"] / z["cold"]["cpu_s"]) if z and z["cold"]["cpu_s"] > 0 else "-",
            "emulator cold G/s": _g(e["cold"]["rate"]) if e else "-",
            "emulator warm G/s": _g(e["warm"]["rate"]) if e else "-",
            "est. hw G/s (cold)": _g(n * n * e["batch"] / e["cold"]["hardware_time_critical"]) if e else "-",
            "hw / bound": (n * n * e["batch"] / e["cold"]["hardware_time_critical"]) / DESIGN_BOUND if e else "-",
        })
    print_table(f"(1, 4) MAC rate vs. square matrix size, batch {sizes[0]['batch']} (G MAC/s; wall time of executor.run; "
                "G/cpu-s: per second of the process's CPU time, all threads)", table)

    stage_rows = []
    for row in sizes:
        stages = row["cold"]["stages"]
        total = sum(stages.values()) or 1.0
        stage_rows.append({"partner": row["partner"], "N": row["size"], "wall ms": 1e3 * row["cold"]["wall_s"],
                           "cpu/wall": row["cold"]["cpu_s"] / row["cold"]["wall_s"],
                           **{f"{s} %": 100 * stages[s] / total for s in STAGES}})
    print_table("(2) time per stage, cold runs (% of the stage sum; stages of concurrent programs overlap)", stage_rows)

    summary: dict[str, Any] = {}
    half_rows = []
    for partner in ("zeromock", "emulator"):
        rows = [r for r in batches if r["partner"] == partner]
        if not rows:
            continue
        for mode in ("cold", "warm"):
            # the figure of each pass, and their median: one pass's figure moves with a single lucky run at
            # the saturated end (see docs/performance.rst), the median of the passes much less
            halves = pass_halves(rows, mode)
            half = statistics.median(halves)
            # the same from the median runs: how far the figure moves with the run-to-run noise
            half_of_medians = statistics.median(pass_halves(rows, mode, "pass_median_rates"))
            summary[f"half_batch_{partner}_{mode}"] = half
            summary[f"half_batch_{partner}_{mode}_lowest_pass"] = min(halves)
            summary[f"half_batch_{partner}_{mode}_highest_pass"] = max(halves)
            summary[f"half_batch_{partner}_{mode}_medians"] = half_of_medians
            summary[f"half_batch_{partner}_{mode}_passes"] = halves
            half_rows.append({"partner": partner, "mode": mode, "saturated G/s": _g(max(r[mode]["rate"] for r in rows)),
                              "half-rate batch": half, "passes": " ".join(f"{h:.0f}" for h in halves),
                              "from medians": half_of_medians})
    batch_table = []
    for b in sorted({r["batch"] for r in batches}):
        entry: dict[str, Any] = {"batch": b}
        for partner in ("zeromock", "emulator"):
            row = next((r for r in batches if r["partner"] == partner and r["batch"] == b), None)
            for mode in ("cold", "warm"):
                entry[f"{partner} {mode} G/s"] = _g(row[mode]["rate"]) if row else "-"
        batch_table.append(entry)
    print_table(f"(3) MAC rate vs. batch size, {batches[0]['size']} x {batches[0]['size']}", batch_table)
    print_table("(3) batch size where half the saturated rate is reached (paper: ~200; median of the passes, "
                "each pass's own figure, and the median of the passes' figures from their median runs)", half_rows)

    chip_rows = []
    base = chips[0]["cold"] if chips else None
    for row in chips:
        c = row["cold"]
        macs = row["size"] ** 2 * row["batch"]
        chip_rows.append({"chips": row["chips"], "N": row["size"], "wall G/s": _g(c["rate"]), "cpu/wall": c["cpu_s"] / c["wall_s"],
                          "wall speed-up": c["rate"] / base["rate"],
                          "est. hw G/s": _g(macs / c["hardware_time_critical"]),
                          "hw speed-up": base["hardware_time_critical"] / c["hardware_time_critical"],
                          "est. hw / bound": macs / c["hardware_time_critical"] / (row["chips"] * DESIGN_BOUND)})
    print_table("(4) emulated chips (cold, emulator): wall time and estimated hardware time (critical path)", chip_rows)
    largest = max(by_size)
    summary.update({
        "largest_size": largest,
        "zeromock_cold_rate_largest": by_size[largest].get("zeromock", {}).get("cold", {}).get("rate"),
        "zeromock_warm_rate_largest": by_size[largest].get("zeromock", {}).get("warm", {}).get("rate"),
        "emulator_cold_rate_best": max((r["cold"]["rate"] for r in sizes if r["partner"] == "emulator"), default=None),
        "emulator_warm_rate_best": max((r["warm"]["rate"] for r in sizes if r["partner"] == "emulator"), default=None),
        "design_bound": DESIGN_BOUND,
        "multichip": chip_rows,
    })
    print(f"\ndesign bound {_g(DESIGN_BOUND):.1f} G synapse ops/s per chip ({_g(DESIGN_BOUND) / 2:.1f} G signed MAC/s); "
          f"paper, fast mock-up partner: {_g(PAPER_RATE):.1f} G op/s")
    return summary


def plots(directory: str, sizes: list[dict[str, Any]], batches: list[dict[str, Any]], chips: list[dict[str, Any]]) -> list[str]:
    """Write the PNG figures; returns their paths (nothing if matplotlib is missing)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is a test dependency
        return []
    os.makedirs(directory, exist_ok=True)
    written = []

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for partner, marker in (("zeromock", "o"), ("emulator", "s")):
        rows = [r for r in sizes if r["partner"] == partner]
        if not rows:
            continue
        n = [r["size"] for r in rows]
        ax.plot(n, [r["cold"]["rate"] for r in rows], marker=marker, label=f"{partner}, cold (new weights)")
        ax.plot(n, [r["warm"]["rate"] for r in rows], marker=marker, ls="--", label=f"{partner}, warm")
        if partner == "emulator":
            ax.plot(n, [r["size"] ** 2 * r["batch"] / r["cold"]["hardware_time_critical"] for r in rows], marker="x", ls=":",
                    label="emulator, estimated hardware time")
    ax.axhline(DESIGN_BOUND, color="gray", lw=1, label="design bound (synapse ops/s)")
    ax.axhline(DESIGN_BOUND / 2, color="gray", lw=1, ls="--", label="design bound (signed MAC/s)")
    ax.axhline(PAPER_RATE, color="goldenrod", lw=1, label="paper, fast mock-up")
    ax.axvline(CHIP_SIZE, color="k", ls=":", lw=1)
    ax.set(xscale="log", yscale="log", xlabel="square matrix size N", ylabel="MAC / s",
           title=f"executor.run, batch {sizes[0]['batch']}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    written.append(os.path.join(directory, "executor_rate_vs_size.png"))
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)

    partners = [p for p in ("zeromock", "emulator") if any(r["partner"] == p for r in sizes)]
    fig, axes = plt.subplots(1, len(partners), figsize=(6 * len(partners), 4.5), squeeze=False)
    for ax, partner in zip(axes[0], partners):
        rows = [r for r in sizes if r["partner"] == partner]
        labels = [str(r["size"]) for r in rows]
        bottom = np.zeros(len(rows))
        for stage in STAGES:
            seconds = np.array([r["cold"]["stages"][stage] for r in rows])
            totals = np.array([max(sum(r["cold"]["stages"].values()), 1e-12) for r in rows])
            ax.bar(labels, seconds / totals, bottom=bottom, label=stage)
            bottom += seconds / totals
        ax.set(xlabel="square matrix size N", ylabel="fraction of stage time", title=f"{partner}, cold, per stage")
        ax.tick_params(axis="x", rotation=45)
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    written.append(os.path.join(directory, "executor_stages.png"))
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)

    if batches:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for partner, marker in (("zeromock", "o"), ("emulator", "s")):
            rows = [r for r in batches if r["partner"] == partner]
            if not rows:
                continue
            bs = [r["batch"] for r in rows]
            for mode, ls in (("cold", "-"), ("warm", "--")):
                rates = [r[mode]["rate"] for r in rows]  # pass medians
                line, = ax.plot(bs, rates, marker=marker, ls=ls, label=f"{partner}, {mode}")
                ax.axvline(statistics.median(pass_halves(rows, mode)), color=line.get_color(), ls=":", lw=1)
        ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="MAC / s",
               title=f"{batches[0]['size']} x {batches[0]['size']}, medians of {batches[0]['passes']} passes; "
                     "dotted: half the saturated rate")
        ax.legend(fontsize=7)
        fig.tight_layout()
        written.append(os.path.join(directory, "executor_rate_vs_batch.png"))
        fig.savefig(written[-1], dpi=120)
        plt.close(fig)

    if chips:
        fig, ax = plt.subplots(figsize=(5, 4))
        counts = np.array([r["chips"] for r in chips])
        base = chips[0]["cold"]
        ax.bar(counts - 0.2, [r["cold"]["rate"] / base["rate"] for r in chips], 0.4, label="wall time")
        ax.bar(counts + 0.2, [base["hardware_time_critical"] / r["cold"]["hardware_time_critical"] for r in chips], 0.4,
               label="estimated hardware time")
        ax.plot(counts, counts, "k:", lw=1, label="linear")
        ax.set(xlabel="emulated chips", ylabel="speed-up over one chip", xticks=counts,
               title=f"{chips[0]['size']} x {chips[0]['size']}, batch {chips[0]['batch']}")
        ax.legend(fontsize=7)
        fig.tight_layout()
        written.append(os.path.join(directory, "executor_multichip.png"))
        fig.savefig(written[-1], dpi=120)
        plt.close(fig)
    return written


def main() -> None:
    def extend(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--plots", metavar="DIR", default="bench-results", help="directory of the PNG figures (default: bench-results/)")

    args = parse_args(__doc__.splitlines()[0], extend)
    start = time.perf_counter()
    if args.quick:
        batch, zero_sizes, emu_sizes = 100, [2**k for k in range(0, 10)], [2**k for k in range(0, 9)]
        batch_sizes, multichip_size, multichip_batch, budget = [1, 4, 16, 64, 256], 512, 100, 1e9
    else:
        batch, zero_sizes, emu_sizes = 2000, [2**k for k in range(0, 15)], [2**k for k in range(0, 13)]
        batch_sizes = [1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024, 2048, 4096]
        multichip_size, multichip_batch, budget = 2048, 2000, 2e10
    sizes = size_sweep("zeromock", zero_sizes, batch, args.quick, budget)
    sizes += size_sweep("emulator", emu_sizes, batch, args.quick, budget / 10)
    passes = 2 if args.quick else 5
    batches = batch_sweep("zeromock", 256, batch_sizes, args.quick, 2e9, passes)
    batches += batch_sweep("emulator", 256, batch_sizes, args.quick, 2e8, passes)
    chips = multichip(multichip_size, multichip_batch, [1, 2, 4], repeats=1 if not args.quick else 2)
    summary = report(sizes, batches, chips)
    written = plots(args.plots, sizes, batches, chips)
    elapsed = time.perf_counter() - start
    print(f"\nplots: {', '.join(written) if written else 'none (matplotlib missing)'}; total {elapsed:.0f} s")
    write_json(args.json, "executor", {"summary": summary, "sizes": sizes, "batches": batches, "multichip": chips,
                                       "seconds": elapsed}, args.quick)


if __name__ == "__main__":
    main()
