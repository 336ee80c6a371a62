"""Benchmarks of bss2.ml: mock overhead, hardware-path throughput, traced batch-1 latency.

    python tests/benchmarks/ml.py                 # full sizes
    python tests/benchmarks/ml.py --quick         # CI: smaller batch, fewer repeats
    python tests/benchmarks/ml.py --json out.json
    python tests/benchmarks/ml.py --only mock     # one part: mock, hardware or traced

1. mock ``matmul`` (1024 x 1024 weights, batch 2000, default noise) time over ``torch.matmul`` of the same operands in
   the same run (target <= 1.5), best of interleaved repeats; the figure depends on the torch threads (``--threads``,
   reported with it);
2. ``nn.Linear(1024, 1024)`` forward on the hardware path (``_hardware.run_matmul``: the executor, on the emulator
   without a chip) at batch 2000, in MAC/s;
3. batch-1 latency per sample of the traced HAR model (Conv1d 9->16 k32 s6, Linear 256->125, Linear 125->6),
   replayed with ``replay`` (host time: wall time minus the executor's ``execute`` stage, the emulated chip's own
   time standing in for the chip; median and best over the samples; target <= 276 us, the mobile system's time
   per ECG record).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import bss2.ml as ml
from bss2.ml import nn


def best_and_median(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(best, median) wall time of ``fn`` in seconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def bench_mock_matmul(batch: int, size: int, repeats: int) -> dict[str, float]:
    x = torch.randint(0, 32, (batch, size)).float()
    w = torch.randint(-63, 64, (size, size)).float()
    ml.set_mock_parameter(ml.MockParameter())
    # interleave so both see the same machine load
    torch_times, mock_times = [], []
    for _ in range(repeats):
        torch_times.append(best_and_median(lambda: torch.matmul(x, w), 1)[0])
        mock_times.append(best_and_median(lambda: ml.matmul(x, w, mock=True), 1)[0])
    t_torch, t_mock = min(torch_times), min(mock_times)
    return {"torch_matmul_ms": 1e3 * t_torch, "mock_matmul_ms": 1e3 * t_mock, "mock_over_torch": t_mock / t_torch,
            "mock_over_torch_median": statistics.median(mock_times) / statistics.median(torch_times),
            "threads": torch.get_num_threads()}


def bench_hardware_linear(batch: int, size: int, repeats: int) -> dict[str, float]:
    layer = nn.Linear(size, size, bias=False, num_sends=1)
    with torch.no_grad():
        layer.weight.copy_(torch.randint(-63, 64, (size, size)))
    x = torch.randint(0, 32, (batch, size)).float()
    ml.init_hardware()
    with torch.no_grad():
        best, median = best_and_median(lambda: layer(x), repeats)
    macs = batch * size * size
    return {"linear_ms": 1e3 * best, "linear_mac_per_s": macs / best, "linear_mac_per_s_median": macs / median}


def har_model() -> torch.nn.Sequential:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        nn.Conv1d(9, 16, 32, stride=6, bias=False), nn.ConvertingReLU(shift=1), torch.nn.Flatten(),
        nn.Linear(256, 125, bias=False), nn.ConvertingReLU(shift=1), nn.Linear(125, 6, bias=False))
    with torch.no_grad():
        for layer in model:
            if isinstance(layer, (nn.Conv1d, nn.Linear)):
                layer.weight.uniform_(-25, 25)
    return model


def bench_traced_latency(samples: int) -> dict[str, float]:
    model = har_model()
    x = torch.randint(0, 32, (samples, 9, 122)).float()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "har.npz"
        tracer = ml.InferenceTracer(path).start()
        model(x[:1])
        tracer.stop()
        trace = ml.load_trace(path)
        inputs = x.numpy()
        ml.replay(trace, inputs[:1])
        executor = ml._hardware.executor()
        replay_times, call_times, host_times, chip_times = [], [], [], []
        for i in range(samples):
            start = time.perf_counter()
            ml.replay(trace, inputs[i:i + 1])
            elapsed = time.perf_counter() - start
            replay_times.append(elapsed)
            # host time: everything but the emulated chip's own execution (the stand-in for the chip)
            chip = executor.last_info.stages.get("execute", 0.0) if executor.last_info is not None else 0.0
            chip_times.append(chip)
            host_times.append(elapsed - chip)
        for i in range(samples):
            start = time.perf_counter()
            ml.inference_trace(x[i:i + 1], path)
            call_times.append(time.perf_counter() - start)
        with torch.no_grad():
            live = best_and_median(lambda: model(x[:1]), samples)[1]
    return {"replay_us_median": 1e6 * statistics.median(replay_times),
            "replay_host_us_median": 1e6 * statistics.median(host_times),
            "replay_host_us_best": 1e6 * min(host_times),
            "replay_chip_us_median": 1e6 * statistics.median(chip_times),
            "replay_us_p90": 1e6 * float(np.percentile(replay_times, 90)),
            "inference_trace_us_median": 1e6 * statistics.median(call_times),
            "python_model_us_median": 1e6 * live}


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller batch and fewer repeats (CI)")
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's choice); 1 is robust on a loaded machine")
    parser.add_argument("--only", choices=["mock", "hardware", "traced"], default=None,
                        help="run one part of the benchmark (numbered 1, 2, 3 above)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    batch = 500 if args.quick else 2000
    repeats = 3 if args.quick else 10
    results: dict[str, float] = {}
    rows: list[tuple[str, str, str]] = []
    if args.only in (None, "mock"):
        # the mock figure is cheap: more interleaved repeats make its best-of robust on a loaded machine
        results.update(bench_mock_matmul(batch, 1024, 4 * repeats))
        rows += [
            (f"mock matmul 1024x1024, batch {batch}", f"{results['mock_matmul_ms']:.1f} ms", ""),
            (f"torch.matmul 1024x1024, batch {batch}", f"{results['torch_matmul_ms']:.1f} ms", ""),
            ("mock / torch (best; median)",
             f"{results['mock_over_torch']:.2f}; {results['mock_over_torch_median']:.2f}", "<= 1.5"),
        ]
    if args.only in (None, "hardware"):
        results.update(bench_hardware_linear(batch, 1024, max(2, repeats // 3)))
    if args.only in (None, "traced"):
        results.update(bench_traced_latency(50 if args.quick else 500))
    if args.only != "mock":
        ml.release_hardware()

    if args.only in (None, "hardware"):
        rows += [
            (f"hardware-path nn.Linear(1024, 1024), batch {batch}",
             f"{results['linear_mac_per_s'] / 1e9:.2f} GMAC/s", ""),
        ]
    if args.only in (None, "traced"):
        rows += [
            ("traced HAR model, batch 1, replay host time (median; best)",
             f"{results['replay_host_us_median']:.0f}; {results['replay_host_us_best']:.0f} us", "<= 276 us"),
            ("traced HAR model, batch 1, emulated chip time (median)",
             f"{results['replay_chip_us_median']:.0f} us", ""),
            ("traced HAR model, batch 1, replay wall time (median)", f"{results['replay_us_median']:.0f} us", ""),
            ("traced HAR model, batch 1, replay (p90)", f"{results['replay_us_p90']:.0f} us", ""),
            ("traced HAR model, batch 1, inference_trace", f"{results['inference_trace_us_median']:.0f} us", ""),
            ("HAR Python model, batch 1 (for comparison)", f"{results['python_model_us_median']:.0f} us", ""),
        ]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    print(f"bss2.ml benchmarks ({platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads{', quick' if args.quick else ''}"
          f"{f', only {args.only}' if args.only else ''})")
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)))
    if args.json is not None:
        args.json.write_text(json.dumps({"quick": args.quick, "batch": batch, **results}, indent=2))
    return results


if __name__ == "__main__":
    main()
