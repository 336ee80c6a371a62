"""Emulator throughput: hagen-mode MAC rate and spiking simulation speed.

Usage::

    python tests/benchmarks/emulator.py [--quick] [--json PATH] [--repeat N]

MAC: a full-chip program (both synrams, signed 128 x 256 tiles, batch 2000, num_sends 1) executed by
``Emulator.execute`` (instruction decoding included); emulated multiply-accumulates per second
(2 x batch x 128 x 256 per wall second) and the ratio to a plain numpy float32 matmul of the same shapes,
measured in the same run, interleaved (best of ``--repeat`` each; the machine may be shared). The BLAS thread
setting (``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS``, "default" when unset) and the fast path's kernels
(compiled with numba, on a pool of one thread per CPU; ``BSS2_EMULATOR_KERNELS=numpy`` selects the numpy
passes) are printed with the figures. ``--breakdown`` adds the CPU time per pass of the hagen fast path
(:mod:`bss2.hal.emulator.fastpath`) in the calling thread (compiled kernels run their other slices on the
pool, not counted there). Spiking: wall time to emulate 1 ms of chip time for 512 LIF neurons with
256 x 512 active synapses and 100,000 input events. Batch 1: median wall time of a one-vector program on
both synrams, as is and with every weight rewritten first. Prints a table; ``--json`` writes the figures.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from _common import write_json

from bss2.hal import hagen, wire
from bss2.hal.emulator import Emulator, EmulatorConfig, fastpath, kernels
from bss2.hal.regmap import REGISTER_MAP


def best_of(repeat: int, function) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def blas_threads() -> str:
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(name):
            return f"{name}={os.environ[name]}"
    return f"default (unset; {os.cpu_count()} CPUs)"


def pass_breakdown(emulator: Emulator, words: np.ndarray, repeat: int) -> dict[str, float]:
    """Best-of CPU seconds per pass of the fast path (the minimum of each pass over the repetitions)."""
    best: dict[str, float] = {}
    for _ in range(repeat):
        fastpath.timers = {}
        start = time.thread_time()
        emulator.execute(words)
        total = time.thread_time() - start
        timers, fastpath.timers = fastpath.timers, None
        timers["other (Python, calls)"] = total - sum(timers.values())
        timers["total (CPU)"] = total
        for name, value in timers.items():
            best[name] = min(best.get(name, np.inf), value)
    return best


def mac_benchmark(batch: int, repeat: int, config: EmulatorConfig, breakdown: bool = False) -> dict[str, float]:
    rng = np.random.default_rng(0)
    weights = {h: rng.integers(-63, 64, (128, 256)) for h in (0, 1)}
    x = {h: rng.integers(0, 32, (batch, 128)) for h in (0, 1)}
    emulator = Emulator(seed=1, config=config)
    emulator.execute(hagen.hagen_config_words(weights))
    start = time.perf_counter()
    words = hagen.hagen_input_words(x, end_cookie=1)
    encode_s = time.perf_counter() - start
    emulator.execute(words)  # warm the caches (effective weights, routing tables)
    a = {h: x[h].astype(np.float32) for h in (0, 1)}
    b = {h: weights[h].astype(np.float32) for h in (0, 1)}
    execute_times, matmul_times = [], []
    for _ in range(repeat):  # interleaved, so that both see the same machine load
        execute_times.append(best_of(1, lambda: emulator.execute(words)))
        matmul_times.append(best_of(3, lambda: [a[h] @ b[h] for h in (0, 1)]))
    execute_s, matmul_s = min(execute_times), min(matmul_times)
    responses = emulator.execute(words)
    start = time.perf_counter()
    hagen.decode_hagen_responses(responses, (0, 1), batch)
    decode_s = time.perf_counter() - start
    macs = 2 * batch * 128 * 256
    passes = pass_breakdown(emulator, words, repeat) if breakdown else {}
    return {
        "blas_threads": blas_threads(),
        "kernels": f"{kernels.mode()} ({kernels._WORKERS} threads)",
        "passes_s": passes,
        "batch": batch,
        "instruction_words": int(words.size),
        "encode_s": encode_s,
        "execute_s": execute_s,
        "decode_s": decode_s,
        "emulated_gmac_per_s": macs / execute_s / 1e9,
        "numpy_matmul_s": matmul_s,
        "numpy_gmac_per_s": macs / matmul_s / 1e9,
        "ratio_to_matmul": matmul_s / execute_s,
        "hardware_time_s": emulator.hardware_time,
    }


def latency_benchmark(repeat: int) -> dict[str, float]:
    """Median wall time of a batch-1 program on both synrams: as is ("warm"), and after rewriting every
    weight of both synrams in the same program ("cold", as the executor sends a weight change)."""
    rng = np.random.default_rng(3)
    weights = [{h: rng.integers(-63, 64, (128, 256)) for h in (0, 1)} for _ in range(2)]
    emulator = Emulator(seed=1)
    emulator.execute(hagen.hagen_config_words(weights[0]))
    vector = hagen.hagen_input_words({h: rng.integers(0, 32, (1, 128)) for h in (0, 1)}, end_cookie=1)
    updates = [np.concatenate([hagen.hagen_synapse_words(h, w[h]) for h in (0, 1)] + [vector]) for w in weights]
    results = {}
    for name, programs in (("warm", [vector, vector]), ("cold", updates)):
        times = []
        for i in range(2 * repeat):
            start = time.perf_counter()
            emulator.execute(programs[i % 2])
            times.append(time.perf_counter() - start)
        results[f"{name}_us"] = 1e6 * float(np.median(times[2:]))
    results["update_words"] = int(updates[0].size - vector.size)
    return results


def spiking_program(n_events: int, duration_cycles: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Configuration (512 LIF neurons, all 2 x 256 x 256 synapses active) and a 1 ms stimulus program."""
    b = REGISTER_MAP
    addresses, values = hagen.capmem_nominal_words()
    cells = values.reshape(4, 24, 130)
    cells[:, b.capmem_row("v_threshold"), :128] = 450
    neuron = 1 | (1 << 1) | (1 << 2) | (1 << 3) | (1 << 4) | (63 << 8)  # exc + inh input, leak, threshold, fire
    backend = (np.arange(512) % 256) | (125 << 8) | (1 << 20)
    nodes = []
    for p in range(4):  # FPGA channel 0 -> bus p of both hemispheres, selected by label bits 12..11
        for h in range(2):
            n = 8 * 12 + h * 4 + p
            nodes.append((n, 0x1800 | ((p << 11) << 16), 1))
    for eo in range(8):  # every neuron event output -> FPGA output 8 (recorded)
        nodes.append((eo * 12 + 8, 0, 1))
    node_addr = np.array([[b["crossbar_node"].base + 2 * n, b["crossbar_node"].base + 2 * n + 1] for n, _, _ in nodes]).reshape(-1)
    node_words = np.array([[w0, w1] for _, w0, w1 in nodes]).reshape(-1)
    driver = 1 | (1 << 1) | (2 << 3) | (31 << 5) | (8 << 12)  # receiver, top row excitatory, bottom inhibitory
    weights = rng.integers(0, 8, (2, 256, 256)).astype(np.uint8)  # balanced excitation and inhibition
    config = np.concatenate([
        wire.encode_timer_reset(),
        wire.encode_write_block(int(addresses[0]), values),
        wire.encode_wait_until([2_500_000]),
        wire.encode_write(b["neuron_config"].base + np.arange(512), np.full(512, neuron)),
        wire.encode_write(b["neuron_backend_config"].base + np.arange(512), backend),
        wire.encode_write(node_addr, node_words),
        wire.encode_write(b["padi_bus_config"].base + np.arange(8), np.ones(8, np.int64)),
        wire.encode_write_block(b["synapse_driver_config"].base, np.full(256, driver)),
        wire.encode_write_block(b["synapse_quad"].base, weights.reshape(-1).view("<u4").astype(np.int64)),
        wire.encode_write_block(b["synapse_quad"].base + 32768, np.zeros(32768, np.int64)),  # all labels 0
        wire.encode_write([b["cadc_config"].base, b["cadc_config"].base + 1], [1, 1]),
    ])
    drivers = rng.integers(0, 128, n_events)
    labels = ((drivers % 4) << 11) | ((drivers // 4) << 6)  # synapse label 0
    packs = -(-n_events // 3)
    delays = rng.integers(0, 2 * duration_cycles // packs - 1, packs).clip(0, 63)
    stimulus = np.concatenate([
        wire.encode_timer_reset(),
        wire.encode_write([b["neuron_reset"].base], [15]),
        wire.encode_spikes(labels, delays),
        wire.encode_wait_until([duration_cycles]),
        wire.encode_end(2),
    ])
    return config, stimulus


def spiking_benchmark(n_events: int, duration_cycles: int, repeat: int) -> dict[str, float]:
    rng = np.random.default_rng(1)
    config, stimulus = spiking_program(n_events, duration_cycles, rng)
    emulator = Emulator(seed=2)
    emulator.execute(config)
    responses = emulator.execute(stimulus)
    wall = best_of(repeat, lambda: emulator.execute(stimulus))
    decoded = wire.decode_responses(responses)
    return {
        "chip_time_s": duration_cycles * wire.CYCLE_SECONDS,
        "input_events": n_events,
        "neurons": 512,
        "synapses": 2 * 256 * 256,
        "wall_s": wall,
        "output_spikes": int(decoded.spike_labels.size),
        "errors": int(decoded.error_codes.size),
    }


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, finishes in a few seconds (CI)")
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    parser.add_argument("--repeat", type=int, default=20, help="repetitions (interleaved with the matmul); the best time counts")
    parser.add_argument("--breakdown", action="store_true", help="CPU time per pass of the hagen fast path")
    args = parser.parse_args(argv)
    batch, events, duration, repeat = (200, 10_000, 12_500, 2) if args.quick else (2000, 100_000, 125_000, args.repeat)
    results = {
        "mac_default": mac_benchmark(batch, repeat, EmulatorConfig.default(), args.breakdown),
        "mac_ideal": mac_benchmark(batch, repeat, EmulatorConfig.ideal(), args.breakdown),
        "spiking": spiking_benchmark(events, duration, max(1, repeat // 2)),
        "latency": latency_benchmark(50 if args.quick else 500),
    }
    print(f"BLAS threads: {results['mac_ideal']['blas_threads']}; kernels: {results['mac_ideal']['kernels']}")
    print(f"{'benchmark':<14} {'figure':<22} {'value':>14}")
    for name in ("mac_default", "mac_ideal"):
        r = results[name]
        print(f"{name:<14} {'batch':<22} {r['batch']:>14d}")
        print(f"{'':<14} {'execute [ms]':<22} {1e3 * r['execute_s']:>14.2f}")
        print(f"{'':<14} {'emulated GMAC/s':<22} {r['emulated_gmac_per_s']:>14.2f}")
        print(f"{'':<14} {'numpy matmul GMAC/s':<22} {r['numpy_gmac_per_s']:>14.2f}")
        print(f"{'':<14} {'ratio to matmul':<22} {100 * r['ratio_to_matmul']:>13.1f}%")
        print(f"{'':<14} {'encode [ms]':<22} {1e3 * r['encode_s']:>14.2f}")
        print(f"{'':<14} {'decode [ms]':<22} {1e3 * r['decode_s']:>14.2f}")
        print(f"{'':<14} {'hardware time [ms]':<22} {1e3 * r['hardware_time_s']:>14.3f}")
        for name, seconds in r["passes_s"].items():
            print(f"{'':<14} {'  ' + name + ' [ms]':<34} {1e3 * seconds:>8.3f}")
    s = results["spiking"]
    print(f"{'spiking':<14} {'chip time [ms]':<22} {1e3 * s['chip_time_s']:>14.3f}")
    print(f"{'':<14} {'input events':<22} {s['input_events']:>14d}")
    print(f"{'':<14} {'wall [s]':<22} {s['wall_s']:>14.3f}")
    print(f"{'':<14} {'output spikes':<22} {s['output_spikes']:>14d}")
    lat = results["latency"]
    print(f"{'batch 1':<14} {'warm [us]':<22} {lat['warm_us']:>14.0f}")
    print(f"{'':<14} {'new weights [us]':<22} {lat['cold_us']:>14.0f}")
    write_json(args.json, "emulator", results, args.quick)
    return results


if __name__ == "__main__":
    main()
